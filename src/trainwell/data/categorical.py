"""Text feature columns one-hot encoded, with the vocabulary carried by the model.

A column of a CSV/Parquet table counts as categorical when it is text: not a
numeric or boolean dtype, and at most half of its non-missing values read as
numbers (a mostly numeric column with a few stray words is a typo and is refused
by ``sources._numeric_column`` with the row that holds it). Each category becomes
a 0/1 indicator column named ``column=value``; a missing value is a category of
its own (``(missing)``). The vocabulary is learned once, at training time, from
the rows of the training file, and stored in ``model.json`` so that predict and
evaluate encode new files the same way; a value never seen in training gives an
all-zero row for that column and a warning that names it.

Columns with more than ``MAX_CATEGORIES`` distinct values (identifiers, free
text) are refused: one indicator per value would be mostly noise.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.core.errors import UserError

MAX_CATEGORIES = 50
MISSING = "(missing)"


def is_text(series: pd.Series) -> bool:
    """Whether a feature column is categorical text (see the module docstring)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return False
    values = series.dropna()
    if len(values) == 0:
        return False
    numeric = pd.to_numeric(values.astype(str), errors="coerce").notna().mean()
    return bool(numeric <= 0.5)


def _as_text(series: pd.Series) -> np.ndarray:
    return np.array([MISSING if pd.isna(v) else str(v) for v in series.to_numpy(dtype=object)], dtype=object)


@dataclass
class OneHot:
    """Which raw columns are categorical, and their categories in indicator order."""

    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, df: pd.DataFrame, features: list[str], path: Path) -> "OneHot | None":
        """The encoding for ``df``'s text feature columns; None when all features are numeric."""
        categories = {}
        for col in features:
            if not is_text(df[col]):
                continue
            values = sorted(set(_as_text(df[col])))
            if len(values) > MAX_CATEGORIES:
                raise UserError(
                    f'Feature column "{col}" in {path} is text with {len(values)} distinct values (more than '
                    f"{MAX_CATEGORIES}): it looks like an identifier or free text, which one-hot encoding would turn "
                    f"into {len(values)} mostly empty columns. Drop the column, or map it to fewer categories "
                    f"(or to numbers) before training.")
            categories[col] = values
        return cls(list(features), categories) if categories else None

    def names(self) -> list[str]:
        """Network input names: numeric columns as they are, text columns as ``column=value``."""
        out = []
        for col in self.columns:
            out += [f"{col}={v}" for v in self.categories[col]] if col in self.categories else [col]
        return out

    def indicators(self, series: pd.Series, col: str, path: Path | str) -> np.ndarray:
        """[N, K] 0/1 matrix for one text column; unseen values -> all zeros, with a warning."""
        cats = self.categories[col]
        index = {v: j for j, v in enumerate(cats)}
        text = _as_text(series)
        codes = np.array([index.get(v, -1) for v in text])
        out = np.zeros((len(text), len(cats)), dtype=np.float64)
        seen = codes >= 0
        out[np.flatnonzero(seen), codes[seen]] = 1.0
        if not seen.all():
            unseen = sorted(set(text[~seen]))
            warnings.warn(
                f'Feature column "{col}" in {path} has {int((~seen).sum())} value(s) not seen in training '
                f"({', '.join(map(repr, unseen[:5]))}{', ...' if len(unseen) > 5 else ''}); those rows get "
                f"all-zero indicators for it.", UserWarning, stacklevel=3)
        return out

    def to_json(self) -> dict:
        return {"columns": self.columns, "categories": self.categories}

    @classmethod
    def from_json(cls, d: dict | None) -> "OneHot | None":
        if not d:
            return None
        return cls(list(d["columns"]), {k: list(v) for k, v in d["categories"].items()})

    def describe(self) -> str:
        parts = [f"{col} ({len(v)})" for col, v in self.categories.items()]
        return f"one-hot: {len(self.categories)} text column(s) -> {sum(len(v) for v in self.categories.values())} " \
               f"indicator inputs: {', '.join(parts)}"
