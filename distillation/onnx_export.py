"""Student -> ONNX (graph written directly with onnx.helper from the trained weights), parity check
against PyTorch, optional int8 quantisation, timing helpers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
PARITY_LIMIT = 1e-4


class ExportError(RuntimeError):
    pass


def student_to_onnx(model, n_buckets: int, n_dense: int) -> onnx.ModelProto:
    """ONNX graph of a :class:`distillation.student.StudentNet`: inputs "bag" [n, B] and "dense" [n, K],
    output "probabilities" [n, C] (softmax)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    n_classes = sd["fc2.weight"].shape[0]
    inits = [
        numpy_helper.from_array(sd["embedding"], "embedding"),
        numpy_helper.from_array(np.ascontiguousarray(sd["fc1.weight"].T), "fc1_w"),
        numpy_helper.from_array(sd["fc1.bias"], "fc1_b"),
        numpy_helper.from_array(np.ascontiguousarray(sd["fc2.weight"].T), "fc2_w"),
        numpy_helper.from_array(sd["fc2.bias"], "fc2_b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["bag", "embedding"], ["embedded"]),
        helper.make_node("Concat", ["embedded", "dense"], ["joined"], axis=1),
        helper.make_node("MatMul", ["joined", "fc1_w"], ["h1"]),
        helper.make_node("Add", ["h1", "fc1_b"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["h1r"]),
        helper.make_node("MatMul", ["h1r", "fc2_w"], ["h2"]),
        helper.make_node("Add", ["h2", "fc2_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "kdgrade_student",
        [
            helper.make_tensor_value_info("bag", TensorProto.FLOAT, ["n", n_buckets]),
            helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["n", n_dense]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", n_classes])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kdgrade")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def session(path_or_bytes, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_onnx(sess, feeds: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
    n = len(next(iter(feeds.values())))
    out = [sess.run(["probabilities"], {k: v[s : s + batch] for k, v in feeds.items()})[0] for s in range(0, n, batch)]
    return np.concatenate(out)


def parity(torch_probs: np.ndarray, onnx_probs: np.ndarray, limit: float = PARITY_LIMIT) -> float:
    """Max absolute probability difference; raises ExportError above ``limit``."""
    diff = float(np.max(np.abs(torch_probs.astype(np.float64) - onnx_probs.astype(np.float64))))
    if not np.isfinite(diff) or diff > limit:
        raise ExportError(f"ONNX parity check failed: max abs probability difference {diff:.3g} > {limit:g}")
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


quantize_student = quantize


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
