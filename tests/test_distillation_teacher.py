"""The teacher: inputs, the cache of frozen lower layers, what is trained, the maximum length."""

import numpy as np
import pytest
import torch

from distillation import teacher as teacher_module
from distillation.config import TeacherConfig
from distillation.metrics import qwk
from distillation.teacher import (
    Encoded,
    FittedTeacher,
    build_teacher,
    cpu_bf16_enabled,
    cross_fit,
    load_tokenizer,
    max_length_for,
    train_teacher,
)

pytestmark = pytest.mark.ml


def test_long_answers_with_context_are_truncated_to_max_length():
    tok = load_tokenizer(None)  # the MiniLM tokenizer from the package, no download
    long_answer = "the metal spoon conducts heat " * 40
    enc = Encoded(tok, [long_answer, "short"], ["Why does the spoon get hot? Metal conducts heat."] * 2, 32)
    assert enc.lengths.max() <= 32
    ids, mask, tt = enc.batch([0, 1])
    assert ids.shape == (2, 32) and int(mask[1].sum()) == enc.lengths[1] and int(tt[1].max()) == 1


def test_cached_lower_layers_give_the_same_scores_as_the_whole_model():
    """Training runs the top layers on cached lower-layer outputs: that must be the same function."""
    model = build_teacher("tiny", seed=0).eval()
    tok = load_tokenizer(None)
    enc = Encoded(tok, ["metal conducts heat", "the wooden spoon stays cool because wood insulates", "no"],
                  None, 32)
    whole = FittedTeacher(model, 0, torch.device("cpu")).predict(enc)
    cached = FittedTeacher(model, 1, torch.device("cpu"))
    np.testing.assert_allclose(cached.predict(cached.cache(enc)), whole, atol=1e-5)


def test_lower_layers_are_computed_without_running_the_layers_above():
    """The cache holds the output of the frozen layers exactly, and computing it never runs the trained
    layers (they would cost time at every cache and every prediction)."""
    model = build_teacher("tiny", seed=0).eval()
    tok = load_tokenizer(None)
    enc = Encoded(tok, ["metal conducts heat", "the wooden spoon stays cool because wood insulates"], None, 32)
    ids, mask, tt = enc.batch([0, 1])
    layers = model.encoder.encoder.layer
    with torch.no_grad():
        reference = model.encoder(input_ids=ids, attention_mask=mask, token_type_ids=tt,
                                  output_hidden_states=True).hidden_states[1]
        calls = []
        hook = layers[1].register_forward_hook(lambda *_: calls.append(1))
        try:
            lower = model.lower(ids, mask, tt, n_frozen=1)
        finally:
            hook.remove()
    assert torch.equal(lower, reference)
    assert calls == []  # layer 2 (trained) was not run
    assert model.encoder.encoder.layer is layers and len(layers) == 2  # the encoder is whole again


def test_only_the_top_layers_and_head_are_trained():
    tok = load_tokenizer(None)
    texts = ["metal conducts heat fast", "wood is an insulator", "i dont know", "metal is cold"] * 4
    y = np.array([2, 1, 0, 0] * 4)
    enc = Encoded(tok, texts, None, 32)
    before = build_teacher("tiny", seed=0)
    cfg = TeacherConfig(checkpoint="tiny", epochs=1, batch_size=4, lr=1e-2, train_layers=1, lexical_weights=(0.0,))
    fitted, log = train_teacher("tiny", enc, y, enc, y, 3, cfg, seed=0)
    assert log["frozen_layers"] == 1 and log["trained_layers"] == 1 and log["steps"] == 4
    after = fitted.model.state_dict()
    for name, value in before.state_dict().items():
        changed = not torch.equal(value, after[name])
        frozen = name.startswith(("encoder.embeddings.", "encoder.encoder.layer.0."))
        if frozen:
            assert not changed, name
    assert not torch.equal(before.state_dict()["head.weight"], after["head.weight"])
    assert not torch.equal(before.state_dict()["encoder.encoder.layer.1.output.dense.weight"],
                           after["encoder.encoder.layer.1.output.dense.weight"])


def test_cpu_bf16_setting_follows_the_cpu_on_auto_and_rejects_other_values(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(teacher_module, "cpu_has_native_bf16", lambda native=native: native)
        assert cpu_bf16_enabled(TeacherConfig(cpu_bf16="auto")) is native
        assert cpu_bf16_enabled(TeacherConfig(cpu_bf16="on")) is True
        assert cpu_bf16_enabled(TeacherConfig(cpu_bf16="off")) is False
    with pytest.raises(ValueError, match="cpu_bf16"):
        TeacherConfig(cpu_bf16="yes")  # refused before anything is trained


def test_bf16_training_steps_are_recorded_and_the_weights_and_predictions_stay_float32():
    tok = load_tokenizer(None)
    texts = ["metal conducts heat fast", "wood is an insulator", "i dont know", "metal is cold"] * 4
    y = np.array([2, 1, 0, 0] * 4)
    enc = Encoded(tok, texts, None, 32)
    runs = {}
    for mode in ("off", "on"):
        cfg = TeacherConfig(checkpoint="tiny", epochs=2, batch_size=4, lr=1e-2, train_layers=1, cpu_bf16=mode)
        fitted, log = train_teacher("tiny", enc, y, enc, y, 3, cfg, seed=0)
        runs[mode] = (fitted, log)
    assert runs["off"][1]["mixed_precision"] is None
    assert runs["on"][1]["mixed_precision"] == "bf16 (training steps)"
    on, off = runs["on"][0].model.state_dict(), runs["off"][0].model.state_dict()
    assert all(v.dtype == torch.float32 for v in on.values() if v.is_floating_point())
    name = "encoder.encoder.layer.1.output.dense.weight"
    assert not torch.equal(on[name], off[name])  # the steps really ran in bf16: same seed, other rounding
    frozen = "encoder.encoder.layer.0.output.dense.weight"
    assert torch.equal(on[frozen], off[frozen])
    pred = runs["on"][0].predict(enc)
    assert pred.dtype == np.float32 and np.isfinite(pred).all()


def test_cross_fit_scores_every_row_by_every_copy_and_out_of_fold_by_the_copy_that_never_saw_it():
    tok = load_tokenizer(None)
    texts = ["metal conducts heat fast", "wood is an insulator", "i dont know", "metal is cold"] * 4
    y = np.array([2, 1, 0, 0] * 4)
    folds = np.array([0, 1, 2] * 5 + [0])
    cfg = TeacherConfig(checkpoint="tiny", epochs=1, batch_size=4, lr=1e-2, train_layers=1, folds=3)
    teachers, oof, by_copy, log = cross_fit("tiny", Encoded(tok, texts, None, 32), y, folds, 3, cfg, seed=0)
    assert len(teachers) == 3 and by_copy.shape == (3, len(texts)) and log["folds"] == 3
    for k in range(3):
        np.testing.assert_array_equal(oof[folds == k], by_copy[k][folds == k])
        # copy k scores every row, the ones it was trained on too
        np.testing.assert_allclose(by_copy[k], teachers[k].predict(Encoded(tok, texts, None, 32)), atol=1e-5)
    assert not np.allclose(by_copy[0], by_copy[1])  # three different copies


def test_max_length_auto_is_the_95th_percentile():
    tok = load_tokenizer(None)
    texts = ["word " * n for n in range(1, 101)]
    cfg = TeacherConfig(max_length="auto", max_length_cap=256)
    n = max_length_for(tok, texts, None, cfg)
    assert 90 <= n <= 100
    assert max_length_for(tok, texts, None, TeacherConfig(max_length="auto", max_length_cap=64)) == 64
    assert max_length_for(tok, texts, None, TeacherConfig(max_length=40)) == 40


def test_qwk_known_values():
    assert qwk([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert qwk([0, 0, 1, 1], [1, 1, 0, 0], [0, 1]) == pytest.approx(-1.0)
    # against scikit-learn's cohen_kappa_score(weights="quadratic")
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.RandomState(0)
    a, b = rng.randint(0, 4, 200), rng.randint(0, 4, 200)
    assert qwk(a, b, [0, 1, 2, 3]) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-9)
