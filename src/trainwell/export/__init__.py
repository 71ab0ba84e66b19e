"""Export a run for production: the model with its preprocessing, checked before it is kept.

``export(run, "onnx")`` (``Run.export``, ``trainwell export RUN``) writes ``model.onnx`` and
``model.onnx.json`` (docs/export.md). ONNX needs the optional extra ``trainwell[export]``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from trainwell.core.io import fsync_path
from trainwell.core.errors import UserError
from trainwell.export.onnx import pipeline, write_onnx, write_sidecar, write_torch_export
from trainwell.export.runtime import Session, decode
from trainwell.export.verify import verify

FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}

__all__ = ["export", "Session", "FORMATS"]


def default_path(run, fmt: str, encoder_only: bool = False) -> Path:
    base = Path(run.directory) if run.directory is not None else Path(".")
    return base / f"{'encoder' if encoder_only else 'model'}{FORMATS[fmt]}"


def export(run, fmt: str = "onnx", out: str | Path | None = None, data: Any = None,
           encoder_only: bool = False) -> dict:
    """Write ``run`` as ``fmt`` to ``out`` (default: ``model.onnx`` in the run directory) with its JSON
    description beside it; the file is kept only if it matches trainwell on held-out rows (``data``:
    rows to check on instead). Returns {"path", "description", "rows", "largest_difference", ...}."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is not available. Use one of: {', '.join(FORMATS)}.")
    path = Path(out) if out is not None else default_path(run, fmt, encoder_only)
    path.parent.mkdir(parents=True, exist_ok=True)
    module, meta = pipeline(run, encoder_only)
    encoder_only = meta["outputs"] == ["code"]
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")   # torch.export wants the suffix
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)   # "torchvision is not installed" notices
    try:
        program = (write_onnx if fmt == "onnx" else write_torch_export)(module, meta, tmp)
        check = verify(run, tmp, fmt, meta, data, encoder_only, program=program)
        fsync_path(tmp)                  # on disk before it takes the name (core/io.py's atomic write, by hand:
        os.replace(tmp, path)            # the exporters need the file's suffix and verify reads it first)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    side = write_sidecar(meta, path)
    return {"path": path, "description": side, "format": fmt, **check}


def predict_file(path: str | Path, data: Any):
    """Decoded predictions (and probabilities, for classifiers) of an exported ONNX file."""
    session = Session(path)
    out = session.run(data)
    return decode(session.meta, out), out.get("probabilities")
