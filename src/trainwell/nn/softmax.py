"""``log_softmax`` over a few classes, without torch's scalar path on CPU.

torch's CPU ``log_softmax`` over the last dimension reduces each row with vector instructions only
when a row fills at least one vector register (16 floats with AVX-512, 8 with AVX2). A row of fewer
classes, which is every classifier of a table with 2 to 15 classes, takes a scalar loop: on an
AVX-512 machine ``[8, 32, 10]`` (a packed ensemble's batch) costs 25 us against 6 us for the same
kernel run over a non-last dimension, which is vectorized across rows instead (pytorch/pytorch
#64726 and #73953 describe the two kernels), and ``[8, 1024, 10]`` 780 us against 52 us. Computing
over the classes as the second-last dimension of a transposed copy gives the same values to float
rounding (equal, or a few units in the last place where the rows do not fill whole vectors:
tests/test_softmax.py).
"""
from __future__ import annotations

import torch


def vector_floats() -> int:
    """How many float32 values one vector register of this CPU holds, by torch's own dispatch."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


VECTOR_FLOATS = vector_floats()


def log_softmax_classes(x: torch.Tensor) -> torch.Tensor:
    """``torch.log_softmax(x, -1)``, computed along a non-last dimension where the classes are fewer than a
    vector register holds on CPU. The result may be a transposed (non-contiguous) view."""
    if x.dim() < 2 or x.shape[-1] >= VECTOR_FLOATS or x.device.type != "cpu":
        return torch.log_softmax(x, -1)
    return torch.log_softmax(x.transpose(-1, -2).contiguous(), -2).transpose(-1, -2)
