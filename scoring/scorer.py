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

from distillation import onnx_contract as oc
from distillation.artifact import ArtifactError, Manifest, manifest_sha256, verify
from distillation.features import Featurizer

MAX_CACHED_MODELS = 64
WORD_CHUNK = 512  # answers per call for a version with a word CNN (sorted by length: little padding)


def _rows(values, idx: np.ndarray, n: int):
    """``questions`` / ``references`` (one per response of ``n``) for the rows ``idx``; one value for all
    rows stays as it is (and so does a wrong count, for the featuriser to refuse)."""
    if values is None or isinstance(values, str) or not isinstance(values, Sequence) or len(values) != n:
        return values
    return [values[i] for i in idx]


class ModelLoadError(Exception):
    """A model-version directory that cannot be served; the message says which file and why."""


@dataclass(frozen=True)
class Prediction:
    """A batch's probabilities per level (float32 [n, K], column i = ``labels[i]``) and decoded level
    index per answer (the QWK-fitted cut-points of the version); ``confidence`` = the decoded level's
    probability."""

    probabilities: np.ndarray
    level: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.level)), self.level]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model version ready to score: its session, featuriser, label set and confidence threshold."""

    path: Path
    checksum: str
    labels: tuple[int, ...]
    featurizer: Featurizer
    session: object  # onnxruntime.InferenceSession (run() is thread-safe)
    manifest: Manifest
    confidence_threshold: float | None  # fitted at training (manifest "decoding"); None: not fitted

    def predict(self, responses: Sequence[str], questions: Sequence[str] | str | None,
                references: object = None) -> Prediction:
        if not responses:
            return Prediction(np.zeros((0, len(self.labels)), np.float32), np.zeros(0, np.int64))
        responses = list(responses)
        if self.featurizer.vocabulary is None or len(responses) <= WORD_CHUNK:
            return self._run(responses, questions, references)
        # A word CNN reads every answer padded to the batch's longest: in chunks of answers of similar
        # length the padding (and its share of the work) is small.  A row's score does not depend on
        # the other rows of its batch, so the result is the same as one call.
        order = np.argsort([len(r) if isinstance(r, str) else 0 for r in responses], kind="stable")
        probs = np.zeros((len(responses), len(self.labels)), np.float32)
        level = np.zeros(len(responses), np.int64)
        n = len(responses)
        for s in range(0, n, WORD_CHUNK):
            idx = order[s : s + WORD_CHUNK]
            part = self._run([responses[i] for i in idx], _rows(questions, idx, n), _rows(references, idx, n))
            probs[idx], level[idx] = part.probabilities, part.level
        return Prediction(probs, level)

    def _run(self, responses: list, questions, references) -> Prediction:
        feeds = self.featurizer.transform(responses, questions, references)
        probs, level = self.session.run([oc.PROBABILITIES, oc.LEVEL], feeds)
        return Prediction(probs, level)

    def predict_proba(
        self, responses: Sequence[str], questions: Sequence[str] | str | None, references: object = None
    ) -> np.ndarray:
        """Probabilities, float32 [n, len(labels)]; column i is the probability of `labels[i]`."""
        return self.predict(responses, questions, references).probabilities


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
        # verify() checks every file's sha256 and the featuriser state; the ONNX graph is checked below,
        # on the one session this process keeps
        manifest = verify(path, check_onnx=False)
        featurizer = Featurizer.from_state(json.loads(manifest.featurizer_path.read_text(encoding="utf-8")))
        try:
            session = oc.session(manifest.onnx_path)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{manifest.onnx_path}: ONNX model fails to load: {exc}") from exc
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
        manifest=manifest,
        confidence_threshold=_threshold(manifest),
    )
    # A smoke run: the graph accepts the featuriser's output and keeps the ONNX contract.
    try:
        oc.validate(session, len(model.labels),
                    probe=featurizer.transform(["a smoke test answer", ""], "question", "reference"))
    except oc.ContractError as exc:
        raise ModelLoadError(f"{manifest.onnx_path}: {exc}") from exc
    return model


def _threshold(manifest: Manifest) -> float | None:
    value = manifest.decoding.get("confidence_threshold")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
