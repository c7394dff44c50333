"""Model versions: register, verify, activate, retire, roll back.

A version is a directory produced by `distill` (docs/model_version.md).  Registering copies it into
`settings.MODELS_DIR/<item>/v<N>-<checksum>/`, so what is served cannot change under the database's
feet; activating verifies it first (checksums, featuriser state, the ONNX loads and runs) and refuses
it otherwise, leaving the active version as it was.  At most one version per item is active (also a
database constraint).  The admin actions, the management commands and the API all call these functions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from distillation.artifact import ArtifactError, manifest_sha256, verify
from scoring.models import Item, ModelVersion
from scoring.scorer import LoadedModel, ModelLoadError, open_model

Status = ModelVersion.Status
ACTIVATABLE = (Status.READY, Status.RETIRED)


class ModelVersionError(Exception):
    """A model-version operation that was refused; the message says why (shown to admins as is)."""


def _check_labels(item: Item, labels: list[int], where: str) -> None:
    outside = sorted(set(labels) - set(item.score_levels))
    if outside:
        raise ModelVersionError(
            f"{where}: labels {outside} are outside item {item.external_id}'s scale "
            f"{item.score_min}..{item.score_max}"
        )


@transaction.atomic
def register_version(item: Item, source: Path | str, *, metrics: dict | None = None) -> ModelVersion:
    """Verify a model-version directory, copy it under MODELS_DIR and record it as READY."""
    source = Path(source)
    try:
        manifest = verify(source)
        checksum = manifest_sha256(source)
    except ArtifactError as exc:
        raise ModelVersionError(f"cannot register {source}: {exc}") from exc
    _check_labels(item, manifest.labels, str(source / "manifest.json"))
    if metrics is None:
        try:
            metrics = json.loads((source / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = {}
    Item.objects.select_for_update().filter(pk=item.pk).first()  # serialise numbering per item
    number = (item.model_versions.aggregate(n=Max("version"))["n"] or 0) + 1
    dest = Path(settings.MODELS_DIR) / item.external_id / f"v{number}-{checksum[:12]}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp)
    tmp.rename(dest)
    try:
        return ModelVersion.objects.create(
            item=item,
            version=number,
            artifact_path=str(dest),
            checksum=checksum,
            metrics=metrics if isinstance(metrics, dict) else {"report": metrics},
            status=Status.READY,
        )
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def verify_version(version: ModelVersion) -> LoadedModel:
    """Everything activation needs: the files are there, unchanged since registration (checksums),
    the featuriser state loads, and the ONNX graph loads and runs, read from disk now (not from this
    process's cache of sessions).  Returns the loaded model; raises ModelVersionError naming the problem."""
    if not version.artifact_path:
        raise ModelVersionError(f"{version}: no model directory recorded")
    if not version.checksum:
        raise ModelVersionError(f"{version}: no checksum recorded")
    path = Path(version.artifact_path)
    if not (path / "featurizer.json").is_file():
        raise ModelVersionError(f"{path / 'featurizer.json'}: missing file (the featuriser state)")
    try:
        model = open_model(path, expected_checksum=version.checksum)  # from disk, never from the cache
    except ModelLoadError as exc:
        raise ModelVersionError(str(exc)) from exc
    _check_labels(version.item, list(model.labels), str(path / "manifest.json"))
    return model


def activate_version(version: ModelVersion) -> ModelVersion:
    """Make `version` the item's active version (the previous one goes back to READY, ready for a roll
    back).  Refused, with the active version left serving, when the version does not verify."""
    version.refresh_from_db()
    if version.status == Status.ACTIVE:
        return version
    if version.status not in ACTIVATABLE:
        raise ModelVersionError(f"{version}: only a ready or retired version can be activated")
    verify_version(version)  # outside the transaction: loading a model takes a moment
    with transaction.atomic():
        if connection.features.has_select_for_update:  # PostgreSQL: one activation per item at a time
            Item.objects.select_for_update().filter(pk=version.item_id).first()
        # Writes only from here, no read first: SQLite then takes its write lock at the first UPDATE,
        # waiting for other writers, instead of failing to upgrade a read lock ("database is locked").
        ModelVersion.objects.filter(item_id=version.item_id, status=Status.ACTIVE).update(status=Status.READY)
        promoted = ModelVersion.objects.filter(pk=version.pk, status__in=ACTIVATABLE).update(
            status=Status.ACTIVE, activated_at=timezone.now()
        )
        if not promoted:  # rolls the demotion back too
            raise ModelVersionError(f"{version}: changed while it was being verified; try again")
    version.refresh_from_db()
    return version


def retire_version(version: ModelVersion) -> ModelVersion:
    """Take a version out of service.  Retiring the active one leaves the item without a model: its
    answers are then flagged `no_active_model` until another version is activated."""
    retirable = (Status.READY, Status.ACTIVE, Status.RETIRED)
    if not ModelVersion.objects.filter(pk=version.pk, status__in=retirable).update(status=Status.RETIRED):
        version.refresh_from_db()
        raise ModelVersionError(f"{version}: only a ready or active version can be retired")
    version.refresh_from_db()
    return version


def rollback(item: Item, to: ModelVersion | None = None) -> ModelVersion:
    """Activate the version that was active before the current one (or `to`)."""
    if to is None:
        current = item.model_versions.filter(status=Status.ACTIVE).first()
        candidates = item.model_versions.filter(status__in=ACTIVATABLE, activated_at__isnull=False)
        if current is not None:
            candidates = candidates.exclude(pk=current.pk).filter(activated_at__lt=current.activated_at)
        to = candidates.order_by("-activated_at").first()
        if to is None:
            raise ModelVersionError(f"{item.external_id}: no earlier active version to roll back to")
    elif to.item_id != item.pk:
        raise ModelVersionError(f"{to} is not a version of {item.external_id}")
    return activate_version(to)


def active_version(item: Item | int) -> ModelVersion | None:
    """The item's active version (one query), or None."""
    item_id = item.pk if isinstance(item, Item) else item
    return (
        ModelVersion.objects.filter(item_id=item_id, status=Status.ACTIVE)
        .only("id", "item_id", "version", "artifact_path", "checksum", "status")
        .first()
    )
