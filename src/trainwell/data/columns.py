"""Column encoding for tables: every raw column becomes numbers the network can read, or is dropped
with a note; the encoding is stored in ``model.json`` and reused by predict, evaluate,
``Run.predict(DataFrame)`` and the scikit-learn estimators. How each column is typed (numbers,
booleans, dates, categories, drops) is data/column_types.py.

Categories are learned from the **training split only** (``fit`` on the training rows): a column
with at most ``data.few_categories`` (32) distinct training values is one-hot encoded, one 0/1
input per value (``column=value``); a column with more keeps its most frequent values that have
at least ``data.min_count`` (5) training rows, at most ``data.max_categories`` (512) of them, and one
``column=(other)`` input for every other value (the rare ones, and at predict time the ones never
seen). A missing text value is a category of its own, ``(missing)``. One-hot beats the
alternatives here by simplicity: learned embeddings (RealMLP-TD's choice for large categories)
need the model's cooperation; the frequency rule drops the values with too few rows to learn from
and bounds the input width. The cap was 32 until a country's population, in panel tables of 125 to
190 countries, was predicted with most countries in ``(other)`` (R² 0.48 against 0.997 with every
country; docs/data.md, "Raised to 128", measures the change), and 128 until a country's code was
predicted from its name in panels of 215 countries (accuracy 0.75 against 1.00; "Raised to 512").
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.data import dates
from trainwell.data.column_types import (MISSING, PARSE, Column, Options, as_text, bool_values, check_parsed,
                                         code_text, infer_column, integer_code, parse_numbers,
                                         refuse_beyond_float32)
from trainwell.core.errors import UserError, did_you_mean


# --------------------------------------------------------------------------- the encoder

@dataclass
class ColumnEncoder:
    """Raw table columns -> the network's numeric inputs (NaN where a value is missing)."""

    columns: list[Column]
    options: Options = field(default_factory=Options)

    # -- typing ---------------------------------------------------------------
    @classmethod
    def infer(cls, df: pd.DataFrame, features: list[str], options: Options | None = None) -> "ColumnEncoder":
        """Decide each feature column's kind from all rows of ``df`` (see the module docstring)."""
        options = options or Options()
        unknown = [c for c in options.categorical if c not in features]
        if unknown:
            raise UserError(f"data.categorical names {', '.join(map(repr, unknown))}, which is not a feature column of "
                            f"the table.{did_you_mean(unknown[0], features)} Feature columns: {_list(features, 20)}. "
                            f"Name feature columns only (not the target).")
        out = []
        for name in features:
            if options.drop is not None and name in options.drop:
                out.append(Column(name, "dropped", why="asked (data.drop_columns)"))
            elif name in options.categorical:
                s = df[name]
                numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                out.append(Column(name, "category", why="asked (data.categorical)", numbers=numeric))
            else:
                out.append(infer_column(df[name], name, options))
                if out[-1].kind == "numeric":         # a note only: a code-like number stays a number
                    out[-1].why = integer_code(df[name], options.few_categories)
        return cls(out, options)

    @property
    def kept(self) -> list[Column]:
        return [c for c in self.columns if c.kind != "dropped"]

    @property
    def raw_names(self) -> list[str]:
        """Every raw feature column of training, dropped ones included (positional input)."""
        return [c.name for c in self.columns]

    @property
    def needed(self) -> list[str]:
        """The raw columns a new table must have."""
        return [c.name for c in self.kept]

    def names(self) -> list[str]:
        """Network input names in order: ``col``, ``col=value``, ``col (year)`` ..."""
        return [n for c in self.columns for n in c.names()]

    def groups(self) -> list[str]:
        """For each network input, the raw column it comes from (missing indicators are per raw column)."""
        return [c.name for c in self.columns for _ in c.names()]

    @property
    def numeric_only(self) -> bool:
        return all(c.kind == "numeric" for c in self.columns)

    # -- parsing --------------------------------------------------------------
    def parse(self, df: pd.DataFrame, path: Path | str = "the table", strict: bool = False) -> dict[str, np.ndarray]:
        """Each kept column in its typed form: float64 (numbers, NaN missing), datetime64 (dates) or
        text (categories, ``(missing)`` for missing). ``strict``: a value that is not a number in a
        numeric column is refused with its row (under ``data.impute=none``), not made missing."""
        missing = [n for n in self.needed if n not in df.columns]
        if missing:
            raise UserError(
                f"{path} lacks {len(missing)} feature column(s) the model was trained on: {', '.join(missing)}."
                f"{did_you_mean(missing[0], df.columns)} Add them (same names as in training); extra columns are ignored.")
        typed = {}
        for c in self.kept:
            s = df[c.name].reset_index(drop=True)
            if c.kind == "category":
                typed[c.name] = code_text(s) if c.numbers else as_text(s)
            elif c.kind == "date":
                typed[c.name] = dates.parse_dates(s, c.format)
            elif c.kind == "boolean":
                v = bool_values(s)
                check_parsed(s, v, c.name, path, strict, "true/false or yes/no")
                typed[c.name] = v
            else:        # numeric, number
                if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    v = parse_numbers(s, c.decimal) if c.kind == "number" or "numbers" in self.options.parse else \
                        pd.to_numeric(s.astype(object), errors="coerce").to_numpy(dtype=np.float64)
                    check_parsed(s, v, c.name, path, strict, "a number")
                typed[c.name] = v
        return typed

    # -- statistics from the training rows ------------------------------------
    def fit(self, typed: dict[str, np.ndarray], rows: np.ndarray | None = None) -> "ColumnEncoder":
        """A copy with categories and date references learned from ``rows`` (default: all rows)."""
        out = []
        for c in self.columns:
            c = Column(**{**c.__dict__, "categories": list(c.categories)})
            if c.kind == "category":
                v = typed[c.name] if rows is None else typed[c.name][rows]
                _fit_categories(c, v, self.options)
                if not c.categories and (self.options.drop is None or not c.other):
                    c.kind, c.why = "dropped", (f"no value with {self.options.min_count}+ training rows"
                                                if c.other else "empty")
                    c.other = False
            elif c.kind == "date":
                v = typed[c.name] if rows is None else typed[c.name][rows]
                c.reference, c.time = dates.reference_day(v), dates.has_time(v)
            out.append(c)
        return ColumnEncoder(out, self.options)

    def encode(self, typed: dict[str, np.ndarray], path: Path | str = "the table", warn: bool = False) -> np.ndarray:
        """float32 [N, inputs]; NaN where a number or a date is missing. Each column's block is written
        into one float32 matrix as it is made: a table of many indicator columns never exists in float64
        (reading 200,000 rows x 28 columns into 191 inputs peaked at 1.1 GB, now 0.64 GB; the same bytes)."""
        n = len(next(iter(typed.values()))) if typed else 0
        out = np.empty((n, sum(c.width() for c in self.kept)), dtype=np.float32)
        j = 0
        for c in self.kept:
            v = typed[c.name]
            if c.kind == "category":
                block = _indicators(c, v, path, warn)
            elif c.kind == "date":
                block = dates.date_features(v, c.reference, c.time)
            else:
                block = np.asarray(v, dtype=np.float64)[:, None]
                refuse_beyond_float32(block, [c.name], path)
            out[:, j:j + block.shape[1]] = block
            j += block.shape[1]
        return out

    def transform(self, df: pd.DataFrame, path: Path | str = "the table", strict: bool = False) -> np.ndarray:
        """Raw columns (by name) -> network inputs, as in training; unseen categories warn."""
        return self.encode(self.parse(df, path, strict), path, warn=True)

    # -- notes ------------------------------------------------------------------
    def describe(self, typed: dict[str, np.ndarray] | None = None) -> list[str]:
        """One line per decision, each with its reason and the key that changes it."""
        notes = []
        by = {}
        for c in self.columns:
            by.setdefault(c.kind, []).append(c)
        if by.get("boolean"):
            notes.append(f"booleans: {_list([c.name for c in by['boolean']])} read as 1/0 (true/false or yes/no "
                         f"values; data.parse without booleans keeps them as categories)")
        if by.get("number"):
            parts = []
            for c in by["number"]:
                bad = 0 if typed is None else int(np.isnan(typed[c.name]).sum())
                parts.append(c.name + (f" ({bad} unreadable -> missing)" if bad else ""))
            notes.append(f"numbers: {_list(parts)} read from text (separators, currency and percent signs "
                         f"removed; data.parse without numbers keeps them as categories)")
        if by.get("date"):
            parts = [f"{c.name} (from {c.reference}{', with hours' if c.time else ''})" for c in by["date"]]
            notes.append(f"dates: {_list(parts)} -> year, month, weekday, day of year, elapsed days (values parse "
                         f"as dates; data.parse without dates keeps them as categories)")
        cats = by.get("category", [])
        plain = [c for c in cats if not c.other]
        capped = [c for c in cats if c.other]
        if plain:
            notes.append(f"one-hot: {len(plain)} text column(s) -> {sum(c.width() for c in plain)} inputs: "
                         f"{_list([f'{c.name} ({len(c.categories)})' for c in plain])}")
        if capped:
            o = self.options
            def kept(c: Column) -> str:
                n = len([v for v in c.categories if v != MISSING])
                return f"{c.name} {c.distinct} -> {n}{' + (missing)' if MISSING in c.categories else ''} + (other)"
            notes.append(f"categories capped: {_list([kept(c) for c in capped])} "
                         f"(over {o.few_categories} distinct values: those with >= {o.min_count} training rows, "
                         f"at most {o.max_categories} per column; data.max_categories=0 keeps all)")
        codes = [c for c in by.get("numeric", []) if c.why]
        if codes:
            names = ",".join(c.name for c in codes)
            notes.append(f"integer codes: {_list([f'{c.name} ({c.why})' for c in codes])} numbered like the levels of a "
                         f"factor (a subject, firm or school number), read as numbers; if the target follows these "
                         f"groups, --set data.categorical=[{names}] reads them as categories, and --set data.min_count=1 "
                         f"gives each value its own input (docs/data.md#integer-codes)")
        dropped = by.get("dropped", [])
        if dropped:
            notes.append(f"dropped: {_list([f'{c.name} ({c.why})' for c in dropped])} "
                         f"(data.drop_columns=[] keeps them, or list the columns to drop)")
        return notes

    # -- JSON -------------------------------------------------------------------
    def to_json(self) -> dict:
        o = self.options
        return {"columns": [c.to_json() for c in self.columns],
                "options": {"parse": list(o.parse), "drop": None if o.drop is None else list(o.drop),
                            "max_categories": o.max_categories, "min_count": o.min_count,
                            "few_categories": o.few_categories,
                            **({"categorical": list(o.categorical)} if o.categorical else {}),
                            **({} if o.header else {"header": False}),
                            **({} if o.sheet is None else {"sheet": o.sheet})}}

    @classmethod
    def from_json(cls, d: dict | None) -> "ColumnEncoder | None":
        if not d:
            return None
        o = d.get("options") or {}
        options = Options(tuple(o.get("parse", PARSE)), None if o.get("drop") is None else tuple(o["drop"]),
                          int(o.get("max_categories", 32)), int(o.get("min_count", 5)), bool(o.get("header", True)),
                          o.get("sheet"), int(o.get("few_categories", o.get("max_categories", 32))),
                          tuple(str(c) for c in o.get("categorical", ())))
        return cls([Column.from_json(c) for c in d["columns"]], options)

    @classmethod
    def from_onehot(cls, onehot) -> "ColumnEncoder | None":
        """A model saved before column typing (``onehot`` in model.json): numeric columns and one-hot
        categories with no cap; unseen values give all-zero indicators, as they did."""
        if onehot is None:
            return None
        cols = [Column(c, "category", categories=list(onehot.categories[c])) if c in onehot.categories
                else Column(c, "numeric") for c in onehot.columns]
        return cls(cols, Options(parse=()))


# --------------------------------------------------------------------------- helpers

def _list(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _fit_categories(c: Column, values: np.ndarray, options: Options) -> None:
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    c.distinct = max(c.distinct, len(uniq))
    cap = options.max_categories
    if cap == 0 or len(uniq) <= min(cap, options.few_categories):
        c.categories, c.other = sorted(uniq.tolist()), False
        return
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], uniq[i]))
    keep = [uniq[i] for i in order if counts[i] >= options.min_count and uniq[i] != MISSING][:cap]
    if MISSING in uniq:
        keep.append(MISSING)                        # missing text is always its own category
    c.categories, c.other = sorted(keep), True


def _indicators(c: Column, text: np.ndarray, path, warn: bool) -> np.ndarray:
    index = {v: j for j, v in enumerate(c.categories)}
    codes = np.fromiter((index.get(v, -1) for v in text), dtype=np.int64, count=len(text))
    out = np.zeros((len(text), c.width()), dtype=np.float32)
    seen = codes >= 0
    out[np.flatnonzero(seen), codes[seen]] = 1.0
    if c.other:
        out[~seen, -1] = 1.0
    elif warn and not seen.all():
        unseen = sorted(set(text[~seen].tolist()))
        warnings.warn(
            f'Feature column "{c.name}" in {path} has {int((~seen).sum())} value(s) not seen in training '
            f"({', '.join(map(repr, unseen[:5]))}{', ...' if len(unseen) > 5 else ''}); those rows get "
            f"all-zero indicators for it.", UserWarning, stacklevel=4)
    return out
