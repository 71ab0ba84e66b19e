"""``StreamData``: the streamed ``BatchSource`` (data/batches.py), rows read from disk each epoch.

Each epoch: files (and Parquet row groups) in a fresh seeded order, rows through a bounded
shuffle buffer (``data.shuffle_buffer`` rows), cut into batches, prepared by a background thread
into a bounded queue so reading and decoding overlap the training step. The epoch's order depends
only on (seed, epoch), so a checkpoint taken mid-epoch resumes exactly by skipping the batches
already used. Validation and test rows held in memory by the statistics pass are device tensors.
"""
from __future__ import annotations

import math
import queue
import threading
from typing import Any, Iterator

import numpy as np
import torch

from trainwell.data.batches import Batch, tensor_chunks
from trainwell.data.streaming.hashing import assign_rank, assign_split, row_hash
from trainwell.core.errors import UserError

PREFETCH = 4                 # batches prepared ahead by the reader thread
SPLITS = {"train": 0, "val": 1, "test": 2}


class Rows:
    """Shape-only stand-in for a split that lives on disk (len, .shape, .device)."""

    def __init__(self, n: int, row_shape: list[int], device: torch.device | str = "cpu"):
        self.shape = torch.Size([n, *row_shape])
        self.device = torch.device(device)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, item: Any) -> torch.Tensor:     # rows on disk: an empty sample
        return torch.zeros((0, *self.shape[1:]), device=self.device)


def batch_sizes(n_rows: int, steps: int) -> np.ndarray:
    """``steps`` batch sizes summing to ``n_rows``, as equal as possible (first ones one larger)."""
    base, extra = divmod(n_rows, steps)
    return np.full(steps, base, dtype=np.int64) + (np.arange(steps) < extra)


class Prefetch:
    """Run an iterator in a background thread into a bounded queue (I/O overlaps compute)."""

    _END = object()

    def __init__(self, it: Iterator, depth: int = PREFETCH):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="trainwell-prefetch")
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._put(("__error__", exc))

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is self._END:
                return
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0] == "__error__":
                raise item[1]
            yield item

    def close(self) -> None:
        self.stop.set()
        while True:
            try:
                self.q.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=5)


class StreamData:
    """``state.data`` of a streamed run: batches come from disk, small splits from memory."""

    in_memory = False

    def __init__(self, prep: Any, device: torch.device):
        self.prep, self.device = prep, torch.device(device)
        self.X_train = Rows(prep.counts[0], prep.row_shape, device)
        self.y_train = Rows(prep.counts[0], [], device)
        self.split_tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, (X, y) in prep.cached.items():
            self.split_tensors[name] = (torch.from_numpy(X).to(device), torch.from_numpy(np.ascontiguousarray(y)).to(device))
        self.X_val, self.y_val = self.split_tensors.get("val", (Rows(prep.counts[1], prep.row_shape, device),
                                                                Rows(prep.counts[1], [], device)))
        self.X_test, self.y_test = self.split_tensors.get("test", (Rows(prep.counts[2], prep.row_shape, device),
                                                                   Rows(prep.counts[2], [], device)))

    # -- row streams ---------------------------------------------------------------------
    def rows(self, split: int, rng: np.random.Generator | None = None, shard: bool = True
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Raw (X, y) chunks of one split (of this rank's shard for training), in (shuffled) file order."""
        p = self.prep
        src = p.source
        for fi, off, rb in src.chunks(rng):
            h = row_hash(src.ids(fi, off, rb), p.seed)
            sel = assign_split(h, p.fractions) == split
            if shard and p.world > 1:
                sel &= assign_rank(h, p.world) == p.rank
            if not sel.any():
                continue
            rb = rb.filter(p.source._pa.array(sel))
            path = src.files[fi]
            yield src.features_of(rb, path), src.target_of(rb, path)

    def _encoded(self, chunks: Iterator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        pre = self.prep.pre
        for X, y in chunks:
            yield pre.transform_X(X), pre.encode_y(y)

    @staticmethod
    def _shuffled(chunks: Iterator, capacity: int, rng: np.random.Generator) -> Iterator:
        """Bounded shuffle buffer: keep ``capacity`` rows, emit a random selection of the overflow."""
        bx = by = None
        for X, y in chunks:
            if bx is not None:
                X, y = np.concatenate([bx, X]), np.concatenate([by, y])
            if len(X) <= capacity:
                bx, by = X, y
                continue
            perm = rng.permutation(len(X))
            out, keep = perm[:len(X) - capacity], perm[len(X) - capacity:]
            yield X[out], y[out]
            bx, by = X[keep], y[keep]
        if bx is not None and len(bx):
            perm = rng.permutation(len(bx))
            yield bx[perm], by[perm]

    @staticmethod
    def _batched(chunks: Iterator, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Cut a row stream into batches of exactly ``sizes``."""
        pend_x: list[np.ndarray] = []
        pend_y: list[np.ndarray] = []
        have, k = 0, 0
        for X, y in chunks:
            pend_x.append(X)
            pend_y.append(y)
            have += len(X)
            while k < len(sizes) and have >= sizes[k]:
                bx, by = np.concatenate(pend_x), np.concatenate(pend_y)
                s = int(sizes[k])
                yield bx[:s], by[:s]
                pend_x, pend_y = [bx[s:]], [by[s:]]
                have -= s
                k += 1
        if k < len(sizes):
            raise UserError(f"The data changed while training: expected {int(sizes.sum()):,} training rows, the "
                            f"stream gave {int(sizes[:k].sum()) + have:,}. Do not modify the files during a run.")

    def steps(self, batch_size: int) -> int:
        return max(1, math.ceil(self.prep.counts[0] / batch_size))

    def _sizes(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(this rank's batch sizes, global batch sizes) for one epoch; every rank takes the same steps."""
        steps = self.steps(batch_size)
        per_rank = [batch_sizes(c, steps) for c in self.prep.rank_counts]
        return per_rank[self.prep.rank], np.sum(per_rank, axis=0)

    def train_batches(self, epoch: int, batch_size: int, skip: int = 0) -> Iterator:
        """The epoch's batches as tensors (a background thread reads and prepares them)."""
        p = self.prep
        rng = np.random.default_rng([p.seed & 0xFFFFFFFF, epoch, 0x5EED])
        local, glob = self._sizes(batch_size)

        def gen():
            stream = self._batched(self._shuffled(self._encoded(self.rows(0, rng)), p.shuffle_buffer, rng), local)
            for k, (X, y) in enumerate(stream):
                if k < skip:
                    continue
                yield k, torch.from_numpy(X), torch.from_numpy(np.ascontiguousarray(y)), int(glob[k])
        return Prefetch(gen())

    # -- the BatchSource interface (data/batches.py) ---------------------------------------
    def epoch_order(self, epoch: int, generator: torch.Generator) -> torch.Tensor:
        """The epoch number: (seed, epoch) decide the order, so it is all a checkpoint needs to keep."""
        return torch.tensor([epoch], dtype=torch.int64)

    def epoch_batches(self, order: torch.Tensor, epoch: int, batch_size: int, start: int,
                      shard: tuple[int, int] | None) -> Iterator[Batch]:
        """This rank's batches of ``epoch`` from step ``start`` on (the hash split already sharded the rows)."""
        world, dev = self.prep.world, self.device
        batches = self.train_batches(epoch, batch_size, skip=start)
        try:
            for _, xb, yb, gsize in batches:
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                n_local = xb.shape[0]
                if world == 1:
                    yield xb, yb, n_local, None
                    continue
                if n_local == 0:
                    raise UserError("A data-parallel rank has no rows for a step; use fewer processes "
                                    "or a larger dataset.")
                yield xb, yb, n_local, n_local * world / max(gsize, 1)
        finally:
            batches.close()

    def eval_batches(self, split: str, limit: int | None = None, shard: bool = True
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Held splits from memory (all of it); the others read from disk, this rank's shard unless ``shard``
        is off, up to ``limit`` rows (the limit bounds the reading time)."""
        if split in self.split_tensors:
            yield from tensor_chunks(*self.split_tensors[split])
            return
        seen = 0
        for X, y in self._encoded(self.rows(SPLITS[split], None, shard=shard)):
            if limit is not None and seen + len(X) > limit:
                X, y = X[:limit - seen], y[:limit - seen]
            seen += len(X)
            yield torch.from_numpy(X).to(self.device), torch.from_numpy(np.ascontiguousarray(y)).to(self.device)
            if limit is not None and seen >= limit:
                return

    def streamed(self, split: str) -> bool:
        return split not in self.split_tensors

    @property
    def n_outputs(self) -> int:
        return max(1, self.prep.pre.coder.n_outputs)
