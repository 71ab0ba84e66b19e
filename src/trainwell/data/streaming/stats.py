"""The one statistics pass over a streamed table, before training.

Row counts per split (and per data-parallel rank), the training split's feature mean / std
merged batch by batch in float64 (Chan, Golub & LeVeque, "Algorithms for computing the sample
variance", 1983), what the task detection needs of the target (its distinct values while there
are few, whether they are integers, its mean / std), and the validation / test rows while they
are small enough to keep in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainwell.data.labels import MAX_CLASSES, integer_task
from trainwell.data.scaling import Standardizer, add_features
from trainwell.data.streaming.hashing import assign_rank, assign_split, row_hash
from trainwell.core.errors import UserError


class Moments:
    """Running mean and M2 per column in float64, merged batch by batch (Chan et al.)."""

    def __init__(self):
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, X: np.ndarray) -> None:
        if len(X) == 0:
            return
        X = np.asarray(X, dtype=np.float64)
        nb = X.shape[0]
        mb = X.mean(axis=0)
        m2b = ((X - mb) ** 2).sum(axis=0)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        d = mb - self.mean
        self.mean = self.mean + d * (nb / n)
        self.m2 = self.m2 + m2b + d * d * (self.n * nb / n)
        self.n = n

    def standardizer(self) -> Standardizer:
        std = np.sqrt(self.m2 / max(self.n, 1))
        return Standardizer(mean=self.mean, std=np.where(std > 1e-12, std, 1.0))


class StatisticsPass:
    """Accumulates what one pass over the record batches learns (see the module docstring)."""

    def __init__(self, fractions: tuple[float, float, float], seed: int, world: int, features: list[str],
                 row_bytes: int, cache_bytes: int):
        self.fractions, self.seed, self.world, self.features = fractions, seed, world, features
        self.row_bytes, self.cache_bytes = row_bytes, cache_bytes
        self.moments, self.target_moments = Moments(), Moments()
        self.uniques: set = set()
        self.integral, self.text, self.overflow = True, False, False
        self.counts = [0, 0, 0]
        self.rank_counts = [0] * world
        self.held: dict[int, list] = {1: [], 2: []}
        self.held_bytes, self.hold = 0, True

    def add(self, ids: np.ndarray, X: np.ndarray, y: np.ndarray, path: Path) -> None:
        """One record batch: row ids, raw features, raw targets."""
        h = row_hash(ids, self.seed)
        part = assign_split(h, self.fractions)
        for k in (0, 1, 2):
            self.counts[k] += int((part == k).sum())
        tr = part == 0
        ranks = assign_rank(h[tr], self.world)
        for r in range(self.world):
            self.rank_counts[r] += int((ranks == r).sum())
        Xf = add_features(X, self.features) if self.features else X
        self.moments.add(Xf[tr])
        self._add_target(y, tr, path)
        if self.hold:
            self._hold(part, X, y)

    def _add_target(self, y: np.ndarray, tr: np.ndarray, path: Path) -> None:
        if y.dtype == object or y.dtype.kind in "USb":
            self.text = True
            self.uniques.update(y.tolist())
            return
        yf = y.astype(np.float64)
        if not np.isfinite(yf).all():
            raise UserError(f'The target in {path} has NaN/infinite values. Drop those rows.')
        self.integral = self.integral and bool((yf == np.round(yf)).all())
        self.target_moments.add(yf[tr].reshape(-1, 1))
        if not self.overflow:
            self.uniques.update(np.unique(y).tolist())
            self.overflow = len(self.uniques) > MAX_CLASSES

    def _hold(self, part: np.ndarray, X: np.ndarray, y: np.ndarray) -> None:
        """Keep validation / test rows in memory until they pass ``cache_bytes``, then none."""
        for k in (1, 2):
            sel = part == k
            if sel.any():
                self.held[k].append((X[sel], y[sel]))
                self.held_bytes += int(sel.sum()) * self.row_bytes
        if self.held_bytes > self.cache_bytes:
            self.hold, self.held = False, {1: [], 2: []}

    def task(self) -> str:
        """The task ``detect_task`` (data/labels.py) would find, from what one pass can know."""
        if self.text:
            return "binary" if len(self.uniques) <= 2 else "multiclass"
        if not self.integral:
            return "regression"
        # more than MAX_CLASSES distinct values (collection stopped there) is regression by integer_task's limit
        return integer_task(np.array(sorted(float(u) for u in self.uniques)), self.counts[0])

    def held_split(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Raw (X, y) of split ``k`` (1 val, 2 test) when it was kept in memory."""
        if not (self.hold and self.held[k]):
            return None
        return np.concatenate([a for a, _ in self.held[k]]), np.concatenate([b for _, b in self.held[k]])
