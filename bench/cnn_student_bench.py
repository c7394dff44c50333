"""An experiment, not the product's recipe: does a small convolutional network over word embeddings
(initialised from the teacher's own MiniLM word-piece embeddings), beside a smaller linear bag, follow
the teacher better than the linear student alone, within the same 50,000-parameter budget?

    .venv/bin/python bench/cnn_student_bench.py [--items 1 2 5 6] [--seeds 0 1 2] [--cache DIR]

For each ASAP-SAS prompt: the default teacher is cross-fitted as `distill` does it (`fit_teacher`, seed
0; with --cache its per-copy scores and folds are saved there and read back on the next run), then

- **linear, 49,152 buckets**: today's student (`fit_student`, distilled), for reference;
- **linear alone** with the hybrid's smaller bag (what the CNN is added to);
- **hybrid**: a linear student with fewer buckets (its own teacher weight and ridge strength chosen out of
  fold, as `distill` chooses them) plus a word CNN: the item's most frequent training words (at least 2
  occurrences, the featuriser's own word split) as an embedding table initialised by a PCA of the mean
  MiniLM word-piece embedding of each word, a width-3 convolution, ReLU, max and mean pooling, a linear
  head; trained (AdamW, 25 epochs) on 0.5 x teacher + 0.5 x human.  The two scores are summed with the
  CNN's share (0 / 0.25 / 0.5 / 0.75) chosen on the out-of-fold QWK.

Out-of-fold figures use the teacher's 4 folds, each fold's targets from the copy that never saw it (as
`fit_student`); every model is decoded by cut-points fitted on its out-of-fold scores.  The CNN is run
with several seeds: the table gives each seed's figures.  Needs the training requirements (torch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))

HYBRIDS = {  # name: (buckets of the linear bag, words, embedding size, convolution channels)
    "hybrid 16k + CNN 1,500 x 16, 48": (16384, 1500, 16, 48),
    "hybrid 12k + CNN 2,000 x 16, 32": (12288, 2000, 16, 32),
    "hybrid 24k + CNN 2,000 x 16, 32": (24576, 2000, 16, 32),
}


def teacher_scores(prompt: str, sp_, config, cache: Path | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Each teacher copy's score of every labelled row, and the folds (cross-fitted by ``fit_teacher``)."""
    from distillation.teacher_fit import fit_teacher

    path = cache / f"teacher_asap-{prompt}.npz" if cache else None
    if path is not None and path.exists():
        d = np.load(path)
        return d["by_copy"], d["folds"], 0.0
    t0 = time.monotonic()
    res = fit_teacher(sp_, config, 0, lambda *a, **k: None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, by_copy=res.by_copy, folds=res.folds)
    return res.by_copy, res.folds, (time.monotonic() - t0) / 60


def words(texts: list[str]) -> tuple[list[list[int]], dict[int, str]]:
    """Each text's words as the featuriser splits them (its 64-bit word hashes, as signed integers), and
    the text of each word hash (for the embedding initialisation)."""
    from distillation.features import _Text

    t = _Text(texts)
    raw = t.raw.tobytes()
    rows: list[list[int]] = [[] for _ in texts]
    spelled: dict[int, str] = {}
    for r, h, s, e in zip(t.word_row.tolist(), t.word_hash.view(np.int64).tolist(), t.word_start.tolist(),
                          t.word_end.tolist(), strict=True):
        rows[r].append(h)
        spelled.setdefault(h, raw[s:e].decode("utf-8", "replace"))
    return rows, spelled


def embedding_init(vocab: list[int], texts: dict[int, str], dim: int) -> np.ndarray:
    """PCA to ``dim`` of the mean MiniLM word-piece input embedding of each word, scaled to unit std."""
    from transformers import AutoModel

    from distillation import teacher as tch

    tok = tch.load_tokenizer(None)
    table = AutoModel.from_pretrained(tch.default_checkpoint(), local_files_only=True)
    table = table.embeddings.word_embeddings.weight.detach().numpy()
    e = np.stack([table[tok(texts[h], add_special_tokens=False)["input_ids"] or [tok.unk_token_id]].mean(0)
                  for h in vocab])
    e = e - e.mean(0)
    _, _, vt = np.linalg.svd(e, full_matrices=False)
    z = e @ vt[:dim].T
    return (z / z.std()).astype(np.float32)


class WordCNN:
    """Embedding (row 0: padding, row 1: words outside the vocabulary) -> Conv1d(width 3) -> ReLU ->
    [max, mean] pooling -> linear."""

    def __init__(self, init: np.ndarray, channels: int, seed: int, epochs: int = 25):
        self.init, self.channels, self.seed, self.epochs = init, channels, seed, epochs

    def _net(self):
        import torch
        from torch import nn

        init, h = self.init, self.channels

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(len(init) + 2, init.shape[1], padding_idx=0)
                with torch.no_grad():
                    self.emb.weight[2:] = torch.from_numpy(init)
                    self.emb.weight[:2] = 0  # padding; a word outside the vocabulary (learnt)
                self.conv = nn.Conv1d(init.shape[1], h, 3, padding=1)
                self.head = nn.Linear(2 * h, 1)

            def forward(self, x):
                m = (x > 0).float().unsqueeze(1)
                z = torch.relu(self.conv(self.emb(x).transpose(1, 2))) * m
                top = z.max(2).values  # ReLU outputs: padding's zeros never exceed a word's
                mean = z.sum(2) / m.sum(2).clamp(min=1)
                return self.head(torch.cat([top, mean], 1)).squeeze(1)

        return Net()

    def n_params(self) -> int:
        return sum(p.numel() for p in self._net().parameters())

    def fit(self, x, y: np.ndarray) -> WordCNN:
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.RandomState(self.seed)
        self.net_ = self._net()
        opt = torch.optim.AdamW(self.net_.parameters(), lr=3e-3, weight_decay=1e-4)
        t = torch.tensor(y, dtype=torch.float32)
        per_epoch = max(1, len(t) // 32)
        total = self.epochs * per_epoch  # the learning rate decays linearly to 0: a stable last iterate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
        self.net_.train()
        for _ in range(self.epochs):
            for b in np.array_split(rng.permutation(len(t)), per_epoch):
                opt.zero_grad()
                ((self.net_(x[b]) - t[b]) ** 2).mean().backward()
                opt.step()
                sched.step()
        self.net_.eval()
        return self

    def predict(self, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net_(x).numpy().astype(np.float64)


def pad(seqs: list[list[int]], index: dict[int, int]):
    import torch

    n = max(1, max((len(s) for s in seqs), default=1))
    out = np.zeros((len(seqs), n), np.int64)
    for i, s in enumerate(seqs):
        ids = [index.get(w, 1) for w in s]  # 1: a word outside the vocabulary
        out[i, : len(ids)] = ids
    return torch.from_numpy(out)


def run(prompt: str, seeds: list[int], cache: Path | None) -> list[str]:
    import torch

    from distillation import splits
    from distillation.config import DistillConfig
    from distillation.features import Featurizer
    from distillation.lexical import out_of_fold
    from distillation.metrics import qwk
    from distillation.ordinal import Decoding
    from distillation.splits import make_splits
    from distillation.student import Features, LinearStudent
    from distillation.student_fit import StudentData, fit_student

    torch.set_num_threads(1)
    config = DistillConfig()
    scfg = config.student
    a = DATA / "asap_sas"
    train, test, _, labels = splits.load_inputs(a / "train.csv", a / "test.csv")
    pick = lambda ds: ds.select([i for i, x in enumerate(ds.item_id) if x == prompt])  # noqa: E731
    levels = labels[prompt]
    sp_ = make_splits(pick(train), pick(test), None, levels, config, 0)
    lab, te = sp_.labelled, sp_.test
    y, yt = sp_.y(lab), sp_.y(te)
    lv = list(range(len(levels)))
    by_copy, folds, minutes = teacher_scores(prompt, sp_, config, cache)
    ks = np.unique(folds)
    quiet = lambda *a, **k: None  # noqa: E731

    def q(f, dec, yy):
        return qwk(yy, dec.levels(f), lv)

    def linear(buckets: int):
        fz = Featurizer(n_buckets=buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                        use_reference=True)
        f_lab = Features.compute(fz, lab.response, lab.question, lab.reference_answer)
        f_te = Features.compute(fz, te.response, te.question, te.reference_answer)
        data = StudentData(f_lab, y, by_copy.mean(0), len(y), folds, by_copy)
        st = fit_student(data, levels, scfg, 3, distil=True, stagewise=False, say=quiet, name="linear")
        w = st.teacher_weight

        def fp(tr, held):
            k = int(np.searchsorted(ks, folds[held[0]]))
            target = w * by_copy[k] + (1 - w) * y
            return LinearStudent(st.alpha, scfg.dense_weight).fit(f_lab[tr], target[tr]).decision_function(f_lab[held])

        return out_of_fold(fp, len(y), folds), st.model.decision_function(f_te), st.model.n_params()

    lines = []
    base_oof, base_te, base_n = linear(scfg.n_buckets)
    d = Decoding.fit(base_oof, y, len(levels))
    lines.append(f"| {prompt} | linear, {scfg.n_buckets:,} buckets (today's student) | {base_n:,} | - | "
                 f"{q(base_oof, d, y):.4f} | {q(base_te, d, yt):.4f} |")
    (seqs_lab, texts), (seqs_te, _) = words(lab.response), words(te.response)
    counts: dict[int, int] = {}
    for s in seqs_lab:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    for name, (buckets, n_words, dim, channels) in HYBRIDS.items():
        lin_oof, lin_te, lin_n = linear(buckets)
        d = Decoding.fit(lin_oof, y, len(levels))  # the smaller bag alone: what the CNN is added to
        lines.append(f"| {prompt} | linear alone, {buckets:,} buckets | {lin_n:,} | - | {q(lin_oof, d, y):.4f} "
                     f"| {q(lin_te, d, yt):.4f} |")
        vocab = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: (-counts[w], w))[:n_words]
        index = {w: i + 2 for i, w in enumerate(vocab)}  # 0: padding, 1: any other word
        x_lab, x_te = pad(seqs_lab, index), pad(seqs_te, index)
        init = embedding_init(vocab, texts, dim)
        for seed in seeds:
            cnn_oof = np.zeros(len(y))
            for j, k in enumerate(ks):
                tr, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
                target = 0.5 * by_copy[j] + 0.5 * y
                cnn_oof[held] = WordCNN(init, channels, seed).fit(x_lab[tr], target[tr]).predict(x_lab[held])
            cnn = WordCNN(init, channels, seed).fit(x_lab, 0.5 * by_copy.mean(0) + 0.5 * y)
            cnn_te = cnn.predict(x_te)
            best = None
            for share in (0.0, 0.25, 0.5, 0.75):
                f = share * cnn_oof + (1 - share) * lin_oof
                dec = Decoding.fit(f, y, len(levels))
                score = q(f, dec, y)
                if best is None or score > best[0] + 1e-9:
                    best = (score, share, dec)
            oof_q, share, dec = best
            f_te = share * cnn_te + (1 - share) * lin_te
            n = lin_n + cnn.n_params()
            lines.append(f"| {prompt} | {name}, seed {seed} | {n:,} | {share:g} | {oof_q:.4f} "
                         f"| {q(f_te, dec, yt):.4f} |")
            print(lines[-1], flush=True)
    if minutes:
        lines.append(f"| {prompt} | (teacher: {minutes:.1f} min) | | | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", nargs="*", default=["1", "2", "5", "6"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=None, help="where the teacher's scores are kept between runs")
    args = ap.parse_args()
    out = []
    for item in args.items:
        out += run(item, args.seeds, args.cache)
    print("\n| prompt | student | parameters | CNN share (chosen out of fold) | out-of-fold QWK | test QWK |")
    print("|---|---|---|---|---|---|")
    print("\n".join(out))


if __name__ == "__main__":
    main()
