"""``model.json``: what a run directory holds, checksummed, validated before anything is built.

``model.json`` lists the sha256 and size of every file that loading a run reads
(``model.safetensors``, ``spec.yaml``, ``history.csv``, ``metrics.json``, the doctor's
files, the figures the report embeds, a custom module's copy) and the sha256 of its own
body. :func:`read_verified` checks the body, validates every field with a pydantic schema,
then checks each listed file and returns its verified bytes, so callers parse exactly what
was checked. Any mismatch is a :class:`~trainwell.core.errors.UserError` naming the file and
what to do (exit code 2), never a traceback. The same scheme as checkpoints
(train/checkpoint/store.py); see docs/checkpoints.md.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainwell.core.io import atomic_write, json_safe, sha256_bytes
from trainwell.core.errors import UserError

FORMAT = "trainwell-model/2"
MANIFEST = "model.json"
REQUIRED = ("model.safetensors", "spec.yaml")
# every file a load (predict, evaluate, diagnose, report, trainwell.load) reads; the report's own
# figures (lr.png, gradient_flow.png, ...) and report.html are outputs it rewrites, so they are not listed
SEEN_ROWS = "seen_rows.safetensors"    # the training and validation rows' fingerprints (data/fingerprints.py)
SEALED = (*REQUIRED, "history.csv", "metrics.json", "diagnosis.json", "diagnostics.csv", "data.json",
          "test_predictions.csv", "curves.svg", "curves.png", "reconstructions.png", "module.py",
          SEEN_ROWS)   # curves.png: older runs
MAX_WIDTH = 1 << 24          # no layer of a saved network is wider; the tensors' shapes are checked too
SHA = r"^[0-9a-f]{64}$"

_Int = Field(ge=0, le=MAX_WIDTH)
_Pos = Field(ge=1, le=MAX_WIDTH)
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sha256: str = Field(pattern=SHA)
    bytes: int = Field(ge=0)


class Architecture(BaseModel):
    """The fields every builder reads; topology-specific keys (kernels, cells, ...) are JSON values
    whose fit with the saved tensors is checked by building the network on the meta device."""
    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")   # a topology in nn/topologies/; checked when built
    n_inputs: int = _Pos
    n_outputs: int = _Int
    input_shape: list[Width] = Field(default_factory=list, max_length=8)
    hidden: list[Width] = Field(default_factory=list, max_length=1024)
    members: int = Field(default=1, ge=1, le=4096)
    activation: str = "relu"
    loss: str = "auto"
    output_activation: str = "auto"
    task: Literal["regression", "binary", "multiclass", "multilabel", "reconstruction"] | None = None
    module: str | None = None
    module_kwargs: dict[str, Any] = Field(default_factory=dict)
    module_file: Literal["module.py"] | None = None
    module_sha256: str | None = Field(default=None, pattern=SHA)
    batchnorm_folded: bool = False


class ModelJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["trainwell-model/2"]
    architecture: Architecture
    preprocessing: dict[str, Any]
    files: dict[str, FileEntry]
    body_sha256: str = Field(pattern=SHA)


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def seal(d: Path, architecture: dict, preprocessing: dict) -> None:
    """Write ``d/model.json`` listing the checksums of the sealed files present in ``d`` (written last)."""
    files = {}
    for name in SEALED:
        p = d / name
        if p.is_file():
            data = p.read_bytes()
            files[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    body = json_safe({"format": FORMAT, "architecture": architecture, "preprocessing": preprocessing, "files": files})
    body["body_sha256"] = sha256_bytes(_canonical(body))
    atomic_write(d / MANIFEST, json.dumps(body, indent=2))


def reseal(d: Path) -> None:
    """Checksum again after trainwell itself rewrote sealed files (``diagnose --save``)."""
    meta, _ = read_verified(d, check_files=False)
    seal(d, meta["architecture"], meta["preprocessing"])


def _damaged(path: Path, what: str) -> UserError:
    return UserError(f"{path} {what}. The run directory was changed or damaged after training: restore the file "
                     f"from a copy of the run, or train again (trainwell fit ... --overwrite).")


def read_manifest(d: Path) -> dict:
    """``model.json`` parsed, its body checksum checked and every field validated."""
    path = d / MANIFEST
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"cannot be read as JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise _damaged(path, f"holds a JSON {type(doc).__name__}, not an object")
    if doc.get("format") != FORMAT:
        raise UserError(f"{path} has format {str(doc.get('format'))[:40]!r}, not {FORMAT!r}: it was written by an "
                        f"older trainwell without checksums, or is not a trainwell run. Train it again.")
    body = {k: v for k, v in doc.items() if k != "body_sha256"}
    try:
        ok = sha256_bytes(_canonical(body)) == doc.get("body_sha256")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _damaged(path, "does not match its own checksum (body_sha256)")
    try:
        ModelJson.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise _damaged(path, f"has an invalid field {where}: {first['msg']}") from None
    return doc


def read_verified(d: Path, check_files: bool = True) -> tuple[dict, dict[str, bytes]]:
    """(model.json, {file name: verified bytes}) of run directory ``d``."""
    doc = read_manifest(d)
    listed = doc["files"]
    blobs: dict[str, bytes] = {}
    for name in REQUIRED:
        if name not in listed:
            raise _damaged(d / MANIFEST, f"does not list {name}")
    for name in SEALED:
        p = d / name
        if name not in listed:
            if p.exists():
                raise _damaged(p, f"is not listed in {MANIFEST} (trainwell did not write it; a load would read it)"
                               f" -- delete it")
            continue
        if not p.is_file() or p.is_symlink():
            raise _damaged(p, "is missing (or not a plain file)")
        data = p.read_bytes()
        if check_files and (len(data) != listed[name]["bytes"] or sha256_bytes(data) != listed[name]["sha256"]):
            raise _damaged(p, f"does not match the sha256 recorded in {MANIFEST}")
        blobs[name] = data
    extra = set(listed) - set(SEALED)
    if extra:
        raise _damaged(d / MANIFEST, f"lists unknown files {sorted(extra)[:3]}")
    return doc, blobs


def is_sha256(text: Any) -> bool:
    return isinstance(text, str) and re.fullmatch(SHA, text) is not None
