"""A validation set the user supplies (``fit(X, y, validation_data=(X_val, y_val))``), as Keras' argument.

The given rows are appended to the training rows and marked, so one loading path types, encodes and checks
both alike; the split then puts exactly the marked rows in the validation split. Every statistic (scaling,
categories, fill values) is still learned from the training rows only. The rows the automatic split would have
held out for validation train instead; a test split is still held out as the split says.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainwell.data.split import split_indices
from trainwell.core.errors import UserError


def join_validation(X: Any, y: Any, validation_data: Any, target: Any) -> tuple[Any, Any, np.ndarray]:
    """(X and the validation inputs, y and the validation targets, the validation rows' positions)."""
    if X is None or y is None:
        raise UserError("validation_data= goes with in-memory data: pass X and y (arrays or a DataFrame) too. "
                        "For files, put all rows in one file and let data.split choose, or name a test file.")
    X_val, y_val = _pair(validation_data, target)
    if len(X_val) != len(y_val):
        raise UserError(f"validation_data has {len(X_val)} input rows but {len(y_val)} targets; they must match.")
    if len(X_val) == 0:
        raise UserError("validation_data has no rows. Pass at least one (X_val, y_val) row, or leave it out.")
    n = len(X)
    if isinstance(X, pd.DataFrame) or isinstance(X_val, pd.DataFrame):
        if not (isinstance(X, pd.DataFrame) and isinstance(X_val, pd.DataFrame)):
            raise UserError("X and the validation inputs must both be DataFrames or both be arrays.")
        if list(X.columns) != list(X_val.columns):
            missing = [c for c in X.columns if c not in X_val.columns]
            raise UserError(f"The validation DataFrame's columns differ from X's (missing: {missing or 'none'}). "
                            f"Give it the same columns in the same order.")
        joined = pd.concat([X, X_val], ignore_index=True)
    else:
        a, b = np.asarray(X), np.asarray(X_val)
        if a.shape[1:] != b.shape[1:]:
            raise UserError(f"The validation inputs have shape {list(b.shape)} but X has {list(a.shape)}; every "
                            f"row needs the same shape ({list(a.shape[1:])}).")
        joined = np.concatenate([a, b])
    ys = np.concatenate([np.asarray(y), np.asarray(y_val)])
    return joined, ys, np.arange(n, n + len(X_val))


def _pair(validation_data: Any, target: Any) -> tuple[Any, Any]:
    if isinstance(validation_data, pd.DataFrame):
        cols = target if isinstance(target, list) else [target] if target else []
        if not cols or any(c not in validation_data.columns for c in cols):
            raise UserError("validation_data as one DataFrame needs data.target naming its target column(s) "
                            "(e.g. data={'target': 'label'}); or pass validation_data=(X_val, y_val).")
        y_val = validation_data[cols[0]] if len(cols) == 1 else validation_data[cols]
        return validation_data.drop(columns=cols), np.asarray(y_val)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return validation_data[0], np.asarray(validation_data[1])
    raise UserError("validation_data must be (X_val, y_val) or a DataFrame holding the target column; got "
                    f"{type(validation_data).__name__}.")


def mark_validation(table: Any, val_rows: np.ndarray) -> None:
    """Mark the loaded table's validation rows (rows dropped while loading would shift them: refused)."""
    expected = int(val_rows[-1]) + 1
    if table.X.shape[0] != expected:
        raise UserError(f"{expected - table.X.shape[0]} row(s) were dropped while loading (missing targets), so "
                        f"the validation rows cannot be told apart any more. Drop those rows from X/y and "
                        f"validation_data first.")
    table.val_rows = np.asarray(val_rows, dtype=np.int64)


def split_with_validation(n: int, val_rows: np.ndarray, strata: np.ndarray | None, split: Any, seed: int,
                          has_test: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Train / validation / test indices where the validation rows are the given ones: the other rows are split
    as ``split`` says, and the rows it would have held out for validation train."""
    rest = np.setdiff1d(np.arange(n), val_rows)
    tr, va, te, how = split_indices(len(rest), strata[rest] if strata is not None else None, split, seed,
                                    has_test=has_test)
    train = np.sort(rest[np.concatenate([tr, va])])
    return (train, np.sort(np.asarray(val_rows, dtype=np.int64)), rest[te],
            f"validation: the {len(val_rows)} rows given as validation_data; train/test from the other rows ({how})")
