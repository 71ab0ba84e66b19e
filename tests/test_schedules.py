"""Each schedule's learning rate at every step equals its formula."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from trainwell.core.errors import UserError
from trainwell.core.unread import KeysRead
from trainwell.optim.schedules import SCHEDULES, make_schedule, warn_unread_schedule
from trainwell.core.spec import ScheduleSpec

MU0 = 0.1


def setup(spec: ScheduleSpec, epochs: int = 30, steps_per_epoch: int = 1, lr: float = MU0):
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=lr)
    return opt, make_schedule(opt, spec, epochs=epochs, steps_per_epoch=steps_per_epoch)


def lrs_over(spec: ScheduleSpec, n: int = 30, *, by: str = "epoch", monitored=None, **kw) -> list[float]:
    """The lr in effect at t = 0..n-1 when advanced by step_epoch or step_batch."""
    opt, sched = setup(spec, **kw)
    out = []
    for t in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if by == "epoch":
            sched.step_epoch(None if monitored is None else monitored[t])
        else:
            sched.step_batch()
    return out


def close(got, want):
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want)):
        assert g == pytest.approx(w, rel=1e-9, abs=0), f"t={t}: {g} != {w}"


def test_none_is_constant():
    close(lrs_over(ScheduleSpec(name="none")), [MU0] * 30)


def test_step_halves_every_T():
    close(lrs_over(ScheduleSpec(name="step", step_size=4)), [MU0 / 2 ** (t // 4) for t in range(30)])
    close(lrs_over(ScheduleSpec(name="step", step_size=3, gamma=0.1)), [MU0 * 0.1 ** (t // 3) for t in range(30)])


def test_exponential_both_forms():
    close(lrs_over(ScheduleSpec(name="exponential", decay_rate=0.1)), [MU0 * math.exp(-0.1 * t) for t in range(30)])
    close(lrs_over(ScheduleSpec(name="exponential", decay_steps=7)), [MU0 * 0.1 ** (t / 7) for t in range(30)])
    # the smallest decay_steps (1: a tenth per epoch) is accepted; 0 is refused with its name
    close(lrs_over(ScheduleSpec(name="exponential", decay_steps=1), 5), [MU0 * 0.1 ** t for t in range(5)])
    with pytest.raises(UserError, match="decay_steps"):
        setup(ScheduleSpec(name="exponential", decay_steps=0))


def test_inverse_time():
    close(lrs_over(ScheduleSpec(name="inverse_time", decay_t=5)), [MU0 / (1 + t / 5) for t in range(30)])


def test_piecewise_values():
    spec = ScheduleSpec(name="piecewise", boundaries=[5, 12], values=[0.2, 0.05, 0.01])
    close(lrs_over(spec), [0.2 if t < 5 else 0.05 if t < 12 else 0.01 for t in range(30)])


def test_piecewise_gamma_when_no_values():
    spec = ScheduleSpec(name="piecewise", boundaries=[5, 12], gamma=0.1)
    close(lrs_over(spec), [MU0 * 0.1 ** ((t >= 5) + (t >= 12)) for t in range(30)])


@pytest.mark.parametrize("kw", [dict(boundaries=[5], values=[0.1]), dict(boundaries=[5, 3], values=[1, 2, 3]),
                                dict(), dict(boundaries=[5], values=[0.1, -1.0])])
def test_piecewise_validation(kw):
    with pytest.raises(UserError):
        setup(ScheduleSpec(name="piecewise", **kw))


def test_piecewise_limits_and_messages():
    close(lrs_over(ScheduleSpec(name="piecewise", boundaries=[1, 3], values=[0.3, 0.2, 0.1]), n=5),
          [0.3, 0.2, 0.2, 0.1, 0.1])                                 # a boundary at epoch 1 is allowed
    with pytest.raises(UserError, match=r"len\(boundaries\) \+ 1 = 3 learning rates .* got 2"):
        setup(ScheduleSpec(name="piecewise", boundaries=[2, 4], values=[0.1, 0.01]))
    with pytest.raises(UserError, match="positive and strictly increasing"):
        setup(ScheduleSpec(name="piecewise", boundaries=[0, 4], values=[0.1, 0.01, 0.001]))


def test_warmup_linear_then_constant():
    close(lrs_over(ScheduleSpec(name="warmup", warmup_steps=10), by="batch"),
          [MU0 * min(1.0, (t + 1) / 10) for t in range(30)])


def test_plateau_reduces_after_exactly_patience_bad_epochs():
    losses = [5, 4, 3, 3.5, 3.2, 3.0, 3.1, 2.0, 2.5, 2.4, 2.2, 2.1, 2.0, 1.9] + [1.9] * 16
    factor, patience = 0.5, 3

    # Keras rule by hand: count epochs since the last strict improvement; at `patience`, cut and reset.
    want, lr, best, bad = [], MU0, math.inf, 0
    for v in losses:
        want.append(lr)
        if v < best:
            best, bad = v, 0
        else:
            bad += 1
            if bad >= patience:
                lr, bad = lr * factor, 0
    got = lrs_over(ScheduleSpec(name="plateau", factor=factor, patience=patience), monitored=losses)
    close(got, want)
    assert got[5] == MU0 and got[6] == MU0 * factor  # epochs 3, 4, 5 did not improve -> cut after epoch 5


def test_plateau_needs_a_value_and_epoch_stepping():
    opt, sched = setup(ScheduleSpec(name="plateau"))
    with pytest.raises(UserError):
        sched.step_epoch(None)
    with pytest.raises(UserError):
        setup(ScheduleSpec(name="plateau", per="batch"))


def test_onecycle_peaks_at_max_lr_per_batch():
    epochs, spe = 5, 8
    got = lrs_over(ScheduleSpec(name="onecycle", max_lr=0.3), n=epochs * spe, by="batch",
                   epochs=epochs, steps_per_epoch=spe)
    assert max(got) == pytest.approx(0.3, rel=1e-12)
    assert got[0] == pytest.approx(0.3 / 25)
    peak = got.index(max(got))
    assert all(a <= b for a, b in zip(got[:peak], got[1:peak + 1]))   # rises ...
    assert all(a >= b for a, b in zip(got[peak:], got[peak + 1:]))    # ... then falls
    assert got[-1] < got[0] / 100
    default = lrs_over(ScheduleSpec(name="onecycle"), n=40, by="batch", epochs=5, steps_per_epoch=8)
    assert max(default) == pytest.approx(10 * MU0, rel=1e-12)


def onecycle_by_hand(t: int, total: int, max_lr: float) -> float:
    """1cycle (Smith & Topin 2019) as torch documents OneCycleLR's defaults: warm up from max_lr/25 to max_lr
    over the first 30 % of the steps, then anneal to max_lr/25/1e4, both halves cosine."""
    start, low = max_lr / 25, max_lr / 25 / 1e4
    up_end = 0.3 * total - 1
    cos = lambda a, b, pct: b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)  # noqa: E731
    if t <= up_end:
        return cos(start, max_lr, t / up_end)
    return cos(max_lr, low, (t - up_end) / (total - 1 - up_end))


@pytest.mark.parametrize("epochs,spe,max_lr", [(5, 8, 0.3), (3, 7, None)])
def test_onecycle_equals_its_formula_at_every_step(epochs, spe, max_lr):
    total = epochs * spe
    got = lrs_over(ScheduleSpec(name="onecycle", max_lr=max_lr), n=total, by="batch", epochs=epochs,
                   steps_per_epoch=spe)
    close(got, [onecycle_by_hand(t, total, max_lr or 10 * MU0) for t in range(total)])


def test_onecycle_holds_after_the_planned_steps():
    opt, sched = setup(ScheduleSpec(name="onecycle"), epochs=2, steps_per_epoch=3)
    for _ in range(10):  # more steps than planned must not crash
        opt.step()
        sched.step_batch()
    assert opt.param_groups[0]["lr"] == pytest.approx(onecycle_by_hand(5, 6, 10 * MU0), rel=1e-9)   # the last planned lr


def test_per_routes_the_right_calls():
    opt, sched = setup(ScheduleSpec(name="step", step_size=2))
    assert sched.per == "epoch"
    for _ in range(5):
        sched.step_batch()
    assert opt.param_groups[0]["lr"] == MU0
    got = lrs_over(ScheduleSpec(name="step", step_size=4, per="batch"), by="batch")
    close(got, [MU0 / 2 ** (t // 4) for t in range(30)])
    opt, sched = setup(ScheduleSpec(name="step", step_size=1, per="batch"))
    sched.step_epoch()
    assert opt.param_groups[0]["lr"] == MU0
    for name in SCHEDULES:
        expected = "batch" if name in ("onecycle", "warmup") else "epoch"
        spec = ScheduleSpec(name=name, boundaries=[3], values=[0.1, 0.01])
        assert setup(spec)[1].per == expected


ROUND_TRIP = {
    "step": ScheduleSpec(name="step", step_size=3),
    "exponential": ScheduleSpec(name="exponential", decay_rate=0.2),
    "inverse_time": ScheduleSpec(name="inverse_time", decay_t=2),
    "piecewise": ScheduleSpec(name="piecewise", boundaries=[4, 9], values=[0.3, 0.03, 0.003]),
    "plateau": ScheduleSpec(name="plateau", patience=2),
    "onecycle": ScheduleSpec(name="onecycle"),
    "warmup": ScheduleSpec(name="warmup", warmup_steps=12),
    "none": ScheduleSpec(name="none"),
}


def test_round_trip_covers_all():
    assert set(ROUND_TRIP) == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
@pytest.mark.parametrize("restore_optimizer", [True, False])
def test_state_dict_round_trip_continues_identically(name, restore_optimizer):
    spec = ROUND_TRIP[name]
    losses = [3, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

    def advance(opt, sched, ts):
        out = []
        for t in ts:
            opt.step()
            if sched.per == "batch":
                sched.step_batch()
            else:
                sched.step_epoch(losses[t])
            out.append(opt.param_groups[0]["lr"])
        return out

    opt, sched = setup(spec, epochs=20)
    advance(opt, sched, range(7))
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    reference = advance(opt, sched, range(7, 20))

    opt2, sched2 = setup(spec, epochs=20)
    if restore_optimizer:
        opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert advance(opt2, sched2, range(7, 20)) == reference


def test_unknown_schedule_and_mismatched_state():
    with pytest.raises(UserError, match="Did you mean"):
        setup(ScheduleSpec(name="exponentail"))
    _, sched = setup(ScheduleSpec(name="step"))
    with pytest.raises(UserError):
        sched.load_state_dict(setup(ScheduleSpec(name="warmup"))[1].state_dict())


def test_plateau_with_patience_1_cuts_after_every_bad_epoch_and_onecycle_takes_2_steps():
    got = lrs_over(ScheduleSpec(name="plateau", factor=0.5, patience=1), n=5, monitored=[3, 2, 2, 2, 1])
    close(got, [MU0, MU0, MU0, MU0 / 2, MU0 / 4])
    close(lrs_over(ScheduleSpec(name="onecycle", max_lr=0.3), n=2, by="batch", epochs=2, steps_per_epoch=1),
          [onecycle_by_hand(t, 2, 0.3) for t in range(2)])
    with pytest.raises(UserError, match="at least 2 steps"):
        setup(ScheduleSpec(name="onecycle"), epochs=1, steps_per_epoch=1)


CHANGED_SCHEDULE = {"step_size": 3, "gamma": 0.3, "decay_rate": 0.2, "decay_steps": 4, "decay_t": 3.0,
                    "boundaries": [4, 9], "values": [0.2, 0.1, 0.05], "factor": 0.2, "patience": 2, "max_lr": 0.5,
                    "warmup_steps": 7}


def trajectory(spec) -> tuple[list[float], KeysRead]:
    """The lr at each of 20 one-step epochs (a validation value that stops improving after 3), and the keys read."""
    keys = KeysRead(spec)
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=MU0)
    sched = make_schedule(opt, keys, epochs=20, steps_per_epoch=1)
    out = []
    for t in range(20):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step_batch()
        sched.step_epoch(1.0 / (1 + min(t, 3)))
    return out, keys


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_key_a_schedule_does_not_read_changes_nothing_and_is_named(name):
    """What ``warn_unread_schedule`` calls unread is unread: the schedule built with that key changed gives the
    same learning rate at every step, and the key is named in a warning with the schedules that read it; a key
    it reads changes the learning rates and is not named."""
    base = {"name": name, "boundaries": [5, 10], "values": [0.1, 0.05, 0.01]} if name == "piecewise" else {"name": name}
    plain, _ = trajectory(ScheduleSpec(**base))
    for key, value in CHANGED_SCHEDULE.items():
        changed, keys = trajectory(ScheduleSpec(**{**base, key: value}))
        if key in keys.read:
            assert changed != plain, (name, key)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                warn_unread_schedule(keys)
        else:
            assert changed == plain, (name, key)
            with pytest.warns(UserWarning, match=rf"schedule\.{key}=.* is not read by schedule\.name={name} .*no "
                                                 rf"effect.* reads {key}\b"):
                warn_unread_schedule(keys)
