"""Load a dataset from a built-in name, a table file, an npz archive or an IDX folder.

Everything that reaches the model passes through here first, so this is where bad
input is caught: each problem raises a ``UserError`` that names the file, column
and row and says how to fix it, instead of failing later inside torch.
No pickle is ever used (``np.load(..., allow_pickle=False)``).
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainwell.data.columns import Column, ColumnEncoder, Options, refuse_beyond_float32
from trainwell.errors import UserError, did_you_mean

BUILTINS: dict[str, str] = {
    "digits": "8x8 handwritten digits, 1,797 rows x 64 pixels, 10 classes (scikit-learn)",
    "breast_cancer": "Wisconsin breast cancer, 569 rows x 30 features, binary (scikit-learn)",
    "diabetes": "diabetes progression, 442 rows x 10 features, regression (scikit-learn)",
    "iris": "iris flowers, 150 rows x 4 features, 3 classes (scikit-learn)",
    "wine": "wine cultivars, 178 rows x 13 features, 3 classes (scikit-learn)",
    "circles": "ellipse boundary (docs/data.md), 1,000 rows x 2 features, balanced binary",
}
FORMATS = "a .csv or .parquet table, an .npz archive (keys X and y), or a folder of MNIST-style IDX files"
TARGET_NAMES = ("target", "y", "label", "class")
NPZ_X_KEYS = ("X", "x", "features")
NPZ_Y_KEYS = ("y", "target", "labels")
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


@dataclass
class Table:
    """A loaded dataset: float32 features plus raw targets, before any split.

    For a table (.csv, .parquet, a DataFrame) ``X`` holds every row encoded by ``columns`` fitted on
    all rows (NaN where a value is missing), and ``frame`` / ``typed`` keep the raw and the parsed
    columns so that ``prepare`` can learn the categories and statistics from the training rows only.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list[str]
    name: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    columns: ColumnEncoder | None = None   # how raw table columns become inputs (data/columns.py)
    typed: dict | None = None              # parsed columns (same rows as X)
    frame: pd.DataFrame | None = None      # the raw feature columns (same rows as X)
    notes: list[str] = field(default_factory=list)   # decisions made while loading (rows dropped, ...)
    weights: np.ndarray | None = None      # data.weight: one weight per row
    val_rows: np.ndarray | None = None     # fit(validation_data=...): the rows that are the validation split

    @property
    def onehot(self) -> ColumnEncoder | None:
        """The column encoder (the name it had when it only one-hot encoded text)."""
        return self.columns


# --------------------------------------------------------------------------- built-ins

def make_circles(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two features, label 1 inside the ellipse 2x1^2 + 3x2^2 + 0.75x1 + 0.25x2 < K.

    K is the median of the left side, so the classes are balanced; the boundary is
    linear in [x, x^2], which is what the ``squares`` feature option exploits.
    """
    if n < 2:
        raise UserError(f"circles needs at least 2 rows; got n={n}. Pass a larger n.")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    score = 2 * x[:, 0] ** 2 + 3 * x[:, 1] ** 2 + 0.75 * x[:, 0] + 0.25 * x[:, 1]
    y = (score < np.median(score)).astype(np.int64)
    return x.astype(np.float32), y


BUILTIN_DIR = Path(__file__).with_name("builtin")


def _load_builtin(name: str, seed: int) -> Table:
    """A built-in data set: circles generated, the others read from the compressed copies of
    scikit-learn's bundled files shipped in ``data/builtin/`` (their licence beside them), so that
    loading iris costs milliseconds instead of scikit-learn's one-second import."""
    if name == "circles":
        X, y = make_circles(1000, seed)
        return Table(X, y, ["x0", "x1"], "circles")
    with np.load(BUILTIN_DIR / f"{name}.npz", allow_pickle=False) as f:
        X, y, names = f["X"].astype(np.float32), f["y"], [str(n) for n in f["feature_names"]]
    return Table(X, y, names, name)


# --------------------------------------------------------------------------- tables

def _read_frame(path: Path) -> pd.DataFrame:
    """Read a csv/parquet file, turning parser failures into one clear UserError."""
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty (no header and no rows). Point the source at a file with a header row and data rows.") from None
    except Exception as exc:  # parser / arrow errors: the message is the useful part
        raise UserError(f"Could not read {path}: {exc}. Check that the file is a valid {path.suffix.lstrip('.')} file.") from None
    if len(df) == 0:
        raise UserError(f"{path} has a header but no data rows. Add rows to the file or point the source at another file.")
    if path.suffix.lower() == ".csv":    # pandas renames a repeated name ("a", "a.1"): read the header as written
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
        refuse_duplicate_columns([h for h in header if h != ""], path)   # unnamed columns: pandas numbers them
    df.columns = [str(c) for c in df.columns]
    refuse_duplicate_columns(list(df.columns), path)
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


def _row_label(path: Path, i: int) -> str:
    """Where row i (0-based) sits in the file, as a human would look for it."""
    if path.suffix.lower() == ".csv":
        return f"row {i + 1} (line {i + 2} of the file)"
    return f"row {i + 1}"


def _check_finite(X: np.ndarray, names: list[str], where: str, allow_missing: bool = False) -> None:
    """Refuse NaN / inf in features: they silently poison every gradient.

    ``allow_missing``: NaN is a missing value that ``data.impute`` fills (inf is still refused).
    """
    bad = np.isinf(X) if allow_missing else ~np.isfinite(X)
    if not bad.any():
        return
    flat = bad.reshape(bad.shape[0], -1)
    per_col = flat.sum(axis=0)
    j = int(np.flatnonzero(per_col)[0])
    i = int(np.flatnonzero(flat[:, j])[0])
    col = f'column "{names[j]}"' if names and j < len(names) else f"feature {j}"
    cols = int((per_col > 0).sum())
    raise UserError(
        f"Features in {where} contain NaN or infinite values: {col} has {int(per_col[j])} of them, the first in "
        f"row {i + 1} ({cols} column(s) affected, {int(flat.sum())} value(s) in all). Drop those rows, or impute the "
        f"missing values before training" + (" (infinite values cannot be imputed)." if allow_missing else
                                             ": data.impute=auto (the default) fills NaN with the training split's "
                                             "median plus a missing indicator, data.impute=median with the median "
                                             "alone.")
    )


def _resolve_target(df: pd.DataFrame, target: str | list[str] | None, path: Path) -> list[str]:
    """Which columns are the target: the given ones, or the one obvious label column."""
    cols = list(df.columns)
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
    for t in names:
        if t not in cols:
            raise UserError(
                f'Target column "{t}" is not in {path}.{did_you_mean(t, cols)} Columns: {", ".join(cols)}. '
                f"Pass --target with one of these names."
            )
    return names


def _target_values(df: pd.DataFrame, names: list[str], path: Path) -> np.ndarray:
    """Raw target values (one column -> 1-D, several -> 2-D); missing labels are refused."""
    for t in names:
        missing = np.flatnonzero(pd.isna(df[t].to_numpy(dtype=object)))
        if missing.size:
            raise UserError(
                f'Target column "{t}" in {path} has {missing.size} missing value(s), the first in '
                f"{_row_label(path, int(missing[0]))}. Drop the rows without a label (or fill them in) and try again."
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


def _encoder(onehot: Any) -> ColumnEncoder | None:
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
    enc = _encoder(onehot) or ColumnEncoder([Column(c, "numeric") for c in features], Options(parse=()))
    X = enc.transform(df, path, strict=not allow_missing)
    _check_finite(X, enc.names(), str(path), allow_missing)
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


def _weights(df: pd.DataFrame, col: str | None, path: Path | str) -> np.ndarray | None:
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
    _check_finite(X, names, str(path), allow_missing)
    return Table(X, y, names, name, columns=enc, typed=typed, frame=df[features].reset_index(drop=True),
                 notes=list(notes or []), weights=weights)


def _load_table(path: Path, target: str | list[str] | None, onehot: Any = None,
                allow_missing: bool = False, data: Any = None) -> Table:
    df = _read_frame(path)
    targets = _resolve_target(df, target, path)
    weight = getattr(data, "weight", None)
    df, notes = _drop_missing_targets(df, targets, path, data)
    features = [c for c in df.columns if c not in targets and c != weight]
    y = _target_values(df, targets, path)
    w = _weights(df, weight, path)
    enc = _encoder(onehot)
    if enc is not None:          # evaluating a trained model: its columns and categories
        X = frame_features(df, enc.needed, path, enc, allow_missing)
        return Table(X, y, enc.names(), path.stem, columns=enc, notes=notes, weights=w)
    return table_from_frame(df, y, path.stem, path, allow_missing, data, features, notes, w)


# --------------------------------------------------------------------------- npz

def _npz_pick(arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in arrays), None)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UserError(
                f"{path} stores an object array, which would need pickle to load (refused for safety). "
                f"Save labels as a fixed-width string array instead, e.g. np.savez(f, X=X, y=y.astype(str))."
            ) from None
        raise UserError(f"Could not read {path}: {exc}. Save it with np.savez(path, X=X, y=y).") from None
    except Exception as exc:
        raise UserError(f"Could not read {path} as an npz archive: {exc}. Save it with np.savez(path, X=X, y=y).") from None


def _npz_features(arrays: dict[str, np.ndarray], key: str, path: Path, allow_missing: bool = False) -> np.ndarray:
    X = arrays[key]
    if X.dtype.kind not in "biuf":
        raise UserError(
            f'Array "{key}" in {path} has dtype {X.dtype}, not numbers. Encode it as numbers '
            f"(floats or integers) before saving."
        )
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] == 0 or X[0].size == 0:
        raise UserError(f'Array "{key}" in {path} is empty (shape {X.shape}). Save at least one row and one feature.')
    refuse_beyond_float32(X, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], f'{path} (array "{key}")')
    X = X.astype(np.float32)
    _check_finite(X, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], f'{path} (array "{key}")',
                  allow_missing)
    return X


def _load_npz(path: Path, target: str | list[str] | None, allow_missing: bool = False) -> Table:
    arrays = _read_npz(path)
    keys = ", ".join(arrays) or "none"
    xk = _npz_pick(arrays, NPZ_X_KEYS)
    if xk is None:
        raise UserError(
            f"{path} has no feature array: expected a key named X, x or features, found: {keys}. "
            f"Save it with np.savez(path, X=X, y=y)."
        )
    X = _npz_features(arrays, xk, path, allow_missing)
    if target is not None and not isinstance(target, str):
        raise UserError(f"For an npz archive, --target is one array name; got {target}. Keys in {path}: {keys}.")
    yk = target if target is not None else _npz_pick(arrays, NPZ_Y_KEYS)
    if target is not None and target not in arrays:
        raise UserError(f'{path} has no array "{target}".{did_you_mean(target, arrays)} Keys: {keys}. Pass --target with one of them.')
    y = _npz_target(arrays, yk, len(X), path) if yk else None
    X_test = y_test = None
    tk = _npz_pick(arrays, ("X_test", "x_test"))
    if tk is not None:
        X_test = _npz_features(arrays, tk, path, allow_missing)
        yt = _npz_pick(arrays, ("y_test",))
        y_test = _npz_target(arrays, yt, len(X_test), path) if yt else None
    return Table(X, y, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], path.stem, X_test, y_test)


def _npz_target(arrays: dict[str, np.ndarray], key: str, n: int, path: Path) -> np.ndarray:
    y = arrays[key]
    if len(y) != n:
        raise UserError(
            f'In {path} the features have {n} rows but "{key}" has {len(y)}. Save one label per row of X.'
        )
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))
        if bad.size:
            raise UserError(
                f'Target "{key}" in {path} has {bad.size} NaN/infinite row(s), the first at row {int(bad[0]) + 1}. '
                f"Drop those rows (from X too) or fill in the labels."
            )
    if y.dtype.kind in "US":
        y = y.astype(str).astype(object)
    return y


# --------------------------------------------------------------------------- IDX

def _idx_file(folder: Path, prefix: str, kind: str) -> Path | None:
    dims = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"):
        for suffix in ("", ".gz"):
            p = folder / (stem + suffix)
            if p.is_file():
                return p
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw): uint8 [N, rows, cols] images or [N] labels."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable gzip file ({exc}). Download it again or unpack it.") from None
    magic, n = struct.unpack(">II", raw[:8]) if len(raw) >= 8 else (None, 0)
    if magic == IDX_IMAGES_MAGIC and len(raw) >= 16:
        rows, cols = struct.unpack(">II", raw[8:16])
        body, shape = raw[16:], (n, rows, cols)
    elif magic == IDX_LABELS_MAGIC:
        body, shape = raw[8:], (n,)
    else:
        raise UserError(
            f"{path} is not an MNIST-style IDX file: magic number {magic} (expected 2051 for images or 2049 "
            f"for labels). The file is corrupt or of another format; download it again."
        )
    need = int(np.prod(shape))
    if len(body) < need:
        raise UserError(f"{path} is truncated: the header promises {need} bytes of data but only {len(body)} follow. Download it again.")
    return np.frombuffer(body, dtype=np.uint8, count=need).reshape(shape)


def _idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    img, lab = _idx_file(folder, prefix, "images"), _idx_file(folder, prefix, "labels")
    if img is None and lab is None:
        return None
    if img is None or lab is None:
        have, lack = (img, "labels") if lab is None else (lab, "images")
        want = lack.replace("images", "images-idx3").replace("labels", "labels-idx1")
        raise UserError(f"{folder} has {have.name} but no {prefix}-{want}-ubyte[.gz] file. Add the matching {lack} file.")
    X, y = read_idx(img), read_idx(lab)
    if X.ndim != 3 or y.ndim != 1:
        raise UserError(f"{img.name} / {lab.name} in {folder} are swapped or mislabelled (images must have magic 2051, labels 2049). Check the file names.")
    if len(X) != len(y):
        raise UserError(f"In {folder}, {img.name} has {len(X)} images but {lab.name} has {len(y)} labels. Use files from the same release.")
    return X.astype(np.float32), y.astype(np.int64)


def _load_idx_folder(folder: Path) -> Table:
    train = _idx_pair(folder, "train")
    test = _idx_pair(folder, "t10k")
    if train is None:
        raise UserError(
            f"{folder} is a folder but holds no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair. "
            f"Point the source at {FORMATS}."
        )
    X_test, y_test = test if test is not None else (None, None)
    return Table(train[0], train[1], [], folder.name, X_test, y_test)


# --------------------------------------------------------------------------- entry points

def _unknown_source(source: str) -> UserError:
    listing = ", ".join(BUILTINS)
    return UserError(
        f'Data source "{source}" is neither a built-in dataset nor an existing file or folder.'
        f"{did_you_mean(source, BUILTINS)} Built-ins: {listing}. Files: {FORMATS}."
    )


def _path_of(source: str) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.suffix.lower() in (".csv", ".parquet", ".npz"):
        if not path.exists():
            raise UserError(f"Data file {path} does not exist (looked relative to {Path.cwd()}). Check the path or the spelling.")
        return path
    if path.exists():
        raise UserError(f'Unsupported data file {path} (suffix "{path.suffix}"). Convert it to {FORMATS}.')
    raise _unknown_source(source)


def load_source(source: str, target: str | list[str] | None = None, seed: int = 0,
                onehot: Any = None, allow_missing: bool = False, data: Any = None) -> Table:
    """Load a built-in name, .csv, .parquet, .npz or IDX folder into a validated Table.

    ``onehot``: a trained model's column encoder (``run.pre.columns``), to encode a table as in training.
    ``allow_missing``: NaN features pass (``data.impute`` fills them); inf never does.
    ``data``: the spec's data section (column typing options, data.weight, data.drop_missing_target);
    without it a table is read strictly: rows without a target are refused.
    """
    if source in BUILTINS:
        return _load_builtin(source, seed)
    path = _path_of(source)
    if path.is_dir():
        return _load_idx_folder(path)
    if path.suffix.lower() == ".npz":
        return _load_npz(path, target, allow_missing)
    return _load_table(path, target, onehot, allow_missing, data)


def load_features(source: str, feature_names: list[str], target: str | list[str] | None = None,
                  onehot: Any = None, allow_missing: bool = False) -> np.ndarray:
    """Features of new data in the training column order, for predict / evaluate.

    Missing columns are an error (named); extra ones, the target included, are ignored.
    Text columns are encoded with the training categories (``onehot``). For an IDX
    folder the train images are returned (the t10k ones if there are no train files);
    for npz the X array.
    """
    if source in BUILTINS:
        return _load_builtin(source, 0).X
    path = _path_of(source)
    if path.is_dir():
        pair = _idx_pair(path, "train") or _idx_pair(path, "t10k")
        if pair is None:
            raise UserError(f"{path} holds no IDX image files (train-images-idx3-ubyte[.gz] or t10k-...). Point the source at {FORMATS}.")
        return pair[0]
    if path.suffix.lower() == ".npz":
        arrays = _read_npz(path)
        xk = _npz_pick(arrays, NPZ_X_KEYS)
        if xk is None:
            raise UserError(f"{path} has no feature array: expected a key named X, x or features, found: {', '.join(arrays) or 'none'}. Save it with np.savez(path, X=X).")
        X = _npz_features(arrays, xk, path, allow_missing)
        if feature_names and X.ndim == 2 and X.shape[1] != len(feature_names):
            raise UserError(f"{path} has {X.shape[1]} feature columns but the model was trained on {len(feature_names)}. Use data with the same columns.")
        return X
    df = _read_frame(path)
    enc = _encoder(onehot)
    if enc is not None:
        return frame_features(df, enc.needed, path, enc, allow_missing)
    return frame_features(df, list(feature_names), path, allow_missing=allow_missing)
