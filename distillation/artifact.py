"""The model-version directory (docs/model_version.md): write, read and verify.

Serving code: imports only the standard library, numpy and (lazily, for the ONNX check) onnx /
onnxruntime.  No torch, no transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FORMAT = "kdgrade-model/3"  # 3: featuriser 3 (bucket/segment inputs); 2: ordinal student
MANIFEST = "manifest.json"
REQUIRED_FILES = ("model.onnx", "featurizer.json", "config.json", "report.json")


class ArtifactError(Exception):
    """A model-version directory that cannot be used; the message names the file and the problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest.json of a model version."""

    path: Path  # the model-version directory
    item_id: str
    labels: list[int]
    files: dict[str, str]
    onnx_file: str
    inputs: list[str]
    output: str
    opset: int
    created_at: str = ""
    student_params: int | None = None
    parity_max_abs_diff: float | None = None
    int8_file: str | None = None
    decoding: dict = field(default_factory=dict)  # cut-points, link scale, confidence threshold
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def onnx_path(self) -> Path:
        return self.path / self.onnx_file

    @property
    def featurizer_path(self) -> Path:
        return self.path / "featurizer.json"


def sha256_file(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_sha256(path: os.PathLike | str) -> str:
    """sha256 of the version's manifest.json: the version's checksum (``ModelVersion.checksum``)."""
    p = Path(path)
    m = p / MANIFEST if p.is_dir() else p
    if not m.is_file():
        raise ArtifactError(m, "missing file")
    return sha256_file(m)


def _parse_manifest(directory: Path, data: object) -> Manifest:
    mpath = directory / MANIFEST

    def bad(problem: str) -> ArtifactError:
        return ArtifactError(mpath, f"bad format: {problem}")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("format") != FORMAT:
        hint = "; a version from an older kdgrade: train it again" if str(data.get("format", "")).startswith(
            "kdgrade-model/") else ""
        raise bad(f"format is {data.get('format')!r}, expected {FORMAT!r}{hint}")
    for key in ("item_id", "labels", "files", "onnx"):
        if key not in data:
            raise bad(f"no {key!r}")
    labels = data["labels"]
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise bad("'labels' must be a list of at least two distinct integers")
    files = data["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise bad("'files' must map file names to sha256 hex digests")
    for name in files:
        if "/" in name or "\\" in name or name in ("", ".", "..") or name == MANIFEST:
            raise bad(f"'files' lists an unsafe name {name!r}")
    onnx_info = data["onnx"]
    if not isinstance(onnx_info, dict) or not isinstance(onnx_info.get("file"), str):
        raise bad("'onnx' must be an object with 'file'")
    inputs = onnx_info.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise bad("'onnx.inputs' must be a list of input names")
    for name in (*REQUIRED_FILES, onnx_info["file"]):
        if name not in files:
            raise bad(f"'files' does not list {name}")
    int8 = data.get("int8")
    int8_file = int8.get("file") if isinstance(int8, dict) else None
    if int8_file is not None and int8_file not in files:
        raise bad(f"'files' does not list {int8_file}")
    return Manifest(
        path=directory,
        item_id=str(data["item_id"]),
        labels=list(labels),
        files=dict(files),
        onnx_file=onnx_info["file"],
        inputs=list(inputs),
        output=str(onnx_info.get("output", "probabilities")),
        opset=int(onnx_info.get("opset", 0)),
        created_at=str(data.get("created_at", "")),
        student_params=data.get("student_params"),
        parity_max_abs_diff=data.get("parity_max_abs_diff"),
        int8_file=int8_file,
        decoding=dict(data.get("decoding") or {}),
        raw=data,
    )


def load_manifest(path: os.PathLike | str) -> Manifest:
    """Read and check the structure of ``path/manifest.json`` (no checksums: see :func:`verify`)."""
    directory = Path(path)
    if directory.name == MANIFEST:
        directory = directory.parent
    if not directory.is_dir():
        raise ArtifactError(directory, "missing directory")
    mpath = directory / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(mpath, "missing file")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(mpath, f"bad format: not valid JSON ({exc})") from exc
    return _parse_manifest(directory, data)


def verify(path: os.PathLike | str, *, check_onnx: bool = True) -> Manifest:
    """Check a model-version directory: manifest format, every listed file present with its sha256,
    the featuriser state parses, and each ONNX file loads in onnxruntime with the manifest's inputs
    and output.  Returns the :class:`Manifest`; raises :class:`ArtifactError` naming file and problem."""
    manifest = load_manifest(path)
    directory = manifest.path
    for name, digest in manifest.files.items():
        fpath = directory / name
        if not fpath.is_file():
            raise ArtifactError(fpath, "missing file")
        actual = sha256_file(fpath)
        if actual != digest:
            raise ArtifactError(fpath, f"checksum mismatch (manifest {digest[:12]}..., file {actual[:12]}...)")

    fpath = directory / "featurizer.json"
    try:
        state = json.loads(fpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(fpath, f"bad format: not valid JSON ({exc})") from exc
    from distillation.features import Featurizer

    try:
        featurizer = Featurizer.from_state(state)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(fpath, f"missing or bad featuriser state: {exc}") from exc
    if list(manifest.inputs) != list(featurizer.input_names):
        raise ArtifactError(
            directory / MANIFEST,
            f"bad format: onnx.inputs {manifest.inputs} differ from the featuriser's {featurizer.input_names}",
        )

    for name in ("config.json", "report.json"):
        fpath = directory / name
        try:
            json.loads(fpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(fpath, f"bad format: not valid JSON ({exc})") from exc

    if check_onnx:
        onnx_files = [manifest.onnx_file] + ([manifest.int8_file] if manifest.int8_file else [])
        for name in onnx_files:
            _check_onnx(directory / name, manifest)
    return manifest


def _check_onnx(fpath: Path, manifest: Manifest) -> None:
    from distillation import onnx_contract as oc

    try:
        sess = oc.session(fpath)
    except Exception as exc:  # onnxruntime raises several of its own exception types
        raise ArtifactError(fpath, f"ONNX model fails to load: {exc}") from exc
    if not oc.valid_inputs(manifest.inputs):
        raise ArtifactError(fpath, f"the manifest's inputs {manifest.inputs} differ from the contract's")
    if sorted(i.name for i in sess.get_inputs()) != sorted(manifest.inputs):
        raise ArtifactError(fpath, f"the graph's inputs differ from the manifest's {manifest.inputs}")
    try:
        oc.validate(sess, len(manifest.labels))
    except oc.ContractError as exc:
        raise ArtifactError(fpath, str(exc)) from exc


def write_json(path: os.PathLike | str, data: object) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_manifest(
    directory: os.PathLike | str,
    *,
    item_id: str,
    labels: list[int],
    inputs: list[str],
    opset: int,
    student_params: int,
    parity_max_abs_diff: float,
    int8: dict | None = None,
    decoding: dict | None = None,
    created_at: str | None = None,
    extra_files: tuple[str, ...] = (),
) -> Manifest:
    """Checksum the files of a model version written into ``directory`` and write its manifest."""
    directory = Path(directory)
    names = list(REQUIRED_FILES) + ([int8["file"]] if int8 else []) + list(extra_files)
    files = {}
    for name in names:
        if not (directory / name).is_file():
            raise ArtifactError(directory / name, "missing file")
        files[name] = sha256_file(directory / name)
    data = {
        "format": FORMAT,
        "item_id": str(item_id),
        "created_at": created_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": [int(x) for x in labels],
        "files": files,
        "onnx": {"file": "model.onnx", "inputs": list(inputs), "output": "probabilities", "opset": int(opset)},
        "student_params": int(student_params),
        "parity_max_abs_diff": float(parity_max_abs_diff),
    }
    if int8:
        data["int8"] = dict(int8)
    if decoding:
        data["decoding"] = dict(decoding)
    write_json(directory / MANIFEST, data)
    return _parse_manifest(directory, data)


def atomic_directory(parent: os.PathLike | str, prefix: str = ".tmp-") -> Path:
    """A fresh temporary directory inside ``parent`` (same file system, so it can be renamed into place)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
