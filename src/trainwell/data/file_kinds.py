"""What a table file holds, from its name: delimited text (compressed or not), Parquet, an npz archive.

Tables downloaded from OpenML, Kaggle or a government portal often come compressed, ``adult.csv.gz`` or
a ``.zip`` around one CSV. pandas reads those directly (``compression="infer"`` in
https://pandas.pydata.org/docs/reference/api/pandas.read_csv.html), so a compressed CSV is a CSV here:
only the first bytes are decompressed to find its separator and encoding (data/dialect.py).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

from trainwell.core.errors import UserError

# .txt: Excel's "Text (Tab delimited)" and "Unicode Text" exports; .data: the UCI repository's tables
DELIMITED = (".csv", ".tsv", ".tab", ".txt", ".data")
TAB_SUFFIXES = (".tsv", ".tab")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip")       # the ones pandas infers from the name, short of .zst and .tar


def compression_of(path: Path) -> str | None:
    """The compression suffix of ``path`` (``.gz`` for ``a.csv.gz``), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS and len(path.suffixes) > 1 else None


def table_suffix(path: Path) -> str:
    """The suffix that says what the file holds: ``.csv`` for ``a.csv`` and for ``a.csv.gz``."""
    if compression_of(path):
        return path.suffixes[-2].lower()
    return path.suffix.lower()


def is_delimited(path: Path) -> bool:
    """Whether ``path`` names delimited text (.csv, .tsv, .tab, .txt, .data), compressed or not."""
    return table_suffix(path) in DELIMITED


def head_bytes(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of the file's content, decompressed."""
    kind = compression_of(path)
    try:
        if kind == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise UserError(f"{path} holds {len(members)} files; a zipped table must hold exactly one "
                                    f"(it holds {', '.join(members[:5]) or 'none'}). Unzip it and point at the table.")
                with archive.open(members[0]) as f:
                    return f.read(size)
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(kind, open)
        with opener(path, "rb") as f:
            return f.read(size)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise UserError(f"Could not read {path}: {exc}. Check that the file is a complete "
                        f"{kind.lstrip('.') if kind else 'text'} file.") from None
