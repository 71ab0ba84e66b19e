"""What the model outputs on the held-out split, read from ``test_predictions.csv``: the report's answers to
"where is it wrong?" — a per-class precision/recall/F1 table, ROC and precision-recall curves (binary),
the most confidently wrong examples, and residuals next to predicted-vs-true (regression).

Definitions follow scikit-learn's user guide (https://scikit-learn.org/stable/modules/model_evaluation.html):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean, each 0 when undefined.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.report.plots import plt, save_figure

PROBA = "proba_"          # test_predictions.csv: one probability column per class, "proba_<class name>"


def proba_columns(preds: pd.DataFrame) -> list[str]:
    return [c for c in preds.columns if c.startswith(PROBA)]


def class_names(preds: pd.DataFrame, classes: list[str] | None) -> list[str]:
    """The class names: the coder's, else those of the probability columns, else 0..k-1."""
    k = int(max(preds["true"].max(), preds["pred"].max())) + 1
    cols = proba_columns(preds)
    k = max(k, len(cols), len(classes or []))
    if classes and len(classes) == k:
        return [str(c) for c in classes]
    if len(cols) == k:
        return [c[len(PROBA):] for c in cols]
    return [str(i) for i in range(k)]


def per_class_table(true: np.ndarray, pred: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, computed from the confusion matrix (numpy only, so the test
    can check it against ``sklearn.metrics.precision_recall_fscore_support``)."""
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0).astype(float), cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    return pd.DataFrame({"class": names, "precision": precision, "recall": recall, "f1": f1,
                         "support": actual.astype(int)})


def confident_errors(preds: pd.DataFrame, names: list[str], top: int = 10) -> pd.DataFrame:
    """The wrong predictions the model was surest of (highest probability given to the predicted class):
    usually mislabelled rows, ambiguous inputs or a class the features cannot separate."""
    cols = proba_columns(preds)
    wrong = preds[preds["true"] != preds["pred"]]
    if wrong.empty or len(cols) != len(names):
        return pd.DataFrame(columns=["test row", "true", "predicted", "p(predicted)", "p(true)"])
    p = wrong[cols].to_numpy(dtype=float)
    t, q = wrong["true"].to_numpy(int), wrong["pred"].to_numpy(int)
    rows = np.arange(len(wrong))
    frame = pd.DataFrame({"test row": wrong.index.to_numpy(), "true": [names[i] for i in t],
                          "predicted": [names[i] for i in q], "p(predicted)": p[rows, q], "p(true)": p[rows, t]})
    return frame.sort_values("p(predicted)", ascending=False, kind="stable").head(top)


def plot_roc_pr(true: np.ndarray, score: np.ndarray, positive: str, path: str | Path) -> Path:
    """ROC curve (with its AUC) and precision-recall curve (with average precision) for a binary task; the
    dot marks the 0.5 threshold that ``predict`` uses, the dashed lines what a random guess gets."""
    from sklearn import metrics as skm   # imported on use: only reports need it
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    fpr, tpr, _ = skm.roc_curve(true, score)
    auc = skm.roc_auc_score(true, score)
    at = score >= 0.5
    pos, neg = max(int((true == 1).sum()), 1), max(int((true == 0).sum()), 1)
    op_tpr, op_fpr = float((at & (true == 1)).sum()) / pos, float((at & (true == 0)).sum()) / neg
    ax = axes[0]
    ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="random guess (AUC 0.5)")
    ax.plot([op_fpr], [op_tpr], "o", color="C3", label="threshold 0.5")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title(f"ROC curve (positive class: {positive})")
    precision, recall, _ = skm.precision_recall_curve(true, score)
    ap = skm.average_precision_score(true, score)
    base = float(np.mean(true == 1))
    ax = axes[1]
    ax.step(recall, precision, where="post", label=f"model (average precision {ap:.3f})")
    ax.axhline(base, linestyle="--", color="grey", linewidth=1, label=f"random guess ({base:.3f})")
    predicted = max(int(at.sum()), 1)
    ax.plot([op_tpr], [float((at & (true == 1)).sum()) / predicted], "o", color="C3", label="threshold 0.5")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall curve (positive class: {positive})")
    for ax in axes:
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is axes[0] else "lower left")
    return save_figure(fig, path)


def regression_columns(preds: pd.DataFrame) -> list[tuple[str, str]]:
    return [(c, "pred_" + c[len("true_"):]) for c in preds.columns
            if c.startswith("true_") and "pred_" + c[len("true_"):] in preds]


def plot_regression(preds: pd.DataFrame, path: str | Path) -> Path:
    """Per target: predicted vs true (points on the dashed identity line are exact) and residuals
    (true - predicted) against the prediction: a trend or a funnel shape is error the model left."""
    pairs = regression_columns(preds)[:4]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(11, 4.4 * len(pairs)), squeeze=False)
    for (tc, pc), (left, right) in zip(pairs, axes):
        t, p = preds[tc].to_numpy(float), preds[pc].to_numpy(float)
        name = tc[len("true_"):]
        suffix = f" (target {name})" if len(pairs) > 1 else ""
        left.scatter(t, p, s=10, alpha=0.6)
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        left.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="predicted = true")
        left.set_xlabel("true")
        left.set_ylabel("predicted")
        left.set_title("predicted vs true (test split)" + suffix)
        left.legend(fontsize=8)
        right.scatter(p, t - p, s=10, alpha=0.6)
        right.axhline(0, color="grey", linestyle="--", linewidth=1)
        right.set_xlabel("predicted")
        right.set_ylabel("residual (true - predicted)")
        right.set_title("residuals (test split)" + suffix)
        for ax in (left, right):
            ax.grid(alpha=0.3)
    return save_figure(fig, path)


def largest_errors(preds: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The test rows with the largest absolute error on the first target."""
    pairs = regression_columns(preds)
    if not pairs:
        return pd.DataFrame()
    tc, pc = pairs[0]
    err = (preds[tc] - preds[pc]).abs()
    order = err.sort_values(ascending=False, kind="stable").index[:top]
    return pd.DataFrame({"test row": order, "true": preds.loc[order, tc].to_numpy(),
                         "predicted": preds.loc[order, pc].to_numpy(), "absolute error": err[order].to_numpy()})
