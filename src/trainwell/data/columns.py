"""Column typing for tables: every raw column becomes numbers the network can read, or is dropped
with a note; the encoding is stored in ``model.json`` and reused by predict, evaluate,
``Run.predict(DataFrame)`` and the scikit-learn estimators.

Typing (decided when the table is loaded, from all its rows: it is the table's schema) goes in
this order for each feature column:

1. numeric dtype -> ``numeric``; an integer column with one distinct value per row and an index
   name (``id``, ``index``, ``rownames``, ``Unnamed: 0``, ``..._id``) is a row index -> dropped;
2. booleans (a bool dtype, or text whose values are all true/false, yes/no, t/f, y/n in any case)
   -> ``boolean``, read as 1/0;
3. text of which more than half the values are numbers once thousands separators (``1,200``),
   currency signs (``$``, ``€``, ``£``, ``¥``, ``₹``), percent signs (``12%`` -> 0.12), spaces and
   accounting parentheses (``(5)`` -> -5) are removed -> ``number``; the values that still do not
   parse ("N/A", "?", a stray word) are missing values, filled by ``data.impute`` (and refused,
   with their row, under ``data.impute=none``);
4. dates (``data/dates.py``) -> ``date``: year, month, weekday, day of year, elapsed days;
5. other text -> ``category``, unless it is free text (a median of 5 or more words per value and
   more than half the values distinct), an identifier (more than 90 % of its values distinct,
   e.g. names or keys, at least 20 rows) or empty (no value at all): those are dropped.

``data.parse`` turns steps 2-4 off one by one, ``data.drop_columns`` replaces step 5's drops by an
explicit list of columns (``[]``: drop nothing).

Categories are learned from the **training split only** (``fit`` on the training rows): a column
with at most ``data.max_categories`` (32) distinct training values is one-hot encoded, one 0/1
input per value (``column=value``); a column with more keeps its most frequent values that have
at least ``data.min_count`` (5) training rows, at most ``max_categories`` of them, and one
``column=(other)`` input for every other value (the rare ones, and at predict time the ones never
seen). A missing text value is a category of its own, ``(missing)``. One-hot beats the
alternatives here by simplicity: learned embeddings (RealMLP-TD's choice for large categories)
need the model's cooperation and give a small gain on the few columns with many categories;
the frequency cap bounds the input width (32 + 1 per column) and keeps every value that has
enough rows to learn from.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.data import dates
from trainwell.errors import UserError

FLOAT32_MAX = float(np.finfo(np.float32).max)     # about 3.4e38: the largest value a network's input can hold
MISSING = "(missing)"
OTHER = "(other)"
TRUE_WORDS = ("true", "yes", "t", "y")
FALSE_WORDS = ("false", "no", "f", "n")
NUMBER_SHARE = 0.5          # more than this share of values parse as numbers -> a number column
IDENTIFIER_SHARE = 0.9      # distinct values per row above this -> an identifier
IDENTIFIER_MIN_ROWS = 20
FREE_TEXT_WORDS = 5
PARSE = ("booleans", "numbers", "dates")
_INDEX_NAME = re.compile(r"^(unnamed:?\s*\d*|index|idx|id|row|rows|rownames?|row[_ ]?(id|num|number|names?)|.*[_ ]id)$",
                         re.IGNORECASE)
_CURRENCY = "$€£¥₹₩₽¢"
_THOUSANDS = re.compile(r"(?<=\d)[,'_](?=\d{3}(?:\D|$))")
_STRIP = re.compile(rf"[\s\u00a0\u202f{re.escape(_CURRENCY)}%]")


@dataclass
class Column:
    """One raw column: how it is read (``kind``) and, once fitted, its statistics."""

    name: str
    kind: str                                   # numeric | boolean | number | date | category | dropped
    why: str = ""                               # dropped: identifier / free text / empty / row index / asked
    format: str | None = None                   # date: the parse format ("mixed": per value)
    reference: str | None = None                # date (fitted): elapsed days count from this day
    time: bool = False                          # date (fitted): an hour feature too
    categories: list[str] = field(default_factory=list)   # category (fitted): values with an input each
    other: bool = False                         # category (fitted): one more input for every other value
    distinct: int = field(default=0, compare=False)   # category: distinct values when typed (notes only)

    def width(self) -> int:
        return len(self.names())

    def names(self) -> list[str]:
        if self.kind == "dropped":
            return []
        if self.kind == "date":
            return dates.date_names(self.name, self.time)
        if self.kind == "category":
            return [f"{self.name}={v}" for v in self.categories] + ([f"{self.name}={OTHER}"] if self.other else [])
        return [self.name]

    def to_json(self) -> dict:
        d = {"name": self.name, "kind": self.kind}
        if self.kind == "dropped":
            d["why"] = self.why
        elif self.kind == "date":
            d.update(format=self.format, reference=self.reference, time=self.time)
        elif self.kind == "category":
            d.update(categories=list(self.categories), other=self.other)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Column":
        return cls(name=str(d["name"]), kind=str(d["kind"]), why=str(d.get("why", "")), format=d.get("format"),
                   reference=d.get("reference"), time=bool(d.get("time", False)),
                   categories=[str(v) for v in d.get("categories", [])], other=bool(d.get("other", False)))


@dataclass(frozen=True)
class Options:
    """The data-spec keys that decide the typing and the category caps."""

    parse: tuple[str, ...] = PARSE
    drop: tuple[str, ...] | None = None         # None: automatic drops
    max_categories: int = 32
    min_count: int = 5

    @classmethod
    def from_spec(cls, data) -> "Options":
        if data is None:
            return cls()
        drop = None if data.drop_columns == "auto" else tuple(str(c) for c in data.drop_columns)
        return cls(tuple(data.parse), drop, int(data.max_categories), int(data.min_count))


# --------------------------------------------------------------------------- reading values

def as_text(series: pd.Series) -> np.ndarray:
    """Text values, ``(missing)`` for missing ones (object array)."""
    values = series.to_numpy(dtype=object)
    missing = pd.isna(series).to_numpy()
    out = np.empty(len(values), dtype=object)
    out[missing] = MISSING
    out[~missing] = [str(v) for v in values[~missing]]
    return out


def parse_numbers(text: pd.Series) -> np.ndarray:
    """Numbers written as text -> float64 (NaN where they do not parse): ``$1,200`` -> 1200,
    ``12%`` -> 0.12, ``(5)`` -> -5, ``1 234`` -> 1234."""
    s = pd.Series(text, dtype=object).astype(str).str.strip()
    negative = s.str.match(r"^\(.*\)$").to_numpy(dtype=bool)
    s = s.str.replace(r"^\((.*)\)$", r"\1", regex=True)
    percent = s.str.contains("%", regex=False).to_numpy(dtype=bool)
    s = s.str.replace(_THOUSANDS, "", regex=True).str.replace(_STRIP, "", regex=True)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    v = np.where(percent, v / 100.0, v)
    return np.where(negative, -v, v)


def _bool_values(series: pd.Series) -> np.ndarray:
    """1.0 / 0.0 for true / false words (or a bool dtype), NaN for missing and anything else."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64)
    low = series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v).strip().lower())
    out = np.full(len(series), np.nan)
    out[low.isin(TRUE_WORDS).to_numpy()] = 1.0
    out[low.isin(FALSE_WORDS).to_numpy()] = 0.0
    return out


def _row_label(path: Path | str, i: int) -> str:
    if str(path).lower().endswith(".csv"):
        return f"row {i + 1} (line {i + 2} of the file)"
    return f"row {i + 1}"


def refuse_beyond_float32(X: np.ndarray, names: list[str], path: Path | str) -> None:
    """Refuse finite values too large for float32 (|x| > 3.4e38): the cast to the network's dtype would
    turn them into inf, and training would then diverge with the blame on the learning rate."""
    flat = X.reshape(X.shape[0], -1) if X.ndim else X.reshape(1, 1)
    with np.errstate(invalid="ignore"):
        big = np.isfinite(flat) & (np.abs(flat) > FLOAT32_MAX)
    if not big.any():
        return
    i, j = (int(k[0]) for k in np.nonzero(big))
    col = f'column "{names[j]}"' if j < len(names) else f"feature {j}"
    raise UserError(
        f"{col} of {path} holds {flat[i, j]:g} in {_row_label(path, i)}, beyond the float32 range a network "
        f"computes in (|x| <= {FLOAT32_MAX:.3g}); {int(big.sum())} value(s) in all are that large. Fix or drop those "
        "rows, or rescale the column (e.g. take its logarithm) before training."
    )


def _is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
                or pd.api.types.is_datetime64_any_dtype(series))


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
        out = []
        for name in features:
            if options.drop is not None and name in options.drop:
                out.append(Column(name, "dropped", why="asked (data.drop_columns)"))
                continue
            out.append(_infer_column(df[name], name, options))
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
            from trainwell.errors import did_you_mean
            raise UserError(
                f"{path} lacks {len(missing)} feature column(s) the model was trained on: {', '.join(missing)}."
                f"{did_you_mean(missing[0], df.columns)} Add them (same names as in training); extra columns are ignored.")
        typed = {}
        for c in self.kept:
            s = df[c.name].reset_index(drop=True)
            if c.kind == "category":
                typed[c.name] = as_text(s)
            elif c.kind == "date":
                typed[c.name] = dates.parse_dates(s, c.format)
            elif c.kind == "boolean":
                v = _bool_values(s)
                _check_parsed(s, v, c.name, path, strict, "true/false or yes/no")
                typed[c.name] = v
            else:        # numeric, number
                if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    v = parse_numbers(s) if c.kind == "number" or "numbers" in self.options.parse else \
                        pd.to_numeric(s.astype(object), errors="coerce").to_numpy(dtype=np.float64)
                    _check_parsed(s, v, c.name, path, strict, "a number")
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
        """float32 [N, inputs]; NaN where a number or a date is missing."""
        n = len(next(iter(typed.values()))) if typed else 0
        blocks = []
        for c in self.kept:
            v = typed[c.name]
            if c.kind == "category":
                blocks.append(_indicators(c, v, path, warn))
            elif c.kind == "date":
                blocks.append(dates.date_features(v, c.reference, c.time))
            else:
                values = np.asarray(v, dtype=np.float64)
                refuse_beyond_float32(values[:, None], [c.name], path)
                blocks.append(values[:, None])
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

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
                         f"(values with >= {o.min_count} training rows, at most {o.max_categories} per column; "
                         f"data.max_categories=0 keeps all)")
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
                            "max_categories": o.max_categories, "min_count": o.min_count}}

    @classmethod
    def from_json(cls, d: dict | None) -> "ColumnEncoder | None":
        if not d:
            return None
        o = d.get("options") or {}
        options = Options(tuple(o.get("parse", PARSE)), None if o.get("drop") is None else tuple(o["drop"]),
                          int(o.get("max_categories", 32)), int(o.get("min_count", 5)))
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


def _check_parsed(raw: pd.Series, v: np.ndarray, name: str, path, strict: bool, what: str) -> None:
    """Refuse values that did not parse (strict), naming the first row; otherwise they are missing."""
    if not strict:
        return
    bad = np.flatnonzero(np.isnan(v) & ~pd.isna(raw).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f'Feature column "{name}" in {path} is not numeric: {_row_label(path, i)} holds {raw.iloc[i]!r} '
            f"({bad.size} value(s) that are not {what} in a column that is otherwise read as numbers; with "
            f"data.impute=none they are refused rather than treated as missing). Fix the value, or encode the "
            f'column yourself or drop it, or pass --target "{name}" if it is the label.')


def _infer_column(s: pd.Series, name: str, options: Options) -> Column:
    auto_drop = options.drop is None
    if pd.api.types.is_bool_dtype(s):
        return Column(name, "numeric")
    if pd.api.types.is_datetime64_any_dtype(s):
        return Column(name, "date") if "dates" in options.parse else Column(name, "category")
    if pd.api.types.is_numeric_dtype(s):
        v = s.dropna()
        if auto_drop and len(v) >= IDENTIFIER_MIN_ROWS and _INDEX_NAME.match(name) and v.is_unique \
                and bool((v == np.round(v)).all()):
            return Column(name, "dropped", why="row index: one distinct integer per row")
        return Column(name, "numeric")
    values = s.dropna()
    if len(values) == 0:
        return Column(name, "dropped", why="empty") if auto_drop else Column(name, "category")
    counts = values.astype(str).value_counts(sort=False)
    uniques, n = pd.Series(counts.index, dtype=object), counts.to_numpy()
    if "booleans" in options.parse:
        low = set(u.strip().lower() for u in uniques)
        if low <= set(TRUE_WORDS) | set(FALSE_WORDS):
            return Column(name, "boolean")
    plain = pd.to_numeric(uniques, errors="coerce").notna().to_numpy()
    if "numbers" in options.parse:
        readable = ~np.isnan(parse_numbers(uniques))
        if n[readable].sum() > NUMBER_SHARE * n.sum():
            return Column(name, "number")
    elif n[plain].sum() > NUMBER_SHARE * n.sum():
        return Column(name, "numeric")        # numbers with stray words: missing (or refused when strict)
    if "dates" in options.parse:
        fmt, _ = dates.detect_format(uniques, n)
        if fmt is not None:
            return Column(name, "date", format=fmt)
    distinct, rows = len(uniques), int(n.sum())
    if auto_drop and rows >= IDENTIFIER_MIN_ROWS:
        words = uniques.str.split().str.len().to_numpy(dtype=float)
        if distinct > 0.5 * rows and np.median(np.repeat(words, n)) >= FREE_TEXT_WORDS:
            return Column(name, "dropped", why=f"free text: {distinct} distinct values, a median of "
                                                f"{int(np.median(np.repeat(words, n)))} words")
        if distinct > IDENTIFIER_SHARE * rows:
            return Column(name, "dropped", why=f"identifier: {distinct} distinct values in {rows} rows")
    return Column(name, "category", distinct=distinct)


def _fit_categories(c: Column, values: np.ndarray, options: Options) -> None:
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    c.distinct = max(c.distinct, len(uniq))
    cap = options.max_categories
    if cap == 0 or len(uniq) <= cap:
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
    out = np.zeros((len(text), c.width()), dtype=np.float64)
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
