"""The one way a model version goes into service: quality gates first, then activation, audited.

``activate`` is called by the admin (version and item pages), ``register_model --activate``, the demo
loader and the training run; ``roll_back`` by the admin.  A version failing a gate is refused unless the
caller passes ``override=True`` (an admin ticking the override box), and every outcome is recorded in
:class:`training.models.ActivationAudit` (who, when, which version, its metrics, the gates).
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring import versions
from scoring.models import Item, ModelVersion
from training.models import ActivationAudit, GatePolicy

METRIC_KEYS = ("qwk", "accuracy", "exact", "macro_f1", "smd", "params", "onnx_bytes", "agreement_with_teacher")


class GatesFailed(versions.ModelVersionError):
    """Activation refused: the version fails quality gates (``gates`` lists all of them)."""

    def __init__(self, version: ModelVersion, gates: list[dict]):
        self.version = version
        self.gates = gates
        failed = "; ".join(g["message"] for g in gates if g["passed"] is False)
        super().__init__(f"{version} fails its quality gates: {failed}")


@dataclass
class GateResult:
    gates: list[dict]

    @property
    def passed(self) -> bool:
        return all(g["passed"] is not False for g in self.gates)

    @property
    def failed(self) -> list[dict]:
        return [g for g in self.gates if g["passed"] is False]


def thresholds_for(item: Item):
    """The item's gate thresholds (its GatePolicy, or the defaults)."""
    from distillation.gates import GateThresholds

    policy = GatePolicy.objects.filter(item=item).first()
    return GateThresholds.from_dict(policy.as_dict()) if policy else GateThresholds()


def _student_qwk(version: ModelVersion | None) -> float | None:
    if version is None:
        return None
    return ((version.metrics or {}).get("models", {}).get("student") or {}).get("qwk")


def check_gates(version: ModelVersion) -> GateResult:
    """Evaluate the item's gates on the version's report (its ``metrics``) against the active version."""
    from distillation.gates import evaluate

    active = versions.active_version(version.item_id)
    active_qwk = None
    if active is not None and active.pk != version.pk:
        active_qwk = _student_qwk(ModelVersion.objects.only("metrics").get(pk=active.pk))
    entry = version.metrics or {}
    if not entry.get("models"):
        return GateResult([{"name": "report", "passed": False, "value": None, "threshold": None,
                            "message": "The version has no test report: its quality cannot be judged."}])
    gates = evaluate(entry, thresholds_for(version.item), active_qwk=active_qwk)
    return GateResult([g.to_dict() for g in gates])


def _snapshot(version: ModelVersion) -> dict:
    entry = version.metrics or {}
    student = (entry.get("models") or {}).get("student") or {}
    out = {k: student[k] for k in METRIC_KEYS if k in student}
    if entry.get("human_human_qwk") is not None:
        out["human_human_qwk"] = entry["human_human_qwk"]
    out["checksum"] = version.checksum
    return out


def _actor(user, actor: str) -> str:
    if actor:
        return actor
    return getattr(user, "get_username", lambda: "")() or "unknown"


def activate(version: ModelVersion, *, user=None, actor: str = "", override: bool = False,
             note: str = "") -> ModelVersion:
    """Activate ``version`` if its gates pass (or ``override``); audited either way.  Raises GatesFailed
    (refused, recorded) or ModelVersionError (does not verify)."""
    version.refresh_from_db()
    previous = versions.active_version(version.item_id)
    if previous is not None and previous.pk == version.pk:
        return version
    result = check_gates(version)
    audit = dict(item_id=version.item_id, version=version, previous=previous, user=user, actor=_actor(user, actor),
                 metrics=_snapshot(version), gates=result.gates, gates_passed=result.passed, note=note)
    if not result.passed and not override:
        ActivationAudit.objects.create(action=ActivationAudit.Action.REFUSED, overridden=False, **audit)
        raise GatesFailed(version, result.gates)
    activated = versions.activate_version(version)
    ActivationAudit.objects.create(action=ActivationAudit.Action.ACTIVATE, overridden=not result.passed, **audit)
    return activated


def roll_back(item: Item, *, user=None, actor: str = "", to: ModelVersion | None = None) -> ModelVersion:
    """Go back to the version active before the current one (or ``to``), audited.  The gates are
    evaluated and recorded but do not block: rolling back is how a bad activation is undone."""
    previous = versions.active_version(item)
    target = versions.rollback(item, to=to)
    result = check_gates(target)
    ActivationAudit.objects.create(item=item, version=target, previous=previous, action=ActivationAudit.Action.ROLLBACK,
                                   user=user, actor=_actor(user, actor), metrics=_snapshot(target),
                                   gates=result.gates, gates_passed=result.passed, overridden=False)
    return target


def retire(version: ModelVersion, *, user=None, actor: str = "", note: str = "") -> ModelVersion:
    """Take a version out of service (audited)."""
    was_active = versions.active_version(version.item_id)
    retired = versions.retire_version(version)
    ActivationAudit.objects.create(item_id=version.item_id, version=retired, previous=was_active,
                                   action=ActivationAudit.Action.RETIRE, user=user, actor=_actor(user, actor),
                                   metrics=_snapshot(retired), gates=[], gates_passed=True, note=note)
    return retired
