"""Fingerprints of the rows a model learned from, so that scoring it on those rows again is caught.

Scoring a model on data that holds its own training rows is the classic way to report a score it will
not reach on new data (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, 2nd ed.,
section 7.2: the training error is not an estimate of the test error). A labelled file handed to
``trainwell evaluate`` is often the very file the model was fitted on, or a superset of it. ``fit``
keeps one 64-bit fingerprint per training and per validation row (``seen_rows.safetensors`` in the run
directory, 8 bytes a row, checksummed like every other file), and ``evaluate`` counts the rows it is
given whose fingerprint is among them, and says so.

A fingerprint is a hash of the row's encoded features as the network's preprocessing first sees them
(columns typed, categories one-hot, dates expanded; before imputation and scaling), so the same row reads
the same whether it comes from the training file, a copy of it, or a DataFrame. It holds no value of
the row, but a row whose features take few values can be found again by trying them all; a run directory
shared with people who must not learn the training rows should not be shared with this file either
(docs/evaluation.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

CHUNK_VALUES = 1 << 22      # values hashed at a time: a 32 MB uint64 block, whatever the width
_MULTIPLIERS_SEED = 0x7472_6169_6E77_656C     # fixed: fingerprints must agree between fit and evaluate


def row_fingerprints(X: np.ndarray) -> np.ndarray:
    """One uint64 per row: ``sum_j a_j * bits(x_ij)`` modulo 2^64 over the row's float32 values, with fixed
    random odd multipliers ``a_j`` (a multilinear hash: two different rows collide with probability about
    2^-63). Every NaN hashes alike, and -0.0 as 0.0."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        return np.zeros(0, dtype=np.uint64)
    X = X.reshape(len(X), -1)
    width = X.shape[1]
    multipliers = np.random.default_rng(_MULTIPLIERS_SEED).integers(0, 2**63, width, dtype=np.uint64) * 2 + 1
    out = np.empty(len(X), dtype=np.uint64)
    rows = max(1, CHUNK_VALUES // max(width, 1))
    for start in range(0, len(X), rows):
        block = X[start:start + rows] + np.float32(0.0)                   # -0.0 + 0.0 = 0.0
        block[np.isnan(block)] = np.float32(np.nan)                       # one NaN bit pattern
        out[start:start + rows] = (block.view(np.uint32).astype(np.uint64) * multipliers).sum(axis=1, dtype=np.uint64)
    return out


@dataclass(frozen=True)
class SeenRows:
    """The sorted, distinct fingerprints of the training rows and of the validation rows."""

    train: np.ndarray
    validation: np.ndarray

    @classmethod
    def of(cls, X_train: np.ndarray, X_val: np.ndarray) -> "SeenRows":
        return cls(np.unique(row_fingerprints(X_train)), np.unique(row_fingerprints(X_val)))

    def count(self, X: np.ndarray) -> tuple[int, int]:
        """How many rows of ``X`` (encoded as in training) equal a training row, and how many of the others
        equal a validation row."""
        prints = row_fingerprints(X)
        in_train = np.isin(prints, self.train)
        in_val = ~in_train & np.isin(prints, self.validation)
        return int(in_train.sum()), int(in_val.sum())

    def with_training(self, prints: np.ndarray) -> "SeenRows":
        """These fingerprints and ``prints`` as training rows: the test rows cross-fitted members train on
        (train/crossfit.py)."""
        return SeenRows(np.union1d(self.train, prints), self.validation)

    def to_bytes(self) -> bytes:
        return save_arrays({"train": self.train, "validation": self.validation})

    @classmethod
    def from_bytes(cls, data: bytes) -> "SeenRows":
        arrays = load_arrays(data)
        train, validation = arrays["train"], arrays["validation"]
        if train.dtype != np.uint64 or validation.dtype != np.uint64 or train.ndim != 1 or validation.ndim != 1:
            raise ValueError("expected two 1-D uint64 arrays, train and validation")
        return cls(train, validation)


def seen_rows_warning(seen: SeenRows, X: np.ndarray, where: str, run: str = "RUN") -> str | None:
    """The warning for ``X`` (encoded) when some of its rows are rows the model was trained or stopped on."""
    in_train, in_val = seen.count(X)
    if not in_train and not in_val:
        return None
    which = [f"{in_train:,} training row{'s' if in_train != 1 else ''}"] if in_train else []
    if in_val:
        which.append(f"{in_val:,} validation row{'s' if in_val != 1 else ''}, which chose its epoch")
    return (f"{in_train + in_val:,} of the {len(X):,} rows of {where} ({(in_train + in_val) / len(X):.0%}) have the "
            f"same features as rows the model learned from ({'; '.join(which)}), so these scores are optimistic. "
            f"Score rows it has not seen: `trainwell evaluate {run}` without data scores its own held-out test "
            f"split (docs/evaluation.md).")
