"""How a delimited text table is written: its field separator, its decimal mark and its encoding.

Spreadsheets export tables in the convention of the user's locale. Where the decimal mark is a comma
(most of continental Europe, Latin America), Excel's "CSV" uses semicolons between fields and writes
``0,125`` for an eighth (https://support.microsoft.com/office/import-or-export-text-txt-or-csv-files-
5250ac4c-663c-47ce-937b-339e391393ba: the list separator follows the regional settings). Read with a
comma separator such a file is one column; read with the right separator but a point as the decimal
mark, ``0,125`` would be text, or worse, a thousands separator. So the separator is found from the
file's first lines, and a comma decimal mark is used when the numbers say so.

The same exports are written in the Windows code page of the locale, not in UTF-8: Excel's plain
"CSV" on a Western European Windows is Windows-1252, where ``ö`` is the single byte 0xF6 that UTF-8
refuses. A file whose first 64 KB are not UTF-8 is read as Windows-1252 (Latin-1 where Windows-1252
leaves a byte undefined), one with a byte-order mark in the encoding it names, and the choice is
printed.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainwell.data.file_kinds import DELIMITED, TAB_SUFFIXES, head_bytes, is_delimited, table_suffix

SEPARATORS = (",", ";", "\t", "|")
SAMPLE_BYTES = 1 << 16            # the lines the separator is chosen on
SAMPLE_LINES = 50
MAX_TITLE_LINES = 10              # rows of a title or notes above a header that are looked past
SAMPLE_ROWS = 10_000              # rows the decimal mark is decided on when the file is not read whole
UTF8 = ("utf-8", "utf-8-sig")
WINDOWS_1252 = "cp1252"          # Excel's "CSV" on a Western European Windows
ENCODING_NAMES = {"cp1252": "Windows-1252 (Western European) text", "latin-1": "Latin-1 text", "utf-16": "UTF-16 text"}
__all__ = ["DELIMITED", "Dialect", "dialect_of", "read_delimited", "sniff_separator", "source_dialect",
           "to_delimited", "wants_decimal_comma"]
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d*),\d+\s*$")     # 0,125  -3,5  1.234,5
_DECIMAL_POINT = re.compile(r"^\s*[-+]?\d*\.\d+\s*$")
NUMBER_SHARE = 0.5                # as data/column_types.py: more than half the values of a column


@dataclass(frozen=True)
class Dialect:
    sep: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    skip: int = 0                 # lines above the header (a title, notes)
    spaced: bool = False          # a space after every separator ("39, State-gov, 77516"), not part of the values

    @property
    def usual(self) -> bool:
        """Comma-separated UTF-8 with a decimal point, the header first: nothing to say about how it was read."""
        return self.sep == "," and self.decimal == "." and self.encoding in UTF8 and self.skip == 0 and not self.spaced

    def describe(self) -> str:
        name = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}[self.sep]
        mark = "decimal comma" if self.decimal == "," else "decimal point"
        text = "" if self.encoding in UTF8 else f", {ENCODING_NAMES.get(self.encoding, self.encoding)}"
        header = f", its header on line {self.skip + 1} (the lines above it skipped)" if self.skip else ""
        spaced = ", a space after each separator (not part of the values)" if self.spaced else ""
        return f"{name}-separated{spaced}, {mark}{text}{header}"


def sniff_encoding(head: bytes) -> str:
    """The encoding of a file that starts with ``head``: the one a byte-order mark names; UTF-8 when the
    bytes decode as UTF-8; else Windows-1252, or Latin-1 (which maps every byte) where that fails."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in ("utf-8", WINDOWS_1252):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)   # a character cut at the end is fine
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _head(path: Path) -> tuple[str, str]:
    """The decoded first lines of the file and its encoding."""
    raw = head_bytes(path, SAMPLE_BYTES)
    encoding = sniff_encoding(raw)
    return raw.decode(encoding, errors="replace"), encoding


def sniff_separator(path: Path, text: str | None = None) -> str:
    """The separator of the file (``sniff_layout``)."""
    return sniff_layout(path, text)[0]


def sniff_layout(path: Path, text: str | None = None) -> tuple[str, int]:
    """The separator and the number of lines above the header.

    The separator is the one that splits the file's first lines into the same number (> 1) of fields, the
    most fields winning; a comma when none does (a one-column file). ``.tsv``/``.tab`` files are
    tab-separated. Where no separator splits every line alike, a report's export may carry a title, a
    source line or a blank line above its header (``Table 3. Households, 2024``): then the header is the
    first of the rows that all have the same number of fields, after at most ``MAX_TITLE_LINES`` rows
    of fewer fields, as R's ``data.table::fread`` finds it (its ``skip="auto"``)."""
    if text is None:
        text = _head(path)[0]
    lines = text.splitlines()
    if len(lines) > 1 and len(text.encode()) >= SAMPLE_BYTES:
        lines = lines[:-1]                       # the last line may be cut by the sample
    lines = lines[:SAMPLE_LINES + MAX_TITLE_LINES]
    tab = table_suffix(path) in TAB_SUFFIXES
    rows = {sep: _rows(lines, sep) for sep in (("\t",) if tab else SEPARATORS)}
    best, fields = ("\t", 0) if tab else (",", 1)
    for sep, counted in rows.items():
        counts = {n for _, n, _ in counted[:SAMPLE_LINES]}
        if len(counts) == 1 and (n := counts.pop()) > fields:
            best, fields = sep, n
    if fields > 1:
        return best, 0
    titled = [(found[2], found[1], sep, found[0]) for sep, counted in rows.items()
              if (found := _below_title(counted)) is not None]
    if titled:
        _, _, sep, skip = max(titled, key=lambda t: (t[0], t[1]))
        return sep, skip
    return best, 0


def _rows(lines: list[str], sep: str) -> list[tuple[int, int, int]]:
    """(the line a row starts on, its number of fields, how many of them are numbers) for every row with
    some text."""
    reader = csv.reader(lines, delimiter=sep)
    out, start = [], 0
    for row in reader:
        if any(field.strip() for field in row):
            out.append((start, len(row), sum(1 for field in row if _is_number(field))))
        start = reader.line_num
    return out


def _is_number(field: str) -> bool:
    try:
        float(field)
        return True
    except ValueError:
        return False


def _below_title(rows: list[tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """(lines above the header, fields, rows from the header on) when the first 1..MAX_TITLE_LINES rows
    have fewer fields than every row after them, which all have the same number (> 1), and the first of
    those reads as names (at most half of it numbers); else None. A header one field short of its rows
    (R's ``write.table`` with row names) is not a title: the row after it is data, not names."""
    for j in range(1, min(MAX_TITLE_LINES, len(rows) - 2) + 1):
        n = rows[j][1]
        if n > 1 and all(c == n for _, c, _ in rows[j:]) and all(c < n for _, c, _ in rows[:j]) \
                and rows[j][2] * 2 <= n:
            return rows[j][0], n, len(rows) - j
    return None


def spaced_after_separators(text: str, sep: str, skip: int) -> bool:
    """Whether every separator of the header line is followed by a space, as in UCI's ``adult.data``
    (``age, workclass, fnlwgt``): then the spaces belong to the layout, not to the names and values."""
    lines = text.splitlines()[skip:skip + 1]          # the header line
    if not lines or sep == "\t":
        return False
    parts = next(csv.reader(lines, delimiter=sep), [])
    return len(parts) > 1 and all(p.startswith(" ") and p.strip() for p in parts[1:])


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


def dialect_of(path: Path, rows: int = SAMPLE_ROWS) -> Dialect:
    """The dialect of a delimited file from its first bytes and ``rows`` rows, without reading the rest: for
    a file streamed in batches (data/streaming/reader.py) and for writing predictions in the convention of
    the file they were made from (``trainwell predict``). ``read_delimited`` makes the same decision on the
    whole table it reads anyway."""
    text, encoding = _head(path)
    sep, skip = sniff_layout(path, text)
    spaced = spaced_after_separators(text, sep, skip)
    if sep == ",":
        return Dialect(encoding=encoding, skip=skip, spaced=spaced)
    sample = pd.read_csv(path, sep=sep, nrows=rows, encoding=encoding, encoding_errors="replace", skiprows=skip,
                         skipinitialspace=spaced)
    return Dialect(sep, "," if wants_decimal_comma(sample) else ".", encoding, skip, spaced)


def read_delimited(path: Path, **kwargs) -> tuple[pd.DataFrame, Dialect]:
    """The table and the dialect it was read in. A separator other than the comma opens the question of
    the decimal mark; it is answered from the values (a comma-separated file cannot use a decimal comma
    without quoting every number, and is read as written). A file that looked like UTF-8 in its first
    64 KB but is not further on is read again as Windows-1252."""
    text, encoding = _head(path)
    sep, skip = sniff_layout(path, text)
    spaced = spaced_after_separators(text, sep, skip)
    kwargs = {"skiprows": skip, "skipinitialspace": spaced, **kwargs}
    try:
        frame = pd.read_csv(path, sep=sep, encoding=encoding, **kwargs)
    except UnicodeDecodeError:
        encoding = WINDOWS_1252
        frame = pd.read_csv(path, sep=sep, encoding=encoding, encoding_errors="replace", **kwargs)
    if sep != "," and wants_decimal_comma(frame):
        return (pd.read_csv(path, sep=sep, decimal=",", thousands=".", encoding=encoding, encoding_errors="replace",
                            **kwargs),
                Dialect(sep, ",", encoding, skip, spaced))
    return frame, Dialect(sep, ".", encoding, skip, spaced)


def source_dialect(source: str) -> Dialect:
    """The dialect of ``source`` when it is a delimited file, else the comma and the point: predictions
    made from a spreadsheet's semicolon export are written back in it, so the same spreadsheet opens them
    as columns of numbers (a comma-separated file opens there as one column of text)."""
    path = Path(source)
    if is_delimited(path) and path.is_file():
        found = dialect_of(path)
        return Dialect(found.sep, found.decimal, found.encoding)   # written plainly: no title, no spaces
    return Dialect()


def to_delimited(frame: pd.DataFrame, dialect: Dialect) -> bytes:
    """``frame`` as delimited text in ``dialect`` (separator, decimal mark, encoding), without the index."""
    text = frame.to_csv(index=False, sep=dialect.sep, decimal=dialect.decimal)
    return text.encode(dialect.encoding, errors="replace")
