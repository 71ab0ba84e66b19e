"""Will it fit? The memory a training run needs, estimated before anything is allocated.

Without this, a width typed with three zeros too many (``model.hidden=[100000000000]``) ends in
an allocator's traceback, or worse, in the machine swapping for minutes. The estimate counts
what training keeps for every parameter (weights, gradients, two Adam moments, the best weights
kept in memory: 5 float32 copies) and, for the layers whose widths are known, the activations
of one batch kept for the backward pass, and compares it with the memory free on the device:
``MemAvailable`` of /proc/meminfo (https://www.kernel.org/doc/html/latest/filesystems/proc.html)
capped by the cgroup limit on CPU, ``torch.cuda.mem_get_info`` on CUDA.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from trainwell.core.errors import UserError
from trainwell.nn.topologies import build_model

COPIES_PER_PARAMETER = 5     # weight, gradient, Adam's two moments, the best epoch's weights
BYTES = 4                    # float32


def available_bytes(device: torch.device) -> int | None:
    """Bytes free for this process on ``device``; None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    free = _meminfo_available()
    limit = _cgroup_room()
    if free is None:
        return limit
    return free if limit is None else min(free, limit)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:      # other Unixes: free physical pages
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (a container's), if one is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def parameter_count(arch: dict[str, Any]) -> int | None:
    """Parameters of the network ``arch`` describes, counted without allocating: a plain MLP (packed
    or not) by formula, any other model built on torch's ``meta`` device (shapes, no storage)."""
    if "_instance" in arch:                      # the user's module: already allocated
        return sum(p.numel() for p in arch["_instance"].parameters())
    if arch.get("type") == "mlp":
        hidden = [max(arch["member_widths"])] if arch.get("member_widths") else arch["hidden"]   # nn/member_widths.py
        widths = [int(arch["n_inputs"]), *map(int, hidden), int(arch["n_outputs"])]
        return int(arch.get("members", 1)) * sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    try:
        with torch.device("meta"):
            model = build_model(dict(arch))
    except Exception:                            # noqa: BLE001 - a model that cannot be built on meta: no estimate
        return None
    return sum(p.numel() for p in model.parameters())


def activation_count(arch: dict[str, Any], batch: int) -> int:
    """Values one batch keeps for the backward pass in the layers whose widths the arch names
    (inputs, pre-activations and activations of each hidden layer, outputs), per packed member."""
    hidden = arch.get("hidden")
    if not isinstance(hidden, list):
        return 0
    per_row = int(arch.get("n_inputs", 0)) + 2 * sum(map(int, hidden)) + int(arch.get("n_outputs", 0))
    return batch * int(arch.get("members", 1)) * per_row


def estimate_bytes(arch: dict[str, Any], batch: int) -> tuple[int, int | None]:
    """(bytes needed, parameters) for training ``arch`` with batches of ``batch`` rows."""
    params = parameter_count(arch)
    values = (params or 0) * COPIES_PER_PARAMETER + 2 * activation_count(arch, batch)   # forward + gradient
    return values * BYTES, params


def check_memory(arch: dict[str, Any], batch: int, device: torch.device) -> None:
    """Refuse, before allocating, a network that cannot fit in the memory free on ``device``."""
    need, params = estimate_bytes(arch, batch)
    free = available_bytes(device)
    if free is None or need <= free:
        return
    what = f"{params:,} parameters" if params is not None else "its activations"
    raise UserError(
        f"This network needs about {_size(need)} to train ({what}, batch {batch}) but only {_size(free)} "
        f"of memory is free on {device.type}. Make it smaller (model.hidden, e.g. --set model.hidden=[256,128]), "
        "lower train.batch_size, or train on a device with more memory."
    )


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} PiB"
