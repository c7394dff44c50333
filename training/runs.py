"""Training runs: start one (admin or command line), execute it in a worker, report progress, cancel,
and fail runs whose worker died.

``execute_run`` is what the Celery task calls; it distils each item with the same
``distillation.pipeline.distill`` that ``manage.py distill`` calls, one item at a time so that one item's
failure does not stop the others, registers each new version (``scoring.versions``) and records its gates.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from scoring import versions
from scoring.models import Item, Score, Submission
from training.models import TrainingAnswer, TrainingProgress, TrainingRun, TrainingRunItem

log = logging.getLogger(__name__)
Status = TrainingRun.Status
ItemStatus = TrainingRunItem.Status
PRESETS = ("default", "tiny")
MAX_UNLABELLED = 5000  # live answers handed to the teacher per item and run (the newest)

# Share of an item's time spent before each stage ends; used for the percentage (stage names from
# distill: distillation.pipeline and its stage modules; an unknown stage keeps the last percentage).
STAGES = (("start", 0.0, 0.02), ("teacher", 0.02, 0.60), ("soft", 0.60, 0.65), ("student (kd)", 0.65, 0.80),
          ("student (no kd)", 0.80, 0.88), ("student", 0.65, 0.88), ("tfidf", 0.88, 0.90),
          ("evaluate", 0.90, 0.93), ("int8", 0.93, 0.96), ("export", 0.96, 0.99), ("done", 1.0, 1.0))


class RunRefused(Exception):
    """A run that cannot be started; the message says why."""


class RunCancelled(Exception):
    """Raised inside the pipeline's progress callback when an admin cancelled the run."""


# --- starting and cancelling ----------------------------------------------------------------------

def training_counts(item: Item) -> dict[str, int]:
    """How many labelled answers a run for the item would have (uploaded + teacher-confirmed)."""
    return {"uploaded": TrainingAnswer.objects.filter(item=item).count(),
            "confirmed": _confirmed_scores(item).count()}


def start_run(items: Iterable[Item], *, user=None, preset: str = "default", config: dict | None = None,
              seed: int = 0, include_confirmed: bool = True, include_unscored: bool = True,
              activate_passing: bool = False, enqueue: bool = True) -> TrainingRun:
    """Record a run for ``items`` and queue it on the ``training`` queue (after the commit)."""
    items = list(items)
    if not items:
        raise RunRefused("choose at least one item")
    if preset not in PRESETS:
        raise RunRefused(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    empty = [i.external_id for i in items
             if not TrainingAnswer.objects.filter(item=i).exists()
             and not (include_confirmed and _confirmed_scores(i).exists())]
    if empty:
        raise RunRefused(f"no scored answers to train on for {', '.join(empty)}: upload some first")
    busy = TrainingRunItem.objects.filter(item__in=items, run__status__in=(Status.QUEUED, Status.RUNNING))
    if busy.exists():
        b = busy.select_related("item").first()
        raise RunRefused(f"{b.item.external_id} is already in run {b.run_id}, which has not finished")
    with transaction.atomic():
        run = TrainingRun.objects.create(created_by=user, preset=preset, config=config or {}, seed=seed,
                                         include_confirmed=include_confirmed, include_unscored=include_unscored,
                                         activate_passing=activate_passing, message="waiting for a training worker")
        TrainingRunItem.objects.bulk_create([TrainingRunItem(run=run, item=i) for i in items])
        if enqueue:
            transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def enqueue_run(run_id: int) -> None:
    from training.tasks import train_run

    result = train_run.apply_async((run_id,), queue="training")
    TrainingRun.objects.filter(pk=run_id).update(task_id=result.id or "")


def cancel_run(run: TrainingRun) -> TrainingRun:
    """Ask a run to stop.  A queued run stops at once; a running one at its next progress report."""
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    now = timezone.now()
    if TrainingRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=now, message="cancelled before it started"):
        TrainingRunItem.objects.filter(run=run, status=ItemStatus.WAITING).update(status=ItemStatus.CANCELLED)
    run.refresh_from_db()
    return run


# --- the data a run trains on -----------------------------------------------------------------------

def _confirmed_scores(item: Item):
    """Live answers to the item whose score a teacher confirmed or corrected (the override).  The demo's
    seeded answers are left out: they are copies of its training file."""
    return Score.objects.filter(submission__item=item, override_score__isnull=False).exclude(
        submission__source=Submission.Source.DEMO)


def _unscored(item: Item):
    """Live answers no human has scored (the teacher model labels them softly)."""
    reviewed = Score.objects.filter(submission__item=item, override_score__isnull=False).values("submission_id")
    return (Submission.objects.filter(item=item).exclude(source=Submission.Source.DEMO)
            .exclude(pk__in=reviewed).order_by("-created_at")[:MAX_UNLABELLED])


def write_training_files(run: TrainingRun, item: Item, folder: Path) -> tuple[Path, Path | None, int, int]:
    """The item's canonical CSV (uploaded answers + teacher-confirmed live scores) and, when asked for,
    a CSV of unscored live answers.  Returns (train, unlabelled or None, n_train, n_unlabelled)."""
    folder.mkdir(parents=True, exist_ok=True)
    question = item.question
    reference = " ".join(item.reference_answers or [])
    answers = list(TrainingAnswer.objects.filter(item=item).order_by("id"))
    extra_cols = sorted({k for a in answers for k in (a.extra or {})} - {"score2"})
    has_score2 = any(a.score2 is not None for a in answers)
    header = ["item_id", "question", "reference_answer", "response_id", "response", "score"]
    header += (["score2"] if has_score2 else []) + extra_cols
    train = folder / f"{item.external_id}.train.csv"
    n = 0
    with train.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for a in answers:
            row = [item.external_id, question, reference, a.response_id, a.response, a.score]
            row += ([a.score2 if a.score2 is not None else ""] if has_score2 else [])
            w.writerow(row + [(a.extra or {}).get(c, "") for c in extra_cols])
            n += 1
        if run.include_confirmed:
            seen: set[int] = set()
            for s in _confirmed_scores(item).select_related("submission").order_by("-overridden_at", "-id"):
                if s.submission_id in seen:
                    continue
                seen.add(s.submission_id)
                row = [item.external_id, question, reference, f"live-{s.submission_id}", s.submission.response,
                       s.override_score] + ([""] if has_score2 else [])
                w.writerow(row + [""] * len(extra_cols))
                n += 1
    unlabelled, m = None, 0
    if run.include_unscored:
        subs = [s for s in _unscored(item) if s.response.strip()]
        if subs:
            unlabelled = folder / f"{item.external_id}.unlabelled.csv"
            with unlabelled.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["item_id", "question", "reference_answer", "response_id", "response"])
                for s in subs:
                    w.writerow([item.external_id, question, reference, f"live-{s.pk}", s.response])
            m = len(subs)
    return train, unlabelled, n, m


# --- progress --------------------------------------------------------------------------------------

def item_fraction(stage: str, step: int | None, total: int | None, epoch: int | None, epochs: int | None,
                  last: float) -> float:
    """How far one item is (0..1), from the pipeline's stage and step."""
    s = (stage or "").lower()
    for prefix, lo, hi in STAGES:
        if s.startswith(prefix):
            if total:
                frac = min(max((step or 0) / total, 0.0), 1.0)
            elif epochs:
                frac = min(max(((epoch or 1) - 1) / epochs, 0.0), 1.0)
            else:
                frac = 0.0
            return max(last, lo + (hi - lo) * frac)
    return last


class ProgressRecorder:
    """The pipeline's ``progress`` callback: writes the run's state (at most every ``interval`` seconds,
    and at every forced update or epoch end), and raises RunCancelled once the run is cancelled."""

    def __init__(self, run_id: int, index: int, n_items: int, started: float, interval: float = 1.0):
        self.run_id, self.index, self.n_items, self.started = run_id, index, n_items, started
        self.interval = interval
        self.fraction = 0.0
        self._last = 0.0

    def __call__(self, *, item: str = "", stage: str = "", message: str = "", step: int | None = None,
                 total: int | None = None, epoch: int | None = None, epochs: int | None = None,
                 eta_s: float | None = None, force: bool = False, **extra) -> None:
        self.fraction = item_fraction(stage, step, total, epoch, epochs, self.fraction)
        now = time.monotonic()
        epoch_end = "val_qwk" in extra or "val_loss" in extra
        if not (force or epoch_end or now - self._last >= self.interval):
            return
        self._last = now
        percent = round(100.0 * (self.index + self.fraction) / self.n_items, 1)
        elapsed = now - self.started
        eta = elapsed * (100 - percent) / percent if percent >= 2 else eta_s
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in extra.items()
                   if isinstance(v, int | float | str) and not isinstance(v, bool)}
        fields = dict(current_item=item[:100], stage=stage[:100], epoch=epoch, epochs=epochs, step=step,
                      total=total, percent=percent, eta_s=eta)
        updated = TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING, cancel_requested=False).update(
            message=message or "", heartbeat_at=timezone.now(), **fields)
        if not updated:  # cancelled by an admin, or failed by the sweep meanwhile: stop working on it
            raise RunCancelled("the run was cancelled or stopped")
        TrainingProgress.objects.create(run_id=self.run_id, item=item[:100], stage=stage[:100], epoch=epoch,
                                        epochs=epochs, step=step, total=total, percent=percent, eta_s=eta,
                                        message=message or "", metrics=metrics)


class Heartbeat:
    """Beats every KDGRADE_TRAINING_HEARTBEAT_SECONDS from a thread while the run executes, so a run in a
    long silent stage is not mistaken for a dead one; stops with the process if the worker is killed."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"training-heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        every = float(settings.KDGRADE_TRAINING_HEARTBEAT_SECONDS)
        try:
            while not self._stop.wait(every):
                try:
                    TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception:  # a missed beat is retried; never kill the run for it
                    log.exception("training run %s: heartbeat failed", self.run_id)
        finally:
            connection.close()


# --- executing ----------------------------------------------------------------------------------------

def distill_config(run: TrainingRun):
    """The DistillConfig of a run: its preset, with the run's overrides ({"teacher": {...}, ...}).

    An admin's run serves its student: it skips the int8 ONNX teacher, a research baseline of the
    benchmark report (``bench/distill_bench.py`` keeps it) that took 10-15% of a run on a 2-core CPU and
    changes no gate; ``{"teacher": {"export_int8": true}}`` in the run's config brings it back."""
    from distillation.config import DistillConfig

    base = (DistillConfig.tiny() if run.preset == "tiny" else DistillConfig()).with_teacher(export_int8=False)
    if not run.config:
        return base
    merged = base.to_dict()
    for key, value in run.config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return DistillConfig.from_dict(merged)


def execute_run(run_id: int) -> TrainingRun | None:
    """Run a queued training run to its end (called by the worker).  A run that is not queued any more
    (cancelled, or failed by the sweep and redelivered) is left alone."""
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if not TrainingRun.objects.filter(pk=run_id, status=Status.QUEUED, cancel_requested=False).update(
            status=Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker, message="starting"):
        return None
    run = TrainingRun.objects.get(pk=run_id)
    run_items = list(run.run_items.select_related("item"))
    work = Path(settings.DATA_DIR) / "training" / f"run-{run.pk}"
    started = time.monotonic()
    cancelled = False
    with Heartbeat(run.pk):
        try:
            config = distill_config(run)
            for index, ri in enumerate(run_items):
                if TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                    cancelled = True
                    break
                try:
                    _train_item(run, ri, index, len(run_items), config, work, started)
                except RunCancelled:
                    TrainingRunItem.objects.filter(pk=ri.pk, status=ItemStatus.RUNNING).update(
                        status=ItemStatus.CANCELLED)
                    cancelled = True
                    break
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _finish(run.pk, cancelled)


def _train_item(run: TrainingRun, ri: TrainingRunItem, index: int, n: int, config, work: Path,
                started: float) -> None:
    from distillation.pipeline import distill

    item = ri.item
    t0 = time.monotonic()
    TrainingRunItem.objects.filter(pk=ri.pk).update(status=ItemStatus.RUNNING)
    recorder = ProgressRecorder(run.pk, index, n, started)
    try:
        train, unlabelled, n_train, n_unlab = write_training_files(run, item, work / "data")
        TrainingRunItem.objects.filter(pk=ri.pk).update(n_train=n_train, n_unlabelled=n_unlab)
        out = work / "out"
        report = distill(train, out, unlabelled_csv=unlabelled, config=config, seed=run.seed,
                         items=[item.external_id], progress=recorder)
        entry = report["items"][item.external_id]
        version = versions.register_version(item, out / item.external_id)
        from training.activation import GatesFailed, activate, check_gates

        gates = check_gates(version)
        TrainingRunItem.objects.filter(pk=ri.pk).update(
            status=ItemStatus.DONE, model_version=version, report=entry, gates=gates.gates,
            seconds=round(time.monotonic() - t0, 1))
        if run.activate_passing and gates.passed:
            try:
                activate(version, user=run.created_by, actor=f"training run {run.pk}",
                         note="activated by the run: every gate passed")
            except (GatesFailed, versions.ModelVersionError) as exc:
                TrainingRunItem.objects.filter(pk=ri.pk).update(error=f"not activated: {exc}")
    except RunCancelled:
        raise
    except Exception as exc:  # one item's failure must not stop the others
        log.exception("training run %s: item %s failed", run.pk, item.external_id)
        TrainingRunItem.objects.filter(pk=ri.pk).update(
            status=ItemStatus.FAILED, error=_reason(exc), seconds=round(time.monotonic() - t0, 1))
    close_old_connections()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if len(text) < 2000:
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return text if text in tail else f"{text}\n{tail}"
    return text[:2000] + " ..."


def _finish(run_id: int, cancelled: bool) -> TrainingRun:
    items = TrainingRunItem.objects.filter(run_id=run_id)
    if cancelled:
        items.filter(status__in=(ItemStatus.WAITING, ItemStatus.RUNNING)).update(status=ItemStatus.CANCELLED)
        status, message = Status.CANCELLED, "cancelled by an admin"
    else:
        done = items.filter(status=ItemStatus.DONE).count()
        failed = items.filter(status=ItemStatus.FAILED).count()
        if failed == 0:
            status, message = Status.SUCCEEDED, f"{done} item(s) trained"
        elif done == 0:
            status, message = Status.FAILED, f"all {failed} item(s) failed"
        else:
            status, message = Status.PARTLY_FAILED, f"{done} item(s) trained, {failed} failed"
    fields = dict(status=status, finished_at=timezone.now(), message=message, eta_s=None)
    if status == Status.SUCCEEDED:
        fields["percent"] = 100.0
    TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(**fields)
    return TrainingRun.objects.get(pk=run_id)


# --- the sweep -------------------------------------------------------------------------------------------

def sweep_stale_runs(stale_seconds: float | None = None) -> list[int]:
    """Mark failed every running run whose heartbeat is older than ``stale_seconds`` (its worker was
    killed or lost), with the reason.  Called by beat.  Returns the ids it failed."""
    stale = float(stale_seconds if stale_seconds is not None else settings.KDGRADE_TRAINING_STALE_SECONDS)
    cutoff = timezone.now() - timedelta(seconds=stale)
    failed = []
    for run in TrainingRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff):
        seen = timezone.localtime(run.heartbeat_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        where = f" during '{run.stage}' of {run.current_item}" if run.stage else ""
        reason = (f"The training worker ({run.worker or 'unknown'}) stopped responding: no heartbeat since "
                  f"{seen}{where}, more than {stale:.0f} s ago. It was killed or lost its connection. "
                  "Versions already registered by this run are kept; start a new run for the rest.")
        if TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING, heartbeat_at__lt=cutoff).update(
                status=Status.FAILED, error=reason, finished_at=timezone.now(), eta_s=None,
                message="worker lost"):
            TrainingRunItem.objects.filter(run=run, status__in=(ItemStatus.WAITING, ItemStatus.RUNNING)).update(
                status=ItemStatus.FAILED, error=reason)
            failed.append(run.pk)
    return failed
