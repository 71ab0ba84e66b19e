"""The rows of a run as a Table: read from ``data.source``, or passed as arrays or a DataFrame (``fit(X, y)``)
and checked like a file's rows.

A DataFrame is typed column by column like a CSV file (data/columns.py: booleans, numbers written as text,
dates, categories; identifiers dropped); a numeric array is taken as float32 without a copy when it already
is one. Rows whose target is missing are dropped (``data.drop_missing_target``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainwell.data.column_types import refuse_beyond_float32
from trainwell.data.frames import refuse_duplicate_columns, table_from_frame, weight_column
from trainwell.data.sources import load_source
from trainwell.data.table import Table
from trainwell.core.errors import UserError


def load_table(spec: Any, X: Any = None, y: Any = None) -> Table:
    """The data as a Table: from arrays or a DataFrame when given, else from ``spec.data.source``.

    NaN features pass through to ``data.impute`` unless it is ``none``; a network that reconstructs its
    inputs refuses them when the data is prepared (data/pipeline.py, ``prepare_reconstruction``).
    """
    d = spec.data
    missing = d.impute != "none" and spec.task != "reconstruction"   # NaN allowed through: prepare fills it
    if X is None:
        return load_source(d.source, d.target, seed=spec.train.seed, allow_missing=missing, data=d)
    return table_from_arrays(X, y, d, missing)


def table_from_arrays(X: Any, y: Any, d: Any, missing: bool) -> Table:
    """``X`` (array or DataFrame) and ``y`` as a Table; ``d`` is the spec's data section, ``missing`` whether
    NaN features pass through to ``data.impute``."""
    if y is None:
        raise UserError("fit(X=...) needs y as well: pass the targets as y=.")
    ya = np.asarray(y)
    if isinstance(X, pd.DataFrame):
        return _table_from_frame(X, ya, d, missing)
    Xa = np.asarray(X)
    if Xa.dtype == object or not (np.issubdtype(Xa.dtype, np.number) or Xa.dtype == bool):
        raise UserError("X must be numeric; encode or drop non-numeric columns before fitting "
                        "(or pass a pandas DataFrame: its text and date columns are encoded for you).")
    if Xa.ndim < 2 or Xa.shape[0] == 0:
        raise UserError(f"X must be a 2-D array with at least one row; got shape {list(Xa.shape)}.")
    if len(ya) != len(Xa):
        raise UserError(f"X has {len(Xa)} rows but y has {len(ya)}; they must match row for row.")
    ya, keep, notes = drop_missing_targets(ya, d)
    if keep is not None:
        Xa = Xa[keep]
    refuse_beyond_float32(Xa, [f"x{i}" for i in range(Xa.shape[1])], "X")
    Xa = Xa.astype(np.float32, copy=False)      # the caller's float32 array is not copied
    if (np.isinf(Xa) if missing else ~np.isfinite(Xa)).any():
        raise UserError("X contains NaN or inf values; drop or impute them before fitting"
                        + (" (inf cannot be imputed)." if missing else " (or pass data.impute='auto')."))
    names = [f"x{i}" for i in range(Xa.shape[1])] if Xa.ndim == 2 else []
    return Table(X=Xa, y=ya, feature_names=names, name="arrays", notes=notes)


def _table_from_frame(X: pd.DataFrame, ya: np.ndarray, d: Any, missing: bool) -> Table:
    """A DataFrame's columns typed like a file's (data/sources.py ``table_from_frame``)."""
    frame = X.rename(columns=str).reset_index(drop=True)
    refuse_duplicate_columns(list(frame.columns), "the X DataFrame")
    if len(ya) != len(frame):
        raise UserError(f"X has {len(frame)} rows but y has {len(ya)}; they must match row for row.")
    where = "the X DataFrame"
    ya, keep, notes = drop_missing_targets(ya, d)
    if keep is not None:
        frame = frame.loc[keep].reset_index(drop=True)
    weights = weight_column(frame, d.weight, where)
    features = [c for c in frame.columns if c != d.weight]
    return table_from_frame(frame, ya, "arrays", where, missing, d, features, notes, weights)


def drop_missing_targets(ya: np.ndarray, d: Any) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Targets given as an array: rows without a value dropped (data.drop_missing_target), with a note."""
    if not d.drop_missing_target or ya.size == 0:
        return ya, None, []
    flat = ya.reshape(len(ya), -1)
    missing = pd.isna(pd.DataFrame(flat)).any(axis=1).to_numpy()
    if not missing.any() or missing.all():
        return ya, None, []
    keep = ~missing
    note = (f"target: {int(missing.sum())} of {len(ya)} row(s) without a target value dropped (data.drop_missing_target"
            f"=false refuses them instead)")
    return ya[keep], keep, [note]
