"""Class weights (``data.class_weight``) and per-row sample weights passed as an array (``sample_weight=``).

Class weights scale each row's loss by the weight of its true class, as scikit-learn's ``class_weight``
and Keras' ``class_weight`` do; the batch loss is the weighted mean
``sum_i w[y_i] l_i / sum_i w[y_i]`` (torch's ``cross_entropy(weight=...)`` reduction), so the loss keeps its
scale whatever the weights. ``balanced`` gives class c the weight ``n / (k * n_c)`` over the training rows
(scikit-learn's ``compute_class_weight``: every class then carries the same total weight).

Sample weights given as an array become a weight column (``data.weight``): the rows are resampled in
proportion to them (data/pipeline.py), the same path a weight column in a file takes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainwell.core.errors import UserError, did_you_mean

WEIGHT_COLUMN = "__trainwell_sample_weight__"


def resolve_class_weight(setting: Any, y_train: np.ndarray, classes: list, task: str) -> tuple[list[float] | None, str]:
    """The weight of each encoded class (index = class code) and a note saying where they come from."""
    if setting is None:
        return None, ""
    if task not in ("binary", "multiclass"):
        raise UserError(f"data.class_weight applies to binary and multiclass tasks; this task is {task}. "
                        f"Remove the setting, or weight rows with data.weight (a column of per-row weights).")
    names = [str(c) for c in classes]
    k = len(names)
    if setting == "balanced":
        counts = np.bincount(np.asarray(y_train, dtype=np.int64).reshape(-1), minlength=k).astype(float)
        n = counts.sum()
        weights = [float(n / (k * c)) if c > 0 else 1.0 for c in counts]
        how = "balanced: n / (classes x rows of the class) over the training split"
    else:
        unknown = [str(key) for key in setting if str(key) not in names]
        if unknown:
            raise UserError(f"data.class_weight names {', '.join(repr(u) for u in unknown)}, which "
                            f"{'is' if len(unknown) == 1 else 'are'} not a class of this data."
                            f"{did_you_mean(unknown[0], names)} The classes are: {', '.join(names)}.")
        given = {str(key): float(v) for key, v in setting.items()}
        if any(not np.isfinite(v) or v < 0 for v in given.values()) or not any(v > 0 for v in given.values()):
            raise UserError("data.class_weight values must be finite numbers >= 0, at least one of them > 0.")
        weights = [given.get(name, 1.0) for name in names]
        how = "given (classes not named weigh 1)"
    shown = ", ".join(f"{name}: {w:.3g}" for name, w in zip(names, weights))
    return weights, f"class weights ({how}): {shown}; the loss is the class-weighted mean"


def with_weight_column(X: Any, sample_weight: Any) -> tuple[pd.DataFrame, str]:
    """``X`` as a DataFrame with the weights as one more column (its name for ``data.weight``)."""
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(w) != len(X):
        raise UserError(f"sample_weight has {len(w)} values but X has {len(X)} rows; give one weight per row.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise UserError("sample_weight must hold finite numbers >= 0 (one per row).")
    if not (w > 0).any():
        raise UserError("Sample weights must contain at least one non-zero number.")
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(
        np.asarray(X), columns=[f"x{i}" for i in range(np.shape(X)[1])])
    return frame.assign(**{WEIGHT_COLUMN: w}), WEIGHT_COLUMN


def add_class_weight(arch: dict, spec: Any, prep: Any) -> list[str]:
    """Resolve ``data.class_weight`` on the training split into ``arch["class_weight"]`` (saved with the model,
    so the loaded head computes the same loss); the note for the console, or none."""
    setting = spec.data.class_weight
    if setting is None:
        return []
    y_train = getattr(prep, "y_train", None)
    if y_train is None and setting == "balanced":
        raise UserError("data.class_weight=balanced counts the training rows of each class, which a streamed "
                        "dataset does not hold in memory. Give the weights instead, e.g. data.class_weight={yes: 5}.")
    found = getattr(prep.pre.coder, "classes", None)
    classes = list(found) if found is not None else []
    weights, note = resolve_class_weight(setting, y_train, classes, prep.pre.task)
    arch["class_weight"] = weights
    return [note]


def weighted_accuracy(task: str, y_true: np.ndarray, proba: np.ndarray, class_weight: Any) -> float:
    """Accuracy with each row counted by its true class's weight: ``sum w[y] [pred = y] / sum w[y]``
    (``balanced`` weights make it scikit-learn's balanced accuracy on the training class frequencies)."""
    y = np.asarray(y_true).reshape(len(y_true), -1)[:, 0].astype(np.int64) if task == "binary" else \
        np.asarray(y_true, dtype=np.int64).reshape(-1)
    pred = (np.asarray(proba).reshape(-1) >= 0.5).astype(np.int64) if task == "binary" else \
        np.asarray(proba).argmax(axis=-1)
    w = np.asarray(class_weight, dtype=np.float64)[y]
    return float((w * (pred == y)).sum() / w.sum()) if w.sum() > 0 else float("nan")
