"""A NaN or inf loss: roll back to the last good state, or say where and why it diverged.

``stop.on_nan: rollback`` restores the last good checkpoint and halves every learning rate
(at most ``MAX_ROLLBACKS`` times). Otherwise the run stops and :func:`diagnose_nan` replays
training from the last good state with per-step finite checks and per-layer gradient norms,
to name the step and the layer whose gradient blew up first (Pascanu et al. 2013, "On the
difficulty of training recurrent neural networks"; docs/practices/ lists the remedies).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from trainwell.train.checkpoint.capture import restore
from trainwell.train.loop import TrainState, fit_loop

MAX_ROLLBACKS = 3


def scale_lr(state: TrainState, factor: float) -> None:
    for group in state.optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if isinstance(group.get(key), (int, float)) and not isinstance(group.get(key), bool):
                group[key] = group[key] * factor
    sched = state.schedule.scheduler
    if sched is not None:
        for attr in ("base_lrs", "_last_lr"):
            values = getattr(sched, attr, None)
            if isinstance(values, list):
                setattr(sched, attr, [v * factor for v in values])


class _NanProbe:
    """Replay hook: per-step finite checks and per-layer gradient norms (diagnosis only).

    The replay starts at the last good state, which may be epochs before the NaN (checkpoints
    are written on a time budget): the steps before the NaN epoch run at full speed, unprobed."""

    def __init__(self, state: TrainState, limit_epoch: int | None):
        self.named = [(n, p) for n, p in state.model.named_parameters() if p.requires_grad]
        self.limit = limit_epoch
        self.from_epoch = (limit_epoch or 1) - 1      # steps of epoch N run with state.epoch == N - 1
        self.norms: list[np.ndarray] = []
        self.steps: list[int] = []
        self.found: dict | None = None

    def on_step_end(self, state: TrainState) -> None:
        if state.epoch < self.from_epoch:
            return
        grads = [p.grad.detach().float().norm() if p.grad is not None else torch.zeros((), device=p.device)
                 for _, p in self.named]
        vals = torch.stack([*grads, state.ctx.epoch_loss.float().reshape(()),
                            torch.stack([torch.isfinite(p).all() for _, p in self.named]).all().float()]).cpu().numpy()
        norms, loss_sum, params_ok = vals[:-2], vals[-2], vals[-1]
        self.norms.append(norms)
        self.steps.append(state.step)
        bad = not math.isfinite(float(loss_sum)) or not np.isfinite(norms).all() or params_ok < 1
        if bad:
            self.found = self._explain(state)
            state.stop = True
        elif self.limit is not None and state.epoch >= self.limit:
            state.stop = True

    def _explain(self, state: TrainState) -> dict:
        names = [n.rsplit(".", 1)[0] if n.endswith((".weight", ".bias")) else n for n, _ in self.named]
        N = np.stack(self.norms)
        base = np.where(N[0] > 0, N[0], 1.0)
        ratio = np.where(np.isfinite(N), N / base, np.inf)
        # the first step where some layer's norm grew 10x over its first value (or went non-finite)
        layer_i, blow_row = None, None
        for row in range(len(N)):
            if (ratio[row] > 10).any():
                blow_row = row
                layer_i = int(np.argmax(ratio[row]))
                break
        out = {"step": state.step, "epoch": state.epoch + 1, "batch": state.batch_in_epoch}
        if layer_i is not None:
            out.update(layer=names[layer_i], first_norm=float(N[0, layer_i]), first_step=self.steps[0],
                       norm=float(N[blow_row, layer_i]), blowup_step=self.steps[blow_row])
        return out


class _SamePath:
    """Replay hook: a no-op forward hook on the steps the monitors sampled in the run.

    A step with a forward hook takes the autograd step instead of the hand-written one
    (train/fast.py); arming the same steps makes the replay follow the run bit for bit."""

    def __init__(self, model: torch.nn.Module, sampled: Callable[[int], bool]):
        self.model, self.sampled, self.handle = model, sampled, None

    def on_step_end(self, state: TrainState) -> None:
        self.close()
        if self.sampled(state.step + 1):
            self.handle = self.model.register_forward_hook(lambda *args: None)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def replay_to_nan(state: TrainState, data: bytes, body: dict, nan_epoch: int | None,
                   sampled: Callable[[int], bool] | None = None) -> dict | None:
    """Re-run from the last good checkpoint with per-step checks; where did it go non-finite?"""
    restore(state, data, body)
    probe = _NanProbe(state, nan_epoch)
    hooks: list = [probe.on_step_end]
    same = _SamePath(state.model, sampled) if sampled is not None else None
    if same is not None:
        same.on_step_end(state)           # the first replayed step
        hooks.append(same.on_step_end)
    saved = state.ctx.step_hooks
    state.ctx.step_hooks = hooks
    try:
        fit_loop(state, [])
    finally:
        state.ctx.step_hooks = saved
        if same is not None:
            same.close()
    return probe.found


def roll_back(state: TrainState, last_good: tuple[bytes, dict, str], console: Any | None) -> None:
    """Restore the last good checkpoint, halve every learning rate, carry on."""
    data, body, label = last_good
    count = state.ctx.nan_rollbacks + 1
    nan_epoch = state.ctx.nan_epoch
    restore(state, data, body)
    state.ctx.nan_rollbacks = count
    scale_lr(state, 0.5 ** (count - int(body.get("rollbacks", 0))))   # half per rollback, in all
    if console is not None:
        console.print(
            f"[yellow]·[/yellow] loss became NaN/inf in epoch {nan_epoch}: rolled back to {label} "
            f"(epoch {state.epoch}, step {state.step}) and halved the learning rate to "
            f"{state.optimizer.param_groups[0]['lr']:.3g} (rollback {count} of {MAX_ROLLBACKS})")


def diagnose_nan(state: TrainState, ckpt: Any) -> str:
    """One paragraph: where the loss went non-finite, which layer blew up first, why, what is kept.

    ``ckpt`` is the run's Checkpointer (its last good state, store, spec and the monitors' sampled steps)."""
    nan_epoch = state.ctx.nan_epoch
    found = None
    if ckpt.last_good is not None:
        data, body, label = ckpt.last_good
        # the replay moves the state back; keep what the run's report shows of the failure
        kept_state = (state.history, state.epoch, state.step, state.stopped_because,
                      state.ctx.nan_rollbacks)
        try:
            found = replay_to_nan(state, data, body, nan_epoch, ckpt.sampled)
        except Exception:  # noqa: BLE001 - the diagnosis must not hide the real problem
            found = None
        (state.history, state.epoch, state.step, state.stopped_because,
         state.ctx.nan_rollbacks) = kept_state
        state.stop, state.ctx.nan_epoch = True, nan_epoch
    spec = ckpt.spec
    if found is not None:
        where = (f"at step {found['step']} (epoch {found['epoch']}, batch {found['batch']} of "
                 f"{state.steps_per_epoch})")
        layer = (f" The gradient norm of layer {found['layer']} blew up first "
                 f"({found['first_norm']:.3g} at step {found['first_step']} -> {found['norm']:.3g} at step "
                 f"{found['blowup_step']}).") if found.get("layer") else ""
    else:
        where, layer = f"in epoch {nan_epoch}", ""
    kept = ""
    if ckpt.store is not None:
        label = ckpt.last_good[2] if ckpt.last_good is not None else ""
        if label.startswith("checkpoints/"):
            name, good_body = label.split("/", 1)[1], ckpt.last_good[1]  # type: ignore[index]
            kept = (f" The last good checkpoint is kept: {ckpt.run_dir / label} (step {good_body['step']}); "
                    f"`trainwell evaluate {ckpt.run_dir} --checkpoint {name}` scores it.")
        else:
            kept = " No checkpoint had been saved yet."
    rolled = state.ctx.nan_rollbacks
    tried = (f" {rolled} rollback(s) to the last good checkpoint, down to lr "
             f"{spec.optim.lr * 0.5 ** rolled:g}, did not help." if rolled else
             " Set stop.on_nan=rollback to restore the last good checkpoint, halve the lr and continue.")
    return (f"Training diverged: the loss became NaN or inf {where}.{layer} Likely causes: a learning rate "
            f"too high (optim.lr={spec.optim.lr:g} with {spec.optim.name}; try 10x lower or "
            f"`trainwell lr-find`), exploding gradients (set regularize.clip_norm=1.0), or bad input values "
            f"(extreme or unscaled features; keep data.scale=standard).{tried}{kept}")
