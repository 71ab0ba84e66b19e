"""Temperature scaling: probabilities that mean what they say.

A network trained long past its best validation accuracy is often over-confident: its softmax
says 0.99 where it is right 90 % of the time (Guo, Pleiss, Sun & Weinberger, "On Calibration of
Modern Neural Networks", ICML 2017, https://arxiv.org/abs/1706.04599). Temperature scaling
divides the logits by one scalar ``T > 0`` fitted on the validation split by minimizing the
negative log-likelihood; it changes no prediction (``argmax(z / T) = argmax(z)``, and
``sigmoid(z / T) >= 0.5`` iff ``z >= 0``), only how confident the probabilities are. For a
packed ensemble (nn/ensemble.py) it acts on the ensemble's logits, the log of the members'
averaged probabilities.

``train.calibrate``: ``auto`` (default) keeps ``T`` when it lowers the *cross-validated*
validation log-loss (``T`` fitted on four fifths of the validation rows and scored on the fifth
left out, for each fifth) by more than twice its standard error: the in-sample fit always
"helps", but the default model is already close to calibrated (early stopping, and an ensemble
whose averaging costs at most 1 milli-nat of log-loss on the larger tables). On the suite's 8
classification tables x 6 seeds (bench/calibration.py, docs/training.md) a validation-fitted ``T``
lowered the test log-loss on 24 of 48 runs and beyond noise on 1 table of 8, whether it divides the
ensemble's logits, each member's, or the members' averaged logits; applied then, it moves test
probabilities at random (and on SwissLabor's 87 validation rows it made them worse).
``temperature`` always keeps it, ``none`` turns it off. The temperature is stored in
``model.json`` (``architecture.calibration``) and applied by the task head (nn/heads.py), so
``predict_proba``, the metrics, the scikit-learn estimators and export all use it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F


CHUNK = 8192
FOLD_SEED = 0      # the fixed dealing of the validation rows into folds for the cross-validated keep rule
FOLDS = 5
ECE_BINS = 15      # Guo et al. 2017 report ECE with 15 equal-width confidence bins


def nll(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Mean negative log-likelihood of (already scaled) logits: the classification log-loss."""
    if task == "multiclass":
        return F.cross_entropy(logits, y.long())
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), y.reshape(-1).float())
    return F.binary_cross_entropy_with_logits(logits, y.float())


def row_nll(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Each row's negative log-likelihood (multilabel: averaged over its labels)."""
    if task == "multiclass":
        return F.cross_entropy(logits, y.long(), reduction="none")
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), y.reshape(-1).float(), reduction="none")
    return F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none").mean(-1)


S_RANGE = (1e-4, 1e4)   # 1/T: a perfectly separated validation split would drive T to 0; kept within this


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """The ``T`` that minimizes ``nll(logits / T, y)`` (``fit_temperatures`` on every row)."""
    return float(fit_temperatures(logits, y, task, torch.ones(1, logits.shape[0], dtype=torch.bool))[0])


def fit_temperatures(logits: torch.Tensor, y: torch.Tensor, task: str, rows: torch.Tensor) -> torch.Tensor:
    """One ``T`` per row subset (``rows``: ``[K, n]`` booleans), each minimizing the mean NLL of its rows'
    ``logits / T``, found together. The NLL is convex in ``s = 1/T`` (its second derivative is the variance of
    the logits under the model's own probabilities), so its derivative rises through zero once: each subset
    keeps a bracket ``[lo, hi]`` of ``s`` around that zero and steps by Newton's method where the step stays
    inside it, by halving the bracket (geometrically) where it would not (a safeguarded Newton iteration,
    Press et al., *Numerical Recipes*, 3rd ed., section 9.4). A subset whose NLL still falls at the edge of
    ``S_RANGE`` (a validation split the network separates perfectly, or one it gets wrong on purpose) takes
    that edge. The K fits (the full split and the five folds of the keep rule) cost one small batched
    computation instead of K runs of a general optimizer."""
    z, t = logits.detach().double().cpu(), y.detach().cpu()
    weights = rows.double() / rows.sum(1, keepdim=True).clamp_min(1)
    k = rows.shape[0]
    lo, hi = torch.full((k,), S_RANGE[0], dtype=torch.float64), torch.full((k,), S_RANGE[1], dtype=torch.float64)
    falls_at_lo = _nll_derivatives(z, t, task, lo, weights)[0] < 0
    falls_at_hi = _nll_derivatives(z, t, task, hi, weights)[0] < 0
    s = torch.where(~falls_at_lo, lo, torch.where(falls_at_hi, hi, torch.ones(k, dtype=torch.float64)))
    active = falls_at_lo & ~falls_at_hi
    for _ in range(200):
        if not active.any():
            break
        grad, curvature = _nll_derivatives(z, t, task, s, weights)
        lo, hi = torch.where(active & (grad < 0), s, lo), torch.where(active & (grad > 0), s, hi)
        newton = s - grad / curvature.clamp_min(1e-300)
        step = torch.where((newton > lo) & (newton < hi), newton, (lo * hi).sqrt())
        flat = (grad * s).abs() <= 1e-14           # doubling s would move the NLL by less than this: done
        settled = flat | ((step - s).abs() <= 1e-13 * s) | (hi <= lo * (1 + 1e-13))
        s = torch.where(active & ~flat, step, s)
        active &= ~settled
    return 1.0 / s


def _per_row(z: torch.Tensor, t: torch.Tensor, task: str, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """For each scale in ``s`` ([K]) and row: the NLL of ``s z`` and its first two derivatives in ``s``."""
    if task == "multiclass":
        u = s[:, None, None] * z                                        # [K, n, C]
        p = torch.softmax(u, -1)
        z_true = z.gather(1, t.long().view(-1, 1)).squeeze(1)           # [n]
        mean_z = (p * z).sum(-1)
        return (torch.logsumexp(u, -1) - s[:, None] * z_true, mean_z - z_true,
                (p * z * z).sum(-1) - mean_z * mean_z)
    zz = z.reshape(z.shape[0], -1)                                      # binary [n, 1], multilabel [n, L]
    tt = t.reshape(zz.shape).double()
    u = s[:, None, None] * zz
    p = torch.sigmoid(u)
    return ((F.softplus(u) - tt * u).mean(-1), ((p - tt) * zz).mean(-1), (p * (1 - p) * zz * zz).mean(-1))


def _nll_derivatives(z, t, task, s, weights) -> tuple[torch.Tensor, torch.Tensor]:
    _, first, second = _per_row(z, t, task, s)
    return (weights * first).sum(1), (weights * second).sum(1)


def held_out_gains(logits: torch.Tensor, y: torch.Tensor, task: str, folds: int = FOLDS) -> np.ndarray:
    """Per validation row, how much a temperature lowers the log-loss of rows it was not fitted on: the
    rows dealt into ``folds`` folds (a fixed permutation), ``T`` fitted on the other folds and each
    fold's rows scored with and without it. Empty when there are too few rows to fold."""
    z, t = logits.detach().double().cpu(), y.detach().cpu()
    n = z.shape[0]
    gains = np.zeros(n)
    if n < 2 * folds:
        return gains[:0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(FOLD_SEED))
    held = [order[k::folds] for k in range(folds)]
    kept = torch.ones(folds, n, dtype=torch.bool)
    for k in range(folds):
        kept[k, held[k]] = False
    temperatures = fit_temperatures(z, t, task, kept)
    for k in range(folds):
        rows, T = held[k], float(temperatures[k])
        gains[rows.numpy()] = (row_nll(z[rows], t[rows], task) - row_nll(z[rows] / T, t[rows], task)).numpy()
    return gains


def generalises(gains: np.ndarray) -> bool:
    """The keep rule: the held-out gain is positive by more than twice its standard error, so a
    temperature that only moves the log-loss by noise (a well-calibrated ensemble) is not applied."""
    if len(gains) < 2:
        return False
    return bool(gains.mean() > 2.0 * gains.std(ddof=1) / np.sqrt(len(gains)))


@torch.no_grad()
def _logits(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(X[i:i + CHUNK]).float() for i in range(0, X.shape[0], CHUNK)])


def calibrate_run(run, data, setting: str) -> tuple[str | None, dict | None]:
    """Fit ``T`` on the validation split of ``data`` (train/loop.py Tensors) and set it on ``run``
    when ``setting`` says so; returns the decision line (None for tasks without probabilities) and
    the record for metrics.json (log-losses before and after; the test split's are only reported)."""
    task = run.pre.task
    if task not in ("binary", "multiclass", "multilabel"):
        return None, None
    if setting == "none":
        return "calibration: off (train.calibrate=none)", None
    if data.X_val.shape[0] == 0:
        return "calibration: none (no validation rows to fit a temperature on)", None
    if setting == "auto" and getattr(run.model, "crossfit", False):
        return ("calibration: none (cross-fitted members: the validation rows are scored out of fold, each by one "
                "member, so a temperature fitted there would be one member's, not the averaged ensemble's; "
                "train.calibrate=temperature fits it anyway)"), None
    z_val, y_val = _logits(run.model, data.X_val), data.y_val
    T = fit_temperature(z_val, y_val, task)
    # max(0, .): a perfectly separated split's log-loss rounds to -0.0, which would print as "-0.0000"
    before, after = (max(0.0, float(nll(z_val.double().cpu() / t, y_val.cpu(), task))) for t in (1.0, T))
    record = {"method": "temperature", "temperature": T, "val_log_loss_before": before, "val_log_loss_after": after}
    splits = [("val", z_val.double().cpu(), y_val.cpu())]
    if data.X_test.shape[0]:
        z_test = _logits(run.model, data.X_test).double().cpu()
        record["test_log_loss_before"], record["test_log_loss_after"] = (
            float(nll(z_test / t, data.y_test.cpu(), task)) for t in (1.0, T))
        splits.append(("test", z_test, data.y_test.cpu()))
    if task != "multilabel":
        for name, z, y in splits:
            bins = [reliability(probabilities(z / t, task), y.numpy(), task) for t in (1.0, T)]
            record[f"{name}_ece_before"], record[f"{name}_ece_after"] = bins[0]["ece"], bins[1]["ece"]
            record[f"{name}_accuracy_before"], record[f"{name}_accuracy_after"] = bins[0]["hits"], bins[1]["hits"]
    gains = held_out_gains(z_val, y_val, task)
    gain = float(gains.mean()) if len(gains) else float("nan")
    record["cross_validated_gain"] = gain
    record["cross_validated_gain_se"] = float(gains.std(ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else float("nan")
    keep = setting == "temperature" or (after < before and generalises(gains))
    record["applied"] = keep
    why = f"validation log-loss {before:.4f} -> {after:.4f}"
    if not keep:
        return (f"calibration: none (temperature scaling, T = {T:.3f}, does not lower the log-loss of "
                f"validation rows it was not fitted on by more than noise ({why} in-sample; "
                f"{-gain:+.4f} on rows left out of the fit, 5-fold); "
                f"train.calibrate=temperature applies it anyway)"), record
    set_temperature(run, T)
    return (f"calibration: temperature T = {T:.3f} fitted on the validation split, {why} "
            f"({-gain:+.4f} on rows left out of the fit, 5-fold); predicted labels "
            f"unchanged (Guo et al. 2017; train.calibrate=none turns it off)"), record


def probabilities(logits: torch.Tensor, task: str) -> np.ndarray:
    """Scaled logits -> probabilities as ``predict_proba`` gives them (binary: [N, 2])."""
    if task == "multiclass":
        return torch.softmax(logits, dim=-1).numpy()
    p = torch.sigmoid(logits).numpy()
    return np.stack([1.0 - p.reshape(-1), p.reshape(-1)], axis=1) if task == "binary" else p


def set_temperature(run, T: float) -> None:
    """Store ``T`` in the run's architecture (model.json) and in its head."""
    cal = dict(run.arch.get("calibration") or {})
    cal.update(method="temperature", temperature=float(T))
    run.arch["calibration"] = cal
    run.head = replace(run.head, temperature=float(T))


def temperature_of(arch: dict) -> float:
    """The stored temperature (1.0: uncalibrated, or a run saved before calibration existed)."""
    cal = arch.get("calibration") or {}
    return float(cal.get("temperature", 1.0))


def reliability(proba: np.ndarray, y: np.ndarray, task: str, bins: int = ECE_BINS) -> dict:
    """Confidence-vs-accuracy bins and the expected calibration error (Guo et al. 2017, eq. 3):
    ``ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`` over equal-width confidence bins.
    Binary: the confidence of the predicted class; multiclass: the top probability."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if task == "binary":
        p1 = proba.reshape(-1) if proba.ndim == 1 else proba[:, -1]
        pred = (p1 >= 0.5).astype(np.int64)
        conf = np.where(pred == 1, p1, 1.0 - p1)
    else:
        pred, conf = proba.argmax(-1), proba.max(-1)
    correct = (pred == y.astype(np.int64)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    acc = np.bincount(which, weights=correct, minlength=bins) / np.maximum(count, 1)
    mean_conf = np.bincount(which, weights=conf, minlength=bins) / np.maximum(count, 1)
    ece = float((count / max(len(conf), 1) * np.abs(acc - mean_conf)).sum())
    return {"ece": ece, "hits": float(correct.mean()) if len(correct) else float("nan"), "edges": edges.tolist(), "count": count.tolist(), "accuracy": acc.tolist(),
            "confidence": mean_conf.tolist()}
