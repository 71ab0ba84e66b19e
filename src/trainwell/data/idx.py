"""MNIST-style IDX folders (``train-images-idx3-ubyte[.gz]`` and friends, LeCun et al. 1998) as a ``Table``."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from trainwell.data.table import FORMATS, Table
from trainwell.core.errors import UserError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


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


def idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
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


def load_idx_folder(folder: Path) -> Table:
    train = idx_pair(folder, "train")
    test = idx_pair(folder, "t10k")
    if train is None:
        raise UserError(
            f"{folder} is a folder but holds no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair. "
            f"Point the source at {FORMATS}."
        )
    X_test, y_test = test if test is not None else (None, None)
    return Table(train[0], train[1], [], folder.name, X_test, y_test)
