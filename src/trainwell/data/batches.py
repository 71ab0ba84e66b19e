"""``BatchSource``: what the training loop (train/loop.py) reads batches from, and the in-memory one.

The loop asks a source for an epoch's order, then for that epoch's batches from a given step on
(exact mid-epoch resume), and for evaluation batches of a split. Two sources implement it:

* ``Tensors`` (here): the splits as tensors on the training device; an epoch is a permutation
  drawn from the run's generator and a batch an index slice of it (docs/performance.md).
* ``StreamData`` (data/streaming/batches.py): rows read from Parquet / CSV on disk, shuffled
  through a bounded buffer in an order fixed by (seed, epoch) (docs/scaling.md).

Neither trains: the one loop that does lives in train/loop.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import torch

EVAL_CHUNK = 8192            # rows per evaluation forward pass
# Up to this size the epoch's rows are gathered in its order once and each batch is a view of that copy:
# one gather per epoch instead of two per step (a small table's step is per-operation overhead). Above
# it, each batch is gathered on its own so that training never holds a second copy of a large table.
EPOCH_GATHER_BYTES = 64 * 2**20

# (inputs, targets, rows that count toward the epoch sums, loss weight or None) of one training step
Batch = tuple[torch.Tensor, torch.Tensor, int, "float | None"]


class BatchSource(Protocol):
    """The training, validation and test data of a run, as the loop sees it.

    ``X_train`` .. ``y_test`` are tensors, or shape-only stand-ins (``.shape``, ``.device``) for
    splits that stay on disk; ``X_train.shape[0]`` is the number of training rows of all ranks.
    """

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    X_test: Any
    y_test: Any
    in_memory: bool              # every split lives as device tensors (CUDA graphs need that: train/graphs.py)

    def epoch_order(self, epoch: int, generator: torch.Generator) -> torch.Tensor:
        """The order of ``epoch``'s training rows, kept in the checkpoint for an exact resume."""
        ...

    def epoch_batches(self, order: torch.Tensor, epoch: int, batch_size: int, start: int,
                      shard: tuple[int, int] | None) -> Iterator[Batch]:
        """The epoch's training batches from step ``start`` on; ``shard`` (rank, world): data-parallel."""
        ...

    def eval_batches(self, split: str, limit: int | None = None, shard: bool = True
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(X, y) chunks of ``split`` ("train", "val", "test") on the device; ``limit`` bounds the rows read
        from disk, ``shard`` off reads every rank's rows."""
        ...

    def streamed(self, split: str) -> bool:
        """Whether ``split`` is read from disk: its sums are then kept in float64 and, data-parallel,
        each rank reads its shard and the sums are all-reduced."""
        ...


def tensor_chunks(X: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(X, y) in chunks of ``EVAL_CHUNK`` rows."""
    for i in range(0, X.shape[0], EVAL_CHUNK):
        yield X[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]


@dataclass
class Tensors:
    """Training, validation and test tensors on the device (test may be empty): the in-memory source."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    in_memory = True

    def epoch_order(self, epoch: int, generator: torch.Generator) -> torch.Tensor:
        """A fresh permutation of the training rows from the run's generator."""
        order = torch.randperm(self.X_train.shape[0], generator=generator, device=generator.device)
        return order.to(self.X_train.device)

    def epoch_batches(self, order: torch.Tensor, epoch: int, batch_size: int, start: int,
                      shard: tuple[int, int] | None) -> Iterator[Batch]:
        """Index slices of ``order``; data-parallel ranks take every world-th row of each global batch."""
        X, y, n = self.X_train, self.y_train, self.X_train.shape[0]
        if shard is None and X.nbytes + y.nbytes <= EPOCH_GATHER_BYTES:
            rest = order[start * batch_size:]
            X_epoch, y_epoch = X[rest], y[rest]
            for first in range(0, rest.shape[0], batch_size):
                xb = X_epoch[first:first + batch_size]
                yield xb, y_epoch[first:first + batch_size], xb.shape[0], None
            return
        if shard is None:
            for first in range(start * batch_size, n, batch_size):
                idx = order[first:first + batch_size]
                yield X[idx], y[idx], idx.shape[0], None
            return
        rank, world = shard
        for first in range(start * batch_size, n, batch_size):
            idx = order[first:first + batch_size]
            local = idx[rank::world]
            count = local.shape[0]
            rows = local if count else idx[:1]      # a rank without rows steps on one row with weight 0
            yield X[rows], y[rows], count, count * world / idx.shape[0]

    def eval_batches(self, split: str, limit: int | None = None, shard: bool = True
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return tensor_chunks(getattr(self, f"X_{split}"), getattr(self, f"y_{split}"))

    def streamed(self, split: str) -> bool:
        return False                                 # every rank holds (and scores) every row
