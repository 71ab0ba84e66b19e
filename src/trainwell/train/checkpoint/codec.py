"""The checkpoint format: nested Python state as JSON plus a dict of tensors, no pickle.

:func:`encode` turns optimizer/scheduler/stopper states, the history and RNG states into
JSON-able values, moving every tensor (and numpy array) into a flat dict that is stored
as safetensors; :func:`decode` is its inverse. The layout on disk is described in
docs/checkpoints.md.
"""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import torch

FORMAT = "trainwell-checkpoint/1"
TENSORS = "state.safetensors"
META = "state.json"
NAME_RE = re.compile(r"^(best|last|epoch-\d+|step-\d+)$")
NUMBERED_RE = re.compile(r"^(epoch|step)-(\d+)$")

_SCALARS = frozenset({bool, int, float, str, type(None)})


def encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with tensors moved into ``tensors`` (referenced by key)."""
    kind = type(obj)
    if kind in _SCALARS:                # fast paths: the history's floats, the python RNG's 625 ints
        return obj
    if (kind is list or kind is tuple) and all(type(v) in _SCALARS for v in obj):
        return list(obj) if kind is list else {"__tuple__": list(obj)}
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[encode(k, f"{prefix}.k{i}", tensors), encode(v, f"{prefix}.{i}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": prefix}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
        return {k: decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


def canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def to_cpu_unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, none sharing memory (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t
    return out


def history_rows(body: dict, tensors: dict[str, torch.Tensor]) -> list[dict]:
    """The history rows, each in the column order training made them (the JSON sorts keys)."""
    rows = decode(body["history"], tensors)
    order = body.get("history_columns") or []
    return [{**{k: row[k] for k in order if k in row}, **row} for row in rows]


def recency(body: dict) -> tuple[int, int, int]:
    """How far a checkpoint got: (step, epoch, end of epoch after mid-epoch); the newest sorts last."""
    return int(body.get("step", 0)), int(body.get("epoch", 0)), 0 if body.get("mid_epoch") else 1
