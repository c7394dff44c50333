"""Read-only views of runs and reports for the admin pages (no writes here)."""

from __future__ import annotations

from django.db.models import QuerySet

from training import charts
from training.models import ActivationAudit, TrainingProgress, TrainingRun, TrainingRunItem

MODEL_ROWS = (("teacher", "Teacher (transformer)"), ("teacher_onnx_int8", "Teacher, int8 ONNX"),
              ("student", "Student (distilled)"), ("student_no_kd", "Student without distillation"),
              ("tfidf", "TF-IDF baseline"), ("tfidf_logreg", "TF-IDF baseline"))


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    s = max(0, round(s))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def run_status(run: TrainingRun) -> dict:
    """What the run page shows and its script polls (JSON-able)."""
    items = [{"item": ri.item.external_id, "status": ri.status, "status_label": ri.get_status_display(),
              "error": ri.error, "version": str(ri.model_version) if ri.model_version_id else "",
              "gates_passed": (all(g.get("passed") is not False for g in ri.gates) if ri.gates else None)}
             for ri in run.run_items.select_related("item", "model_version")]
    return {
        "id": run.pk, "status": run.status, "status_label": run.get_status_display(), "finished": run.finished,
        "item": run.current_item, "stage": run.stage, "message": run.message,
        "epoch": run.epoch, "epochs": run.epochs, "step": run.step, "total": run.total,
        "percent": round(run.percent, 1), "eta_s": run.eta_s, "eta": fmt_seconds(run.eta_s),
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "error": run.error, "cancel_requested": run.cancel_requested, "items": items, "worker": run.worker,
        "progress_rows": run.progress_rows.count(),
    }


def recent_progress(run: TrainingRun, n: int = 12) -> QuerySet[TrainingProgress]:
    return run.progress_rows.order_by("-id")[:n]


def _model_rows(entry: dict) -> list[dict]:
    models = entry.get("models") or {}
    rows, seen = [], set()
    for key, label in MODEL_ROWS:
        m = models.get(key)
        if not m or label in seen:
            continue
        seen.add(label)
        speed = m.get("responses_per_s")
        rows.append({"key": key, "label": label, "qwk": m.get("qwk"), "accuracy": m.get("accuracy"),
                     "exact": m.get("exact", m.get("accuracy")), "macro_f1": m.get("macro_f1"),
                     "smd": m.get("smd"), "agreement": m.get("agreement_with_teacher"),
                     "params": m.get("params"), "onnx_bytes": m.get("onnx_bytes"),
                     "speed": speed, "ms": m.get("ms_per_response")})
    return rows


def _learning_curves(entry: dict, run_item: TrainingRunItem) -> dict:
    curves: dict[str, list[tuple[float, float]]] = {}
    losses: dict[str, list[tuple[float, float]]] = {}
    for key, name in (("teacher_training", "teacher"), ("student_training", "student"),
                      ("student_no_kd_training", "student without KD")):
        for e in (entry.get(key) or {}).get("epochs") or []:
            if e.get("val_qwk") is not None:
                curves.setdefault(name, []).append((e["epoch"], e["val_qwk"]))
            if e.get("val_loss") is not None:
                losses.setdefault(name, []).append((e["epoch"], e["val_loss"]))
    if not curves:  # fall back on what the progress rows recorded at each epoch's end
        rows = TrainingProgress.objects.filter(run_id=run_item.run_id, item=run_item.item.external_id)
        for r in rows.order_by("id"):
            if r.epoch is not None and "val_qwk" in (r.metrics or {}):
                curves.setdefault(r.stage, []).append((r.epoch, float(r.metrics["val_qwk"])))
    return {"qwk": curves, "loss": losses}


def student_form(entry: dict) -> str | None:
    """Which form of student the run kept for the item, and why, in a sentence (None in reports from
    before the word CNN)."""
    st = entry.get("student_training") or {}
    cands = st.get("candidates") or {}
    linear, words = cands.get("linear"), cands.get("word_cnn")
    if not linear or not words:
        return None
    kept = st.get("form") == "word_cnn"
    return (f"Student: {'a word network beside a smaller bag of words' if kept else 'the bag of words alone'} "
            f"was kept. On the training answers, held out in turn, it agreed with the humans at QWK "
            f"{(words if kept else linear)['oof_qwk']:.3f}, the "
            f"{'bag of words alone' if kept else 'word network'} at {(linear if kept else words)['oof_qwk']:.3f}.")


def item_report(run_item: TrainingRunItem) -> dict:
    """Everything the report page shows for one item of a run; missing parts are None."""
    entry = run_item.report or {}
    labels = entry.get("labels") or []
    out: dict = {"run_item": run_item, "entry": entry, "models": _model_rows(entry),
                 "human_human_qwk": entry.get("human_human_qwk"), "n_train": entry.get("n_train"),
                 "n_test": entry.get("n_test"), "gates": run_item.gates, "charts": {},
                 "gates_ok": all(g.get("passed") is not False for g in run_item.gates or [])}
    out["student_form"] = student_form(entry)
    conf = entry.get("confusion")
    if conf and conf.get("matrix"):
        out["charts"]["confusion"] = charts.confusion_matrix(conf.get("labels") or labels, conf["matrix"],
                                                             "Student score against human score (test answers)")
    per_level = entry.get("per_level")
    if per_level:
        levels = sorted(per_level, key=lambda x: float(x))
        out["per_level"] = [(lv, per_level[lv]) for lv in levels]
        out["charts"]["per_level"] = charts.grouped_bars(
            levels, {"precision": [per_level[lv].get("precision") for lv in levels],
                     "recall": [per_level[lv].get("recall") for lv in levels]},
            "Precision and recall of the student per score level", y_max=1.0)
    dist = entry.get("distribution")
    if dist and dist.get("human"):
        levels = sorted({*dist.get("human", {}), *dist.get("student", {})}, key=lambda x: float(x))
        out["distribution"] = [(lv, dist["human"].get(lv, 0), (dist.get("student") or {}).get(lv, 0))
                               for lv in levels]
        out["charts"]["distribution"] = charts.grouped_bars(
            levels, {"humans": [dist["human"].get(lv, 0) for lv in levels],
                     "student": [(dist.get("student") or {}).get(lv, 0) for lv in levels]},
            "How often each score was given (test answers)", y_label="answers")
    curves = _learning_curves(entry, run_item)
    if curves["qwk"]:
        out["charts"]["learning_qwk"] = charts.line_chart(curves["qwk"], "Held-out QWK by epoch",
                                                          y_label="QWK", y_range=(0.0, 1.0))
    if curves["loss"]:
        out["charts"]["learning_loss"] = charts.line_chart(curves["loss"], "Held-out loss by epoch",
                                                           y_label="loss")
    names = {"confusion": "the confusion matrix", "per_level": "per-level precision and recall",
             "distribution": "the score distributions", "learning_qwk": "learning curves"}
    out["missing"] = [text for key, text in names.items() if key not in out["charts"]]
    out["has_groups"] = "groups" in entry
    groups = entry.get("groups") or {}
    out["groups"] = []
    for column, per in groups.items():
        rows = [(f"{value} (n={g.get('n')})", g.get("qwk")) for value, g in per.items()]
        out["groups"].append({"column": column, "values": per,
                              "chart": charts.horizontal_bars(rows, f"Agreement (QWK) with humans by {column}",
                                                              mark=0.70, mark_label="0.70 gate")})
    return out


def audits_for_version(version_id: int) -> QuerySet[ActivationAudit]:
    return ActivationAudit.objects.filter(version_id=version_id).select_related("user")


def held_items() -> list[dict]:
    """Items with no active version whose newest version is held back by failed quality gates."""
    from scoring.models import Item, ModelVersion
    from training.activation import check_gates

    out = []
    for item in Item.objects.exclude(model_versions__status=ModelVersion.Status.ACTIVE).order_by("external_id"):
        newest = item.model_versions.filter(status=ModelVersion.Status.READY).order_by("-version").first()
        if newest is None:
            continue
        result = check_gates(newest)
        if not result.passed:
            out.append({"item": item, "version": newest, "failed": [g["message"] for g in result.failed]})
    return out
