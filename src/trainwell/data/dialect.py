"""How a delimited text table is written: its field separator and its decimal mark.

Spreadsheets export tables in the convention of the user's locale. Where the decimal mark is a comma
(most of continental Europe, Latin America), Excel's "CSV" uses semicolons between fields and writes
``0,125`` for an eighth (https://support.microsoft.com/office/import-or-export-text-txt-or-csv-files-
5250ac4c-663c-47ce-937b-339e391393ba: the list separator follows the regional settings). Read with a
comma separator such a file is one column; read with the right separator but a point as the decimal
mark, ``0,125`` would be text, or worse, a thousands separator. So the separator is found from the
file's first lines, and a comma decimal mark is used when the numbers say so.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SEPARATORS = (",", ";", "\t", "|")
SAMPLE_BYTES = 1 << 16            # the lines the separator is chosen on
SAMPLE_LINES = 50
TAB_SUFFIXES = (".tsv", ".tab")
DELIMITED = (".csv", *TAB_SUFFIXES)
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d*),\d+\s*$")     # 0,125  -3,5  1.234,5
_DECIMAL_POINT = re.compile(r"^\s*[-+]?\d*\.\d+\s*$")
NUMBER_SHARE = 0.5                # as data/column_types.py: more than half the values of a column


@dataclass(frozen=True)
class Dialect:
    sep: str = ","
    decimal: str = "."

    def describe(self) -> str:
        name = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}[self.sep]
        mark = "decimal comma" if self.decimal == "," else "decimal point"
        return f"{name}-separated, {mark}"


def sniff_separator(path: Path) -> str:
    """The separator that splits the file's first lines into the same number (> 1) of fields, the most
    fields winning; a comma when none does (a one-column file). ``.tsv``/``.tab`` files are tab-separated."""
    if path.suffix.lower() in TAB_SUFFIXES:
        return "\t"
    with open(path, "rb") as f:
        text = f.read(SAMPLE_BYTES).decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if len(lines) > 1 and len(text.encode()) >= SAMPLE_BYTES:
        lines = lines[:-1]                       # the last line may be cut by the sample
    lines = [ln for ln in lines[:SAMPLE_LINES] if ln.strip()]
    best, fields = ",", 1
    for sep in SEPARATORS:
        counts = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)}
        if len(counts) == 1 and (n := counts.pop()) > fields:
            best, fields = sep, n
    return best


def wants_decimal_comma(frame: pd.DataFrame) -> bool:
    """True when some text column is mostly numbers with a decimal comma (``0,125``) and no column holds
    numbers with a decimal point, which a comma-decimal file cannot have."""
    comma = False
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            values = column.dropna().to_numpy()
            if len(values) and (values != values.round()).any():
                return False                     # a parsed 1.5: the file's decimal mark is the point
            continue
        if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
            continue
        text = column.dropna().astype(str)
        if len(text) == 0:
            continue
        if text.str.match(_DECIMAL_POINT).mean() > NUMBER_SHARE:
            return False
        comma = comma or text.str.match(_DECIMAL_COMMA).mean() > NUMBER_SHARE
    return comma


def read_delimited(path: Path, **kwargs) -> tuple[pd.DataFrame, Dialect]:
    """The table and the dialect it was read in. A separator other than the comma opens the question of
    the decimal mark; it is answered from the values (a comma-separated file cannot use a decimal comma
    without quoting every number, and is read as written)."""
    sep = sniff_separator(path)
    frame = pd.read_csv(path, sep=sep, **kwargs)
    if sep != "," and wants_decimal_comma(frame):
        return pd.read_csv(path, sep=sep, decimal=",", thousands=".", **kwargs), Dialect(sep, ",")
    return frame, Dialect(sep, ".")
