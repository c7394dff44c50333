"""Quality gates before a version serves: refusal, audited override, roll back, the command line, the admin."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from scoring.models import ModelVersion
from tests.training_support import lenient_gates
from training import activation
from training.models import ActivationAudit, GatePolicy

STRICT = {"min_qwk": 1.01}  # no version can reach it: the QWK gate must fail


def _policy(item, **kw) -> GatePolicy:
    policy, _ = GatePolicy.objects.update_or_create(item=item, defaults=kw)
    return policy


@pytest.mark.django_db
def test_a_version_failing_a_gate_is_refused_and_the_override_is_audited(demo_versions, django_user_model):
    item, v1, _ = demo_versions
    _policy(item, **STRICT)
    admin = django_user_model.objects.create_superuser("boss", "boss@example.org", "pw-123456789")
    with pytest.raises(activation.GatesFailed) as info:
        activation.activate(v1, user=admin)
    assert "QWK" in str(info.value) and "1.01" in str(info.value)
    v1.refresh_from_db()
    assert v1.status == ModelVersion.Status.READY
    refused = ActivationAudit.objects.get()
    assert refused.action == "refused" and not refused.overridden and not refused.gates_passed
    assert refused.actor == "boss" and refused.version == v1
    assert any(g["name"] == "qwk" and g["passed"] is False for g in refused.gates)

    activation.activate(v1, user=admin, override=True, note="pilot class, teacher reviews every score")
    v1.refresh_from_db()
    assert v1.status == ModelVersion.Status.ACTIVE
    audit = ActivationAudit.objects.filter(action="activate").get()
    assert audit.overridden and not audit.gates_passed and audit.user == admin
    assert audit.note.startswith("pilot class") and audit.metrics["checksum"] == v1.checksum
    assert audit.metrics["qwk"] == v1.metrics["models"]["student"]["qwk"]


@pytest.mark.django_db
def test_passing_gates_activate_without_override_and_roll_back_is_audited(demo_versions):
    item, v1, v2 = demo_versions
    lenient_gates(item, v1, v2)
    activation.activate(v1, actor="test")
    activation.activate(v2, actor="test")
    audits = list(ActivationAudit.objects.order_by("id"))
    assert [(a.action, a.gates_passed, a.overridden) for a in audits] == [("activate", True, False)] * 2
    assert audits[1].previous == v1
    assert any(g["name"] == "active_gap" for g in audits[1].gates), "the active version is compared against"
    back = activation.roll_back(item, actor="test")
    assert back == v1
    last = ActivationAudit.objects.order_by("-id").first()
    assert last.action == "rollback" and last.version == v1 and last.previous == v2


@pytest.mark.django_db
def test_register_model_activate_goes_through_the_gates(model_dirs, models_dir):
    from scoring.demo_data import load_demo

    item = load_demo()
    _policy(item, **STRICT)
    with pytest.raises(CommandError) as info:
        call_command("register_model", str(model_dirs["v1"]), "--activate", stdout=io.StringIO())
    assert "NOT activated" in str(info.value) and "QWK" in str(info.value)
    version = ModelVersion.objects.get(item=item)
    assert version.status == ModelVersion.Status.READY
    call_command("register_model", str(model_dirs["v2"]), "--activate", "--override-gates", "--note", "demo",
                 stdout=io.StringIO())
    active = ModelVersion.objects.get(item=item, status=ModelVersion.Status.ACTIVE)
    audit = ActivationAudit.objects.get(action="activate")
    assert audit.version == active and audit.overridden and audit.actor == "manage.py register_model"


@pytest.mark.django_db
def test_admin_version_fields_are_read_only_and_the_buttons_use_the_gates(demo_versions, admin_client):
    item, v1, _ = demo_versions
    _policy(item, **STRICT)
    page = admin_client.get(f"/admin/scoring/modelversion/{v1.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert not {"status", "checksum", "artifact_path"} & set(form.fields), "editable by hand"
    assert b"Activate although quality gates failed" in page.content
    admin_client.post(f"/admin/scoring/modelversion/{v1.pk}/change/",
                      {"status": "active", "checksum": "0" * 64, "artifact_path": "/tmp"})
    v1.refresh_from_db()
    assert v1.status == "ready" and v1.checksum != "0" * 64 and v1.artifact_path != "/tmp"

    refused = admin_client.post(f"/admin/training/activationaudit/activate/{v1.pk}/", follow=True)
    assert b"was not activated" in refused.content
    v1.refresh_from_db()
    assert v1.status == "ready"
    admin_client.post(f"/admin/training/activationaudit/activate/{v1.pk}/", {"override": "1", "note": "trial"})
    v1.refresh_from_db()
    assert v1.status == "active"
    assert ActivationAudit.objects.filter(action="activate", overridden=True, actor="admin").exists()

    admin_client.post("/admin/scoring/modelversion/", {"action": "retire", "_selected_action": [v1.pk]})
    v1.refresh_from_db()
    assert v1.status == "retired"
    assert ActivationAudit.objects.filter(action="retire", version=v1, actor="admin").exists()


@pytest.mark.django_db
def test_the_home_page_tells_staff_why_an_item_has_no_active_model(demo_versions, admin_client, client):
    item, _, v2 = demo_versions
    _policy(item, **STRICT)
    page = admin_client.get("/").content.decode()
    assert "Items without an active model" in page and f"/admin/scoring/modelversion/{v2.pk}/change/" in page
    assert "at least 1.01 is required" in page
    assert "Items without an active model" not in client.get("/").content.decode(), "not for the public"


@pytest.mark.django_db
def test_item_page_lists_versions_with_their_gates_and_rolls_back_in_one_click(demo_versions, admin_client):
    item, v1, v2 = demo_versions
    lenient_gates(item, v1, v2)
    activation.activate(v1, actor="test")
    activation.activate(v2, actor="test")
    page = admin_client.get(f"/admin/scoring/item/{item.pk}/change/").content.decode()
    assert "Train a new model" in page and "active: v2" in page and "all passed" in page
    r = admin_client.post(f"/admin/training/activationaudit/roll-back/{item.pk}/",
                          {"next": f"/admin/scoring/item/{item.pk}/change/"})
    assert r.status_code == 302 and r["Location"] == f"/admin/scoring/item/{item.pk}/change/"
    v1.refresh_from_db()
    assert v1.status == "active"
    assert ActivationAudit.objects.filter(action="rollback", version=v1, actor="admin", previous=v2).exists()
