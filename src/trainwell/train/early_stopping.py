"""Early stopping (PRACTICES §5): patience on a monitored value, and S0's target rule.

The state is a plain dataclass so a checkpoint can store and restore it exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def resolve_mode(monitor: str, mode: str) -> str:
    """``auto``: losses and errors are minimised, everything else maximised."""
    if mode != "auto":
        return mode
    return "min" if any(k in monitor for k in ("loss", "error", "mae", "mse", "rmse")) else "max"


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 10
    min_delta: float = 0.0
    target: float | None = None   # S0: stop once the value reaches target ...
    delta: float = 1e-5           # ... and changed by less than delta since the last epoch
    enabled: bool = True
    best: float = field(default=math.nan)
    best_epoch: int = -1
    wait: int = 0
    previous: float = field(default=math.nan)
    reason: str = ""

    def improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return not math.isnan(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, value: float) -> bool:
        """Record this epoch's value; return True when training should stop."""
        is_better = self.improved(value)
        if is_better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        stop = False
        if self.target is not None and not math.isnan(self.previous):
            reached = value >= self.target if self.mode == "max" else value <= self.target
            if reached and abs(value - self.previous) < self.delta:
                self.reason = (f"{self.monitor} reached the target {self.target:g} and changed by less than "
                               f"{self.delta:g} (S0 rule)")
                stop = True
        if not stop and self.enabled and self.wait > self.patience:
            self.reason = f"{self.monitor} no better for {self.patience} epochs"
            stop = True
        self.previous = value
        return stop

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
