"""The evaluation stage of ``distill``: every model on the test split (metrics, selective scoring at
human-level agreement, calibration, sizes and speeds, the int8 teacher), as one item's report entry, and
the report's other parts (the student forms compared, a pooled model's new-question figures,
``quality_view``: the report without timings)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from distillation import gates, ordinal
from distillation import onnx_contract as oc
from distillation.config import DistillConfig
from distillation.data import Dataset
from distillation.features import Featurizer
from distillation.metrics import qwk, scores
from distillation.ordinal import Decoding
from distillation.splits import Splits, human_human
from distillation.student import Features
from distillation.student_fit import FittedStudent
from distillation.teacher_fit import TeacherResult

REPORT_MODELS = ("teacher", "teacher_onnx_int8", "student", "student_no_kd", "tfidf")


def model_metrics(levels: list[int], y: np.ndarray, pred: np.ndarray) -> dict:
    lv = np.asarray(levels)
    out = scores(lv[y], lv[pred], levels)
    out["smd"] = round(gates.smd(lv[y], lv[pred]), 6) if len(y) > 1 else None
    return out


def selective_report(dec: Decoding, conf: np.ndarray, correct: np.ndarray, target: float, source: str) -> dict:
    """The threshold fitted on ``dec``'s held-out predictions, and what it gives on the test answers
    (``conf``: the decoded level's probability; ``correct``: whether that level is the human's)."""
    sel = dec.threshold(target, source)
    return {**sel.to_dict(), "test": ordinal.selective_metrics(conf, correct, sel.threshold),
            "ece": round(ordinal.expected_calibration_error(conf, correct), 6)}


def confident(dec: Decoding, f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoded level's probability and whether it is the human's, for ``selective_report``."""
    return dec.confidence(f), dec.levels(f) == y


def without_scaling(dec: Decoding) -> Decoding:
    """The decoding with the link alone (its matrix scaling dropped)."""
    return replace(dec, calibration=None)


def student_confident(student: FittedStudent, f: np.ndarray, dense: np.ndarray,
                      y: np.ndarray, link_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``confident`` for the served student's scores ``f``: rows of questions it was not trained on are
    decoded by its new-question branch.  ``link_only``: without the link's matrix scaling."""
    dec = without_scaling(student.decoding) if link_only else student.decoding
    conf, correct = confident(dec, f, y)
    nq = student.new_questions
    if nq is not None:
        new = dense[:, nq.branch.seen_column] < 0.5
        conf[new], correct[new] = confident(without_scaling(nq.decoding) if link_only else nq.decoding, f[new], y[new])
    return conf, correct


def link_only_report(dec: Decoding, test_confident: tuple[np.ndarray, np.ndarray], target: float, source: str) -> dict:
    """What ``selective_report`` gave with the link alone (before the matrix scaling): its threshold,
    coverages and calibration error, for the report's before/after of the scaling.  ``dec``: the
    decoding (its scaling is dropped here); ``test_confident``: the test rows' link-only confidences."""
    sel = selective_report(without_scaling(dec), *test_confident, target, source)
    return {k: sel[k] for k in ("threshold", "coverage", "test", "ece")}



def candidate_report(candidates: dict[str, tuple[FittedStudent, Featurizer]], sp_: Splits, margin: float) -> dict:
    """Each form of distilled student that was fitted: parameters, out-of-fold QWK (what chose between
    them: the word CNN's must beat the linear one's by more than ``margin``) and test QWK (reported only)."""
    test, lv = sp_.test, list(range(len(sp_.levels)))
    out = {}
    for name, (st, fz) in candidates.items():
        pred = st.model.predict_levels(Features.compute(fz, test.response, test.question, test.reference_answer))
        out[name] = {"params": st.model.n_params(), "oof_qwk": st.oof_qwk,
                     "test_qwk": round(qwk(sp_.y(test), pred, lv), 6),
                     **({"word_cnn_share": st.words_share, "linear_part_oof_qwk": st.linear_oof_qwk}
                        if name == "word_cnn" else {})}
    out["rule"] = f"the word CNN form where its out-of-fold QWK beats the linear form's by more than {margin:g}"
    return out


def question_choice(student: FittedStudent) -> dict:
    """A pooled student's report lines on questions it never saw (empty for a single item)."""
    if student.heldout_question_qwk is None:
        return {}
    return {"heldout_question_qwk": student.heldout_question_qwk,
            "new_questions": "a question the model was not trained on is scored from the overlap features alone, "
                             "decoded by cut-points fitted on whole questions held out (pooled model)"}


GROUP_MAX_VALUES = 20


def group_columns(ds: Dataset) -> dict[str, list[str]]:
    """Extra columns that look like groups (school, language background...): 2 to 20 distinct values."""
    out = {}
    for name, values in ds.extra.items():
        if name in ("score2",) or name.startswith("p_"):
            continue
        distinct = set(values) - {""}
        if not (2 <= len(distinct) <= GROUP_MAX_VALUES and len(distinct) < len(values)):
            continue
        if len(set(zip(values, ds.score, strict=True))) == len(distinct):  # a copy of the score (a label column)
            continue
        out[name] = values
    return out


def confusion_report(levels: list[int], y: np.ndarray, pred: np.ndarray) -> tuple[dict, dict, dict]:
    k = len(levels)
    m = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    per_level = {}
    for i, lv in enumerate(levels):
        tp, support, predicted = int(m[i, i]), int(m[i].sum()), int(m[:, i].sum())
        per_level[str(lv)] = {"n": support, "precision": round(tp / predicted, 6) if predicted else None,
                              "recall": round(tp / support, 6) if support else None}
    dist = {"human": {str(lv): int((y == i).sum()) for i, lv in enumerate(levels)},
            "student": {str(lv): int((pred == i).sum()) for i, lv in enumerate(levels)}}
    return {"labels": list(levels), "rows": "human", "columns": "student", "matrix": m.tolist()}, per_level, dist


def evaluate(sp_: Splits, teacher: TeacherResult, student: FittedStudent, no_kd: FittedStudent, tfidf_pair,
             fz: Featurizer, sess, config: DistillConfig, tmpd: Path | None, target_pair, say,
             timings: bool = True) -> dict:
    """Every model on ``sp_.test``: metrics, selective scoring at human-level agreement, calibration;
    with ``timings``, sizes and speeds, and the int8 teacher."""
    from distillation import teacher as tch

    test, levels = sp_.test, sp_.levels
    y = sp_.y(test)
    target, source = target_pair
    ks = list(range(len(levels)))
    models: dict = {}

    enc_test = teacher.encode(test)
    t_transformer = teacher.transformer(test)
    f_teacher = teacher.predict(test, t_transformer)
    t_pred = teacher.decoding.levels(f_teacher)
    models["teacher"] = {"params": sum(tch.count_params(f.model) for f in teacher.fitted) + (
        teacher.lexical.n_params() if teacher.lexical is not None and teacher.weight > 0 else 0),
        **model_metrics(levels, y, t_pred),
        "selective": selective_report(teacher.decoding, *confident(teacher.decoding, f_teacher, y), target, source)}
    models["teacher"]["selective"]["link_only"] = link_only_report(
        teacher.decoding, confident(without_scaling(teacher.decoding), f_teacher, y), target, source)

    feeds = fz.transform(test.response, test.question, test.reference_answer)
    served = oc.run(sess, feeds)
    s_pred = served[oc.LEVEL].astype(np.int64)
    f_student = served[oc.SCORE].astype(np.float64)
    models["student"] = {"params": student.model.n_params(), **model_metrics(levels, y, s_pred),
                         "agreement_with_teacher": round(float((s_pred == t_pred).mean()), 6),
                         "qwk_with_teacher": round(qwk(t_pred, s_pred, ks), 6),
                         "selective": selective_report(
                             student.decoding, *student_confident(student, f_student, feeds["dense"], y),
                             target, source)}
    models["student"]["selective"]["link_only"] = link_only_report(
        student.decoding, student_confident(student, f_student, feeds["dense"], y, link_only=True), target, source)
    feats = Features.compute(fz, test.response, test.question, test.reference_answer)
    nk_pred = no_kd.model.predict_levels(feats)
    nk_conf = no_kd.model.predict_proba(feats)[np.arange(len(y)), nk_pred]
    models["student_no_kd"] = {"params": no_kd.model.n_params(), **model_metrics(levels, y, nk_pred),
                               "agreement_with_teacher": round(float((nk_pred == t_pred).mean()), 6),
                               "selective": selective_report(no_kd.decoding, nk_conf, nk_pred == y, target, source)}
    models["student_no_kd"]["selective"]["link_only"] = link_only_report(
        no_kd.decoding, student_confident(no_kd, no_kd.model.decision_function(feats), feats.dense, y, link_only=True),
        target, source)
    tfidf, tfidf_dec = tfidf_pair
    f_tf = tfidf.predict(test.response)
    tf_pred = tfidf_dec.levels(f_tf)
    models["tfidf"] = {"params": tfidf.n_params(), **model_metrics(levels, y, tf_pred),
                       "agreement_with_teacher": round(float((tf_pred == t_pred).mean()), 6),
                       "selective": selective_report(tfidf_dec, *confident(tfidf_dec, f_tf, y), target, source)}
    models["tfidf"]["selective"]["link_only"] = link_only_report(
        tfidf_dec, confident(without_scaling(tfidf_dec), f_tf, y), target, source)
    models["teacher_onnx_int8"] = None

    if timings:
        n_single = config.timing_responses
        reps = 1 + 1000 // max(1, len(test))
        sp_texts, sp_q, sp_r = ((test.response * reps)[:1000], (test.question * reps)[:1000],
                                (test.reference_answer * reps)[:1000])
        small = min(len(test), 256)

        def student_score(texts):
            n = len(texts)
            return sess.run([oc.LEVEL], fz.transform(texts, sp_q[:n], sp_r[:n]))[0]

        # onnx_bytes: a placeholder that keeps report.json's key order; write_version fills in the size
        models["student"].update(oc.time_scorer(student_score, sp_texts, n_single), onnx_bytes=None)
        tch.set_threads(1)
        try:
            def teacher_score(texts):
                sub = replace_rows(test, len(texts), texts)
                return teacher.predict(sub)

            models["teacher"].update(oc.time_scorer(teacher_score, test.response[:small], min(n_single, 30)))
            if config.teacher.export_int8 and tmpd is not None:
                say("teacher_onnx_int8", message="export + int8 quantisation", force=True)
                copies = []
                for k, fitted in enumerate(teacher.fitted):
                    fp32, int8 = tmpd / f"teacher-{k}.onnx", tmpd / f"teacher-{k}.int8.onnx"
                    tch.export_onnx(fitted.model, enc_test, fp32)
                    tch.quantize_int8(fp32, int8)
                    fp32.unlink()
                    copies.append(tch.OnnxTeacher(int8, threads=1))

                def int8_transformer(enc):
                    return np.mean([c.predict(enc) for c in copies], axis=0)

                f_int8 = teacher.predict(test, int8_transformer(enc_test))
                i8_pred = teacher.decoding.levels(f_int8)

                def int8_score(texts):
                    sub = replace_rows(test, len(texts), texts)
                    return teacher.predict(sub, int8_transformer(teacher.encode(sub)))

                models["teacher_onnx_int8"] = {
                    "params": models["teacher"]["params"], **model_metrics(levels, y, i8_pred),
                    **oc.time_scorer(int8_score, test.response[:small], min(n_single, 30)),
                    "onnx_bytes": sum((tmpd / f"teacher-{k}.int8.onnx").stat().st_size
                                      for k in range(len(copies))),
                    "agreement_with_teacher": round(float((i8_pred == t_pred).mean()), 6),
                }
        finally:
            tch.set_threads(config.threads)

    lv = np.asarray(levels)
    confusion, per_level, dist = confusion_report(levels, y, s_pred)
    groups = group_columns(test)
    hh = human_human(test, levels)
    hh_source = "test"
    if hh is None:
        hh, hh_source = human_human(sp_.labelled, levels), "training rows"
    entry = {
        "n_test": len(test),
        "test_source": sp_.test_source if test is sp_.test else test.path,
        "human_human_qwk": hh,
        "human_human_source": hh_source if hh is not None else None,
        "agreement_target": {"exact": round(target, 6), "source": source},
        "models": {k: models[k] for k in REPORT_MODELS},
        "human_gap_qwk": round(hh - models["student"]["qwk"], 6) if hh is not None else None,
        "confusion": confusion,
        "per_level": per_level,
        "distribution": dist,
        "groups": gates.group_breakdown(lv[y], lv[s_pred], groups, levels) if groups else {},
        "teacher_oof_qwk": round(qwk(teacher.decoding.heldout_y, teacher.decoding.levels(teacher.decoding.heldout_f),
                                     ks), 6),
        "decoding": {"teacher": teacher.decoding.to_dict(), "student": student.decoding.to_dict(),
                     **({"student_new_questions": student.new_questions.decoding.to_dict()}
                        if student.new_questions is not None else {})},
        # what the served student gave each test answer: the scorer must reproduce these exactly
        "test_predictions": {"response_id": list(test.response_id), "student": [int(lv[i]) for i in s_pred]},
    }
    return entry



def replace_rows(ds: Dataset, n: int, texts: list[str]) -> Dataset:
    """The first ``n`` rows of ``ds`` with other response texts (for timing)."""
    sub = ds.select(range(n))
    sub.response = list(texts)
    return sub


def quality_view(report: dict) -> dict:
    """The report without timings (what the same seed must reproduce byte for byte)."""
    timing = {"ms_per_response", "responses_per_s", "seconds", "cache_seconds", "stage_seconds"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in timing}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(report)
