"""How many epochs training may run (``train.epochs``) when the user has not said.

Early stopping ends training when the validation loss stops improving (train/early_stopping.py); the
epoch budget is only the ceiling above it. A ceiling counted in epochs alone is a ceiling in steps that
shrinks with the table: 200 epochs of a 64-row table at batch 32 are 400 optimizer steps, fewer than the
1,000 steps early stopping itself waits for, and a network on a tiny regression stopped there still
improving. A linear target of 80 rows scored R² 0.23 at 200 epochs and 0.996 given the steps it needed
(docs/tabular.md#tiny-tables-an-epoch-budget-in-steps measures it on 190 tables). So ``auto`` is 200
epochs, or as many as make 10,000 steps when epochs are short. It changes nothing from about 1,600 rows
at batch 32, where 200 epochs are already 10,000 steps.
"""
from __future__ import annotations

import math

EPOCHS = 200              # the ceiling in epochs (scikit-learn's MLP: max_iter=200) ...
BUDGET_STEPS = 10_000     # ... but never fewer optimizer steps than this


def resolve_epochs(epochs: int | str, steps_per_epoch: int) -> int:
    """``auto``: 200 epochs, or as many as make 10,000 steps when an epoch is fewer than 50 steps."""
    if epochs != "auto":
        return int(epochs)
    return max(EPOCHS, math.ceil(BUDGET_STEPS / max(steps_per_epoch, 1)))
