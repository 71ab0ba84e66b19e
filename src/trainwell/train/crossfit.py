"""The pooled, fold-tagged tensors a cross-fitted packed ensemble trains and validates on (nn/crossfit.py).

The training and validation rows become one pool. Each pooled row gets a fold (0 .. k-1), stratified by
class for a classifier so every member holds out its share of each class, drawn from the run's seed so
a resumed run rebuilds the same folds. The fold is appended to the inputs as one last column; the pool
is both the training source (member j's loss on fold j carries no gradient) and the validation source
(each row scored by the member that held it out).

The test rows join the folds too (``model.crossfit_test``, on by default): member j trains on the test
rows outside fold j, and each test row is scored by the one member that never trained on it. Early
stopping does not watch them (they are not validation rows), so that score is still a held-out one: of
one member trained on seven eighths of the rows, which the averaged ensemble usually beats a little. On
a table of a few hundred rows a tenth more training rows is worth more than a held-out score of the
whole ensemble: over 46 tables of 30 to 5,000 rows, 27 scored higher and 11 lower (docs/tabular.md,
"The test rows in the folds"). With ``model.crossfit_test=false`` the test split is left as it is and
the whole ensemble scores it.
"""
from __future__ import annotations

from typing import Any

import torch

from trainwell.data.batches import Tensors
from trainwell.data.fingerprints import SeenRows
from trainwell.nn.crossfit import pools_test_rows

FOLD_SEED_OFFSET = 1     # the folds' generator: the run's seed + 1, apart from the initialisation's draws


def assign_folds(y: torch.Tensor, classes: bool, k: int, seed: int) -> torch.Tensor:
    """A fold 0 .. k-1 per row, as even as the rows allow; within each class for a classifier."""
    g = torch.Generator().manual_seed(seed + FOLD_SEED_OFFSET)
    y = y.cpu()
    folds = torch.empty(y.shape[0], dtype=torch.long)
    groups = [torch.nonzero(y == c).squeeze(1) for c in torch.unique(y)] if classes else [torch.arange(y.shape[0])]
    start = 0
    for rows in groups:
        rows = rows[torch.randperm(rows.shape[0], generator=g)]
        folds[rows] = (torch.arange(rows.shape[0]) + start) % k   # continue the count: folds stay even
        start += rows.shape[0]
    return folds


def pooled(data: Tensors, classes: bool, k: int, seed: int, with_test: bool = False) -> Tensors:
    """``data`` with its training and validation rows pooled and tagged with their fold (the module
    docstring): the pool is both ``X_train`` and ``X_val``. ``with_test``: the test rows are pooled and
    tagged too, and train; ``X_val`` keeps the training and validation rows only, ``X_test`` the test rows,
    each now carrying its fold."""
    parts = [data.X_train, data.X_val, *([data.X_test] if with_test else [])]
    X = torch.cat([p.flatten(1) for p in parts])
    y = torch.cat([data.y_train, data.y_val, *([data.y_test] if with_test else [])])
    folds = assign_folds(y, classes, k, seed).to(device=X.device, dtype=X.dtype)
    tagged = torch.cat([X, folds.unsqueeze(1)], 1)
    if not with_test:
        return Tensors(tagged, y, tagged, y, data.X_test, data.y_test)
    n = data.X_train.shape[0] + data.X_val.shape[0]
    return Tensors(tagged, y, tagged[:n], y[:n], tagged[n:], y[n:])


def learned_rows(prep: Any, arch: dict) -> SeenRows | None:
    """The fingerprints ``evaluate`` warns on (data/fingerprints.py): the training and validation rows, and
    the test rows when the members trained on them. Streamed data keeps none."""
    seen, prints = getattr(prep, "seen_rows", None), getattr(prep, "test_prints", None)
    if seen is None or prints is None or not pools_test_rows(arch):
        return seen
    return seen.with_training(prints)
