"""Metrics beyond the loss (docs/practices/heads.md), computed once per split after training.

Written with NumPy from their textbook definitions (docs/training.md) rather than through
scikit-learn's ``metrics``: importing scikit-learn costs about a second of start-up, more than
training a small table takes. tests/test_start_up.py checks every value against scikit-learn's
(``accuracy_score``, ``precision_score`` ... with ``zero_division=0``, ``roc_auc_score``, ``r2_score``).
"""
from __future__ import annotations

import math

import numpy as np


def _clean(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def confusion(y: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    """counts[i, j]: rows of true class i predicted as j (classes 0..n_labels-1; others ignored)."""
    keep = (y >= 0) & (y < n_labels) & (pred >= 0) & (pred < n_labels)
    flat = y[keep].astype(np.int64) * n_labels + pred[keep].astype(np.int64)
    return np.bincount(flat, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision tp/(tp+fp), recall tp/(tp+fn) and F1 2tp/(2tp+fp+fn) of each class."""
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    return _ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, predicted + actual)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counted half:
    the Mann-Whitney U statistic over n_pos * n_neg (Hanley & McNeil 1982), with average ranks."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)   # 1-based average rank per tie group
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(task: str, y_true: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 (macro for multiclass), ROC AUC (binary), confusion matrix."""
    if task == "binary":
        pred = (proba >= 0.5).astype(np.int64)
        y = y_true.astype(np.int64)
        cm = confusion(y, pred, 2)
        p, r, f = per_class_prf(cm)
        out = {"accuracy": float(np.mean(pred == y)), "precision": float(p[1]), "recall": float(r[1]),
               "f1": float(f[1]), "roc_auc": roc_auc(y, proba) if len(np.unique(y)) == 2 else float("nan"),
               "confusion_matrix": cm.tolist()}
    elif task == "multiclass":
        pred = proba.argmax(-1)
        cm = confusion(np.asarray(y_true), pred, proba.shape[1])
        p, r, f = per_class_prf(cm)
        out = {"accuracy": float(np.mean(pred == y_true)), "precision": float(p.mean()), "recall": float(r.mean()),
               "f1": float(f.mean()), "confusion_matrix": cm.tolist()}
    else:  # multilabel: each label a binary problem
        pred = (proba >= 0.5).astype(np.int64)
        y = y_true.astype(np.int64)
        tp = (pred & y).sum(axis=0)
        f1 = _ratio(2 * tp, pred.sum(axis=0) + y.sum(axis=0))
        out = {"accuracy": float((pred == y).mean()), "subset_accuracy": float((pred == y).all(axis=1).mean()),
               "f1": float(f1.mean()), "per_label_accuracy": (pred == y).mean(axis=0).tolist(),
               "per_label_f1": f1.tolist()}
    return _clean(out)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MAE, MSE, RMSE and R^2 in the target's original units (each averaged over the targets).

    R^2 = 1 - SS_res / SS_tot per target; a constant target scores 1 when predicted exactly and 0
    otherwise (scikit-learn's ``force_finite``)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    err = y_true - y_pred
    mse = float(np.mean(np.mean(err ** 2, axis=0)))
    r2 = float("nan")
    if len(y_true) > 1:
        ss_res = (err ** 2).sum(axis=0)
        ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
        per = np.where(ss_tot > 0, 1.0 - _ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
        r2 = float(per.mean())
    return _clean({"mae": float(np.mean(np.mean(np.abs(err), axis=0))), "mse": mse, "rmse": math.sqrt(mse), "r2": r2})
