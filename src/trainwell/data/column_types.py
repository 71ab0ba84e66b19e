"""What kind each raw table column is, and how its text values are read (data/columns.py encodes them).

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

A pandas ``category`` column, and one that ``data.categorical`` names, is read as categories whatever
its values: a subject, firm or school number, a zip code. A numeric column numbered like a code
(``integer_code``) stays a number, with a note that suggests it.

``data.parse`` turns steps 2-4 off one by one, ``data.drop_columns`` replaces step 5's drops by an
explicit list of columns (``[]``: drop nothing).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainwell.data.dialect import dialect_of
from trainwell.data.file_kinds import is_delimited
from trainwell.data import dates
from trainwell.core.errors import UserError

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
_THOUSANDS_POINTS = re.compile(r"(?<=\d)[.'_](?=\d{3}(?:\D|$))")    # 1.234,50 where the decimal mark is a comma
_STRIP = re.compile(rf"[\s\u00a0\u202f{re.escape(_CURRENCY)}%]")
# a comma no thousands separator can be: before 1-2 or 4+ final digits (3,20 | 12,5), or after 1.234
_COMMA_DECIMAL = re.compile(r"(?:\d,(?:\d{1,2}|\d{4,})$)|(?:^[-+]?\d{1,3}(?:\.\d{3})+,\d+$)")
_POINT_DECIMAL = re.compile(r"\d\.(?:\d{1,2}|\d{4,})$")


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
    decimal: str = "."                          # number: the decimal mark of its text ("3,20 €": a comma)
    numbers: bool = False                       # category (data.categorical) of a numeric column: 12.0 reads "12"

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
            if self.numbers:
                d["numbers"] = True
        elif self.kind == "number" and self.decimal != ".":
            d["decimal"] = self.decimal
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Column":
        return cls(name=str(d["name"]), kind=str(d["kind"]), why=str(d.get("why", "")), format=d.get("format"),
                   reference=d.get("reference"), time=bool(d.get("time", False)),
                   categories=[str(v) for v in d.get("categories", [])], other=bool(d.get("other", False)),
                   decimal=str(d.get("decimal", ".")), numbers=bool(d.get("numbers", False)))


@dataclass(frozen=True)
class Options:
    """The data-spec keys that decide the typing and the category caps."""

    parse: tuple[str, ...] = PARSE
    drop: tuple[str, ...] | None = None         # None: automatic drops
    max_categories: int = 512
    min_count: int = 5
    header: bool = True                         # false: the file's first line is data (data.header)
    sheet: str | int | None = None              # a workbook's sheet (data.sheet); None: the first
    few_categories: int = 32                    # at most this many distinct values: all kept (data.few_categories)
    categorical: tuple[str, ...] = ()           # columns read as categories whatever their values (data.categorical)

    @classmethod
    def from_spec(cls, data) -> "Options":
        if data is None:
            return cls()
        drop = None if data.drop_columns == "auto" else tuple(str(c) for c in data.drop_columns)
        return cls(tuple(data.parse), drop, int(data.max_categories), int(data.min_count),
                   bool(getattr(data, "header", True)), getattr(data, "sheet", None), int(data.few_categories),
                   tuple(str(c) for c in getattr(data, "categorical", ())))

    @property
    def reading(self) -> dict:
        """How a table file is read (``read_frame``'s keywords): a trained model reads new files as it read
        the training file, with the same header line and sheet."""
        return {"header": self.header, "sheet": self.sheet}


def reading_of(options: Options | None, data: Any = None) -> dict:
    """``read_frame``'s keywords: a trained model's (``options``) when there is one, else the spec's ``data``
    section, else the defaults (a header line, the first sheet)."""
    if options is not None:
        return options.reading
    return {"header": bool(getattr(data, "header", True)), "sheet": getattr(data, "sheet", None)}


# --------------------------------------------------------------------------- reading values

def as_text(series: pd.Series) -> np.ndarray:
    """Text values, ``(missing)`` for missing ones (object array)."""
    values = series.to_numpy(dtype=object)
    missing = pd.isna(series).to_numpy()
    out = np.empty(len(values), dtype=object)
    out[missing] = MISSING
    out[~missing] = [str(v) for v in values[~missing]]
    return out


CODE_ROWS_PER_VALUE = 2     # an integer code's values repeat: at least this many rows per value on average


def integer_code(s: pd.Series, few_categories: int) -> str:
    """How the integer column ``s`` looks like a code ("" when it does not): its values are exactly 1..K
    (or 0..K-1), K above ``few_categories``, each value on two or more rows on average.

    Such a column is numbered like the levels of a factor: the subject of repeated measurements, a
    tree, a firm, a school, a professor. As a number it orders the groups by an arbitrary label; as a
    category each group gets its own input, the fixed effect of a panel regression (Wooldridge,
    "Econometric Analysis of Cross Section and Panel Data", 2010, ch. 10). Which reading is better
    depends on whether the target follows the groups, which the table cannot say: read as a category
    as well as a number by default, it lifted 12 of 33 tables and lowered 6, then 3 of 32 and lowered 8
    on tables held back to confirm it (docs/data.md#integer-codes). So it stays a number, and ``fit``
    names the column and the key (``data.categorical``) that reads it as a category.
    """
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return ""
    v = s.dropna().to_numpy(dtype=np.float64)
    if len(v) == 0:
        return ""
    low, high = float(v.min()), float(v.max())     # cheap tests first: most numeric columns end here
    if low not in (0.0, 1.0) or not few_categories < high - low + 1 <= len(v) / CODE_ROWS_PER_VALUE \
            or not np.all(v == np.round(v)):
        return ""
    k = len(np.unique(v))
    if k != high - low + 1:                         # a value of the range is missing: not a level numbering
        return ""
    return f"{k} values, {int(low)} to {int(high)}, {len(v) / k:.1f} rows each"


def code_text(series: pd.Series) -> np.ndarray:
    """An integer code's values as category text ("12"; ``(missing)`` for a missing or unreadable value)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    v = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=np.float64)
    out = np.full(len(v), MISSING, dtype=object)
    ok = np.isfinite(v)
    whole = ok & (v == np.round(v))
    out[whole] = [str(int(x)) for x in v[whole]]
    out[ok & ~whole] = [repr(float(x)) for x in v[ok & ~whole]]
    return out


def decimal_mark(text: pd.Series) -> str:
    """"," when some value writes its decimals after a comma (``3,20 €``, ``12,5 %``, ``1.234,50``) and none
    after a point; "." otherwise (``$1,200`` is twelve hundred)."""
    s = pd.Series(text, dtype=object).dropna().astype(str).str.replace(_STRIP, "", regex=True)
    if s.str.contains(_POINT_DECIMAL).any():
        return "."
    return "," if s.str.contains(_COMMA_DECIMAL).any() else "."


def parse_numbers(text: pd.Series, decimal: str = ".") -> np.ndarray:
    """Numbers written as text -> float64 (NaN where they do not parse): ``$1,200`` -> 1200,
    ``12%`` -> 0.12, ``(5)`` -> -5, ``1 234`` -> 1234; with ``decimal=","``, ``1.234,50 €`` -> 1234.5."""
    s = pd.Series(text, dtype=object).astype(str).str.strip()
    negative = s.str.match(r"^\(.*\)$").to_numpy(dtype=bool)
    s = s.str.replace(r"^\((.*)\)$", r"\1", regex=True)
    percent = s.str.contains("%", regex=False).to_numpy(dtype=bool)
    if decimal == ",":
        s = s.str.replace(_THOUSANDS_POINTS, "", regex=True).str.replace(_STRIP, "", regex=True) \
            .str.replace(",", ".", regex=False)
    else:
        s = s.str.replace(_THOUSANDS, "", regex=True).str.replace(_STRIP, "", regex=True)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    v = np.where(percent, v / 100.0, v)
    return np.where(negative, -v, v)


def bool_values(series: pd.Series) -> np.ndarray:
    """1.0 / 0.0 for true / false words (or a bool dtype), NaN for missing and anything else."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64)
    low = series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v).strip().lower())
    out = np.full(len(series), np.nan)
    out[low.isin(TRUE_WORDS).to_numpy()] = 1.0
    out[low.isin(FALSE_WORDS).to_numpy()] = 0.0
    return out


def row_label(path: Path | str, i: int) -> str:
    """Where row i (0-based) sits in the file, as a human would look for it: below the header line and
    whatever title lines the reader skipped above it (data/dialect.py), so an editor's line number finds it."""
    path = Path(path)
    if is_delimited(path):
        skip = dialect_of(path).skip if path.is_file() else 0
        return f"row {i + 1} (line {i + 2 + skip} of the file)"
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
        f"{col} of {path} holds {flat[i, j]:g} in {row_label(path, i)}, beyond the float32 range a network "
        f"computes in (|x| <= {FLOAT32_MAX:.3g}); {int(big.sum())} value(s) in all are that large. Fix or drop those "
        "rows, or rescale the column (e.g. take its logarithm) before training."
    )


def check_parsed(raw: pd.Series, v: np.ndarray, name: str, path, strict: bool, what: str) -> None:
    """Refuse values that did not parse (strict), naming the first row; otherwise they are missing."""
    if not strict:
        return
    bad = np.flatnonzero(np.isnan(v) & ~pd.isna(raw).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f'Feature column "{name}" in {path} is not numeric: {row_label(path, i)} holds {raw.iloc[i]!r} '
            f"({bad.size} value(s) that are not {what} in a column that is otherwise read as numbers; with "
            f"data.impute=none they are refused rather than treated as missing). Fix the value, or encode the "
            f'column yourself or drop it, or pass --target "{name}" if it is the label.')


def infer_column(s: pd.Series, name: str, options: Options) -> Column:
    """The kind of one feature column, read from all its values (steps 1-5 above)."""
    auto_drop = options.drop is None
    if isinstance(s.dtype, pd.CategoricalDtype):     # the DataFrame says so (df[c].astype("category")): as asked
        numbers = pd.api.types.is_numeric_dtype(s.cat.categories)
        return Column(name, "category", why="a pandas category column", numbers=numbers)
    if pd.api.types.is_bool_dtype(s):
        return Column(name, "numeric")
    if pd.api.types.is_datetime64_any_dtype(s):
        return Column(name, "date") if "dates" in options.parse else Column(name, "category")
    if pd.api.types.is_numeric_dtype(s):
        v = s.dropna()
        if auto_drop and len(v) == 0:
            return Column(name, "dropped", why="empty")
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
        decimal = decimal_mark(uniques)
        readable = ~np.isnan(parse_numbers(uniques, decimal))
        if n[readable].sum() > NUMBER_SHARE * n.sum():
            return Column(name, "number", decimal=decimal)
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
