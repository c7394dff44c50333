"""The student: hashed n-gram embedding bag + overlap features -> small MLP, trained with the KD loss.

``bag [n, B] @ E [B, D]`` (the embedding bag, as a matrix product over the featuriser's weighted counts)
is concatenated with ``dense [n, K]`` and goes through ``Linear(D + K, H) -> ReLU -> Linear(H, C)``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from distillation.config import StudentConfig
from distillation.features import Featurizer
from distillation.metrics import qwk


class StudentNet(nn.Module):
    def __init__(self, n_buckets: int, n_dense: int, embed_dim: int, hidden: int, n_classes: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(n_buckets, embed_dim))
        self.fc1 = nn.Linear(embed_dim + n_dense, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)
        nn.init.normal_(self.embedding, std=0.1)

    def forward(self, bag: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        x = torch.cat([bag @ self.embedding, dense], dim=1)
        return self.fc2(torch.relu(self.fc1(x)))

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))


class Features:
    """Featurised rows kept sparse (CSR bag + dense matrix)."""

    def __init__(self, bag: sp.csr_matrix, dense: np.ndarray):
        self.bag = bag
        self.dense = dense

    @classmethod
    def compute(cls, fz: Featurizer, responses, questions, references, chunk: int = 2000) -> Features:
        bags, denses = [], []
        for s in range(0, len(responses), chunk):
            f = fz.transform(responses[s : s + chunk], questions[s : s + chunk], references[s : s + chunk])
            bags.append(sp.csr_matrix(f["bag"]))
            denses.append(f["dense"])
        return cls(sp.vstack(bags, format="csr"), np.concatenate(denses))

    def __len__(self) -> int:
        return self.bag.shape[0]

    def rows(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.bag[idx].toarray()), torch.from_numpy(self.dense[idx])

    def concat(self, other: Features) -> Features:
        return Features(sp.vstack([self.bag, other.bag], format="csr"), np.concatenate([self.dense, other.dense]))


def kd_loss(logits, soft_targets, hard, temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, human label).
    Rows without a human label (hard < 0) take the KD term alone (weight 1)."""
    t = temperature
    log_p = F.log_softmax(logits / t, dim=1)
    kl = (soft_targets * (torch.log(soft_targets.clamp_min(1e-12)) - log_p)).sum(1) * (t * t)
    labelled = hard >= 0
    ce = F.cross_entropy(logits, hard.clamp_min(0), reduction="none")
    loss = torch.where(labelled, alpha * kl + (1 - alpha) * ce, kl)
    return loss.mean()


@torch.no_grad()
def predict_proba(model: StudentNet, feats: Features, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = []
    for s in range(0, len(feats), batch):
        out.append(torch.softmax(model(*feats.rows(np.arange(s, min(s + batch, len(feats))))), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.fc2.out_features), np.float32)


def train_student(
    feats: Features,
    hard: np.ndarray,
    soft: np.ndarray | None,
    val_feats: Features,
    y_val: np.ndarray,
    n_classes: int,
    cfg: StudentConfig,
    seed: int,
    progress: Callable[..., None] | None = None,
    stage: str = "student",
) -> tuple[StudentNet, dict]:
    """Train a student.  ``soft`` (teacher probabilities at temperature T) given: KD loss; None: plain
    cross-entropy on the rows with a human label (``hard >= 0``).  The epoch with the best validation
    QWK (ties: accuracy) is kept."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = StudentNet(feats.bag.shape[1], feats.dense.shape[1], cfg.embed_dim, cfg.hidden, n_classes)
    rows = np.arange(len(feats)) if soft is not None else np.flatnonzero(hard >= 0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, (len(rows) + cfg.batch_size - 1) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.02, 1.0 - s / total))
    hard_t = torch.as_tensor(hard, dtype=torch.long)
    soft_t = torch.as_tensor(soft) if soft is not None else None
    labels = list(range(n_classes))
    best_key, best_state, best_epoch = None, None, 0
    t0 = time.monotonic()
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rows[rng.permutation(len(rows))]
        for s in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[s : s + cfg.batch_size])
            logits = model(*feats.rows(idx))
            if soft_t is not None:
                loss = kd_loss(logits, soft_t[idx], hard_t[idx], cfg.temperature, cfg.alpha)
            else:
                loss = F.cross_entropy(logits, hard_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        pred = predict_proba(model, val_feats).argmax(1)
        key = (round(qwk(y_val, pred, labels), 9), round(float((pred == y_val).mean()), 9))
        if best_key is None or key > best_key:
            best_key, best_state, best_epoch = key, copy.deepcopy(model.state_dict()), epoch
        if progress:
            rate = (time.monotonic() - t0) / step
            progress(stage=stage, step=step, total=total, epoch=epoch, epochs=cfg.epochs,
                     eta_s=rate * (total - step), val_qwk=key[0])
    model.load_state_dict(best_state)
    model.eval()
    return model, {"best_epoch": best_epoch, "best_val_qwk": best_key[0], "steps": step,
                   "seconds": round(time.monotonic() - t0, 1)}
