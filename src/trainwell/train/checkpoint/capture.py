"""Capture and restore: everything needed to continue a ``TrainState`` exactly where it stopped.

:func:`capture` serialises weights, optimizer, scheduler, early stopping, history, the
position in the epoch (permutation and on-device accumulators mid-epoch) and every RNG
state; :func:`restore` puts them back, RNG last, so that a resumed run makes the same
steps bit for bit as one that never stopped (docs/checkpoints.md).
"""
from __future__ import annotations

import random
import time

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from trainwell.core.errors import UserError
from trainwell.train.checkpoint.codec import decode, encode, history_rows, to_cpu_unshared
from trainwell.train.loop import TrainState


def capture(state: TrainState, meta: dict | None = None) -> tuple[bytes, dict]:
    """Serialise everything needed to resume ``state`` exactly: (safetensors bytes, JSON body)."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state.model.state_dict().items():
        tensors[f"model.{k}"] = v
    if state.best_state is not None:
        for k, v in state.best_state.items():
            tensors[f"best.{k}"] = v
    mid_epoch = state.batch_in_epoch > 0 and state.permutation is not None
    if mid_epoch:
        tensors["loop.permutation"] = state.permutation
        if state.ctx.epoch_loss is not None:
            tensors["loop.epoch_loss"] = state.ctx.epoch_loss
        if state.ctx.epoch_terms is not None:
            tensors["loop.epoch_terms"] = state.ctx.epoch_terms
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors["rng.generator"] = state.generator.get_state()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.ascontiguousarray(np_keys).view(np.uint8).copy())
    optimizer = encode(state.optimizer.state_dict(), "optim", tensors)
    schedule = encode(state.schedule.state_dict(), "sched", tensors)
    interrupted = state.stopped_because == "interrupted"
    body = {
        "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
        "steps_per_epoch": state.steps_per_epoch, "n_train": int(state.data.X_train.shape[0]),
        "mid_epoch": mid_epoch,
        "stop": bool(state.stop) and not interrupted,
        "stopped_because": "" if interrupted else state.stopped_because,
        "optimizer": optimizer, "schedule": schedule,
        "stopper": encode(state.stopper.state_dict(), "stopper", tensors),
        "history": encode(state.history, "history", tensors),
        # the JSON is written with sorted keys: the rows' column order, so a resumed history is the same table
        "history_columns": list(state.history[-1]) if state.history else [],
        "rng": {"python": encode(random.getstate(), "rng.python", tensors),
                "numpy": {"name": np_name, "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                          "cached_gaussian": float(np_cached)},
                "cuda_devices": sum(1 for k in tensors if k.startswith("rng.cuda."))},
        "rollbacks": int(state.ctx.nan_rollbacks),
        "spec": state.spec.to_dict(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(meta or {}),
    }
    return st_save(to_cpu_unshared(tensors)), body


def parse(data: bytes) -> dict[str, torch.Tensor]:
    """Safetensors bytes -> tensors (no pickle involved)."""
    return st_load(data)


def restore(state: TrainState, data: bytes | dict[str, torch.Tensor], body: dict) -> None:
    """Put a captured checkpoint back into ``state`` (weights, optimizer, RNG, position...)."""
    tensors = parse(data) if isinstance(data, (bytes, bytearray)) else data
    if body.get("n_train") != state.data.X_train.shape[0] or body.get("steps_per_epoch") != state.steps_per_epoch:
        raise UserError(
            f"The checkpoint was made with {body.get('n_train')} training rows in {body.get('steps_per_epoch')} "
            f"batches per epoch, but this run has {state.data.X_train.shape[0]} rows in {state.steps_per_epoch}. "
            "Resume with the same data and spec the run was started with."
        )
    device = state.data.X_train.device
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        state.model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise UserError(f"The checkpoint's weights do not fit this model ({str(exc).splitlines()[0]}). "
                        "Resume with the spec the run was started with.") from None
    best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    state.best_state = best or None
    state.optimizer.load_state_dict(decode(body["optimizer"], tensors))
    state.schedule.load_state_dict(decode(body["schedule"], tensors))
    state.stopper.load_state_dict(decode(body["stopper"], tensors))
    state.history = history_rows(body, tensors)
    state.step, state.epoch = int(body["step"]), int(body["epoch"])
    state.batch_in_epoch = int(body["batch_in_epoch"])
    state.stop, state.stopped_because = bool(body["stop"]), str(body["stopped_because"])
    state.ctx.nan_rollbacks = int(body.get("rollbacks", 0))
    if body.get("mid_epoch"):
        state.permutation = tensors["loop.permutation"].to(device)
        state.ctx.epoch_loss = tensors["loop.epoch_loss"].to(device)
        terms = tensors.get("loop.epoch_terms")
        state.ctx.epoch_terms = None if terms is None else terms.to(device)
    else:
        state.permutation = None
        state.batch_in_epoch = 0
    # RNG last: everything above may have drawn random numbers.
    rng = body["rng"]
    random.setstate(decode(rng["python"], tensors))
    npd = rng["numpy"]
    keys = np.frombuffer(tensors["rng.numpy"].numpy().tobytes(), dtype=np.uint32).copy()
    np.random.set_state((npd["name"], keys, npd["pos"], npd["has_gauss"], npd["cached_gaussian"]))
    torch.set_rng_state(tensors["rng.torch"])
    n_cuda = int(rng.get("cuda_devices", 0))
    if n_cuda and torch.cuda.is_available() and torch.cuda.device_count() == n_cuda:
        torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(n_cuda)])
    state.generator.set_state(tensors["rng.generator"])
