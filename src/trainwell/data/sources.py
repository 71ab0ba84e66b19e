"""Load a dataset from a built-in name, a table file, an npz archive or an IDX folder.

This module says which loader reads a source (data/frames.py, npz.py, idx.py) and holds the
built-in data sets; every loader returns a validated ``Table`` (data/table.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainwell.data.column_types import reading_of
from trainwell.data.frames import encoder_of, frame_features, load_table_file, read_frame
from trainwell.data.idx import idx_pair, load_idx_folder
from trainwell.data.npz import load_npz, npz_features
from trainwell.data.file_kinds import is_delimited, table_suffix
from trainwell.data.workbook import WORKBOOKS
from trainwell.data.table import FORMATS, Table
from trainwell.core.errors import UserError, did_you_mean

BUILTINS: dict[str, str] = {
    "digits": "8x8 handwritten digits, 1,797 rows x 64 pixels, 10 classes (scikit-learn)",
    "breast_cancer": "Wisconsin breast cancer, 569 rows x 30 features, binary (scikit-learn)",
    "diabetes": "diabetes progression, 442 rows x 10 features, regression (scikit-learn)",
    "iris": "iris flowers, 150 rows x 4 features, 3 classes (scikit-learn)",
    "wine": "wine cultivars, 178 rows x 13 features, 3 classes (scikit-learn)",
    "circles": "ellipse boundary (docs/data.md), 1,000 rows x 2 features, balanced binary",
}


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
    if is_delimited(path) or table_suffix(path) in (".parquet", ".npz", *WORKBOOKS):
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
        return load_idx_folder(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path, target, allow_missing)
    return load_table_file(path, target, onehot, allow_missing, data)


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
        pair = idx_pair(path, "train") or idx_pair(path, "t10k")
        if pair is None:
            raise UserError(f"{path} holds no IDX image files (train-images-idx3-ubyte[.gz] or t10k-...). Point the source at {FORMATS}.")
        return pair[0]
    if path.suffix.lower() == ".npz":
        return npz_features(path, feature_names, allow_missing)
    enc = encoder_of(onehot)
    df = read_frame(path, **reading_of(enc.options if enc is not None else None))
    if enc is not None:
        return frame_features(df, enc.needed, path, enc, allow_missing)
    return frame_features(df, list(feature_names), path, allow_missing=allow_missing)
