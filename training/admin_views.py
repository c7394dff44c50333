"""Admin pages of the training app: upload with preview, start a run, its live progress, cancel, the
report, and activation/roll back with the gates.  Views parse, call a service, render."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from scoring import versions
from scoring.models import Item, ModelVersion
from training import activation, importing, runs, selectors
from training.forms import ActivateForm, StartRunForm, UploadForm
from training.models import TrainingRun


def _ctx(request: HttpRequest, title: str, **kw) -> dict:
    return {**admin.site.each_context(request), "title": title, **kw}


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


# --- upload ---------------------------------------------------------------------------------------

PENDING_MAX_AGE_S = 3600  # an unconfirmed upload (personal data) is deleted after an hour


def _pending_dir(token: str) -> Path:
    if not token.isalnum():
        raise PermissionDenied
    return Path(settings.MEDIA_ROOT) / "pending-imports" / token


def _drop_old_pending() -> None:
    root = Path(settings.MEDIA_ROOT) / "pending-imports"
    if root.is_dir():
        for folder in root.iterdir():
            if time.time() - folder.stat().st_mtime > PENDING_MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)


def upload(request: HttpRequest) -> HttpResponse:
    """Step 1: choose files -> preview (nothing written).  Step 2: confirm -> all rows written, or none."""
    _need(request, "training.add_importbatch")
    _drop_old_pending()
    if request.method == "POST" and request.POST.get("token"):
        folder = _pending_dir(request.POST["token"])
        if not folder.is_dir():
            messages.error(request, "That preview has expired; upload the file again.")
            return redirect("admin:training_importbatch_upload")
        answers = next(folder.glob("answers-*"), None)
        rubric = next(folder.glob("rubric-*"), None)
        if answers is None:
            messages.error(request, "That preview has expired; upload the file again.")
            return redirect("admin:training_importbatch_upload")
        try:
            pv, batch = importing.import_items(
                answers.read_bytes(), answers.name.split("-", 1)[1],
                rubric.read_bytes() if rubric else None, rubric.name.split("-", 1)[1] if rubric else "",
                user=request.user)
        except importing.ImportRefused as exc:
            return render(request, "training/upload.html", _ctx(request, "Upload scored answers", form=UploadForm(),
                                                                 preview=exc.preview))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        messages.success(request, f"Imported {batch.n_rows} answers for {len(pv.items)} item(s).")
        return redirect(reverse("admin:training_importbatch_change", args=[batch.pk]))
    form = UploadForm(request.POST or None, request.FILES or None)
    preview = token = None
    if request.method == "POST" and form.is_valid():
        f, r = form.cleaned_data["answers"], form.cleaned_data.get("rubric")
        limit = importing.max_upload_bytes()
        data = f.read(limit + 1)
        rubric = r.read(limit + 1) if r else None
        preview = importing.preview_import(data, Path(f.name).name, rubric, Path(r.name).name if r else "")
        if preview.ok:
            token = secrets.token_hex(16)
            folder = _pending_dir(token)
            folder.mkdir(parents=True)
            (folder / f"answers-{Path(f.name).name}").write_bytes(data)
            if rubric is not None:
                (folder / f"rubric-{Path(r.name).name}").write_bytes(rubric)
    return render(request, "training/upload.html",
                  _ctx(request, "Upload scored answers", form=form, preview=preview, token=token))


# --- runs -------------------------------------------------------------------------------------------

def start(request: HttpRequest) -> HttpResponse:
    """Choose the recipe for a run over the items in ?ids=1,2,3 and start it."""
    _need(request, "training.add_trainingrun")
    ids = [int(x) for x in (request.POST.get("ids") or request.GET.get("ids", "")).split(",") if x.isdigit()]
    items = list(Item.objects.filter(pk__in=ids))
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = runs.start_run(items, user=request.user, **form.cleaned_data)
        except runs.RunRefused as exc:
            messages.error(request, f"Not started: {exc}")
        else:
            return redirect("admin:training_trainingrun_progress", run.pk)
    counts = [(i, runs.training_counts(i)) for i in items]
    return render(request, "training/start.html", _ctx(request, "Train new models", form=form, counts=counts,
                                                        ids=",".join(str(i.pk) for i in items)))


def progress(request: HttpRequest, run_id: int) -> HttpResponse:
    _need(request, "training.view_trainingrun")
    run = get_object_or_404(TrainingRun, pk=run_id)
    return render(request, "training/progress.html",
                  _ctx(request, f"Training run {run.pk}", run=run, state=selectors.run_status(run),
                       rows=selectors.recent_progress(run)))


def status_json(request: HttpRequest, run_id: int) -> JsonResponse:
    _need(request, "training.view_trainingrun")
    run = get_object_or_404(TrainingRun, pk=run_id)
    return JsonResponse(selectors.run_status(run))


@require_POST
def cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    _need(request, "training.change_trainingrun")
    run = runs.cancel_run(get_object_or_404(TrainingRun, pk=run_id))
    messages.info(request, "Cancelled." if run.finished else "Cancelling: the run stops at its next step.")
    return redirect("admin:training_trainingrun_progress", run.pk)


def report(request: HttpRequest, run_id: int) -> HttpResponse:
    _need(request, "training.view_trainingrun")
    run = get_object_or_404(TrainingRun, pk=run_id)
    sections = [selectors.item_report(ri) for ri in run.run_items.select_related("item", "model_version")]
    return render(request, "training/report.html", _ctx(request, f"Report of training run {run.pk}", run=run,
                                                         sections=sections, form=ActivateForm()))


# --- activation -------------------------------------------------------------------------------------

@require_POST
def activate_version(request: HttpRequest, version_id: int) -> HttpResponse:
    _need(request, "scoring.change_modelversion")
    version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
    form = ActivateForm(request.POST)
    form.is_valid()
    override = bool(form.cleaned_data.get("override"))
    try:
        activation.activate(version, user=request.user, override=override, note=form.cleaned_data.get("note", ""))
    except activation.GatesFailed as exc:
        messages.error(request, f"{version} was not activated. Failed gates: "
                                + " ".join(g["message"] for g in exc.gates if g["passed"] is False)
                                + " Tick the override box to activate it anyway (recorded).")
    except versions.ModelVersionError as exc:
        messages.error(request, f"{version} was not activated: {exc}")
    else:
        messages.success(request, f"{version.item.external_id}: version {version.version} is now active"
                                  + (" (gates overridden; recorded)." if override else "."))
    return redirect(_back(request, reverse("admin:scoring_modelversion_change", args=[version.pk])))


@require_POST
def roll_back(request: HttpRequest, item_id: int) -> HttpResponse:
    _need(request, "scoring.change_modelversion")
    item = get_object_or_404(Item, pk=item_id)
    try:
        target = activation.roll_back(item, user=request.user)
    except versions.ModelVersionError as exc:
        messages.error(request, f"{item.external_id}: not rolled back: {exc}")
    else:
        messages.success(request, f"{item.external_id}: rolled back to version {target.version}.")
    return redirect(_back(request, reverse("admin:scoring_item_change", args=[item.pk])))


def _back(request: HttpRequest, default: str) -> str:
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/admin/") and "//" not in nxt else default
