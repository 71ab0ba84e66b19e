"""Learning-rate schedules by spec name: torch.optim.lr_scheduler behind one small wrapper.

``t`` counts epochs (from 0) for epoch-level schedules and optimizer steps for
batch-level ones; ``mu_0`` is the optimizer's lr. The training loop calls
``step_batch()`` after every optimizer step and ``step_epoch(val)`` after every
epoch; the wrapper forwards only the call that matches ``per``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim import lr_scheduler as lrs

from trainwell.core.errors import UserError, choose
from trainwell.core.unread import KeysRead, changed_keys, warn_unread
from trainwell.optim.eager import eager
from trainwell.core.spec import ScheduleSpec

SCHEDULES: dict[str, str] = {
    "none": "constant learning rate mu_0",
    "step": "step decay mu_0 * gamma^floor(t/step_size) (gamma 0.5: halve every step_size epochs)",
    "exponential": "mu_0 * e^(-decay_rate t), or mu_0 * 0.1^(t/decay_steps) when decay_steps is set",
    "inverse_time": "1/t decay mu_0 / (1 + t/decay_t) (Keras 'decay')",
    "piecewise": "piecewise constant: values[i] for boundaries[i-1] <= t < boundaries[i]",
    "plateau": "performance scheduling: lr *= factor after `patience` epochs without improvement",
    "onecycle": "1cycle: warm up to max_lr (default 10 x mu_0) then anneal, per batch (torch OneCycleLR)",
    "warmup": "linear warm-up mu_0 (t+1)/warmup_steps over warmup_steps batches, then constant mu_0",
}

_BATCH_BY_DEFAULT = ("onecycle", "warmup")


class LRSchedule:
    """A torch scheduler plus which loop event (``per``: epoch or batch) advances it."""

    def __init__(self, name: str, per: str, scheduler: Any | None,
                 optimizer: torch.optim.Optimizer) -> None:
        self.name = name
        self.per = per
        self.scheduler = scheduler
        self.optimizer = optimizer

    def step_batch(self) -> None:
        """Advance a batch-level schedule; call after every optimizer step."""
        if self.per != "batch" or self.scheduler is None:
            return
        if isinstance(self.scheduler, lrs.OneCycleLR) and \
                self.scheduler.last_epoch >= self.scheduler.total_steps - 1:
            return  # past the planned cycle (steps 0 .. total-1; e.g. a partial last batch): hold the final lr
        self.scheduler.step()

    def step_epoch(self, monitored: float | None = None) -> None:
        """Advance an epoch-level schedule; ``monitored`` is the validation value (plateau)."""
        if self.per != "epoch" or self.scheduler is None:
            return
        if isinstance(self.scheduler, lrs.ReduceLROnPlateau):
            if monitored is None:
                raise UserError('The "plateau" schedule needs a monitored validation value each '
                                "epoch; keep a validation split or choose another schedule.")
            self.scheduler.step(float(monitored))
        else:
            self.scheduler.step()

    @property
    def lr(self) -> list[float]:
        """Current learning rate of each parameter group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"name": self.name, "per": self.per,
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        """Restore the scheduler and put the optimizer's lr back where it was."""
        if d.get("name") != self.name:
            raise UserError(f'Saved schedule is "{d.get("name")}" but the spec says "{self.name}"; '
                            "resume with the spec the run was started with.")
        if self.scheduler is not None and d.get("scheduler") is not None:
            self.scheduler.load_state_dict(d["scheduler"])
            last = getattr(self.scheduler, "_last_lr", None)
            if last:
                for group, lr in zip(self.optimizer.param_groups, last):
                    group["lr"] = float(lr)


def _per(spec: "ScheduleSpec", name: str) -> str:
    if spec.per != "auto":
        if name == "plateau" and spec.per == "batch":
            raise UserError('The "plateau" schedule steps once per epoch on the validation value; '
                            "set schedule.per to auto or epoch.")
        return spec.per
    return "batch" if name in _BATCH_BY_DEFAULT else "epoch"


def _piecewise(optimizer: torch.optim.Optimizer, spec: "ScheduleSpec") -> Any:
    bounds, values = list(spec.boundaries), list(spec.values)
    if not bounds and not values:
        raise UserError('The "piecewise" schedule needs schedule.boundaries (e.g. [30, 60]) and '
                        "schedule.values (one more lr than boundaries, e.g. [0.1, 0.01, 0.001]).")
    if any(b <= a for a, b in zip(bounds, bounds[1:])) or any(b < 1 for b in bounds):
        raise UserError(f"schedule.boundaries {bounds} must be positive and strictly increasing.")
    if not values:  # no explicit values: multiply by gamma at each boundary
        return lrs.MultiStepLR(optimizer, milestones=bounds, gamma=spec.gamma)
    if len(values) != len(bounds) + 1:
        raise UserError(f"schedule.values needs len(boundaries) + 1 = {len(bounds) + 1} learning "
                        f"rates (one per interval), got {len(values)}.")
    if any(v <= 0 for v in values):
        raise UserError(f"schedule.values {values} must all be positive learning rates.")
    bases = [g["lr"] for g in optimizer.param_groups]

    def factor_for(base: float):
        def factor(t: int) -> float:
            i = sum(1 for b in bounds if t >= b)
            return values[i] / base
        return factor

    return lrs.LambdaLR(optimizer, [factor_for(b) for b in bases])


def make_schedule(optimizer: torch.optim.Optimizer, spec: "ScheduleSpec", *,
                  epochs: int, steps_per_epoch: int) -> LRSchedule:
    """Build the schedule ``spec.name`` over ``epochs`` x ``steps_per_epoch`` steps."""
    name = choose("schedule", spec.name, SCHEDULES)
    per = _per(spec, name)
    if name == "none":
        return LRSchedule(name, per, None, optimizer)
    if name == "step":
        sched: Any = lrs.StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
    elif name == "exponential":
        if spec.decay_steps is not None:
            if spec.decay_steps < 1:
                raise UserError(f"schedule.decay_steps must be >= 1, got {spec.decay_steps}.")
            gamma = 0.1 ** (1.0 / spec.decay_steps)
        else:
            gamma = math.exp(-spec.decay_rate)
        sched = lrs.ExponentialLR(optimizer, gamma=gamma)
    elif name == "inverse_time":
        T = spec.decay_t
        sched = lrs.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + t / T))
    elif name == "piecewise":
        sched = _piecewise(optimizer, spec)
    elif name == "plateau":
        # Keras semantics: reduce once `patience` epochs in a row did not improve.
        # torch reduces when bad epochs > its patience, hence patience - 1.
        sched = lrs.ReduceLROnPlateau(optimizer, mode="min", factor=spec.factor,
                                      patience=max(spec.patience - 1, 0),
                                      threshold=0.0, threshold_mode="abs")
    elif name == "onecycle":
        total = epochs * steps_per_epoch if per == "batch" else epochs
        if total < 2:
            raise UserError(f'The "onecycle" schedule needs at least 2 steps, got {total} '
                            f"({epochs} epochs x {steps_per_epoch} batches).")
        max_lrs = [spec.max_lr or 10.0 * g["lr"] for g in optimizer.param_groups]
        # cycle_momentum=False: keep the optimizer's momentum/betas exactly as specified.
        sched = lrs.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=total, cycle_momentum=False)
    else:  # warmup
        W = max(spec.warmup_steps, 1)
        sched = lrs.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / W))
    return LRSchedule(name, per, sched, optimizer)


def warn_unread_schedule(keys: KeysRead) -> None:
    """Name the ``schedule.*`` keys changed from their default that the chosen schedule did not read while it
    was built from ``keys`` (``schedule.step_size`` with the plateau schedule), with the schedules that read
    each: every schedule is built once on a one-number optimizer from the same spec, noting what it reads."""
    spec = keys.section
    unread = {k: v for k, v in changed_keys(spec).items() if k not in keys.read}
    if not unread:
        return
    readers: dict[str, list[str]] = {}
    for name in SCHEDULES:
        probe = KeysRead(spec.model_copy(update={"name": name}))
        try:
            make_schedule(eager(torch.optim.SGD)([torch.zeros(1, requires_grad=True)], lr=1e-3), probe,
                          epochs=2, steps_per_epoch=2)
        except UserError:          # e.g. piecewise without boundaries: what it read before refusing still counts
            pass
        for k in probe.read:
            readers.setdefault(k, []).append(name)
    warn_unread("schedule", "schedule.name", spec.name, unread, readers)
