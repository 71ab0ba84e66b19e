"""Regression targets: log for skewed ones, z-score, and predictions kept within the training range.

``data.target_transform``:

- ``auto`` (default): a target column is modelled as ``log1p(y)`` when every training value is
  > 0, its skewness on the training split exceeds ``SKEW`` = 2, and the log makes it more
  symmetric (|skewness of log1p(y)| < |skewness of y|). 2 is the skewness of the exponential
  distribution: above it the right tail is heavier than exponential (incomes, counts, prices
  spanning orders of magnitude), squared error on the raw scale is dominated by a few rows, and
  a network fitted on the log scale learns relative differences that hold across the range.
  Below it the log did not pay, measured on the reference tables (3 outer splits each, default
  model, R² in original units): Hitters salaries (skewness 1.6) 0.516 with the log against 0.502
  without (one split of three worse), Windsor house prices (1.2) 0.604 against 0.637 — the
  back-transformed prediction estimates the median rather than the mean, which costs R² when the
  tail is moderate. A threshold of 1 (the usual "highly skewed" line) would have logged both.
  Zeros rule it out: a skewed target with zeros is a count (visits, trips, affairs), whose many
  zeros the log squeezes together while ``expm1`` of the fitted log-scale mean lands far below the
  mean. Measured on every table where the old rule (values >= 0) took the log, 10 outer splits,
  R² without the log against with it (docs/data.md): counts with zeros NMES1988 +0.022 ± 0.007,
  Ornstein +0.084 ± 0.045, RecreationDemand +0.097 ± 0.087 (one split at R² -1.0 with the log),
  Affairs -0.017 ± 0.012; positive targets cpus -0.146 ± 0.023 (the log is kept), Clothing +0.030
  ± 0.016.
- ``log``: log1p for every target column (refused if a training value is negative);
- ``none``: the raw values.

Then every regression target is z-scored on the training split (as before). Predictions are
inverted (``expm1`` after undoing the z-score), so ``predict`` returns original units.

``data.smearing`` (default true): ``expm1`` of a prediction on the log scale estimates the *median*
of the target given the inputs, not its mean, and on a skewed target the median lies well below the
mean (a count of doctor visits: most people few, some many). Squared error and R² in original units
reward the mean. Duan's smearing estimate (Duan, "Smearing estimate: a nonparametric retransformation
method", JASA 1983, https://doi.org/10.1080/01621459.1983.10478017) multiplies ``exp`` of the log-scale
prediction by ``S = mean(exp(r_i))``, the residuals ``r_i`` of the log-scale fit, with no assumption
about their distribution. trainwell takes the residuals of the validation rows (rows the weights were
not fitted on, so ``S`` is not shrunk by overfitting) and stores ``log S`` as a shift added before
``expm1``: ``prediction = S * exp(v) - 1``, but only when ``S`` lowers the squared error of validation
rows it was not fitted on (train/smearing.py says why).

``data.clip_predictions`` (default true): predictions are clipped to the training target range
widened by 5 % of its width on each side (not below 0 when every training target is >= 0): a
network extrapolates linearly outside the data it saw, and after ``expm1`` an extrapolation can
be off by orders of magnitude. True targets are never clipped or shifted (``inverse(..., prediction=False)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainwell.core.errors import UserError

SKEW = 2.0
MARGIN = 0.05


def skewness(y: np.ndarray) -> np.ndarray:
    """Fisher-Pearson skewness m3 / m2^1.5 per column (0 for constant columns)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    d = y - y.mean(axis=0)
    m2, m3 = (d ** 2).mean(axis=0), (d ** 3).mean(axis=0)
    return np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)


@dataclass
class TargetPlan:
    """Which columns are logged and the clip range, in original units."""

    log: list[bool]
    low: list[float] | None = None
    high: list[float] | None = None
    shift: list[float] | None = None   # log of the smearing factor per logged column, added before expm1

    @classmethod
    def fit(cls, y_train: np.ndarray, how: str, clip: bool, names: list[str] | None = None
            ) -> tuple["TargetPlan", list[str]]:
        y = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
        names = names or [f"target {j}" if y.shape[1] > 1 else "target" for j in range(y.shape[1])]
        nonneg = (y >= 0).all(axis=0) if len(y) else np.ones(y.shape[1], dtype=bool)
        raw = skewness(y)
        logged = skewness(np.log1p(np.where(y >= 0, y, 0.0)))
        notes = []
        if how == "log":
            if not nonneg.all():
                bad = names[int(np.flatnonzero(~nonneg)[0])]
                raise UserError(f"data.target_transform=log needs targets >= 0, but {bad} has negative values in the "
                                f"training split. Use data.target_transform=auto or none.")
            log = [True] * y.shape[1]
            notes.append("target: log1p (data.target_transform=log), then z-score; predictions inverted (expm1)")
        elif how == "auto":
            positive = (y > 0).all(axis=0) if len(y) else np.ones(y.shape[1], dtype=bool)
            skewed = [bool(raw[j] > SKEW and abs(logged[j]) < abs(raw[j])) for j in range(y.shape[1])]
            log = [bool(positive[j] and skewed[j]) for j in range(y.shape[1])]
            for j in range(y.shape[1]):
                if log[j]:
                    notes.append(f"target: log1p for {names[j]} (training values > 0, skewness {raw[j]:.2f} > {SKEW:g}; "
                                 f"{logged[j]:.2f} after the log), then z-score; predictions inverted with expm1 "
                                 f"(data.target_transform=none keeps the raw scale)")
                elif skewed[j] and nonneg[j]:
                    notes.append(f"target: {names[j]} is skewed ({raw[j]:.2f} > {SKEW:g}) but {np.mean(y[:, j] == 0):.0%} "
                                 f"of its training values are 0, as a count's: modelled on its own scale, whose mean R² "
                                 f"and squared error score (data.target_transform=log models log1p)")
            if not any(log):
                notes.append(f"target: z-score fitted on the training split (skewness {_fmt2(raw)}; no log: "
                             f"docs/data.md#the-target); predictions are returned in original units")
        else:
            log = [False] * y.shape[1]
            notes.append("target: z-score fitted on the training split (data.target_transform=none); predictions are "
                         "returned in original units")
        plan = cls(log)
        if clip and len(y):
            lo, hi = y.min(axis=0), y.max(axis=0)
            m = MARGIN * (hi - lo)
            low = np.where(nonneg, np.maximum(lo - m, 0.0), lo - m)
            plan.low, plan.high = low.tolist(), (hi + m).tolist()
            notes.append(f"predictions clipped to the training target range + 5%: [{_fmt(plan.low)}, {_fmt(plan.high)}] "
                         f"(data.clip_predictions=false to turn off)")
        return plan, notes

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Original units -> the modelled scale (log1p where chosen), float64 [N, T]."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), len(self.log))
        if any(self.log):
            flags = np.asarray(self.log, dtype=bool)
            y = np.where(flags, np.log1p(np.where(flags, np.maximum(y, -1.0 + 1e-12), 0.0)), y)
        return y

    def inverse(self, v: np.ndarray, prediction: bool = True) -> np.ndarray:
        """The modelled scale -> original units (expm1 where logged). A ``prediction`` (not a true
        target) also gets the smearing shift and the clip to the training range."""
        shape = np.shape(v)
        v = np.asarray(v, dtype=np.float64).reshape(shape[0] if shape else 1, len(self.log))
        if any(self.log):
            flags = np.asarray(self.log, dtype=bool)
            if prediction and self.shift is not None:
                v = v + np.asarray(self.shift, dtype=np.float64)
            v = np.where(flags, np.expm1(np.where(flags, np.minimum(v, 700.0), 0.0)), v)
        if prediction and self.low is not None:
            v = np.clip(v, np.asarray(self.low), np.asarray(self.high))
        return v.reshape(shape)

    def to_json(self) -> dict:
        return {"log": list(self.log), "low": self.low, "high": self.high,
                **({"shift": list(self.shift)} if self.shift is not None else {})}

    @classmethod
    def from_json(cls, d: dict | None) -> "TargetPlan | None":
        if not d:
            return None
        return cls([bool(b) for b in d.get("log", [])], d.get("low"), d.get("high"), d.get("shift"))


def _fmt2(v) -> str:
    return ", ".join(f"{x:.2f}" for x in np.atleast_1d(v)[:4])


def _fmt(v) -> str:
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    return ", ".join(f"{x:.4g}" for x in v[:4]) + (", ..." if len(v) > 4 else "")
