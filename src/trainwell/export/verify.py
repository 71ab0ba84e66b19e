"""An export is kept only when it predicts what trainwell predicts.

The exported file runs on the run's held-out rows (the test split of its own data, reloaded and
split again with the saved spec and seed, or rows the caller passes) through onnxruntime (or the
``torch.export`` program), from the raw rows to the decoded outputs, and every output is compared
with ``Run.predict_proba`` / ``Run.predict`` / ``Run.encode``: probabilities within ``TOL`` = 1e-5,
regression values within 1e-5 relative to their size (float32 holds about 7 significant digits:
a price of 250,000 cannot agree to 1e-5 absolutely), and the same decoded labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainwell.data.loading import load_table   # the loading path of fit: the same rows, typed the same way
from trainwell.data.pipeline import prepare
from trainwell.data.column_types import reading_of
from trainwell.data.frames import read_frame   # CSV / Parquet rows given with --data
from trainwell.core.errors import UserError
from trainwell.nn.topologies import topology
from trainwell.export.runtime import Session, decode, graph_inputs

TOL = 1e-5
ROWS = 1000          # held-out rows compared at most


def held_out(run, rows: int = ROWS) -> Any:
    """The run's test rows as raw input (a DataFrame of raw columns for tables), reloaded from its data."""
    source = str(run.spec.data.source)
    if source == "arrays":
        raise UserError("This run was trained on arrays passed in Python, so export cannot reload its held-out rows. "
                        "Pass rows to check the export on: Run.export(..., data=X) or --data FILE.")
    table = load_table(run.spec)
    prep = prepare(table, run.spec, topology(run.spec.model.type).inputs)
    if table.frame is not None and prep.test_rows is not None and run.pre.columns is not None:
        frame = table.frame.iloc[prep.test_rows[:rows]].reset_index(drop=True)
        return frame if len(frame) else table.frame.iloc[:rows]
    X = prep.raw_test[0] if prep.raw_test is not None and len(prep.raw_test[0]) else table.X
    return np.asarray(X[:rows])


def expected(run, X: Any, encoder_only: bool) -> dict[str, np.ndarray]:
    if encoder_only:
        return {"code": run.encode(X)}
    if run.pre.task == "regression":
        v = np.asarray(run.predict(X), dtype=np.float64)
        return {"value": v.reshape(len(v), -1)}
    return {"probabilities": run.predict_proba(X), "decoded": np.asarray(run.predict(X))}


def largest_difference(want: dict, got: dict, meta: dict) -> tuple[float, str]:
    """(largest difference, the output it is in); labels that differ count as 1.0."""
    worst, where = 0.0, ""
    for name, w in want.items():
        if name == "decoded":
            g = decode(meta, got)
            diff = float((np.asarray(g).astype(str) != np.asarray(w).astype(str)).mean() > 0)
        else:
            g = np.asarray(got[name], dtype=np.float64).reshape(np.shape(w))
            scale = np.maximum(np.abs(w), 1.0) if name == "value" else 1.0
            diff = float(np.max(np.abs(g - w) / scale)) if np.size(w) else 0.0
        if not diff <= worst:
            worst, where = diff, name
    return worst, where


def run_exported(path: Path, fmt: str, meta: dict, X: Any, program: Any = None) -> dict[str, np.ndarray]:
    """The exported outputs on ``X``: the ONNX file through onnxruntime, or the in-memory torch.export
    program that was just written (never read back: ``torch.export.load`` unpickles)."""
    if fmt == "onnx":
        return Session(path, meta).run(X)
    program = program.module()
    feeds = [torch.from_numpy(a) for a in graph_inputs(meta, X).values()]
    with torch.no_grad():
        outs = program(*feeds)
    return {n: o.numpy() for n, o in zip(meta["outputs"], outs)}


def verify(run, path: Path, fmt: str, meta: dict, X: Any = None, encoder_only: bool = False,
           program: Any = None) -> dict:
    """Compare the exported file with trainwell on held-out rows; UserError (exit 2) when they differ."""
    X = held_out(run) if X is None else X
    if isinstance(X, (str, Path)):
        X = read_frame(Path(X), **reading_of(run.pre.columns.options if run.pre.columns is not None else None))
    if isinstance(X, pd.DataFrame) and run.pre.columns is None:
        X = X[[c for c in X.columns if c in run.pre.feature_names] or list(X.columns)].to_numpy(np.float32)
    want = expected(run, X, encoder_only)
    got = run_exported(path, fmt, meta, X, program)
    worst, where = largest_difference(want, got, meta)
    n = len(next(iter(want.values())))
    if not worst <= TOL:
        raise UserError(f"The exported {fmt} file disagrees with trainwell on {n} held-out rows: the largest "
                        f"difference is {worst:.3g} in '{where}' (allowed {TOL:g}). The file was not kept. "
                        f"Try --format torch-export, or report the model's spec as a bug.")
    return {"rows": int(n), "largest_difference": worst, "tolerance": TOL}
