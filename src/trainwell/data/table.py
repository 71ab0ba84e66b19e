"""A loaded dataset (``Table``), before any split, and the check every source applies to its features.

Everything that reaches the model passes through a Table first, so this is where bad input is
caught: each problem raises a ``UserError`` that names the file, column and row and says how to
fix it, instead of failing later inside torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trainwell.data.columns import ColumnEncoder
from trainwell.core.errors import UserError

FORMATS = ("a .csv (or .tsv, .txt, .data; any may be compressed: .gz, .bz2, .xz, .zip), .parquet or Excel .xlsx table, "
           "an .npz archive (keys X and y), or a folder of MNIST-style IDX files")


@dataclass
class Table:
    """A loaded dataset: float32 features plus raw targets, before any split.

    For a table (.csv, .parquet, a DataFrame) ``X`` holds every row encoded by ``columns`` fitted on
    all rows (NaN where a value is missing), and ``frame`` / ``typed`` keep the raw and the parsed
    columns so that ``prepare`` can learn the categories and statistics from the training rows only.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list[str]
    name: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    columns: ColumnEncoder | None = None   # how raw table columns become inputs (data/columns.py)
    typed: dict | None = None              # parsed columns (same rows as X)
    frame: pd.DataFrame | None = None      # the raw feature columns (same rows as X)
    notes: list[str] = field(default_factory=list)   # decisions made while loading (rows dropped, ...)
    weights: np.ndarray | None = None      # data.weight: one weight per row
    val_rows: np.ndarray | None = None     # fit(validation_data=...): the rows that are the validation split

    @property
    def onehot(self) -> ColumnEncoder | None:
        """The column encoder (the name it had when it only one-hot encoded text)."""
        return self.columns


def check_finite(X: np.ndarray, names: list[str], where: str, allow_missing: bool = False) -> None:
    """Refuse NaN / inf in features: they silently poison every gradient.

    ``allow_missing``: NaN is a missing value that ``data.impute`` fills (inf is still refused).
    """
    bad = np.isinf(X) if allow_missing else ~np.isfinite(X)
    if not bad.any():
        return
    flat = bad.reshape(bad.shape[0], -1)
    per_col = flat.sum(axis=0)
    j = int(np.flatnonzero(per_col)[0])
    i = int(np.flatnonzero(flat[:, j])[0])
    col = f'column "{names[j]}"' if names and j < len(names) else f"feature {j}"
    cols = int((per_col > 0).sum())
    raise UserError(
        f"Features in {where} contain NaN or infinite values: {col} has {int(per_col[j])} of them, the first in "
        f"row {i + 1} ({cols} column(s) affected, {int(flat.sum())} value(s) in all). Drop those rows, or impute the "
        f"missing values before training" + (" (infinite values cannot be imputed)." if allow_missing else
                                             ": data.impute=auto (the default) fills NaN with the training split's "
                                             "median plus a missing indicator, data.impute=median with the median "
                                             "alone.")
    )
