"""Early stopping (Prechelt 1998; docs/practices/early_stopping.md): patience on a monitored value, and a target rule.

The state is a plain dataclass so a checkpoint can store and restore it exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


ACCURACY_VAL_ROWS = 1_000   # validation rows from which a classifier stops on its accuracy


def resolve_monitor(monitor: str, task: str, metric: str, val_rows: int | None = None,
                    target: float | None = None) -> str:
    """``auto``: for classification the validation metric (accuracy) on a validation split of at least
    1,000 rows, the validation loss on a smaller one; the validation loss for regression.

    On a large validation split the loss often rises while accuracy still improves: the network grows
    over-confident on the few rows it gets wrong (Guo et al., "On Calibration of Modern Neural Networks",
    ICML 2017), and stopping on the loss restored an early, less accurate epoch (MNIST: epoch 4, 0.969
    test accuracy). On a small one accuracy moves in steps of one row (1.4 % on SwissLabor's 70 rows) and
    its best epoch is often a lucky early one: there the log-loss, which every row moves a little, is the
    steadier signal (docs/tabular.md measures both). For regression the loss (MSE on the standardized
    target) and R^2 rank epochs alike. ``val_rows`` None: the split is not known, accuracy. A
    ``stop.target`` is a value of the metric (docs/training.md), so with one the metric is watched.
    """
    if monitor != "auto":
        return monitor
    if task not in ("binary", "multiclass", "multilabel"):
        return "val_loss"
    small = val_rows is not None and val_rows < ACCURACY_VAL_ROWS and target is None
    return "val_loss" if small else f"val_{metric}"


PATIENCE_EPOCHS = 10              # the usual patience (Prechelt, "Early Stopping - But When?", 1998) ...
REGRESSION_PATIENCE_EPOCHS = 30   # ... three times as long for a regression (docs/tabular.md measures it) ...
PATIENCE_STEPS = 1_000            # ... but never fewer optimizer steps than this


def resolve_patience(patience: int | str, steps_per_epoch: int, task: str | None = None) -> int:
    """``auto``: 10 epochs (30 for a regression), or as many as make 1,000 steps when epochs are short.

    On a table of a few hundred rows an epoch is a dozen steps, so 10 epochs is too
    short a wait for a noisy validation split of a few dozen rows: training stops on
    a lucky epoch long before the network has fit. A regression on a noisy target
    (wages, prices, test scores: R^2 of 0.1 to 0.6) keeps improving its validation
    MSE by less than the MSE's epoch-to-epoch noise for dozens of epochs, so it
    waits three times as long; a classifier's restored epoch did not move with a
    longer wait on 21 of 22 tables, so it does not pay for it (docs/tabular.md,
    "How long to wait").
    """
    if patience != "auto":
        return int(patience)
    epochs = REGRESSION_PATIENCE_EPOCHS if task == "regression" else PATIENCE_EPOCHS
    return max(epochs, math.ceil(PATIENCE_STEPS / max(steps_per_epoch, 1)))


def loss_tiebreak(monitor: str) -> str:
    """The value that breaks ties of a validation metric: the validation loss ("" for a loss itself)."""
    return "val_loss" if monitor.startswith("val_") and monitor != "val_loss" else ""


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
    target: float | None = None   # target rule: stop once the value reaches target ...
    delta: float = 1e-5           # ... and changed by less than delta since the last epoch
    enabled: bool = True
    best: float = field(default=math.nan)
    best_epoch: int = -1
    wait: int = 0
    previous: float = field(default=math.nan)
    reason: str = ""
    tiebreak: str = ""            # a second, minimised value that decides between equal ones (e.g. val_loss)
    best_tiebreak: float = field(default=math.nan)

    def improved(self, value: float, tiebreak: float = math.nan) -> bool:
        """Better than the best so far; or as good, with a lower tie-break value.

        An accuracy on a small validation split moves in steps of 1/rows and often stays
        level for many epochs while the model still improves; the tie-break (the
        validation loss) keeps counting those epochs as progress, when it falls by more than
        ``min_delta`` too (a threshold on the value alone would be void for an accuracy, whose steps
        are 1/rows; scikit-learn's MLP applies its ``tol`` to the loss it watches).
        """
        if math.isnan(self.best):
            return not math.isnan(value)
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        return better or (value == self.best and tiebreak < self.best_tiebreak - self.min_delta)

    def update(self, epoch: int, value: float, tiebreak: float = math.nan) -> bool:
        """Record this epoch's value; return True when training should stop."""
        is_better = self.improved(value, tiebreak)
        if is_better:
            self.best, self.best_epoch, self.wait, self.best_tiebreak = value, epoch, 0, tiebreak
        else:
            self.wait += 1
        stop = False
        if self.target is not None and not math.isnan(self.previous):
            reached = value >= self.target if self.mode == "max" else value <= self.target
            if reached and abs(value - self.previous) < self.delta:
                self.reason = (f"{self.monitor} reached the target {self.target:g} and changed by less than "
                               f"{self.delta:g} (target rule)")
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


def stopper_for(stop: Any, monitor: str, patience: int) -> EarlyStopping:
    """The early stopping of a ``stop`` spec section, once its monitor and patience are resolved."""
    return EarlyStopping(monitor=monitor, mode=resolve_mode(monitor, stop.mode), patience=patience,
                         min_delta=stop.min_delta, target=stop.target, delta=stop.delta, enabled=stop.enabled,
                         tiebreak=loss_tiebreak(monitor))
