"""Missing feature values (NaN) filled from the training split, with missing indicators.

``data.impute``:

- ``auto`` (default): each input's NaN is filled with its median over the **training split only**
  (no statistic may see the validation or test rows: Hastie et al. 2009, §7.10.2), and every raw column with a
  missing value in the training split gets one more 0/1 input, ``column (missing)``, that is 1
  where the value was missing. The fill alone would make a missing value look like a typical one;
  the indicator lets the network learn what missingness itself says (an empty "months since last
  delinquency" usually means "never"). A date column is one raw column: its features share one
  indicator. Text columns need neither: a missing text value is its own category.
- ``median`` / ``mean``: the fill alone, without indicators (as before ``auto`` existed, so those
  specs train the same model).
- ``none``: NaN is refused with the column and row that hold it.

Infinite values are never imputed. A column with no value in the training split is filled with
0. Everything is stored in ``model.json`` so predict and evaluate fill new rows identically; a
column that had no missing value in training but has one at predict time is filled the same way
(it has no indicator to set).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from trainwell.core.errors import UserError
from trainwell.data.scaling import by_columns


@dataclass
class Imputer:
    """Fill values per input and the missing indicators appended after the inputs."""

    fill: list[float]
    indicators: list[tuple[str, list[int]]] = field(default_factory=list)   # (name, the inputs it watches)

    @classmethod
    def fit(cls, X_train: np.ndarray, how: str, groups: list[str] | None = None) -> "Imputer":
        """Statistics of the training rows; ``groups`` names each input's raw column (default: itself)."""
        if X_train.ndim != 2:
            raise UserError(f"data.impute={how} fills missing values in tables [rows, columns]; this data has per-row "
                            f"shape {list(X_train.shape[1:])}. Set data.impute=none and clean the data instead.")
        stat = np.nanmean if how == "mean" else np.nanmedian
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN columns: filled with 0 below
            fill = by_columns(X_train, lambda B: stat(B, axis=0)[None])[0] if X_train.shape[0] \
                else np.zeros(X_train.shape[1])
        fill = np.where(np.isfinite(fill), fill, 0.0)
        indicators: list[tuple[str, list[int]]] = []
        if how == "auto":
            groups = groups or [f"x{j}" for j in range(X_train.shape[1])]
            has_nan = np.isnan(X_train).any(axis=0)
            by: dict[str, list[int]] = {}
            for j, g in enumerate(groups):
                if has_nan[j]:
                    by.setdefault(g, []).append(j)
            indicators = [(f"{g} (missing)", cols) for g, cols in by.items()]
        return cls([float(v) for v in fill], indicators)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """float32: NaN filled, then one 0/1 column per indicator."""
        X = np.asarray(X, dtype=np.float32)
        nan = np.isnan(X)
        if not self.indicators and not nan.any():
            return X
        d = X.shape[1]
        out = np.empty((X.shape[0], d + len(self.indicators)), dtype=np.float32)   # one copy, filled in place
        out[:, :d] = X
        np.copyto(out[:, :d], np.asarray(self.fill, dtype=np.float32), where=nan)
        for k, (_, cols) in enumerate(self.indicators):
            out[:, d + k] = nan[:, cols].any(axis=1)
        return out

    def names(self, inputs: list[str]) -> list[str]:
        return list(inputs) + [name for name, _ in self.indicators]

    def note(self, how: str, splits: tuple[np.ndarray, ...], names: list[str]) -> str:
        """One line: how many values were filled where, and with what."""
        missing = [int(np.isnan(a).sum()) for a in splits]
        cols = np.zeros(splits[0].shape[1], dtype=bool)
        for a in splits:
            if a.size:
                cols |= np.isnan(a).any(axis=0)
        if not cols.any():
            return (f"impute: no missing values (data.impute={how}: a missing value at predict time is filled with "
                    f"the training split's {'mean' if how == 'mean' else 'median'})")
        stat = "mean" if how == "mean" else "median"
        where = [names[j] if j < len(names) else f"x{j}" for j in np.flatnonzero(cols)]
        shown = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
        text = (f"impute: {sum(missing)} missing value(s) in {int(cols.sum())} column(s) ({shown}; train/val/test "
                f"{missing[0]}/{missing[1]}/{missing[2]}) filled with the training split's {stat}")
        if self.indicators:
            text += f" + {len(self.indicators)} missing-indicator input(s) ({', '.join(n for n, _ in self.indicators[:4])}" \
                    f"{', ...' if len(self.indicators) > 4 else ''})"
        return text + f" (data.impute={how}; none refuses missing values)"

    def to_json(self) -> dict:
        return {"fill": self.fill, "indicators": [[n, list(c)] for n, c in self.indicators]}

    @classmethod
    def from_json(cls, fill: list | None, indicators: list | None) -> "Imputer | None":
        if fill is None:
            return None
        return cls([float(v) for v in fill], [(str(n), [int(j) for j in c]) for n, c in (indicators or [])])
