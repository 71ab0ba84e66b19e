"""Feature scaling (z-score) and simple feature engineering.

Standardising puts every input on the same scale so one learning rate suits all
weights (LeCun et al. 1998, Efficient BackProp); the statistics come from the training split only and are
saved with the model, so predict applies exactly the same transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainwell.core.errors import UserError, did_you_mean
from trainwell.data.piecewise import PiecewiseLinear

FEATURES = ("squares",)
CHUNK = 8192        # rows per float64 block when fitting and applying the scaling
COLUMNS = 16        # columns per float64 block when fitting a per-column statistic (median, quantiles)


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
    """Append engineered columns; "squares" adds x_j^2 (an ellipse boundary becomes linear)."""
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


# --------------------------------------------------------------------------- tables: robust and quantile

def binary_columns(X: np.ndarray) -> np.ndarray:
    """Boolean mask of the columns whose training values are all 0 or 1 (one-hot, indicators, flags)."""
    X = np.asarray(X)
    if X.shape[0] == 0:
        return np.zeros(X.shape[1], dtype=bool)
    return np.array([bool(np.isin(X[:, j], (0.0, 1.0)).all()) for j in range(X.shape[1])], dtype=bool)


def by_columns(X: np.ndarray, stats) -> np.ndarray:
    """``stats(block)`` -> [k, columns] statistics of ``X`` [rows, columns], computed on float64 copies of
    ``COLUMNS`` columns at a time: a median or quantile sorts a copy of what it is given, so a whole
    200,000 x 192 table in float64 cost 0.6 GB at the peak, a block of 16 columns 50 MB. Each column's
    statistic is computed as on the whole table, so the values are the same."""
    parts = [stats(np.asarray(X[:, j:j + COLUMNS], dtype=np.float64)) for j in range(0, X.shape[1], COLUMNS)]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(stats(np.zeros((1, 0)))), 0))


def _fit_table(X: np.ndarray, what: str) -> np.ndarray:
    """``X`` as float64 [rows, columns] with at least one row, or a clear error naming ``what`` is fitted."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise UserError(f"Cannot fit {what} on data of shape {X.shape}: it needs a table with at least one row.")
    return X


@dataclass
class RobustScaler:
    """Robust scaling then smooth clipping (RealMLP-TD: Holzmüller, Grinsztajn & Steinwart, "Better by
    Default: Strong Pre-Tuned MLPs and Boosted Trees on Tabular Data", NeurIPS 2024).

    Per column ``z = (x - median) / s`` with ``s`` the interquartile range (q75 - q25); where that is 0
    (a column mostly at one value), half the range ``(max - min) / 2``; where that is 0 too (a constant
    column), the column becomes 0. Then ``z / sqrt(1 + (z / 3)^2)``: the identity near 0, bounded by
    ±3, so an outlier (a salary of 10^7, a count of 5,000) cannot dominate a layer's input while the
    order of values is kept. All statistics come from the training split.

    Columns whose training values are all 0 or 1 (one-hot categories, missing indicators, yes/no
    flags) are left as they are (``keep``): they already lie within the clipped range; robust statistics
    of a rare indicator are degenerate (its IQR is 0, so half-range scaling would map 1 to 2, then
    clipping to 1.66, a value that depends on nothing meaningful); and 0/1 inputs are what the
    scikit-learn pipeline peer (one-hot next to scaled numbers) feeds its MLP.

    **Linear copies** (``linear``, ``data.linear_copy``). Clipping bounds a heavy tail, and with it the
    line a target may follow into that tail: a death count next to the row's total, one year's price
    next to the other years'. A network fed only the clipped value sees the largest values squeezed
    together and cannot carry the line out to them (docs/data.md#scaling-and-features measures it: a
    tuberculosis count predicted from the other age groups' counts, test R² −0.93 clipped). So each
    column whose training values reach ``|z| > 6``, twice the clip's knee, where the clip has taken more
    than half of a value's distance from the median (6 -> 2.68), is given a second time, appended after
    all columns, as a plain z-score ``(x - mean) / std`` of the training split. The clipped input keeps
    the bulk's resolution; the copy keeps the line, up to the training extremes: a new row's copy is held
    within the training range (a line carried further, through a logged target, can explode: Clothing).
    Copying from ``|z| > 3`` was measured too: about the same mean gain, with more tables losing. A column of fewer than 20 distinct values (a pixel's 17
    grey levels, a count of children) is not copied: each of its levels keeps its own clipped value and
    is seen in training, so there is no line to carry between sparse extremes.

    **Piecewise-linear encoding** (``piecewise``, ``data.piecewise``). Each scaled column (not the 0/1 ones)
    may also be given as its position through its training quantile bins (data/piecewise.py), appended
    after the linear copies, so one hidden layer can follow thresholds in it.
    """

    median: np.ndarray
    factor: np.ndarray
    keep: np.ndarray          # bool per column: passed through unchanged
    linear: np.ndarray | None = None   # bool per column: also appended as a plain z-score (a heavy tail)
    mean: np.ndarray | None = None     # the linear copies' training mean and standard deviation, per column
    std: np.ndarray | None = None
    low: np.ndarray | None = None      # the copies' training range: a new row's copy is held inside it
    high: np.ndarray | None = None
    piecewise: PiecewiseLinear | None = None   # quantile bins appended after the copies (data/piecewise.py)

    kind = "robust"
    knee = 3.0                # the clip's scale: z / sqrt(1 + (z / knee)^2)
    levels = 20               # distinct training values a column needs for a linear copy

    @classmethod
    def fit(cls, X: np.ndarray, linear_copy: bool = False, bins: int = 0) -> "RobustScaler":
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0:
            _fit_table(X, "robust scaling")      # the error for what is not a table with rows
        median, q25, q75, high, low, mean, std = by_columns(X, lambda B: np.stack(
            [np.median(B, axis=0), np.quantile(B, 0.25, axis=0), np.quantile(B, 0.75, axis=0),
             B.max(axis=0), B.min(axis=0), B.mean(axis=0), B.std(axis=0)]))
        spread = q75 - q25
        half = 0.5 * (high - low)
        spread = np.where(spread > 0, spread, half)
        factor = np.where(spread > 0, 1.0 / np.where(spread > 0, spread, 1.0), 0.0)
        keep = binary_columns(X)
        scaler = cls(median=np.where(keep, 0.0, median), factor=np.where(keep, 1.0, factor), keep=keep)
        if linear_copy:
            reach = np.maximum(high - median, median - low) * factor      # the largest |z| of the training rows
            linear = ~keep & (factor > 0) & (reach > 2 * cls.knee) & (std > 0)
            for j in np.flatnonzero(linear):      # a few levels stay distinct under the clip: nothing to carry
                linear[j] = len(np.unique(X[:, j])) >= cls.levels
            if linear.any():
                scaler.linear, scaler.mean, scaler.std = linear, mean[linear], std[linear]
                scaler.low, scaler.high = (low[linear] - scaler.mean) / scaler.std, (high[linear] - scaler.mean) / scaler.std
        if bins:
            scaler.piecewise = PiecewiseLinear.fit(X, ~keep & (factor > 0), bins)
        return scaler

    @property
    def n_bins(self) -> int:
        """How many inputs the piecewise-linear encoding appends."""
        return 0 if self.piecewise is None else self.piecewise.n_bins

    @property
    def n_linear(self) -> int:
        """How many inputs are appended as linear copies."""
        return 0 if self.linear is None else int(self.linear.sum())

    def names_after(self, names: list[str]) -> list[str]:
        """The input names after scaling: every column, ``"<name> (linear)"`` for each linear copy, then
        ``"<name> (bin k)"`` for each bin of the piecewise-linear encoding."""
        out = list(names)
        if self.n_linear:
            out += [f"{n} (linear)" for n, copied in zip(names, self.linear) if copied]
        if self.n_bins:
            out += self.piecewise.names(list(names))
        return out

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.median):
            raise UserError(f"The data has per-row shape {list(X.shape[1:])} but the scaler was fitted on "
                            f"[{len(self.median)}]. Use inputs with the same features as in training.")
        out = np.empty((X.shape[0], X.shape[1] + self.n_linear + self.n_bins), dtype=np.float32)
        width, copied = X.shape[1], X.shape[1] + self.n_linear
        for i in range(0, max(X.shape[0], 1), CHUNK):
            block = X[i:i + CHUNK].astype(np.float64)
            z = (block - self.median) * self.factor
            out[i:i + CHUNK, :width] = np.where(self.keep, z, z / np.sqrt(1.0 + (z / self.knee) ** 2))
            if self.n_linear:
                copies = (block[:, self.linear] - self.mean) / self.std
                out[i:i + CHUNK, width:copied] = copies if self.low is None else np.clip(copies, self.low, self.high)
            if self.n_bins:
                out[i:i + CHUNK, copied:] = self.piecewise.encode(block)
        return out

    def to_json(self) -> dict:
        d = {"kind": self.kind, "median": self.median.tolist(), "factor": self.factor.tolist(),
             "keep": self.keep.astype(bool).tolist()}
        if self.n_linear:
            d.update(linear=self.linear.astype(bool).tolist(), mean=self.mean.tolist(), std=self.std.tolist(),
                     low=self.low.tolist(), high=self.high.tolist())
        if self.n_bins:
            d["piecewise"] = self.piecewise.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RobustScaler":
        scaler = cls(np.asarray(d["median"], dtype=np.float64), np.asarray(d["factor"], dtype=np.float64),
                     np.asarray(d["keep"], dtype=bool))
        if "linear" in d:           # saved before linear copies existed: none
            scaler.linear = np.asarray(d["linear"], dtype=bool)
            scaler.mean, scaler.std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
            if "low" in d:          # saved before copies were held in their training range: unbounded
                scaler.low, scaler.high = np.asarray(d["low"], dtype=np.float64), np.asarray(d["high"], dtype=np.float64)
        if "piecewise" in d:        # saved before the encoding existed: none
            scaler.piecewise = PiecewiseLinear.from_json(d["piecewise"])
        return scaler


QUANTILES = 1000
BOUND = 1e-7


@dataclass
class QuantileScaler:
    """Each column through its training distribution to a standard normal: ``Phi^-1(F_train(x))``.

    ``F_train`` interpolates between (at most 1,000) training quantiles, averaging the interpolation
    from below and from above so that tied values (a discrete column) map to the middle of their
    probability step, as scikit-learn's QuantileTransformer does; probabilities are clipped to
    [1e-7, 1 - 1e-7], so outputs stay within ±5.2. Runs of equal quantiles are stored by their
    ends only (exact: interpolation on a flat run needs nothing else), which keeps model.json small
    for discrete columns. 0/1 columns are left as they are (see ``RobustScaler``).
    """

    quantiles: list[np.ndarray]
    probs: list[np.ndarray]
    keep: np.ndarray

    kind = "quantile"

    @classmethod
    def fit(cls, X: np.ndarray) -> "QuantileScaler":
        X = _fit_table(X, "the quantile transform")
        k = max(2, min(QUANTILES, X.shape[0]))
        p = np.linspace(0.0, 1.0, k)
        q = np.quantile(X, p, axis=0)
        qs, ps = [], []
        for j in range(X.shape[1]):
            col = q[:, j]
            same_prev = np.r_[False, col[1:] == col[:-1]]
            same_next = np.r_[col[:-1] == col[1:], False]
            sel = ~(same_prev & same_next)                 # the ends of each flat run, and everything else
            qs.append(col[sel])
            ps.append(p[sel])
        return cls(qs, ps, binary_columns(X))

    def transform(self, X: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri   # lazy: scipy (start-up), only the quantile scaler needs it
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.quantiles):
            raise UserError(f"The data has per-row shape {list(X.shape[1:])} but the scaler was fitted on "
                            f"[{len(self.quantiles)}]. Use inputs with the same features as in training.")
        out = np.empty(X.shape, dtype=np.float32)
        for j, (q, p) in enumerate(zip(self.quantiles, self.probs)):
            x = X[:, j]
            if self.keep[j]:
                out[:, j] = x
                continue
            up = np.interp(x, q, p)
            down = -np.interp(-x, -q[::-1], -p[::-1])
            u = np.clip(0.5 * (up + down), BOUND, 1.0 - BOUND)
            out[:, j] = ndtri(u)
        return out

    def to_json(self) -> dict:
        return {"kind": self.kind, "quantiles": [q.tolist() for q in self.quantiles],
                "probs": [p.tolist() for p in self.probs], "keep": self.keep.astype(bool).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "QuantileScaler":
        return cls([np.asarray(q, dtype=np.float64) for q in d["quantiles"]],
                   [np.asarray(p, dtype=np.float64) for p in d["probs"]], np.asarray(d["keep"], dtype=bool))


def scaler_from_json(d: dict | None):
    """Any scaler saved in model.json (a plain z-score has no ``kind``)."""
    if not d:
        return None
    kind = d.get("kind", "standard")
    if kind == "robust":
        return RobustScaler.from_json(d)
    if kind == "quantile":
        return QuantileScaler.from_json(d)
    return Standardizer.from_json(d)
