"""The ONNX scorer: one onnxruntime session per model version, cached per process and thread-safe.

Serving imports only numpy, onnxruntime and `distillation.features` / `distillation.artifact`: never
torch or transformers (tests/test_scoring_torch_free.py proves it in a fresh interpreter).  This module
has no Django imports, so `score_csv --model DIR` and the benches use it directly.

Which version is active is not cached here: callers resolve the active version once per request (one
cheap database query, see `scoring.services`) and then ask `load_model()` for that version's session,
which is built at most once per process.  So activating another version in the admin is seen by every
web and worker process at its next request, with no restart and no cache to invalidate, and one response
never mixes two versions (the caller holds one `LoadedModel` for the whole request).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillation.artifact import ArtifactError, Manifest, manifest_sha256, verify
from distillation.features import Featurizer

MAX_CACHED_MODELS = 64


class ModelLoadError(Exception):
    """A model-version directory that cannot be served; the message says which file and why."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model version ready to score: its session, featuriser and label set."""

    path: Path
    checksum: str
    labels: tuple[int, ...]
    featurizer: Featurizer
    session: object  # onnxruntime.InferenceSession (run() is thread-safe)
    output: str
    manifest: Manifest

    def predict_proba(
        self, responses: Sequence[str], questions: Sequence[str] | str | None, references: object = None
    ) -> np.ndarray:
        """Probabilities, float32 [n, len(labels)]; column i is the probability of `labels[i]`."""
        if not responses:
            return np.zeros((0, len(self.labels)), np.float32)
        feeds = self.featurizer.transform(list(responses), questions, references)
        return self.session.run([self.output], feeds)[0]


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Tiny graphs: a thread pool costs more than it saves, and web workers are processes already.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_model(path: Path | str, expected_checksum: str | None = None) -> LoadedModel:
    """Verify and load a model-version directory (uncached).  Raises ModelLoadError."""
    path = Path(path)
    try:
        checksum = manifest_sha256(path)
        if expected_checksum and checksum != expected_checksum:
            raise ModelLoadError(
                f"{path / 'manifest.json'}: checksum mismatch (registered {expected_checksum[:12]}..., "
                f"now {checksum[:12]}...)"
            )
        # verify() checks every file's sha256, the featuriser state and that the ONNX loads
        manifest = verify(path)
        featurizer = Featurizer.from_state(json.loads(manifest.featurizer_path.read_text(encoding="utf-8")))
        session = _session(manifest.onnx_path)
    except ArtifactError as exc:
        raise ModelLoadError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    model = LoadedModel(
        path=path,
        checksum=checksum,
        labels=tuple(int(x) for x in manifest.labels),
        featurizer=featurizer,
        session=session,
        output=manifest.output,
        manifest=manifest,
    )
    # A smoke run: the graph accepts the featuriser's output and returns one row per answer, summing to 1.
    try:
        probe = model.predict_proba(["a smoke test answer", ""], "question", "reference")
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"{manifest.onnx_path}: fails to run on the featuriser's output: {exc}") from exc
    if probe.shape != (2, len(model.labels)) or not np.allclose(probe.sum(axis=1), 1.0, atol=1e-3):
        raise ModelLoadError(
            f"{manifest.onnx_path}: output of shape {probe.shape} is not one probability row per answer "
            f"over {len(model.labels)} labels"
        )
    return model


_cache: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()
_load_locks: dict[tuple[str, str], threading.Lock] = {}


# A version that failed to load is not retried for FAILED_RETRY_S: otherwise every request to it would
# re-hash its files and rebuild its session (tens of ms each, one at a time behind the load lock) only to
# answer 503 again.
FAILED_RETRY_S = 5.0
_failed: dict[tuple[str, str], tuple[float, str]] = {}


def load_model(path: Path | str, checksum: str) -> LoadedModel:
    """The cached model for a version directory with the given manifest checksum (loaded once)."""
    key = (str(path), checksum)
    model = _cache.get(key)
    if model is not None:
        return model
    with _cache_lock:
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one thread loads; the others wait for it
        model = _cache.get(key)
        if model is None:
            failed = _failed.get(key)
            if failed is not None and time.monotonic() - failed[0] < FAILED_RETRY_S:
                raise ModelLoadError(failed[1])
            try:
                model = open_model(path, expected_checksum=checksum)
            except ModelLoadError as exc:
                _failed[key] = (time.monotonic(), str(exc))
                raise
            _failed.pop(key, None)
            with _cache_lock:
                _cache[key] = model
                while len(_cache) > MAX_CACHED_MODELS:
                    old, _ = _cache.popitem(last=False)
                    _load_locks.pop(old, None)
    return model


def cached_models() -> list[tuple[str, str]]:
    """(path, checksum) of the models this process holds (for tests and the health page)."""
    return list(_cache)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _load_locks.clear()
        _failed.clear()
