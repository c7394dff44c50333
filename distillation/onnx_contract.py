"""The ONNX contract of a student model, in one place: its inputs and outputs, opset, parity tolerance,
the one session factory, and ``validate``, which raises :class:`ContractError` when a graph breaks it.

Export (``distillation.student``), the teacher, the artifact checks and the scorer all use these names,
so a model that passes ``validate`` is one the scorer can serve.  numpy + onnxruntime only.

Inputs (the featuriser's output, ``distillation.features``):
  ``bucket`` int64 [m] and ``segment`` int64 [m]: the sparse bag, one entry per n-gram occurrence, its
  segment = answer * N_NAMESPACES + namespace; ``segment_weight`` float32 [n * N_NAMESPACES]: the weight of
  each segment; ``dense`` float32 [n, D]: overlap and length features; and, for a student with a word
  CNN (its featuriser has a vocabulary), ``word`` int64 [n, w]: each answer's word ids, padded with 0.
Outputs:
  ``probabilities`` float32 [n, K]: calibrated probability of each rubric level (rows sum to 1);
  ``level`` int64 [n]: the decoded level index (QWK-fitted cut-points), what a score is;
  ``score`` float32 [n]: the continuous prediction on the level-index scale.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

OPSET = 17
IR_VERSION = 8
INPUTS = ("bucket", "segment", "segment_weight", "dense")
OPTIONAL_INPUTS = ("word",)  # a student with a word CNN reads it too
OUTPUTS = ("probabilities", "level", "score")
PROBABILITIES, LEVEL, SCORE = OUTPUTS
PARITY_LIMIT = 1e-4


class ContractError(ValueError):
    """An ONNX graph that the scorer could not serve (wrong inputs, outputs, shapes or values)."""


def session(path_or_bytes: Path | str | bytes, threads: int = 1):
    """An onnxruntime CPU session: sequential, no spinning (tiny graphs; web workers are processes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    return ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])


def run(sess, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All outputs of one call, by name (the feeds the graph reads)."""
    names = [i.name for i in sess.get_inputs()]
    return dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {k: feeds[k] for k in names}), strict=True))


def valid_inputs(names) -> bool:
    """The contract's inputs, with or without the optional ones (all of them or none)."""
    return sorted(names) in (sorted(INPUTS), sorted(INPUTS + OPTIONAL_INPUTS))


def validate(sess, n_levels: int, probe: dict[str, np.ndarray] | None = None) -> None:
    """Check the graph's names, and (with ``probe`` feeds) that it returns one probability row per answer
    summing to 1 and a level in range.  Raises :class:`ContractError`."""
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    if not valid_inputs(inputs):
        raise ContractError(f"ONNX inputs {inputs} differ from the contract's {list(INPUTS)} "
                            f"(and optionally {list(OPTIONAL_INPUTS)})")
    missing = [o for o in OUTPUTS if o not in outputs]
    if missing:
        raise ContractError(f"ONNX model lacks the outputs {missing} (has {outputs})")
    shape = sess.get_outputs()[outputs.index(PROBABILITIES)].shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_levels):
        raise ContractError(f"ONNX probabilities of shape {shape} do not cover {n_levels} levels")
    if probe is None:
        return
    try:
        out = run(sess, probe)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ContractError(f"ONNX model fails to run on the featuriser's output: {exc}") from exc
    n = probe["dense"].shape[0]
    p, lv = out[PROBABILITIES], out[LEVEL]
    if p.shape != (n, n_levels) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ContractError(f"ONNX output of shape {p.shape} is not one probability row per answer over "
                            f"{n_levels} levels")
    if lv.shape != (n,) or (n and (lv.min() < 0 or lv.max() >= n_levels)):
        raise ContractError(f"ONNX levels {lv.tolist()[:5]} are not level indices below {n_levels}")


def parity(reference: np.ndarray, served: np.ndarray, limit: float = PARITY_LIMIT) -> float:
    """Max absolute difference; raises :class:`ContractError` above ``limit``."""
    diff = float(np.max(np.abs(np.asarray(reference, np.float64) - np.asarray(served, np.float64)))) \
        if np.size(reference) else 0.0
    if not np.isfinite(diff) or diff > limit:
        raise ContractError(f"ONNX parity check failed: max abs difference {diff:.3g} > {limit:g}")
    return diff


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (onnxruntime), without its advisory log lines."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def time_scorer(score_fn, texts: list[str], n_single: int) -> dict:
    """``ms_per_response``: median of single-response calls; ``responses_per_s``: one batched call
    over all ``texts`` (best of two)."""
    singles = []
    score_fn(texts[:1])
    for t in texts[:n_single]:
        s = time.perf_counter()
        score_fn([t])
        singles.append(time.perf_counter() - s)
    best = np.inf
    for _ in range(2):
        s = time.perf_counter()
        score_fn(texts)
        best = min(best, time.perf_counter() - s)
    return {
        "ms_per_response": round(float(np.median(singles)) * 1000, 4),
        "responses_per_s": round(len(texts) / best, 1),
    }
