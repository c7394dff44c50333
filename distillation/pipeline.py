"""The distillation pipeline: CSV in, one model-version directory per item out, plus a JSON report.

``distill(...)`` is what the ``distill`` management command (and a Celery task) calls;
``distill_csv(train_csv, out_dir, config=DistillConfig.tiny(), seed=0)`` is the short form.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from distillation import artifact, gates
from distillation import onnx_contract as oc
from distillation.config import DistillConfig
from distillation.data import DataError, Dataset, check_test, read_csv
from distillation.evaluation import candidate_report, evaluate, question_choice
from distillation.features import Featurizer, question_key
from distillation.splits import POOLED, Splits, agreement_target, load_inputs, make_splits
from distillation.student import Features
from distillation.student_fit import (
    FittedStudent,
    fit_new_question_branch,
    fit_student,
    fit_tfidf,
    soft_targets,
    word_student_inputs,
)
from distillation.teacher_fit import fit_teacher, teacher_recipe


class ProgressPrinter:
    """Prints one line per update (at most every ``every`` seconds, always at an epoch's end)."""

    def __init__(self, stream=None, every: float = 2.0):
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0

    def __call__(self, *, item: str = "", stage: str, message: str = "", step: int | None = None,
                 total: int | None = None, epoch: int | None = None, epochs: int | None = None,
                 eta_s: float | None = None, force: bool = False, **extra) -> None:
        now = time.monotonic()
        epoch_end = "val_qwk" in extra or "val_loss" in extra
        if not (force or epoch_end or message or now - self._last >= self.every):
            return
        self._last = now
        parts = [f"[{item}] {stage}" if item else stage]
        if epoch is not None and epochs is not None:
            parts.append(f"epoch {epoch}/{epochs}")
        if step is not None and total is not None:
            parts.append(f"step {step}/{total}")
        for k, v in extra.items():
            parts.append(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}")
        if eta_s is not None:
            parts.append(f"about {_fmt_s(eta_s)} left")
        if message:
            parts.append(message)
        print(" | ".join(parts), file=self.stream, flush=True)


# Rows of the test split whose numpy-student probabilities go into parity.json.
PARITY_SAMPLE = 50


def _fmt_s(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _quiet(**_kw) -> None:
    return None


def distill_csv(train_csv, out_dir, config: DistillConfig | None = None, seed: int = 0, **kw) -> dict:
    """Short form of :func:`distill` (quiet by default): returns the report."""
    kw.setdefault("progress", _quiet)
    return distill(train_csv, out_dir, config=config or DistillConfig.tiny(), seed=seed, **kw)


def distill(
    train_csv,
    out_dir,
    *,
    test_csv=None,
    unlabelled_csv=None,
    teacher: str | None = None,
    config: DistillConfig | None = None,
    seed: int = 0,
    report_json=None,
    pooled: bool = False,
    items: list[str] | None = None,
    extra_tests: dict[str, str] | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Train one model version per item (or one pooled over all items) under ``out_dir/<item_id>/`` and
    return the report ``{"items": {item_id: {...}}}``; also written to ``report_json`` when given.
    Input files are validated first: a refused file raises DataError and nothing is written."""
    config = config or DistillConfig()
    if teacher is not None:
        config = config.with_teacher(checkpoint=str(teacher))
    progress = progress or ProgressPrinter()
    train, test, unlabelled, labels = load_inputs(train_csv, test_csv, unlabelled_csv, pooled=pooled)
    if config.teacher.checkpoint not in (None, "tiny") and not Path(config.teacher.checkpoint).is_dir():
        raise DataError(config.teacher.checkpoint, [(None, None, "teacher checkpoint: not a directory")])
    extra = {name: read_csv(path) for name, path in (extra_tests or {}).items()}
    for ds in extra.values():
        check_test(ds, labels, pooled)
    units = list(labels)
    if items:
        missing = [i for i in items if i not in labels]
        if missing:
            raise DataError(train.path, [(None, "item_id", f"item {m!r} is not in the training file") for m in missing])
        units = [u for u in units if u in items]

    out = Path(out_dir)
    report: dict = {"items": {}}
    t_all = time.monotonic()
    for n, unit in enumerate(units, start=1):
        progress(item=unit, stage="start", message=f"item {n}/{len(units)}", force=True)
        if pooled:
            tr, te, un = train, test, unlabelled
        else:
            tr = train.for_item(unit)
            te = test.for_item(unit) if test is not None else None
            un = unlabelled.for_item(unit) if unlabelled is not None else None
        ex = {k: (v if pooled else v.for_item(unit)) for k, v in extra.items()}
        ex = {k: v for k, v in ex.items() if len(v)}
        entry = distill_item(unit, tr, te, un, labels[unit], out, config, seed, progress, extra_tests=ex)
        report["items"][unit] = entry
        if report_json:
            _write_report(report_json, report)
        progress(item=unit, stage="done", message=f"item {n}/{len(units)} in {_fmt_s(entry['seconds'])}", force=True)
    report["seconds"] = round(time.monotonic() - t_all, 1)
    if report_json:
        _write_report(report_json, report)
    return report


def _write_report(path, report: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)


# ---------------------------------------------------------------------------------------------------
# One item, in stages: splits (distillation.splits), teacher (teacher_fit), soft targets, students and
# baseline (student_fit), evaluation (evaluation); `distill_item` chains them and writes the version.


def distill_item(
    item_id: str,
    train: Dataset,
    test: Dataset | None,
    unlabelled: Dataset | None,
    levels: list[int],
    out: Path,
    config: DistillConfig,
    seed: int,
    progress: Callable[..., None],
    extra_tests: dict[str, Dataset] | None = None,
) -> dict:
    """Teacher -> soft targets -> students and baseline -> evaluation on the test split -> a verified
    model-version directory ``out/<item_id>/``.  Returns the item's report entry."""
    from distillation import teacher as tch

    t_item = time.monotonic()
    tch.set_threads(config.threads)
    stage_seconds: dict[str, float] = {}  # where the minutes go (the report's "stage_seconds")
    clock = ["splits", t_item]

    def lap(next_stage: str) -> None:
        now = time.monotonic()
        stage_seconds[clock[0]] = stage_seconds.get(clock[0], 0.0) + now - clock[1]
        clock[:] = [next_stage, now]

    def say(stage, **kw):
        lap(stage.split(" (")[0])  # "student (no KD)" counts as "student"
        progress(item=item_id, stage=stage, **kw)

    sp_ = make_splits(train, test, unlabelled, levels, config, seed)
    scfg = config.student
    cross_q = {"auto": sp_.pooled_context, "on": True, "off": False}.get(scfg.cross_question, sp_.pooled_context)
    teacher = fit_teacher(sp_, config, seed, say)
    # a pooled model knows its training questions: one it never saw is scored from the overlap features alone
    known = sorted({question_key(q) for q in sp_.labelled.question}) if sp_.pooled_context else None
    fz = Featurizer(n_buckets=scfg.n_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=cross_q, known_questions=known)
    data = soft_targets(sp_, teacher, fz, say)
    new_q = fit_new_question_branch(data, levels, scfg, fz.seen_column, say) if known else None
    student = fit_student(data, levels, scfg, seed + 3, distil=True, stagewise=cross_q, say=say, name="distilled",
                          new_questions=new_q)
    candidates = {"linear": (student, fz)}
    words_init = None
    if scfg.word_cnn and not known:  # a pooled model's words are its training questions': no CNN there
        fz_w, data_w, words_init = word_student_inputs(sp_, teacher, data, config, cross_q)
        if words_init is not None:
            hybrid = fit_student(data_w, levels, scfg, seed + 3, distil=True, stagewise=cross_q, say=say,
                                 name="distilled, word CNN", words_init=words_init)
            candidates["word_cnn"] = (hybrid, fz_w)
            if hybrid.words_share > 0 and hybrid.oof_qwk > student.oof_qwk + scfg.word_cnn_margin:
                student, fz, data = hybrid, fz_w, data_w
            else:
                words_init = None
    no_kd = fit_student(data, levels, scfg, seed + 3, distil=False, stagewise=cross_q, say=say, name="no KD",
                        new_questions=new_q, words_init=words_init)
    say("tfidf", message="TF-IDF ridge baseline, out-of-fold decoding", force=True)
    tfidf, tfidf_dec = fit_tfidf(sp_, scfg, seed + 4)
    target, target_source = agreement_target(sp_.labelled, scfg.default_agreement)

    out.mkdir(parents=True, exist_ok=True)
    work = artifact.atomic_directory(out, prefix=f".tmp-{item_id}-")
    tmpd = Path(tempfile.mkdtemp(prefix="kdgrade-teacher-"))
    try:
        say("export", message="student to ONNX", force=True)
        (work / "model.onnx").write_bytes(student.model.to_onnx().SerializeToString())
        sess = oc.session(work / "model.onnx")
        say("evaluate", message=f"on {len(sp_.test)} test responses ({sp_.test_source})", force=True)
        entry = evaluate(sp_, teacher, student, no_kd, (tfidf, tfidf_dec), fz, sess, config, tmpd,
                         (target, target_source), say)
        for name, ds in (extra_tests or {}).items():
            say("evaluate", message=f"extra test set {name!r}: {len(ds)} responses", force=True)
            sp_x = replace(sp_, test=ds, test_source=ds.path)
            entry.setdefault("extra_tests", {})[name] = evaluate(
                sp_x, teacher, student, no_kd, (tfidf, tfidf_dec), fz, sess, config, None,
                (target, target_source), say, timings=False)
        entry.update({
            "n_train": len(sp_.labelled),
            "labels": levels,
            "teacher_recipe": teacher_recipe(config, teacher),
            "teacher_training": teacher.log,
            "student_training": {"alpha": student.alpha, "oof_qwk": student.oof_qwk,
                                 "oof_qwk_rows": f"every labelled row ({data.n_labelled}), "
                                 + (f"the teacher's {len(np.unique(data.folds))} folds, each fold's targets from "
                                    "the copy that never saw it" if data.folds is not None else
                                    f"{scfg.folds} folds"),
                                 "teacher_weight": student.teacher_weight, "stagewise": bool(cross_q),
                                 "n_labelled": data.n_labelled, "n_unscored": len(data.features) - data.n_labelled,
                                 "form": "word_cnn" if student.words_share > 0 else "linear",
                                 "word_cnn_share": student.words_share,
                                 "candidates": candidate_report(candidates, sp_, scfg.word_cnn_margin),
                                 **question_choice(student)},
            "student_no_kd_training": {"alpha": no_kd.alpha, "oof_qwk": no_kd.oof_qwk, **question_choice(no_kd)},
            "distillation_gain_qwk": round(entry["models"]["student"]["qwk"] - entry["models"]["student_no_kd"]["qwk"],
                                           6),
        })
        entry["gates"] = [g.to_dict() for g in gates.evaluate(entry)]
        entry["gates_passed"] = gates.passed([gates.Gate(**g) for g in entry["gates"]])
        lap("write")
        entry["seconds"] = round(time.monotonic() - t_item, 1)
        entry["stage_seconds"] = {k: round(v, 1) for k, v in stage_seconds.items()}
        write_version(work, item_id, sp_, fz, student, entry, config, seed, train, unlabelled)
        final = out / item_id
        if final.exists():
            old = out / f".old-{item_id}-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        tch.set_threads(config.threads)
        shutil.rmtree(tmpd, ignore_errors=True)
    return entry


def write_version(work: Path, item_id: str, sp_: Splits, fz: Featurizer, student: FittedStudent, entry: dict,
                  config: DistillConfig, seed: int, train: Dataset, unlabelled: Dataset | None) -> None:
    """The model-version files (docs/model_version.md), checksummed and verified."""
    from distillation import teacher as tch

    test = sp_.test
    k = min(PARITY_SAMPLE, len(test))
    sample = Features.compute(fz, test.response[:k], test.question[:k], test.reference_answer[:k])
    # What the numpy student gave at export, so a serving process can prove it reproduces it.
    artifact.write_json(work / "parity.json", {
        "responses": list(test.response[:k]), "questions": list(test.question[:k]),
        "references": list(test.reference_answer[:k]),
        "probabilities": [[float(x) for x in row] for row in student.model.predict_proba(sample)],
    })
    served = oc.run(oc.session(work / "model.onnx"), fz.transform(test.response[:k], test.question[:k],
                                                                  test.reference_answer[:k]))
    diff = oc.parity(student.model.predict_proba(sample), served[oc.PROBABILITIES])
    entry["models"]["student"]["parity_max_abs_diff"] = float(f"{diff:.3g}")
    entry["models"]["student"]["onnx_bytes"] = (work / "model.onnx").stat().st_size
    sel = entry["models"]["student"]["selective"]
    decoding = {**student.decoding.to_dict(), "confidence_threshold": sel["threshold"],
                "threshold_target": sel["target_agreement"], "threshold_target_source": sel["target_source"],
                "fitted_coverage": sel["coverage"], "test_coverage": sel["test"]["coverage"],
                "test_agreement": sel["test"]["agreement"], "ece": sel["ece"]}
    artifact.write_json(work / "featurizer.json", fz.to_state())
    artifact.write_json(work / "config.json", {
        "seed": seed,
        "item_id": item_id,
        "labels": sp_.levels,
        "distill": config.to_dict(),
        "teacher_checkpoint": config.teacher.checkpoint or tch.default_checkpoint(),
        "teacher_context": sp_.use_context,
        "pooled": item_id == POOLED,
        "data": {
            "train": {"path": train.path, "sha256": train.sha256},
            "test": {"path": test.path, "sha256": test.sha256} if sp_.test_source == test.path else None,
            "unlabelled": {"path": unlabelled.path, "sha256": unlabelled.sha256} if unlabelled else None,
        },
        "versions": _versions(),
    })
    artifact.write_json(work / "report.json", entry)
    artifact.write_manifest(work, item_id=item_id, labels=sp_.levels, inputs=list(fz.input_names),
                            opset=oc.OPSET, student_params=student.model.n_params(), parity_max_abs_diff=diff,
                            decoding=decoding, extra_files=("parity.json",))
    artifact.verify(work)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "sklearn": sklearn.__version__}


