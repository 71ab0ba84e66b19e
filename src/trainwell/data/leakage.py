"""Feature columns that give the target away on the training rows, named before training.

A column that is the target under another name, or a value recorded only after the outcome was known
(a closing price next to the day's close, a recovery amount on a loan-default table, the date a claim was
paid), lets a model score almost perfectly on a random split and fail on the rows it is meant for. This is
*leakage* (Kaufman, Rosset, Perlich & Stitelman, "Leakage in Data Mining: Formulation, Detection, and
Avoidance", ACM TKDD 6(4), 2012, https://doi.org/10.1145/2382577.2382579). Only the person who knows how
the table was collected can tell whether such a column will be known at prediction time, so trainwell
does not drop it: it names it, with the evidence, and says how to drop it.

A raw column is named when, on the training rows alone, one of these holds:

- regression: a number whose correlation with the target is at least 0.999 in absolute value;
- classification: its values (a number, or a text column's category) each belong to a single class while
  it takes at most two values per class (a copy or a recoding of the label, not a feature with many values
  that happens to be pure);
- classification: a number that puts every class in its own range of values, ranges that touch: the gaps
  between them are within 20 typical spacings of the values (interquartile range / rows), as where the label
  was made by thresholding the number; classes far apart (iris's setosa by its petals) are a strong feature;
- classification: whether the value is missing tells the class (missing in every row of some classes,
  present in every row of the others).

The checks read at most ``SAMPLE_ROWS`` training rows, then confirm on all of them what they found, so a
wide table costs a fraction of a second. Fewer than ``MIN_ROWS`` rows are not judged.
"""
from __future__ import annotations

import numpy as np

MIN_ROWS = 30
SAMPLE_ROWS = 5_000
MIN_CORRELATION = 0.999
MAX_VALUE_SHARE = 0.2     # a column judged by its values takes at most this many distinct values per row
VALUES_PER_CLASS = 2      # ... and at most this many per class: a code for the label, not a strong feature
GAP_SPACINGS = 20         # classes' ranges closer than this many typical spacings (IQR / rows): a threshold


def target_leaks(X: np.ndarray, y: np.ndarray, groups: list[str], task: str, seed: int = 0) -> dict[str, str]:
    """Raw column -> why it gives the target away, for the encoded training rows ``X`` (before imputation,
    NaN where a value is missing), their encoded targets ``y`` and each input's raw column ``groups``."""
    if X.ndim != 2 or len(X) < MIN_ROWS or task not in ("binary", "multiclass", "regression") or not groups:
        return {}
    inputs: dict[str, list[int]] = {}
    for j, name in enumerate(groups):
        inputs.setdefault(str(name), []).append(j)
    y = np.asarray(y)
    sample = np.sort(np.random.default_rng(seed).choice(len(X), SAMPLE_ROWS, replace=False)) \
        if len(X) > SAMPLE_ROWS else None
    X_sample, y_sample = (X, y) if sample is None else (X[sample], y[sample])
    found = {}
    for name, cols in inputs.items():
        if _why(X_sample[:, cols], y_sample, task) is None:
            continue
        why = _why(X[:, cols], y, task) if sample is not None else _why(X_sample[:, cols], y_sample, task)
        if why is not None:
            found[name] = why
    return found


def _why(block: np.ndarray, y: np.ndarray, task: str) -> str | None:
    """The evidence that this raw column's inputs reproduce ``y``, or None."""
    if task == "regression":
        single = block.shape[1] == 1 and y.reshape(len(y), -1).shape[1] == 1
        return _correlated(block[:, 0], y.reshape(-1)) if single else None
    y = y.reshape(-1).astype(np.int64)
    return _values_decide(_value_codes(block), y) or (_ranges_decide(block[:, 0], y) if block.shape[1] == 1 else None) \
        or (_missing_decides(np.isnan(block).any(axis=1), y))


def _correlated(x: np.ndarray, y: np.ndarray) -> str | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < MIN_ROWS or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    r = float(np.corrcoef(x[ok].astype(np.float64), y[ok].astype(np.float64))[0, 1])
    return f"correlation {r:+.4f} with the target" if abs(r) >= MIN_CORRELATION else None


def _value_codes(block: np.ndarray) -> np.ndarray:
    """One code per row for the column's value: a number, a category (the one-hot input that is set), or missing."""
    if block.shape[1] == 1:
        values = np.where(np.isnan(block[:, 0]), np.inf, block[:, 0])     # missing: a value of its own
        return np.unique(values, return_inverse=True)[1].reshape(-1)
    missing = np.isnan(block).any(axis=1)
    filled = np.nan_to_num(block, nan=0.0)
    code = np.where(filled.max(axis=1) > 0, filled.argmax(axis=1), block.shape[1])   # none set: "other"
    return np.where(missing, block.shape[1] + 1, code)


def _values_decide(codes: np.ndarray, y: np.ndarray) -> str | None:
    n_codes, n_classes = int(codes.max()) + 1, int(y.max()) + 1
    if n_codes < 2 or n_codes > MAX_VALUE_SHARE * len(codes) or y.min() == y.max():
        return None
    used = len(np.unique(codes))
    if used > VALUES_PER_CLASS * len(np.unique(y)):      # many values, each in one class: a strong feature, not a code
        return None
    pairs = len(np.unique(codes * n_classes + y))
    return f"each of its {used} values belongs to one class" if pairs == used and used > 1 else None


def _ranges_decide(x: np.ndarray, y: np.ndarray) -> str | None:
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    classes = np.unique(y)
    if len(x) < MIN_ROWS or len(classes) < 2:
        return None
    ranges = sorted((float(x[y == c].min()), float(x[y == c].max())) for c in classes)
    gaps = [low - high for (_, high), (low, _) in zip(ranges, ranges[1:])]
    if min(gaps) <= 0:
        return None
    q1, q3 = np.percentile(x, [25, 75])
    spacing = (q3 - q1) / len(x) if q3 > q1 else float(np.ptp(x)) / len(x)
    if max(gaps) > GAP_SPACINGS * spacing:      # classes apart by a wide margin: a strong feature, not a threshold
        return None
    return "every class in its own range of values, ranges that touch (a threshold on it gives the class)"


def _missing_decides(missing: np.ndarray, y: np.ndarray) -> str | None:
    if missing.all() or not missing.any() or len(y) < MIN_ROWS:
        return None
    shared = np.intersect1d(np.unique(y[missing]), np.unique(y[~missing]))
    return "whether it is missing tells the class" if len(shared) == 0 else None


class LeakageWarning(UserWarning):
    """A feature column reproduces the target on the training rows (data/leakage.py)."""


def drop_setting(found: dict[str, str], dropped: list[str] = ()) -> str:
    """The ``data.drop_columns`` setting that drops the named columns (``dropped``: the columns dropped already,
    which a ``data.drop_columns`` list must name again to stay dropped)."""
    return f"data.drop_columns=[{', '.join(repr(name) for name in [*dropped, *found])}]"


def leak_warning(found: dict[str, str], where: str, setting: str) -> str:
    """One paragraph naming the columns, the evidence and the setting that drops them."""
    listed = "; ".join(f"{name} ({why})" for name, why in found.items())
    one = len(found) == 1
    return (f"{'A column' if one else f'{len(found)} columns'} of {where} give{'s' if one else ''} the target away on "
            f"the training rows: {listed}. A copy of the target, or a value recorded after the outcome, makes a model "
            f"that scores well on this split and fails on the rows it is meant for (leakage: Kaufman et al. 2012, "
            f"https://doi.org/10.1145/2382577.2382579). If {'it' if one else 'they'} will not be known when "
            f"predicting, drop {'it' if one else 'them'}: --set \"{setting}\" (docs/data.md).")
