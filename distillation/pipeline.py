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
from pathlib import Path

import numpy as np

from distillation import artifact
from distillation.config import DistillConfig
from distillation.data import DataError, Dataset, check_labels, check_test, read_csv, stratified_split
from distillation.features import Featurizer
from distillation.metrics import qwk, scores

POOLED = "pooled"
REPORT_MODELS = ("teacher", "teacher_onnx_int8", "student", "student_no_kd", "tfidf_logreg")


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


# Rows of the test split whose PyTorch-student probabilities go into parity.json.
PARITY_SAMPLE = 50

def _fmt_s(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _quiet(**_kw) -> None:
    return None


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def load_inputs(train_csv, test_csv=None, unlabelled_csv=None, *, pooled: bool = False):
    """Read and validate every input before anything is written.  Raises DataError."""
    train = read_csv(train_csv)
    labels = check_labels(train) if not pooled else None
    if pooled:
        levels = sorted(set(train.score))
        if len(levels) < 2:
            raise DataError(train.path, [(None, "score", f"a single score level ({levels[0]}): nothing to learn")])
        labels = {POOLED: levels}
    test = read_csv(test_csv) if test_csv else None
    if test is not None:
        check_test(test, labels, pooled)
    unlabelled = read_csv(unlabelled_csv, labelled=False) if unlabelled_csv else None
    if unlabelled is not None and not pooled:
        unknown = [(i + 1, "item_id", f"item {x!r} is not in the training file")
                   for i, x in enumerate(unlabelled.item_id) if x not in labels]
        if unknown:
            raise DataError(unlabelled.path, unknown)
    return train, test, unlabelled, labels


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


def _tfidf_logreg(train_text, y, seed):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    vec = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=True),
    )
    clf = LogisticRegression(C=10.0, max_iter=3000, random_state=seed)
    model = make_pipeline(vec, clf).fit(train_text, y)
    return model, int(clf.coef_.size + clf.intercept_.size)


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
    import torch

    from distillation import augment as aug
    from distillation import onnx_export as ox
    from distillation import student as st
    from distillation import teacher as tch

    t_item = time.monotonic()
    _set_threads(config.threads)
    say = lambda stage, **kw: progress(item=item_id, stage=stage, **kw)  # noqa: E731
    index = {v: i for i, v in enumerate(levels)}
    n_classes = len(levels)

    # ---- splits: test (file or held-out), validation for early stopping
    if test is None:
        keep, held = stratified_split(train.score, config.holdout_fraction, seed)
        test, train = train.select(held), train.select(keep)
        test_source = f"held-out {config.holdout_fraction:.0%} of the training file"
    else:
        test_source = test.path
    fit_idx, val_idx = stratified_split(train.score, config.validation_fraction, seed + 1)
    fit, val = train.select(fit_idx), train.select(val_idx)
    y_fit = np.array([index[s] for s in fit.score])
    y_val = np.array([index[s] for s in val.score])
    y_test = np.array([index[s] for s in test.score])
    cls = list(range(n_classes))
    pooled_context = len(set(zip(train.question, train.reference_answer, strict=True))) > 1
    use_context = {"auto": pooled_context, "always": True, "never": False}[config.teacher.context]
    cross_q = {"auto": pooled_context, "on": True, "off": False}.get(config.student.cross_question, pooled_context)

    def context(ds: Dataset):
        if not use_context:
            return None
        return [f"{q} {r}".strip() for q, r in zip(ds.question, ds.reference_answer, strict=True)]

    # ---- teacher
    say("teacher", message=f"fine-tuning on {len(fit)} responses ({len(val)} for early stopping)", force=True)
    tok = tch.load_tokenizer(config.teacher.checkpoint)
    enc = lambda texts, ctx: tch.Encoded(tok, texts, ctx, config.teacher.max_length)  # noqa: E731
    teacher = tch.build_teacher(config.teacher.checkpoint, n_classes, seed)
    e_fit, e_val = enc(fit.response, context(fit)), enc(val.response, context(val))
    e_test = enc(test.response, context(test))
    t_log = tch.train_teacher(teacher, e_fit, y_fit, e_val, y_val, config.teacher, seed, progress=lambda **k: say(**k))

    # ---- soft labels: training responses, augmented copies, unscored responses
    scfg = config.student
    aug_texts, aug_src = aug.augment_many(fit.response, scfg.augment_copies, seed + 2, scfg.word_dropout)
    extra_resp = list(aug_texts)
    extra_q = [fit.question[i] for i in aug_src]
    extra_r = [fit.reference_answer[i] for i in aug_src]
    n_unlab = 0
    if unlabelled is not None and len(unlabelled):
        n_unlab = len(unlabelled)
        extra_resp += unlabelled.response
        extra_q += unlabelled.question
        extra_r += unlabelled.reference_answer
    say("soft labels", force=True,
        message=f"teacher labels {len(fit)} + {len(aug_texts)} augmented + {n_unlab} unscored responses")
    t0 = time.monotonic()
    ctx_extra = [f"{q} {r}".strip() for q, r in zip(extra_q, extra_r, strict=True)] if use_context else None
    # The fine-tuned teacher runs in onnxruntime (fp32) to label the many responses: same function,
    # ~2x faster than torch on a CPU.  Its log-probabilities give the same softened distribution.
    tmpd = Path(tempfile.mkdtemp(prefix="kdgrade-teacher-"))
    fp32 = tmpd / "teacher.onnx"
    tch.export_onnx(teacher, e_test, fp32)
    labeller = tch.OnnxTeacher(fp32, threads=config.threads)
    logits_test = tch.predict_logits(teacher, e_test)
    logits_val = tch.predict_logits(teacher, e_val)
    p_val_onnx = labeller.predict(e_val)
    teacher_onnx_parity = float(np.abs(p_val_onnx - tch.soft_labels(logits_val, 1.0)).max())
    logits_fit = np.log(np.maximum(labeller.predict(e_fit), 1e-30))
    logits_extra = (np.log(np.maximum(labeller.predict(enc(extra_resp, ctx_extra)), 1e-30)) if extra_resp
                    else np.zeros((0, n_classes)))
    soft = tch.soft_labels(np.concatenate([logits_fit, logits_extra]), scfg.temperature)
    hard = np.concatenate([y_fit, -np.ones(len(extra_resp), dtype=np.int64)])
    say("soft labels", message=f"done in {_fmt_s(time.monotonic() - t0)}", force=True)
    dump = os.environ.get("KDGRADE_DISTILL_DUMP")
    if dump:  # for student experiments without re-training the teacher (bench/distill_student_sweep.py)
        Path(dump).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(dump) / f"{item_id}.npz", logits_fit=logits_fit, logits_extra=logits_extra,
                            logits_val=logits_val, logits_test=logits_test, y_fit=y_fit, y_val=y_val, y_test=y_test)
        (Path(dump) / f"{item_id}.json").write_text(json.dumps({
            "levels": levels, "cross_question": cross_q,
            "fit": [fit.response, fit.question, fit.reference_answer],
            "extra": [extra_resp, extra_q, extra_r],
            "val": [val.response, val.question, val.reference_answer],
            "test": [test.response, test.question, test.reference_answer],
        }))

    # ---- student features (the serving featuriser)
    fz = Featurizer(n_buckets=scfg.n_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=cross_q)
    f_fit = st.Features.compute(fz, fit.response, fit.question, fit.reference_answer)
    f_extra = st.Features.compute(fz, extra_resp, extra_q, extra_r) if extra_resp else None
    f_all = f_fit.concat(f_extra) if f_extra is not None else f_fit
    f_val = st.Features.compute(fz, val.response, val.question, val.reference_answer)
    f_test = st.Features.compute(fz, test.response, test.question, test.reference_answer)

    student, s_log = st.train_student(f_all, hard, soft, f_val, y_val, n_classes, scfg, seed + 3,
                                      progress=lambda **k: say(**k), stage="student (KD)")
    no_kd, n_log = st.train_student(f_fit, y_fit, None, f_val, y_val, n_classes, scfg, seed + 3,
                                    progress=lambda **k: say(**k), stage="student (no KD)")

    # ---- baseline: TF-IDF + logistic regression
    say("tfidf_logreg", message="fitting", force=True)
    tfidf, tfidf_params = _tfidf_logreg(fit.response, y_fit, seed)

    # ---- evaluation
    say("evaluate", message=f"on {len(test)} test responses ({test_source})", force=True)
    report_models: dict = {}
    teacher_pred = logits_test.argmax(1)
    timing_texts = test.response[: min(len(test), 256)]
    timing_q, timing_r = test.question[: len(timing_texts)], test.reference_answer[: len(timing_texts)]
    n_single = config.timing_responses

    def metrics(pred):
        return scores(np.asarray(levels)[y_test], np.asarray(levels)[pred], levels)

    torch.set_num_threads(1)
    try:
        def teacher_score(texts, _q=timing_q, _r=timing_r):
            n = len(texts)
            ctx = [f"{q} {r}".strip() for q, r in zip(_q[:n], _r[:n], strict=True)] if use_context else None
            return tch.predict_logits(teacher, enc(texts, ctx))

        report_models["teacher"] = {"params": tch.count_params(teacher), **metrics(teacher_pred),
                                    **ox.time_scorer(teacher_score, timing_texts, min(n_single, 30))}

        ot_predict = None
        if config.teacher.export_int8:
            say("teacher_onnx_int8", message="export + int8 quantisation", force=True)
            int8 = tmpd / "teacher.int8.onnx"
            tch.quantize_int8(fp32, int8)
            ot = tch.OnnxTeacher(int8, threads=1)
            ot_predict = ot.predict
            p_int8 = ot.predict(e_test)

            def int8_score(texts, _q=timing_q, _r=timing_r):
                n = len(texts)
                ctx = [f"{q} {r}".strip() for q, r in zip(_q[:n], _r[:n], strict=True)] if use_context else None
                return ot.predict(enc(texts, ctx))

            report_models["teacher_onnx_int8"] = {
                "params": tch.count_params(teacher), **metrics(p_int8.argmax(1)),
                **ox.time_scorer(int8_score, timing_texts, min(n_single, 30)),
                "onnx_bytes": int8.stat().st_size,
                "agreement_with_teacher": round(float((p_int8.argmax(1) == teacher_pred).mean()), 6),
            }
        else:
            report_models["teacher_onnx_int8"] = None

        # student: torch vs ONNX parity, then ONNX metrics and speed (what serving runs)
        out.mkdir(parents=True, exist_ok=True)
        work = artifact.atomic_directory(out, prefix=f".tmp-{item_id}-")
        try:
            model_proto = ox.student_to_onnx(student, fz.n_buckets, fz.n_dense)
            (work / "model.onnx").write_bytes(model_proto.SerializeToString())
            sess = ox.session(work / "model.onnx", threads=1)
            feeds_test = {"bag": f_test.bag.toarray(), "dense": f_test.dense}
            p_onnx = ox.run_onnx(sess, feeds_test)
            p_torch = st.predict_proba(student, f_test)
            feeds_val = {"bag": f_val.bag.toarray(), "dense": f_val.dense}
            diff = max(ox.parity(p_torch, p_onnx),
                       ox.parity(st.predict_proba(student, f_val), ox.run_onnx(sess, feeds_val)))
            # A sample of what the PyTorch student gave at export, so a serving process can prove it
            # reproduces these probabilities without torch.
            k = min(PARITY_SAMPLE, len(test.response))
            artifact.write_json(work / "parity.json", {
                "responses": list(test.response[:k]), "questions": list(test.question[:k]),
                "references": list(test.reference_answer[:k]),
                "probabilities": [[float(x) for x in row] for row in p_torch[:k]],
            })
            say("export", message=f"ONNX parity: max abs probability difference {diff:.3g} (limit {ox.PARITY_LIMIT:g})",
                force=True)
            s_pred = p_onnx.argmax(1)

            def student_score(texts, _q=timing_q, _r=timing_r):
                n = len(texts)
                return sess.run(["probabilities"], fz.transform(texts, _q[:n], _r[:n]))[0]

            speed_texts = (test.response * (1 + 1000 // max(1, len(test))))[:1000]
            speed_q = (test.question * (1 + 1000 // max(1, len(test))))[:1000]
            speed_r = (test.reference_answer * (1 + 1000 // max(1, len(test))))[:1000]

            def student_score_1k(texts):
                n = len(texts)
                return sess.run(["probabilities"], fz.transform(texts, speed_q[:n], speed_r[:n]))[0]

            st_speed = ox.time_scorer(student_score_1k, speed_texts, n_single)
            report_models["student"] = {
                "params": student.n_params(), **metrics(s_pred), **st_speed,
                "onnx_bytes": (work / "model.onnx").stat().st_size,
                "agreement_with_teacher": round(float((s_pred == teacher_pred).mean()), 6),
                "parity_max_abs_diff": float(f"{diff:.3g}"),
            }
            del student_score
            int8_info = None
            if scfg.int8:
                ox.quantize_student(work / "model.onnx", work / "model.int8.onnx")
                s8 = ox.session(work / "model.int8.onnx", threads=1)
                p8 = ox.run_onnx(s8, feeds_test)
                agree = float((p8.argmax(1) == s_pred).mean())
                m8 = metrics(p8.argmax(1))
                report_models["student"]["int8"] = {**m8, "agreement_with_student": round(agree, 6),
                                                    "onnx_bytes": (work / "model.int8.onnx").stat().st_size,
                                                    "kept": agree >= 0.98}
                if agree >= 0.98:
                    int8_info = {"file": "model.int8.onnx", "agreement_with_float": round(agree, 6),
                                 "accuracy": m8["accuracy"], "qwk": m8["qwk"]}
                else:
                    (work / "model.int8.onnx").unlink()

            nk_pred = st.predict_proba(no_kd, f_test).argmax(1)
            report_models["student_no_kd"] = {
                "params": no_kd.n_params(), **metrics(nk_pred),
                "agreement_with_teacher": round(float((nk_pred == teacher_pred).mean()), 6),
            }
            tf_pred = tfidf.predict(test.response)
            report_models["tfidf_logreg"] = {"params": tfidf_params, **metrics(np.asarray(tf_pred)),
                                             **ox.time_scorer(tfidf.predict_proba, timing_texts, n_single)}

            extra_entries = {}
            for name, ds in (extra_tests or {}).items():
                say("evaluate", message=f"extra test set {name!r}: {len(ds)} responses", force=True)
                y_ds = np.array([index[s] for s in ds.score])
                e_ds = enc(ds.response, context(ds))
                t_pred = tch.predict_logits(teacher, e_ds).argmax(1)
                f_ds = st.Features.compute(fz, ds.response, ds.question, ds.reference_answer)
                sp_ = ox.run_onnx(sess, {"bag": f_ds.bag.toarray(), "dense": f_ds.dense}).argmax(1)
                lv = np.asarray(levels)
                m = lambda pred, y_ds=y_ds, lv=lv: scores(lv[y_ds], lv[pred], levels)  # noqa: E731
                models_ds = {
                    "teacher": {"params": tch.count_params(teacher), **m(t_pred)},
                    "teacher_onnx_int8": ({"params": tch.count_params(teacher), **m(ot_predict(e_ds).argmax(1))}
                                          if ot_predict else None),
                    "student": {"params": student.n_params(), **m(sp_),
                                "agreement_with_teacher": round(float((sp_ == t_pred).mean()), 6)},
                    "student_no_kd": {"params": no_kd.n_params(), **m(st.predict_proba(no_kd, f_ds).argmax(1))},
                    "tfidf_logreg": {"params": tfidf_params, **m(np.asarray(tfidf.predict(ds.response)))},
                }
                extra_entries[name] = {"n_test": len(ds), "human_human_qwk": _human_human(ds, levels),
                                       "test_source": ds.path, "models": models_ds}

            entry = {
                "n_train": len(train),
                "n_test": len(test),
                "human_human_qwk": _human_human(test, levels),
                "human_human_qwk_train": _human_human(train, levels),
                "labels": levels,
                "test_source": test_source,
                "models": {k: report_models[k] for k in REPORT_MODELS},
                "teacher_training": t_log,
                "student_training": s_log,
                "student_no_kd_training": n_log,
                "n_soft_labelled": {"train": len(fit), "augmented": len(aug_texts), "unlabelled": n_unlab},
                "teacher_val_qwk": round(qwk(y_val, logits_val.argmax(1), cls), 6),
                "teacher_onnx_fp32_max_abs_diff": float(f"{teacher_onnx_parity:.3g}"),
                "seconds": round(time.monotonic() - t_item, 1),
            }
            if extra_entries:
                entry["extra_tests"] = extra_entries

            artifact.write_json(work / "featurizer.json", fz.to_state())
            artifact.write_json(work / "config.json", {
                "seed": seed,
                "item_id": item_id,
                "labels": levels,
                "distill": config.to_dict(),
                "teacher_checkpoint": config.teacher.checkpoint or tch.default_checkpoint(),
                "teacher_context": use_context,
                "pooled": item_id == POOLED,
                "data": {
                    "train": {"path": train.path, "sha256": train.sha256},
                    "test": {"path": test.path, "sha256": test.sha256} if test_source == test.path else None,
                    "unlabelled": {"path": unlabelled.path, "sha256": unlabelled.sha256} if unlabelled else None,
                },
                "versions": _versions(),
            })
            artifact.write_json(work / "report.json", entry)
            artifact.write_manifest(work, item_id=item_id, labels=levels, inputs=fz.input_names, opset=ox.OPSET,
                                    student_params=student.n_params(), parity_max_abs_diff=diff, int8=int8_info,
                                    extra_files=("parity.json",))
            artifact.verify(work)
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
        _set_threads(config.threads)
        shutil.rmtree(tmpd, ignore_errors=True)
    entry["seconds"] = round(time.monotonic() - t_item, 1)
    return entry


def _human_human(ds: Dataset, levels: list[int]) -> float | None:
    s2 = ds.score2()
    if s2 is None:
        return None
    pairs = [(a, b) for a, b in zip(ds.score, s2, strict=True) if b is not None]
    if not pairs:
        return None
    labs = sorted(set(levels) | {a for a, _ in pairs} | {b for _, b in pairs})
    return round(qwk([a for a, _ in pairs], [b for _, b in pairs], labs), 6)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "sklearn": sklearn.__version__}


def quality_view(report: dict) -> dict:
    """The report without timings (what the same seed must reproduce byte for byte)."""
    timing = {"ms_per_response", "responses_per_s", "seconds"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in timing}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(report)
