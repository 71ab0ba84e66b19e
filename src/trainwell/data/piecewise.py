"""Piecewise-linear encoding of numeric inputs: each column also given as its position through quantile bins.

Gorishniy, Rubachev & Babenko, "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022
(https://arxiv.org/abs/2203.05556), section 3.2. A column's training values are cut at their quantiles
``b_0 < b_1 < ... < b_T`` (repeated quantiles merged, so a column of few levels gets fewer bins), and a value
``x`` is encoded as ``T`` numbers, one per bin ``[b_(t-1), b_t]``:

    e_t = clip((x - b_(t-1)) / (b_t - b_(t-1)), 0, 1)

1 for every bin wholly below ``x``, the fraction of the way through the bin that holds it, 0 above. The
encoding is continuous and monotone in ``x``, and a linear layer on it is any piecewise-linear function of
``x`` with its kinks at the quantiles: one hidden layer can then follow a threshold (a price band, the age
a concrete cures by) that it would otherwise carve from several ReLU units. The column's own scaled value is
kept as well (data/scaling.py appends the encoding after it), so nothing the network saw before is lost.
The edges are fitted on the training split only and stored with the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 8             # quantile bins per column: the encoding's 8 inputs measured in docs/tabular.md
MIN_ROWS = 500       # a regression's training rows from which data.piecewise=auto encodes (docs/tabular.md#piecewise-linear-encoding)


@dataclass
class PiecewiseLinear:
    """The bins of every encoded column, flattened: bin ``k`` belongs to input column ``column[k]`` and
    spans ``[lower[k], lower[k] + width[k]]``."""

    column: np.ndarray       # int, per bin: the input column it encodes
    lower: np.ndarray        # float64, per bin: its lower edge
    width: np.ndarray        # float64, per bin: its width (> 0)

    @classmethod
    def fit(cls, X: np.ndarray, columns: np.ndarray, bins: int = BINS) -> "PiecewiseLinear | None":
        """Quantile bins for each of ``columns`` of the training rows ``X``; None when no column has two
        bins (every column constant or of two values: its scaled value already says everything)."""
        column, lower, width = [], [], []
        qs = np.linspace(0.0, 1.0, bins + 1)
        for j in np.flatnonzero(columns):
            x = X[:, j].astype(np.float64)
            edges = np.unique(np.quantile(x, qs))
            if len(edges) < 3 or len(np.unique(x)) < 3:     # two values: the scaled column says it all
                continue
            column += [j] * (len(edges) - 1)
            lower.append(edges[:-1])
            width.append(np.diff(edges))
        if not column:
            return None
        return cls(np.asarray(column, dtype=np.int64), np.concatenate(lower), np.concatenate(width))

    @property
    def n_bins(self) -> int:
        return len(self.column)

    def encode(self, block: np.ndarray) -> np.ndarray:
        """[rows, n_bins] float64 encoding of a float64 block of raw (unscaled) input rows."""
        return np.clip((block[:, self.column] - self.lower) / self.width, 0.0, 1.0)

    def names(self, names: list[str]) -> list[str]:
        """``"<column> (bin k)"`` for every bin, in order (k counts from 1 within each column)."""
        out, seen = [], {}
        for j in self.column.tolist():
            seen[j] = seen.get(j, 0) + 1
            out.append(f"{names[j]} (bin {seen[j]})")
        return out

    def columns_encoded(self) -> list[int]:
        """The input columns that have bins, in order."""
        return list(dict.fromkeys(self.column.tolist()))

    def to_json(self) -> dict:
        return {"column": self.column.tolist(), "lower": self.lower.tolist(), "width": self.width.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "PiecewiseLinear":
        return cls(np.asarray(d["column"], dtype=np.int64), np.asarray(d["lower"], dtype=np.float64),
                   np.asarray(d["width"], dtype=np.float64))


def resolve_bins(setting: "int | str", n_rows: int, task: str) -> tuple[int, str]:
    """``data.piecewise``: the bins per column (0 = no encoding) and why. ``auto``: 8 bins for a regression of
    500 training rows or more. Measured (docs/tabular.md#piecewise-linear-encoding): there it gained on most
    tables; on smaller regressions it was as often worse as better, and on classifications even on average
    while the wider input cost time."""
    if setting != "auto":
        return int(setting), f"data.piecewise={setting}"
    rule = f"auto: for a regression of {MIN_ROWS}+ training rows"
    if task != "regression":
        return 0, f"{rule}; this is a {task} task"
    if n_rows < MIN_ROWS:
        return 0, f"{rule}; this one has {n_rows:,}"
    return BINS, f"{rule}; this one has {n_rows:,}"
