"""The pooled, fold-tagged tensors a cross-fitted packed ensemble trains and validates on (nn/crossfit.py).

The training and validation rows become one pool. Each pooled row gets a fold (0 .. k-1), stratified by
class for a classifier so every member holds out its share of each class, drawn from the run's seed so
a resumed run rebuilds the same folds. The fold is appended to the inputs as one last column; the pool
is both the training source (member j's loss on fold j carries no gradient) and the validation source
(each row scored by the member that held it out). The test split is left as it is: the whole ensemble
scores it.
"""
from __future__ import annotations

import torch

from trainwell.data.batches import Tensors

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


def pooled(data: Tensors, classes: bool, k: int, seed: int) -> Tensors:
    """``data`` with its training and validation rows pooled and tagged with their fold (the module
    docstring): the pool is both ``X_train`` and ``X_val``."""
    X = torch.cat([data.X_train.flatten(1), data.X_val.flatten(1)])
    y = torch.cat([data.y_train, data.y_val])
    folds = assign_folds(y, classes, k, seed).to(device=X.device, dtype=X.dtype)
    tagged = torch.cat([X, folds.unsqueeze(1)], 1)
    return Tensors(tagged, y, tagged, y, data.X_test, data.y_test)
