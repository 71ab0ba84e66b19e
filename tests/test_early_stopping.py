"""Early stopping's rules, each against the rule written out by hand in the test.

Patience (Prechelt, "Early Stopping - But When?", 1998): stop once the monitored value has
not improved by more than ``min_delta`` for more than ``patience`` epochs. The target rule of
the lecture notes: stop once the validation metric reaches ``target`` and changed by less than
``delta`` since the previous epoch.
"""
from __future__ import annotations

import math

import pytest

from trainwell.train.early_stopping import (PATIENCE_EPOCHS, PATIENCE_STEPS, REGRESSION_PATIENCE_EPOCHS, EarlyStopping,
                                            resolve_mode, resolve_patience)


def by_hand(values, *, mode, patience, min_delta=0.0, target=None, delta=1e-5):
    """The stopping epoch (1-based index into values) and best index, written out independently."""
    best, best_i, wait, prev = None, -1, 0, None
    for i, v in enumerate(values):
        sign = 1.0 if mode == "max" else -1.0
        if best is None or sign * (v - best) > min_delta:
            best, best_i, wait = v, i, 0
        else:
            wait += 1
        if target is not None and prev is not None and sign * (v - target) >= 0 and abs(v - prev) < delta:
            return i, best_i, "target"
        if wait > patience:
            return i, best_i, "patience"
        prev = v
    return None, best_i, ""


def replay(stopper, values):
    for i, v in enumerate(values):
        if stopper.update(i, v):
            return i
    return None


SERIES = {
    "rising": [0.50, 0.60, 0.70, 0.72, 0.72, 0.71, 0.73, 0.73, 0.73, 0.74, 0.74, 0.74, 0.74, 0.74],
    "falling": [2.0, 1.5, 1.2, 1.19, 1.195, 1.18, 1.18, 1.25, 1.3, 1.181, 1.4, 1.5, 1.6, 1.7],
}


@pytest.mark.parametrize("mode,series", [("max", "rising"), ("min", "falling")])
@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("min_delta", [0.0, 0.004, 0.013])   # off the series' steps: no float ties
def test_patience_and_min_delta_follow_the_rule(mode, series, patience, min_delta):
    values = SERIES[series]
    stopper = EarlyStopping(monitor="m", mode=mode, patience=patience, min_delta=min_delta)
    stopped = replay(stopper, values)
    want_stop, want_best, why = by_hand(values, mode=mode, patience=patience, min_delta=min_delta)
    assert stopped == want_stop and stopper.best_epoch == want_best
    assert stopper.best == values[want_best]
    if why:
        assert stopper.reason == f"m no better for {patience} epochs"


@pytest.mark.parametrize("target,delta", [(0.74, 1e-5), (0.73, 1e-5), (0.72, 0.02), (0.80, 1.0), (0.70, 0.0)])
def test_target_rule_stops_when_reached_and_flat(target, delta):
    """Stop at the first epoch whose value is >= target and moved < delta since the previous epoch."""
    values = SERIES["rising"]
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=100, target=target, delta=delta)
    stopped = replay(stopper, values)
    want = next((i for i in range(1, len(values))
                 if values[i] >= target and abs(values[i] - values[i - 1]) < delta), None)
    assert stopped == want
    if want is not None:
        assert "reached the target" in stopper.reason and f"{target:g}" in stopper.reason


def test_target_rule_for_a_minimised_value_and_when_disabled():
    values = SERIES["falling"]
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=100, target=1.2, delta=0.011)
    assert replay(stopper, values) == 3                     # 1.19 <= 1.2 and |1.19 - 1.2| = 0.01 < 0.011
    # the target rule applies even when patience is off (stop.enabled=false), patience then never stops
    off = EarlyStopping(monitor="val_loss", mode="min", patience=0, enabled=False, target=1.0, delta=0.1)
    assert replay(off, values) is None and off.wait > 0


def test_first_value_and_nan():
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=3)
    assert stopper.best_epoch == -1 and not stopper.update(0, math.nan)   # no finite value yet: no best epoch
    assert stopper.best_epoch == -1 and math.isnan(stopper.best) and stopper.wait == 1
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=0)
    assert not stopper.improved(math.nan)
    assert stopper.improved(5.0) and not stopper.update(0, 5.0)
    assert stopper.best_epoch == 0 and stopper.wait == 0
    assert stopper.update(1, 5.0)                           # equal is no progress; wait 1 > patience 0
    assert stopper.best_epoch == 0


def test_resolved_defaults():
    assert (PATIENCE_EPOCHS, REGRESSION_PATIENCE_EPOCHS, PATIENCE_STEPS) == (10, 30, 1_000)
    assert resolve_patience("auto", 1_000) == 10 and resolve_patience("auto", 99) == 11   # ceil(1000/99)
    assert resolve_patience("auto", 0) == 1_000 and resolve_patience("7", 5) == 7
    for task in ("binary", "multiclass", "multilabel"):
        assert resolve_patience("auto", 99, task) == 11
    assert resolve_patience("auto", 99, "regression") == 30 and resolve_patience("auto", 1_000, "regression") == 30
    assert resolve_patience("auto", 13, "regression") == 77 and resolve_patience(4, 99, "regression") == 4  # ceil(1000/13)
    assert resolve_mode("val_loss", "auto") == "min" and resolve_mode("val_mae", "auto") == "min"
    assert resolve_mode("val_accuracy", "auto") == "max" and resolve_mode("val_r2", "auto") == "max"
    assert resolve_mode("val_loss", "max") == "max"
    s = EarlyStopping()
    assert (s.monitor, s.mode, s.patience, s.min_delta, s.target, s.delta, s.enabled) == \
        ("val_loss", "min", 10, 0.0, None, 1e-5, True)


def test_state_round_trip_continues_identically():
    values = SERIES["falling"]
    a = EarlyStopping(monitor="val_loss", mode="min", patience=3, min_delta=0.001, target=0.5)
    for i, v in enumerate(values[:6]):
        a.update(i, v)
    b = EarlyStopping()
    b.load_state_dict(a.state_dict())
    assert [a.update(i, v) for i, v in enumerate(values[6:], 6)] == [b.update(i, v) for i, v in enumerate(values[6:], 6)]
    assert a.state_dict() == b.state_dict()


def test_target_rule_on_a_real_run():
    """The default run with stop.target: it stops at the first epoch the rule holds, read back from its history."""
    import trainwell as tw
    run = tw.fit("iris", verbose=False, save=False,
                 sets=["train.epochs=200", "train.progress=false", "stop.target=0.9", "stop.delta=0.01"])
    acc = [row["val_accuracy"] for row in run.history.to_dict("records")]
    want = next(i for i in range(1, len(acc)) if acc[i] >= 0.9 and abs(acc[i] - acc[i - 1]) < 0.01)
    assert len(acc) == want + 1 and "reached the target 0.9" in run.metrics["stopped_because"]
