"""Read-only queries of the scoring app: items with their active version, rubric levels, the loaded
model of an item's active version.  Commands (writes) live in `scoring.services`."""

from __future__ import annotations

import logging
import time

from scoring.models import Item, ModelVersion, RubricLevel
from scoring.scorer import LoadedModel, ModelLoadError, load_model
from scoring.versions import active_version

log = logging.getLogger(__name__)


class ScoringUnavailable(Exception):
    """The item has no active model version that can be served (the API answers 409)."""


def reference_text(item: Item) -> str:
    """The reference answer(s) fed to the featuriser, as in training (one CSV `reference_answer`)."""
    refs = item.reference_answers or []
    if isinstance(refs, str):
        return refs
    return " \n ".join(str(r) for r in refs)


_levels_cache: dict[int, tuple[float, object, dict[int, RubricLevel]]] = {}
LEVELS_TTL_S = 30.0


def rubric_levels(item: Item) -> dict[int, RubricLevel]:
    """The item's rubric levels by score.  Cached per process while the item is unchanged (saving the
    item in the admin, rubric inline included, bumps `updated_at`), and for LEVELS_TTL_S at most."""
    hit = _levels_cache.get(item.pk)
    now = time.monotonic()
    if hit is not None and hit[1] == item.updated_at and now - hit[0] < LEVELS_TTL_S:
        return hit[2]
    levels = {level.score: level for level in item.rubric_levels.all()}
    _levels_cache[item.pk] = (now, item.updated_at, levels)
    return levels


_ITEM_WITH_ACTIVE_SQL = (
    "SELECT i.*, v.id AS active_id, v.version AS active_number, v.artifact_path AS active_path, "
    "v.checksum AS active_checksum FROM scoring_item i LEFT JOIN scoring_modelversion v "
    "ON v.item_id = i.id AND v.status = %s WHERE i.external_id = %s"
)


def item_with_active_version(external_id: str) -> tuple[Item, ModelVersion | None] | None:
    """The item and its active version in ONE query (the API's hot path), or None for no such item."""
    rows = list(Item.objects.raw(_ITEM_WITH_ACTIVE_SQL, [ModelVersion.Status.ACTIVE, external_id]))
    if not rows:
        return None
    item = rows[0]
    if item.active_id is None:
        return item, None
    version = ModelVersion(id=item.active_id, item_id=item.pk, version=item.active_number,
                           artifact_path=item.active_path, checksum=item.active_checksum,
                           status=ModelVersion.Status.ACTIVE)
    return item, version


def rubric_level(item: Item, score: int | None) -> RubricLevel | None:
    """The rubric level of a score (label and descriptor), or None."""
    if score is None:
        return None
    return item.rubric_levels.filter(score=score).first()


_RESOLVE = object()


def resolve_model(
    item: Item, version: ModelVersion | object | None = _RESOLVE
) -> tuple[ModelVersion | None, LoadedModel | None]:
    """The item's active version and its loaded model, resolved ONCE (one query, unless the caller
    looked the version up already; the session is cached per process).  (None, None) when no version
    is active; raises ScoringUnavailable when the active version's files cannot be served."""
    if version is _RESOLVE:
        version = active_version(item)
    if version is None:
        return None, None
    try:
        return version, load_model(version.artifact_path, version.checksum)
    except ModelLoadError as exc:
        log.error("active model version %s of %s cannot be served: %s", version.pk, item.external_id, exc)
        raise ScoringUnavailable(f"the active model version {version.version} cannot be served: {exc}") from exc


