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

from trainwell.report.plots import save_svg
from trainwell.report.svg import GREY, PALETTE, Panel, figure
from trainwell.train.metrics import roc_auc

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


def threshold_counts(true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when predicting positive at score >= each distinct score, highest first
    (the thresholds scikit-learn's ``roc_curve`` and ``precision_recall_curve`` walk)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    s, y = np.asarray(score, dtype=float)[order], np.asarray(true)[order] == 1
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]        # the last row of each tie group
    tp = np.cumsum(y)[last].astype(float)
    return tp, (last + 1 - tp).astype(float)


def roc_pr_points(true: np.ndarray, score: np.ndarray) -> dict:
    """ROC (fpr, tpr from (0, 0)) and precision-recall (recall, precision from recall 0, precision 1) points,
    with the average precision sum_n (R_n - R_{n-1}) P_n (scikit-learn's definition, no interpolation)."""
    tp, fp = threshold_counts(true, score)
    pos, neg = max(tp[-1], 1.0), max(fp[-1], 1.0)
    precision, recall = tp / np.maximum(tp + fp, 1.0), tp / pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return {"fpr": np.r_[0.0, fp / neg], "tpr": np.r_[0.0, tp / pos], "recall": np.r_[0.0, recall],
            "precision": np.r_[1.0, precision], "average_precision": ap}


def plot_roc_pr(true: np.ndarray, score: np.ndarray, positive: str, path: str | Path) -> Path:
    """ROC curve (with its AUC) and precision-recall curve (with average precision) for a binary task; the
    dot marks the 0.5 threshold that ``predict`` uses, the dashed lines what a random guess gets."""
    pts = roc_pr_points(true, score)
    auc = roc_auc(true, score)
    at = score >= 0.5
    pos, neg = max(int((true == 1).sum()), 1), max(int((true == 0).sum()), 1)
    op_tpr, op_fpr = float((at & (true == 1)).sum()) / pos, float((at & (true == 0)).sum()) / neg
    box = {"xlim": (-0.02, 1.02), "ylim": (-0.02, 1.02)}
    roc = Panel(f"ROC curve (positive class: {positive})", "false positive rate", "true positive rate (recall)", **box,
                legend_at="lower right")
    roc.add("line", pts["fpr"], pts["tpr"], label=f"model (AUC {auc:.3f})")
    roc.add("line", [0, 1], [0, 1], label="random guess (AUC 0.5)", colour=GREY, dash=True)
    roc.add("points", [op_fpr], [op_tpr], label="threshold 0.5", colour=PALETTE[3])
    base = float(np.mean(true == 1))
    pr = Panel(f"precision-recall curve (positive class: {positive})", "recall", "precision", **box,
               legend_at="lower left")
    pr.add("step", pts["recall"][::-1], pts["precision"][::-1], label=f"model (average precision "
                                                                      f"{pts['average_precision']:.3f})")
    pr.add("hline", [0], [base], label=f"random guess ({base:.3f})", colour=GREY, dash=True)
    predicted = max(int(at.sum()), 1)
    pr.add("points", [op_tpr], [float((at & (true == 1)).sum()) / predicted], label="threshold 0.5", colour=PALETTE[3])
    return save_svg(figure([roc, pr]), path)


def regression_columns(preds: pd.DataFrame) -> list[tuple[str, str]]:
    return [(c, "pred_" + c[len("true_"):]) for c in preds.columns
            if c.startswith("true_") and "pred_" + c[len("true_"):] in preds]


def plot_regression(preds: pd.DataFrame, path: str | Path) -> Path:
    """Per target: predicted vs true (points on the dashed identity line are exact) and residuals
    (true - predicted) against the prediction: a trend or a funnel shape is error the model left."""
    pairs = regression_columns(preds)[:4]
    panels = []
    for tc, pc in pairs:
        t, p = preds[tc].to_numpy(float), preds[pc].to_numpy(float)
        suffix = f" (target {tc[len('true_'):]})" if len(pairs) > 1 else ""
        left = Panel("predicted vs true (test split)" + suffix, "true", "predicted")
        left.add("points", t, p)
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        left.add("line", [lo, hi], [lo, hi], label="predicted = true", colour=GREY, dash=True)
        right = Panel("residuals (test split)" + suffix, "predicted", "residual (true - predicted)", legend=False)
        right.add("points", p, t - p)
        right.add("hline", [0], [0], colour=GREY, dash=True)
        panels += [left, right]
    return save_svg(figure(panels, columns=2), path)


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
