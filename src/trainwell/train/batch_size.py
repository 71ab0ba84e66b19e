"""The default mini-batch size, which grows with the table, and the learning rate that goes with it.

A fixed batch of 32 suits a table of a thousand rows, but a 50,000-row table then
takes 1,600 small steps an epoch, each paying the same fixed cost, and trains for
minutes where a few seconds would do. ``train.batch_size: auto`` keeps 32 (the
Keras default, and about scikit-learn's ``min(200, n)`` for small tables) until an
epoch would exceed ``STEPS_PER_EPOCH`` steps, then doubles it, up to ``MAX_BATCH``.

A larger batch averages away gradient noise, so it takes a larger step to make
the same progress per epoch. For Adam-type optimizers the learning rate scales
with the square root of the batch size (Malladi et al., "On the SDEs and Scaling
Rules for Adaptive Gradient Algorithms", NeurIPS 2022); for SGD linearly (Goyal et
al., "Accurate, Large Minibatch SGD", 2017). The rule is applied only when the
user left ``optim.lr`` at its default: ``optim.lr`` is the rate at batch 32.

A classifier whose members are cross-fitted (a table of up to a few thousand rows, nn/crossfit.py) starts
at ``CLASSIFIER_BATCH`` (128) instead. There, with 128 rows a step (and the lr scaled to match), test
accuracy rose on 10 of 18 real classification tables and fell on 3, mostly in less time; regressors
lost R^2 with it on 10 of 12. On the two larger classification tables measured (one
validation split, no cross-fitting) it changed no score by more than 0.0001 while a run took up to 1.5
times as long (docs/tabular.md, "A classifier's batch size").
"""
from __future__ import annotations

import math

from trainwell.optim.optimizers import OPTIMIZERS

BASE_BATCH = 32            # the batch optim.lr is given for, and where auto starts
CLASSIFIER_BATCH = 128     # where auto starts for a classifier with cross-fitted members
CLASSIFIER_TASKS = ("binary", "multiclass")
MAX_BATCH = 512
STEPS_PER_EPOCH = 128


def first_batch(task: str | None, crossfit: bool) -> int:
    """Where ``auto`` starts: 128 for a classifier whose members are cross-fitted, 32 otherwise."""
    return CLASSIFIER_BATCH if crossfit and task in CLASSIFIER_TASKS else BASE_BATCH


def auto_batch_size(rows: int, start: int = BASE_BATCH) -> int:
    """``start``, doubled while an epoch of ``rows`` training rows would take more than 128 steps; at most 512."""
    b = start
    while b < MAX_BATCH and rows / b > STEPS_PER_EPOCH:
        b *= 2
    return b


def scaled_lr(lr: float, batch: int, optimizer: str) -> float:
    """``lr`` (the rate at batch 32) for ``batch``: square-root scaling for adaptive optimizers (the registry's
    ``adaptive``, optim/optimizers.py), linear for SGD and its momentum forms."""
    ratio = batch / BASE_BATCH
    return lr * (math.sqrt(ratio) if _adaptive(optimizer) else ratio)


def _adaptive(optimizer: str) -> bool:
    entry = OPTIMIZERS.get(optimizer)       # an unknown name is refused when the optimizer is built
    return bool(entry and entry.adaptive)


def resolve_batch(spec, rows: int, start: int = BASE_BATCH, pooled: str = "") -> tuple[object, str | None]:
    """``spec`` with ``train.batch_size: auto`` replaced by a number (and ``optim.lr`` scaled with it when the
    user left it at its default), and the line that says so; unchanged, with None, otherwise. ``start``:
    ``first_batch``'s choice; ``pooled``: which rows of cross-fitted members ``rows`` pools ("training and
    validation", with the test rows when they train too), which the line then says."""
    if spec.train.batch_size != "auto":
        return spec, None
    b = auto_batch_size(rows, start)
    sets = [f"train.batch_size={b}"]
    begin = f"{start} for a cross-fitted classifier" if start == CLASSIFIER_BATCH else f"{start}"
    note = f"batch {b} (train.batch_size=auto: {begin}, doubled until an epoch of {rows:,} rows" \
           f"{f' ({pooled}, pooled)' if pooled else ''} is at most {STEPS_PER_EPOCH} steps"
    if b != BASE_BATCH and "lr" not in spec.optim.model_fields_set:
        lr = scaled_lr(spec.optim.lr, b, spec.optim.name)
        rule = "sqrt" if _adaptive(spec.optim.name) else "linear"
        sets.append(f"optim.lr={lr!r}")
        note += f"; lr {spec.optim.lr:g} x {rule}({b}/{BASE_BATCH}) = {lr:.3g}, Malladi et al. 2022 / Goyal et al. 2017"
    return type(spec).build(spec, sets=sets), note + ")"
