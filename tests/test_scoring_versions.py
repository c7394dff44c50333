"""Model versions: register, verify, activate (refusing broken ones), retire, roll back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from distillation.artifact import manifest_sha256
from scoring import versions
from scoring.models import ModelVersion
from scoring.services import score_answers
from tests.scoring_support import ANSWERS
from tests.training_support import lenient_gates

pytestmark = pytest.mark.django_db

Status = ModelVersion.Status


def test_register_copies_the_directory_and_records_checksum_and_report(demo_versions, model_dirs, models_dir):
    item, v1, v2 = demo_versions
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == v2.status == Status.READY
    path = Path(v1.artifact_path)
    assert path.is_relative_to(models_dir) and (path / "model.onnx").is_file()
    assert v1.checksum == manifest_sha256(model_dirs["v1"]) == manifest_sha256(path)
    assert v1.metrics["models"]["student"]["params"] > 0  # report.json of the version
    assert item.model_versions.filter(status=Status.ACTIVE).count() == 0


def test_register_refuses_a_broken_directory_and_labels_outside_the_item_scale(model_dirs, models_dir, tmp_path):
    from scoring.demo_data import load_demo

    item = load_demo()
    broken = tmp_path / "broken"
    shutil.copytree(model_dirs["v1"], broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(versions.ModelVersionError, match=r"model\.onnx.*checksum mismatch"):
        versions.register_version(item, broken)
    with pytest.raises(versions.ModelVersionError, match="nowhere: missing directory"):
        versions.register_version(item, tmp_path / "nowhere")
    item.score_max = 1  # the demo versions score 0..2
    item.save()
    with pytest.raises(versions.ModelVersionError, match=r"labels \[2\] are outside"):
        versions.register_version(item, model_dirs["v1"])
    assert item.model_versions.count() == 0


def test_activate_switch_roll_back_and_retire(demo_versions):
    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    assert score_answers(item, ANSWERS[:2]).version.pk == v1.pk
    v2 = versions.activate_version(v2)
    v1.refresh_from_db()
    assert (v1.status, v2.status) == (Status.READY, Status.ACTIVE)
    assert score_answers(item, ANSWERS[:2]).version.pk == v2.pk

    back = versions.rollback(item)
    assert back.pk == v1.pk and back.status == Status.ACTIVE
    assert item.model_versions.get(pk=v2.pk).status == Status.READY
    assert score_answers(item, ANSWERS[:2]).version.pk == v1.pk

    versions.retire_version(back)
    assert item.model_versions.filter(status=Status.ACTIVE).count() == 0
    result = score_answers(item, ANSWERS[:1])
    assert result.version is None
    assert result.results[0].score is None and result.results[0].flags == ["no_active_model"]
    # rolling back with nothing active brings back the most recently active version (v1 is retired: v2?)
    again = versions.rollback(item)
    assert again.pk == v1.pk  # retired versions can be brought back; v1 was the last one active
    assert item.model_versions.filter(status=Status.ACTIVE).count() == 1


def test_rollback_needs_an_earlier_version(demo_versions):
    item, v1, _ = demo_versions
    with pytest.raises(versions.ModelVersionError, match="no earlier active version"):
        versions.rollback(item)
    versions.activate_version(v1)
    with pytest.raises(versions.ModelVersionError, match="no earlier active version"):
        versions.rollback(item)


@pytest.mark.parametrize("damage", ["onnx_garbage", "manifest_edited", "featurizer_missing", "file_edited"])
def test_activation_refuses_a_broken_version_and_the_active_one_keeps_serving(demo_versions, damage):
    item, v1, v2 = demo_versions
    versions.activate_version(v2)  # v2 loads fine (and sits in this process's cache)...
    versions.activate_version(v1)
    path = Path(v2.artifact_path)  # ...then its files are damaged: re-activation must read the disk
    if damage == "onnx_garbage":
        (path / "model.onnx").write_bytes(b"\x08\x01garbage")
        expected = r"model\.onnx"
    elif damage == "manifest_edited":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["created_at"] = "2000-01-01T00:00:00Z"
        (path / "manifest.json").write_text(json.dumps(manifest))
        expected = "manifest.json: checksum mismatch"
    elif damage == "featurizer_missing":
        (path / "featurizer.json").unlink()
        expected = "featurizer.json: missing file"
    else:
        (path / "report.json").write_text("{}")
        expected = r"report\.json: checksum mismatch"
    with pytest.raises(versions.ModelVersionError, match=expected):
        versions.activate_version(v2)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (Status.ACTIVE, Status.READY)
    served = score_answers(item, ANSWERS[:3])
    assert served.version.pk == v1.pk and all(r.probabilities for r in served.results)


def test_only_ready_or_retired_versions_can_be_activated(demo_versions):
    _, v1, _ = demo_versions
    ModelVersion.objects.filter(pk=v1.pk).update(status=Status.FAILED)
    with pytest.raises(versions.ModelVersionError, match="only a ready or retired"):
        versions.activate_version(v1)
    with pytest.raises(versions.ModelVersionError, match="only a ready or active"):
        versions.retire_version(v1)


def test_admin_actions_call_the_services(demo_versions, admin_client):
    item, v1, v2 = demo_versions
    lenient_gates(item, v1, v2)  # activation is gated (tests/test_training_activation.py); here: verification
    url = "/admin/scoring/modelversion/"
    page = admin_client.post(url, {"action": "activate", "_selected_action": [v1.pk]}, follow=True)
    assert page.status_code == 200 and b"active" in page.content
    admin_client.post(url, {"action": "activate", "_selected_action": [v2.pk]}, follow=True)
    assert item.model_versions.get(status=Status.ACTIVE).pk == v2.pk
    page = admin_client.post(url, {"action": "roll_back", "_selected_action": [v2.pk]}, follow=True)
    assert b"rolled back to" in page.content
    assert item.model_versions.get(status=Status.ACTIVE).pk == v1.pk
    (Path(v2.artifact_path) / "featurizer.json").unlink()
    page = admin_client.post(url, {"action": "activate", "_selected_action": [v2.pk]}, follow=True)
    assert b"refused" in page.content and b"featurizer.json" in page.content
    assert item.model_versions.get(status=Status.ACTIVE).pk == v1.pk
    admin_client.post(url, {"action": "retire", "_selected_action": [v1.pk]}, follow=True)
    assert not item.model_versions.filter(status=Status.ACTIVE).exists()
