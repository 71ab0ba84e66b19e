"""One CPU thread for small networks while they train.

A small network's step is a few dozen kernels of a few microseconds each. Split
over several OpenMP threads, each kernel ends in a barrier, and when another
process holds a core (a test suite, a second training run, a browser) every
barrier waits for a time slice: on two busy cores a digits-sized epoch took
159 ms with two threads and 10 ms with one (docs/performance.md). Below
``SMALL`` multiply-adds per step the extra threads have nothing to gain, so
training runs on one and the caller's setting is restored afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

SMALL = 4_000_000        # parameters x batch rows: about a millisecond of arithmetic per step


@contextmanager
def threads_for(model: torch.nn.Module, batch_size: int, device: torch.device) -> Iterator[int]:
    """Run the block with one intra-op thread when ``model`` is small and on the CPU; yields the count."""
    before = torch.get_num_threads()
    params = sum(p.numel() for p in model.parameters())
    small = device.type == "cpu" and params * batch_size <= SMALL and before > 1
    if small:
        torch.set_num_threads(1)
    try:
        yield 1 if small else before
    finally:
        if small:
            torch.set_num_threads(before)
