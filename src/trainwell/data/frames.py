"""Table files (.csv, .parquet) and DataFrames: the raw columns typed into a ``Table`` (data/columns.py),
the target and weight columns read and checked, rows without a target dropped or refused."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainwell.data.column_types import Column, Options, decimal_mark, parse_numbers, reading_of, row_label
from trainwell.data.dialect import Dialect, read_delimited
from trainwell.data.file_kinds import is_delimited, table_suffix
from trainwell.data.workbook import WORKBOOKS, read_workbook
from trainwell.data.columns import ColumnEncoder
from trainwell.data.table import Table, check_finite
from trainwell.core.errors import UserError, did_you_mean

TARGET_NAMES = ("target", "y", "label", "class")


def read_frame(path: Path, header: bool = True, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a csv/tsv (compressed or not), parquet or Excel file, turning parser failures into one clear
    UserError. A delimited file is read in its own separator, decimal mark and encoding (data/dialect.py);
    other than the usual (comma, point, UTF-8), ``df.attrs["notes"]`` says which, as it names the sheet
    read from a workbook of several (data/workbook.py). ``header=False`` (data.header): the first line is
    data, and the columns are named ``column_1``, ``column_2``, ... (a Parquet file always names them).
    ``sheet`` (data.sheet): a workbook's sheet by name or position; other files have none to choose."""
    delimited = is_delimited(path)
    dialect, notes = Dialect(), []
    try:
        if delimited:
            df, dialect = read_delimited(path) if header else read_delimited(path, header=None)
        elif table_suffix(path) in WORKBOOKS:
            df, notes = read_workbook(path, header, sheet)
        else:
            df = pd.read_parquet(path)
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty (no header and no rows). Point the source at a file with a header row and data rows.") from None
    except Exception as exc:  # parser / arrow errors: the message is the useful part
        raise UserError(f"Could not read {path}: {exc}. Check that the file is a valid {path.suffix.lstrip('.')} file.") from None
    if len(df) == 0:
        raise UserError(f"{path} has a header but no data rows. Add rows to the file or point the source at another file.")
    if not header and (delimited or table_suffix(path) in WORKBOOKS):
        df.columns = [f"column_{i + 1}" for i in range(df.shape[1])]
        notes.append(f"read: {path.name} has no header line (data.header=false): its {df.shape[1]} columns are "
                     f"column_1 to column_{df.shape[1]}")
    elif delimited:    # pandas renames a repeated name ("a", "a.1"): read the header as written
        header = pd.read_csv(path, sep=dialect.sep, header=None, nrows=1, dtype=str, keep_default_na=False,
                             encoding=dialect.encoding, encoding_errors="replace", skiprows=dialect.skip,
                             skipinitialspace=dialect.spaced).iloc[0]
        refuse_duplicate_columns([h for h in header if h != ""], path)   # unnamed columns: pandas numbers them
    df.columns = [str(c) for c in df.columns]
    refuse_duplicate_columns(list(df.columns), path)
    if not dialect.usual:
        notes.append(f"read: {path.name} is {dialect.describe()} (found from its lines; a .csv is "
                     f"usually comma-separated UTF-8 with a decimal point)")
    if notes:
        df.attrs["notes"] = notes
    return df


def refuse_duplicate_columns(names: list, where: Path | str) -> None:
    """Refuse a table that names a column twice: which of the two is the feature or the target would be
    a guess (pandas silently renames the second copy "NAME.1")."""
    seen: dict[str, int] = {}
    for name in map(str, names):
        seen[name] = seen.get(name, 0) + 1
    twice = [n for n, k in seen.items() if k > 1]
    if twice:
        listed = ", ".join(f'"{n}" ({seen[n]} times)' for n in twice[:10])
        raise UserError(f"{where} names a column more than once: {listed}. Give every column a distinct name "
                        "in the header, or drop the copies.")


def resolve_target(cols: list, target: str | list[str] | None, path: Path) -> list[str]:
    """Which of ``cols`` are the target: the given ones, or the one obvious label column.

    The one rule for tables in memory and streamed ones (data/streaming/reader.py).
    """
    cols = list(cols)
    if target is None:
        found = [c for c in cols if c in TARGET_NAMES] or [c for c in cols if c.lower() in TARGET_NAMES]
        if len(found) == 1:
            return found
        why = f"several candidate columns ({', '.join(found)})" if found else "no column named target, y, label or class"
        raise UserError(
            f"Cannot tell which column of {path} is the target: {why}. Columns: {', '.join(cols)}. "
            f"To fix it, pass --target COLUMN (or several for multi-target / multilabel)."
        )
    names = [target] if isinstance(target, str) else list(target)
    if not names:
        raise UserError(f"The target list for {path} is empty. Pass --target COLUMN with at least one column.")
    names = [_spaced(t, cols) for t in names]
    for t in names:
        if t not in cols:
            raise UserError(
                f'Target column "{t}" is not in {path}.{did_you_mean(t, cols)} Columns: {", ".join(map(str, cols))}. '
                f"Pass --target with one of these names.{_headerless_hint(cols)}"
            )
    return names


def _spaced(name: Any, cols: list) -> Any:
    """The column a target name means when the header writes it with spaces around it (`` t ``, which a
    ``--set data.target=`` value cannot carry through YAML): the one column equal to it once both are stripped."""
    if name in cols or not isinstance(name, str):
        return name
    same = [c for c in cols if isinstance(c, str) and c.strip() == name.strip()]
    return same[0] if len(same) == 1 else name


def _headerless_hint(cols: list) -> str:
    """When most "names" are numbers, the first line is data (UCI's ``adult.data`` has no header row)."""
    numbers = sum(1 for c in cols if isinstance(c, (int, float)) or _is_number(str(c)))
    if len(cols) < 2 or numbers * 2 < len(cols):
        return ""
    return (f" The file's first line looks like data, not column names. If the file has no header line, pass "
            f"--set data.header=false and name the target by its position, column_1 to column_{len(cols)} "
            f"(e.g. --target column_{len(cols)}), or add a header line.")


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False


def _target_values(df: pd.DataFrame, names: list[str], path: Path) -> np.ndarray:
    """Raw target values (one column -> 1-D, several -> 2-D); missing labels are refused."""
    for t in names:
        missing = np.flatnonzero(pd.isna(df[t].to_numpy(dtype=object)))
        if missing.size:
            raise UserError(
                f'Target column "{t}" in {path} has {missing.size} missing value(s), the first in '
                f"{row_label(path, int(missing[0]))}. Drop the rows without a label (or fill them in) and try again."
            )
    cols = []
    for t in names:
        s = df[t]
        if pd.api.types.is_bool_dtype(s):
            cols.append(s.to_numpy(dtype=bool))
        elif pd.api.types.is_numeric_dtype(s):
            cols.append(s.to_numpy())
        else:
            cols.append(np.array([str(v) for v in s.to_numpy(dtype=object)], dtype=object))
    if len(cols) == 1:
        return cols[0]
    if all(c.dtype != object for c in cols):
        return np.column_stack(cols)
    return np.column_stack([c.astype(object) for c in cols])


def encoder_of(onehot: Any) -> ColumnEncoder | None:
    """A trained model's column encoder; models saved before column typing carry a OneHot."""
    if onehot is None or isinstance(onehot, ColumnEncoder):
        return onehot
    return ColumnEncoder.from_onehot(onehot)


def frame_features(df: pd.DataFrame, features: list[str], path: Path | str, onehot: Any = None,
                   allow_missing: bool = False) -> np.ndarray:
    """The given feature columns as a validated float32 [N, F] matrix, encoded by ``onehot`` (a trained
    model's ColumnEncoder) when given, else read as numbers (booleans 0/1). ``allow_missing``: NaN
    passes (``data.impute`` fills it); otherwise missing and unreadable values are refused."""
    if not features:
        raise UserError(
            f"{path} has no feature columns left once the target is set aside (columns: {', '.join(df.columns)}). "
            f"Add input columns or choose a different --target."
        )
    enc = encoder_of(onehot) or ColumnEncoder([Column(c, "numeric") for c in features], Options(parse=()))
    X = enc.transform(df, path, strict=not allow_missing)
    check_finite(X, enc.names(), str(path), allow_missing)
    return X


def _drop_missing_targets(df: pd.DataFrame, targets: list[str], path: Path | str, data: Any) -> tuple[pd.DataFrame, list[str]]:
    """Rows without a target: dropped with a note (data.drop_missing_target), else refused with the first row."""
    if data is None or not data.drop_missing_target:
        return df, []
    missing = np.zeros(len(df), dtype=bool)
    for t in targets:
        missing |= pd.isna(df[t]).to_numpy()
    if not missing.any():
        return df, []
    kept = df.loc[~missing].reset_index(drop=True)
    if len(kept) == 0:
        raise UserError(f"Every row of {path} lacks a value in the target column ({', '.join(targets)}). "
                        f"Check the --target column.")
    note = (f"target: {int(missing.sum())} of {len(df)} row(s) without a value in {', '.join(targets)} dropped "
            f"(they cannot be learned from; data.drop_missing_target=false refuses them instead)")
    return kept, [note]


def _numbers_written_as_text(df: pd.DataFrame, targets: list[str], data: Any) -> tuple[pd.DataFrame, list[str]]:
    """Target columns of numbers written as text (``$1,200``, ``12%``, ``3,20 €``; every value readable) as numbers,
    with a note: a price column exported with its currency sign is a regression target, not 276 classes.
    The same reading as a feature column's (data/column_types.py); ``data.parse`` without numbers keeps the text."""
    if "numbers" not in Options.from_spec(data).parse:
        return df, []
    converted = {}
    for t in targets:
        s = df[t]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            continue
        values = parse_numbers(s, decimal_mark(s))
        if np.isfinite(values).all():
            converted[t] = values
    if not converted:
        return df, []
    note = (f"target: {', '.join(converted)} read as numbers from text (separators, currency and percent signs "
            f"removed; data.parse without numbers keeps the text as class labels)")
    return df.assign(**converted), [note]


def weight_column(df: pd.DataFrame, col: str | None, path: Path | str) -> np.ndarray | None:
    """``data.weight``: the weight column's values, checked (finite, >= 0, not all zero); None without one."""
    if col is None:
        return None
    if col not in df.columns:
        raise UserError(f'The weight column "{col}" (data.weight) is not in {path}.{did_you_mean(col, df.columns)} '
                        f"Columns: {', '.join(map(str, df.columns))}.")
    w = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise UserError(f'The weight column "{col}" in {path} must hold finite numbers >= 0 in every row. '
                        f"Fix or drop the rows with missing, negative or infinite weights.")
    if not (w > 0).any():
        raise UserError(f'Sample weights must contain at least one non-zero number: every weight in "{col}" is zero.')
    return w


def table_from_frame(df: pd.DataFrame, y: np.ndarray | None, name: str, path: Path | str,
                     allow_missing: bool = False, data: Any = None, features: list[str] | None = None,
                     notes: list[str] | None = None, weights: np.ndarray | None = None) -> Table:
    """A raw feature frame typed column by column (data/columns.py) into a Table."""
    features = list(df.columns) if features is None else features
    if not features:
        frame_features(df, features, path)          # raises the "no feature columns" error
    enc = ColumnEncoder.infer(df, features, Options.from_spec(data))
    typed = enc.parse(df, path, strict=not allow_missing)
    enc = enc.fit(typed)
    X = enc.encode(typed, path)
    names = enc.names()
    if not names:
        raise UserError(f"{path} has no usable feature column: {'; '.join(enc.describe(typed))}. Add input columns, "
                        f"or keep some with data.drop_columns=[].")
    check_finite(X, names, str(path), allow_missing)
    return Table(X, y, names, name, columns=enc, typed=typed, frame=df[features].reset_index(drop=True),
                 notes=list(notes or []), weights=weights)


def refuse_sheet_outside_workbook(path: Path, enc: Any, data: Any) -> None:
    """``data.sheet`` names a sheet of a workbook; on a file without sheets it would be silently ignored."""
    sheet = getattr(data, "sheet", None)
    if enc is None and sheet is not None and table_suffix(path) not in WORKBOOKS:
        raise UserError(f"data.sheet={sheet} chooses a sheet of an Excel workbook (.xlsx, .xlsm), but {path.name} "
                        f"is not one. Remove data.sheet, or point data.source at the workbook.")


def load_table_file(path: Path, target: str | list[str] | None, onehot: Any = None,
                    allow_missing: bool = False, data: Any = None) -> Table:
    """A .csv / .parquet file as a Table: typed from its rows, or encoded by a trained model's ``onehot``."""
    enc = encoder_of(onehot)
    refuse_sheet_outside_workbook(path, enc, data)
    df = read_frame(path, **reading_of(enc.options if enc is not None else None, data))
    read_notes = list(df.attrs.get("notes", []))
    targets = resolve_target(df.columns, target, path)
    weight = getattr(data, "weight", None)
    df, notes = _drop_missing_targets(df, targets, path, data)
    df, number_notes = _numbers_written_as_text(df, targets, data)
    notes = read_notes + notes + number_notes
    features = [c for c in df.columns if c not in targets and c != weight]
    y = _target_values(df, targets, path)
    w = weight_column(df, weight, path)
    if enc is not None:          # evaluating a trained model: its columns and categories
        X = frame_features(df, enc.needed, path, enc, allow_missing)
        return Table(X, y, enc.names(), path.stem, columns=enc, notes=notes, weights=w)
    return table_from_frame(df, y, path.stem, path, allow_missing, data, features, notes, w)
