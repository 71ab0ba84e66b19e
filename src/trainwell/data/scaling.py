"""Feature scaling (z-score) and simple feature engineering.

Standardising puts every input on the same scale so one learning rate suits all
weights (PRACTICES §1); the statistics come from the training split only and are
saved with the model, so predict applies exactly the same transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainwell.errors import UserError, did_you_mean

FEATURES = ("squares",)
CHUNK = 8192        # rows per float64 block when fitting and applying the scaling


def _chunks(X: np.ndarray, fn):
    for i in range(0, X.shape[0], CHUNK):
        yield fn(X[i:i + CHUNK])


@dataclass
class Standardizer:
    """z-score ``(x - mean) / std`` with stats over axis 0; constant columns get std 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, per_channel: bool = False) -> "Standardizer":
        """Stats per feature (per pixel for images); ``per_channel``: one pair per image channel.

        With ``per_channel`` an [N, H, W] array gets one mean/std for all pixels and an
        [N, C, H, W] array one per channel C; for [N, F] tables it changes nothing.
        """
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise UserError(f"Cannot fit feature scaling on data of shape {X.shape}: it needs at least one row of features. Check the training split.")
        if per_channel and X.ndim == 3:
            axes: tuple[int, ...] = (0, 1, 2)
        elif per_channel and X.ndim == 4:
            axes = (0, 2, 3)
        else:
            axes = (0,)
        # two passes in float64, CHUNK rows at a time: the whole array in float64 would be
        # twice its float32 size again (370 MB for MNIST), once for the mean, once for the squares
        count = X.shape[0] * int(np.prod([X.shape[a] for a in axes[1:]]))
        total = sum(_chunks(X, lambda c: c.astype(np.float64).sum(axis=axes, keepdims=True)[0]))
        mean = total / count
        sq = sum(_chunks(X, lambda c: np.square(c.astype(np.float64) - mean).sum(axis=axes, keepdims=True)[0]))
        std = np.sqrt(sq / count)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, std=std)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        try:
            np.broadcast_shapes(X.shape[1:], self.mean.shape)
        except ValueError:
            raise UserError(
                f"The data has per-row shape {X.shape[1:]} but the scaler was fitted on {self.mean.shape}. "
                f"Use inputs with the same features as in training."
            ) from None
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """float32 (x - mean) / std, computed in float64 CHUNK rows at a time."""
        X = self._check(X)
        out = np.empty(np.broadcast_shapes(X.shape, (1, *self.mean.shape)), dtype=np.float32)
        for i in range(0, max(X.shape[0], 1), CHUNK):
            out[i:i + CHUNK] = (X[i:i + CHUNK] - self.mean) / self.std
        return out

    def inverse(self, X: np.ndarray) -> np.ndarray:
        """Undo transform (float32)."""
        X = self._check(X)
        return (X * self.std + self.mean).astype(np.float32)

    def to_json(self) -> dict:
        """Plain nested lists (full float64 precision survives json.dumps)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Standardizer":
        """Inverse of to_json."""
        return cls(mean=np.asarray(d["mean"], dtype=np.float64), std=np.asarray(d["std"], dtype=np.float64))


def _check_features(features: list[str]) -> None:
    for f in features:
        if f not in FEATURES:
            raise UserError(f'Unknown feature transform "{f}".{did_you_mean(f, FEATURES)} Valid: {", ".join(FEATURES)}.')


def add_features(X: np.ndarray, features: list[str]) -> np.ndarray:
    """Append engineered columns; "squares" adds x_j^2 (S0: the ellipse becomes linear)."""
    _check_features(features)
    X = np.asarray(X)
    for f in features:
        if f == "squares":
            if X.ndim != 2:
                raise UserError(f'Feature transform "squares" needs a table [N, F]; got shape {X.shape}. Drop it for image data.')
            X = np.concatenate([X, X * X], axis=1)
    return X.astype(np.float32) if features else X


def feature_names_after(names: list[str], features: list[str]) -> list[str]:
    """Column names matching add_features' output, e.g. ["x0", "x1", "x0^2", "x1^2"]."""
    _check_features(features)
    out = list(names)
    for f in features:
        if f == "squares":
            out = out + [f"{n}^2" for n in out]
    return out
