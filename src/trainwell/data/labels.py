"""Work out the task from the targets and turn labels into what the loss expects.

The task decides the output layer and the loss (docs/practices/heads.md), so guessing it
wrong silently trains the wrong model; the rules below are deliberately simple
and the user can always override them with an explicit task.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainwell.core.errors import UserError, did_you_mean

TASKS = ("auto", "regression", "binary", "multiclass", "multilabel")
MAX_CLASSES = 100
FEW_CLASSES = 10            # up to this many integer values, class ids need only 5 rows each (iris, digits)


def _is_text(y: np.ndarray) -> bool:
    """True for string / bool labels, and for object arrays holding any non-number."""
    if y.dtype.kind in "USb":
        return True
    if y.dtype.kind == "O":
        return any(isinstance(v, (str, bytes, bool, np.bool_)) for v in y.ravel())
    return False


def _numeric(y: np.ndarray, what: str = "target") -> np.ndarray:
    """Labels as float64, refusing non-numbers and NaN / inf."""
    try:
        v = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"The {what} holds values that are not numbers (dtype {y.dtype}). Encode them as numbers or use a classification task.") from None
    bad = ~np.isfinite(v)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(v), -1).any(axis=1))[0])
        raise UserError(f"The {what} has {int(bad.sum())} NaN/infinite value(s), the first in row {row + 1}. Drop those rows or fill in the labels.")
    return v


def _is_01(v: np.ndarray) -> bool:
    return bool(np.isin(v, (0.0, 1.0)).all())


def _squeeze(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] == 0:
        raise UserError("The target is empty. Provide at least one labelled row.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim > 2:
        raise UserError(f"The target has shape {y.shape}; it must be one column [N] or a matrix [N, K]. Reshape it.")
    return y


def detect_task(y: np.ndarray) -> str:
    """Guess "regression" | "binary" | "multiclass" | "multilabel" from the raw targets.

    Rules, in order:
    - strings, objects holding text, booleans -> classification (binary if <= 2 values, else multiclass);
    - 2-D, all 0/1, every row summing to 1 -> multiclass given as one-hot;
    - 2-D, all 0/1 otherwise -> multilabel; any other 2-D -> regression (multi-target);
    - 1-D numbers with a non-integer value -> regression;
    - 1-D integer-valued: 2 distinct values -> binary; otherwise multiclass when the
      distinct count is <= max(2, min(100, N // 5)) and the values look like class
      ids (non-negative, at least half of the range min..max in use), else regression.
    So digits / iris / wine are multiclass, breast_cancer and circles binary, and
    diabetes (integer-valued, 214 distinct of 442) regression.
    """
    y = _squeeze(y)
    if y.ndim == 2:
        if _is_text(y):
            raise UserError("Several text target columns are not supported. Pass a single label column, or encode the labels as 0/1 columns for multilabel.")
        v = _numeric(y)
        if _is_01(v):
            return "multiclass" if bool((v.sum(axis=1) == 1).all()) else "multilabel"
        return "regression"
    if _is_text(y):
        return "binary" if len(set(y.tolist())) <= 2 else "multiclass"
    v = _numeric(y)
    if not bool((v == np.round(v)).all()):
        return "regression"
    return integer_task(np.unique(v), len(v))


def integer_task(uniq: np.ndarray, n: int) -> str:
    """The task of integer-valued targets with sorted distinct values ``uniq`` over ``n`` rows.

    Two values: binary; else multiclass when the values are few (at most max(2, min(100, n // 5)), and
    beyond 10 values at most a tenth of the rows below 1,000 rows, a twentieth from 1,000: AutoGluon's
    thresholds in ``infer_problem_type``, https://github.com/autogluon/autogluon, core/utils/utils.py) and
    look like class ids, else regression: ages 18-89 on 400 rows are a regression target, not 72 classes.

    Looking like class ids: numbered from 0 or 1, and up to 10 values at least half of the range min..max
    in use (ratings 1-10 with a few levels unused). Beyond 10 values, every integer from min to max must
    be present: labels encoded as ids are consecutive, while a count's long tail leaves gaps (doctor visits
    0-89 take 60 values in 4,406 rows, the highest ones a row each; read as 60 classes, the model
    predicted the most common counts and scored R² below 0). Integers that start above 1 are amounts, not
    ids: years of schooling 12-18 (AER's CollegeDistance, 4,739 rows) read as 7 classes scored R² -0.21
    over 5 splits where a linear regression scores 0.27, since a class prediction is the likeliest value,
    not the expected one. Shared by ``detect_task`` and the streaming pass (data/streaming/stats.py), which
    knows only the distinct values (at most ``MAX_CLASSES`` + 1).
    """
    if len(uniq) <= 2:
        return "binary"
    limit = max(2, min(MAX_CLASSES, n // 5))
    if len(uniq) > FEW_CLASSES:      # many levels: a count or an age unless each level has rows to learn from
        limit = min(limit, int(n * (0.1 if n < 1000 else 0.05)))
    span = uniq[-1] - uniq[0] + 1
    looks_like_ids = 0 <= uniq[0] <= 1 and (span <= 2 * len(uniq) if len(uniq) <= FEW_CLASSES else span == len(uniq))
    return "multiclass" if len(uniq) <= limit and looks_like_ids else "regression"


def count_shaped(values: np.ndarray, counts: np.ndarray) -> bool:
    """Whether integer values (sorted, with their row counts) are distributed as a count's: starting at 0,
    each of the first three values rarer than the one before, and the largest value under 1 % of the rows
    (doctor visits 0-9: 80 % zeros, the 9 once in 5,190 rows). Class ids are rarely spread like that, but
    an ordinal label (a severity 0-4) can be, so this only adds a line; it does not change the task."""
    head = counts[:3]
    return bool(values[0] == 0 and (np.diff(head) < 0).all() and counts[-1] < 0.01 * counts.sum())


def other_reading(task: str, y: np.ndarray) -> str:
    """For an integer target read as a regression from 3 to 100 values, or as classes from 11 to 100 (or
    from 3, when they are spread as a count's), the key that reads it the other way: there class ids,
    counts and amounts look alike (``integer_task``). A few ids numbered from 0 or 1 (iris, digits) are
    classes without a doubt worth a line."""
    if task not in ("multiclass", "regression") or y.ndim != 1 or y.dtype.kind not in "iuf":
        return ""
    values, counts = np.unique(y[np.isfinite(y)] if y.dtype.kind == "f" else y, return_counts=True)
    if not bool((values == np.round(values)).all()):
        return ""
    if task == "multiclass" and 3 <= len(values) <= FEW_CLASSES and count_shaped(values, counts):
        return (f" from {len(values)} integer values in {len(y)} rows, spread as a count's (most rows "
                f"{_py(values[0])}, the largest value in {int(counts[-1])}; --set task=regression reads them as one)")
    fewest = 3 if task == "regression" else FEW_CLASSES + 1
    if not fewest <= len(values) <= MAX_CLASSES:
        return ""                    # a few ids, two values, or too many to be classes: nothing to weigh
    other = "regression" if task == "multiclass" else "multiclass"
    return f" from {len(values)} integer values in {len(y)} rows (--set task={other} reads them the other way)"


def _py(v: object) -> object:
    """A numpy scalar as a plain JSON-able Python value (integral floats become ints)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


@dataclass
class LabelCoder:
    """Maps raw labels to loss-ready arrays and back; saved with the model as JSON."""

    task: str
    classes: list = field(default_factory=list)
    n_outputs: int = 1
    onehot: bool = False

    def _index(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def _class_indices(self, y: np.ndarray) -> np.ndarray:
        y = _squeeze(y)
        if self.onehot or y.ndim == 2:
            v = _numeric(y)
            if v.ndim != 2 or v.shape[1] != len(self.classes):
                raise UserError(f"Expected one-hot labels with {len(self.classes)} columns, got shape {y.shape}. Use the same label format as in training.")
            return v.argmax(axis=1).astype(np.int64)
        index = self._index()
        try:
            uniq, inverse = np.unique(y, return_inverse=True)
        except TypeError:  # mixed object types: fall back to a plain loop
            uniq = np.array(sorted(set(y.tolist()), key=str), dtype=object)
            pos = {u: i for i, u in enumerate(uniq.tolist())}
            inverse = np.array([pos[v] for v in y.tolist()], dtype=np.int64)
        mapped = np.empty(len(uniq), dtype=np.int64)
        unseen = []
        for k, u in enumerate(uniq):
            key = _py(u)
            if key not in index and isinstance(key, str) and all(isinstance(c, (int, float)) for c in self.classes):
                try:  # "3" read from a text column when training saw the number 3
                    key = _py(float(key))
                except ValueError:
                    pass
            if key in index:
                mapped[k] = index[key]
            else:
                unseen.append(key)
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise UserError(
                f"Label(s) {shown} did not occur in the training data. Known classes: "
                f"{', '.join(repr(c) for c in self.classes)}. Drop those rows or retrain with them included."
            )
        return mapped[np.asarray(inverse).ravel()]

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Raw labels -> binary float32 [N] 0/1, multiclass int64 [N], multilabel float32 [N,K], regression float32 [N,T]."""
        if self.task == "regression":
            v = _numeric(np.asarray(y))
            v = v.reshape(len(v), -1)
            if v.shape[1] != self.n_outputs:
                raise UserError(f"Expected {self.n_outputs} target column(s), got {v.shape[1]}. Use the same targets as in training.")
            return v.astype(np.float32)
        if self.task == "multilabel":
            y = np.asarray(y)
            v = _numeric(y.reshape(len(y), -1))
            if v.shape[1] != self.n_outputs or not _is_01(v):
                raise UserError(f"Multilabel targets must be a 0/1 matrix with {self.n_outputs} columns; got shape {y.shape}. Use one 0/1 column per label, as in training.")
            return v.astype(np.float32)
        idx = self._class_indices(np.asarray(y))
        return idx.astype(np.float32) if self.task == "binary" else idx

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Model-side codes -> labels as the user gave them (str stays str, int stays int)."""
        codes = np.asarray(codes)
        if self.task == "regression":
            v = codes.astype(np.float64).reshape(len(codes), -1)
            return v[:, 0] if v.shape[1] == 1 else v
        if self.task == "multilabel":
            return (codes.reshape(len(codes), -1) >= 0.5).astype(np.int64)
        idx = codes.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.classes)):
            raise UserError(f"Class index {int(idx.max())} is out of range for {len(self.classes)} classes. Pass indices 0..{len(self.classes) - 1}.")
        return np.array(self.classes)[idx]

    def to_json(self) -> dict:
        """Plain dict for json.dumps; stored next to the weights."""
        return {"task": self.task, "classes": list(self.classes), "n_outputs": int(self.n_outputs), "onehot": bool(self.onehot)}

    @classmethod
    def from_json(cls, d: dict) -> "LabelCoder":
        """Inverse of to_json."""
        return cls(task=str(d["task"]), classes=list(d.get("classes", [])), n_outputs=int(d["n_outputs"]), onehot=bool(d.get("onehot", False)))


def refuse_row_labels(y: np.ndarray, classes: list) -> None:
    """A target read as classes with more distinct values than half its rows is not something to classify: its
    classes would average fewer than two rows, too few to learn a class from and to score it on. It is an
    identifier, a name or a date; training on it would take minutes (one output per value) and predict
    nothing, so it is refused with what to do instead."""
    if len(classes) <= max(len(y) // 2, 10):       # a handful of labels on a toy table is left alone
        return
    once = int((np.unique(y.astype(str), return_counts=True)[1] == 1).sum())
    shown = ", ".join(repr(_py(c)) for c in classes[:3])
    raise UserError(
        f"The target has {len(classes):,} distinct values in {len(y):,} rows ({once:,} of them in one row only; "
        f"e.g. {shown}): as classes they would average fewer than two rows each, too few to learn a class from "
        f"and score it on. It looks like an identifier, a name or a date, not an outcome. Pass the column to "
        f"predict with --target (the others are its inputs), or --task multiclass to train on these classes anyway.")


def _sorted_classes(y: np.ndarray) -> list:
    values = {_py(v) for v in y.tolist()}
    kinds = {type(v) for v in values}
    if kinds <= {int, float} or kinds == {bool} or kinds == {str}:
        return sorted(values)
    return sorted({str(v) for v in values})  # mixed types: compare as text


def make_coder(y: np.ndarray, task: str = "auto", names: list[str] | None = None) -> LabelCoder:
    """Build the LabelCoder for these targets; ``task`` "auto" uses detect_task.

    ``names`` optionally labels the columns of a multilabel target (else 0..K-1).
    """
    if task not in TASKS:
        raise UserError(f'Unknown task "{task}".{did_you_mean(task, TASKS)} Valid tasks: {", ".join(TASKS)}.')
    y = _squeeze(y)
    detected = task == "auto"
    if detected:
        task = detect_task(y)
    if task == "regression":
        texts = [v for v in y.ravel()[:1000].tolist() if isinstance(v, (str, bytes))] if y.dtype.kind in "USO" else []
        if texts:
            sample = texts[0]
            raise UserError(
                f"Task is regression but the target holds text labels (e.g. {sample!r}). "
                f"Use --task binary/multiclass (or auto), or pick a numeric target column."
            )
        v = _numeric(y)
        return LabelCoder("regression", [], 1 if v.ndim == 1 else v.shape[1])
    if task == "multilabel":
        v = _numeric(y) if y.ndim == 2 else None
        if v is None or not _is_01(v):
            raise UserError(
                f"Task is multilabel but the target (shape {y.shape}) is not a 0/1 matrix with one column per label. "
                f"Pass several 0/1 target columns (--target A B C) or use multiclass."
            )
        k = v.shape[1]
        labels = list(names) if names is not None and len(names) == k else list(range(k))
        return LabelCoder("multilabel", labels, k)
    if y.ndim == 2:
        v = _numeric(y)
        if not (_is_01(v) and bool((v.sum(axis=1) == 1).all())):
            raise UserError(
                f"Task is {task} but the target has {y.shape[1]} columns that are not one-hot rows. "
                f"Use a single label column, exactly one 1 per row, or --task multilabel / regression."
            )
        classes: list = list(range(v.shape[1]))
        present = np.unique(v.argmax(axis=1))
        onehot = True
    else:
        if not _is_text(y):
            _numeric(y)
        classes = _sorted_classes(y)
        present = classes
        onehot = False
        if detected:
            refuse_row_labels(y, classes)
    if len(present) < 2:
        raise UserError(
            f"A {task} task needs at least two classes; found only one, {_py(present[0])!r}, in every row of "
            f"the target, which leaves nothing to learn. Check that the target column is the one meant, "
            f"or use data that contains more than one class."
        )
    if task == "binary" and len(classes) > 2:
        shown = ", ".join(repr(c) for c in classes[:10]) + (" ..." if len(classes) > 10 else "")
        raise UserError(f"Task is binary but the target has {len(classes)} classes ({shown}). Use --task multiclass (or auto).")
    return LabelCoder(task, classes, 1 if task == "binary" else len(classes), onehot)
