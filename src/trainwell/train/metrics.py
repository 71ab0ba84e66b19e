"""Metrics beyond the loss (PRACTICES §3), computed once per split after training."""
from __future__ import annotations

import math

import numpy as np


def _clean(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def classification_metrics(task: str, y_true: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 (macro for multiclass), ROC AUC (binary), confusion matrix."""
    from sklearn import metrics as skm   # imported on use: `trainwell predict` never needs it
    if task == "binary":
        pred = (proba >= 0.5).astype(np.int64)
        y = y_true.astype(np.int64)
        out = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "precision": float(skm.precision_score(y, pred, zero_division=0)),
            "recall": float(skm.recall_score(y, pred, zero_division=0)),
            "f1": float(skm.f1_score(y, pred, zero_division=0)),
            "roc_auc": float(skm.roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else float("nan"),
            "confusion_matrix": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        }
    elif task == "multiclass":
        pred = proba.argmax(-1)
        labels = list(range(proba.shape[1]))
        out = {
            "accuracy": float(skm.accuracy_score(y_true, pred)),
            "precision": float(skm.precision_score(y_true, pred, average="macro", labels=labels, zero_division=0)),
            "recall": float(skm.recall_score(y_true, pred, average="macro", labels=labels, zero_division=0)),
            "f1": float(skm.f1_score(y_true, pred, average="macro", labels=labels, zero_division=0)),
            "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=labels).tolist(),
        }
    else:  # multilabel
        pred = (proba >= 0.5).astype(np.int64)
        y = y_true.astype(np.int64)
        out = {
            "accuracy": float((pred == y).mean()),
            "subset_accuracy": float(skm.accuracy_score(y, pred)),
            "f1": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
            "per_label_accuracy": (pred == y).mean(axis=0).tolist(),
            "per_label_f1": skm.f1_score(y, pred, average=None, zero_division=0).tolist(),
        }
    return _clean(out)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MAE, MSE, RMSE and R^2 in the target's original units."""
    from sklearn import metrics as skm   # imported on use: `trainwell predict` never needs it
    y_true = y_true.reshape(len(y_true), -1)
    y_pred = y_pred.reshape(len(y_pred), -1)
    mse = float(skm.mean_squared_error(y_true, y_pred))
    r2 = float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")
    return _clean({"mae": float(skm.mean_absolute_error(y_true, y_pred)), "mse": mse,
                   "rmse": math.sqrt(mse), "r2": r2})
