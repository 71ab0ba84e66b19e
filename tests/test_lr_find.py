"""LR range test (Smith 2017): geometric lr, smoothed loss, divergence stop, suggestion that trains well, no side effects."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import trainwell as tw
from trainwell.build import build_state, resolve_architecture
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.diagnose.lr_finder import _suggest, lr_range_test
from trainwell.core.spec import Spec

FAST = ["train.progress=false"]


def _state(sets=()):
    spec = Spec.build(None, sets=["data.source=digits", *sets])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    arch, _ = resolve_architecture(spec, prep)
    return build_state(spec, prep, arch, torch.device("cpu"))


def test_model_and_optimizer_unchanged():
    state = _state()
    d = state.data
    loss = state.head.loss_fn(state.model(d.X_train[:32]), d.y_train[:32])   # give Adam some state first
    loss.backward()
    state.optimizer.step()
    params = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
    opt_before = _opt_tensors(state.optimizer)
    lr_before = state.optimizer.param_groups[0]["lr"]
    r = lr_range_test(state.model, state.optimizer, state.head.loss_fn, d.X_train, d.y_train, steps=60)
    assert len(r.lrs) >= 10
    for k, v in state.model.state_dict().items():
        assert torch.equal(v, params[k]), k
    after = _opt_tensors(state.optimizer)
    assert after.keys() == opt_before.keys()
    assert all(torch.equal(after[k], opt_before[k]) for k in after)
    assert state.optimizer.param_groups[0]["lr"] == lr_before
    # the optimizer still drives the model's own parameters
    assert state.optimizer.param_groups[0]["params"][0] is next(state.model.parameters())


def _opt_tensors(opt):
    out = {}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            out[f"{i}.{k}"] = v.clone() if torch.is_tensor(v) else torch.tensor(float(v))
    return out


def test_geometric_schedule_and_divergence_stop():
    state = _state(["optim.name=sgd"])
    d = state.data
    r = lr_range_test(state.model, state.optimizer, state.head.loss_fn, d.X_train, d.y_train, start_lr=1e-7,
                      end_lr=10, steps=150)
    ratios = np.diff(np.log(r.lrs))
    assert np.allclose(ratios, math.log(10 / 1e-7) / 149)
    assert r.lrs[0] == pytest.approx(1e-7)
    assert r.stopped_early and r.divergence_lr is not None
    best = min(r.smoothed[:-1])
    assert r.smoothed[-1] > 4 * best or not math.isfinite(r.smoothed[-1])
    assert r.half_divergence_lr == pytest.approx(r.divergence_lr / 2)
    assert r.suggested_lr == min(r.steepest_lr, r.half_divergence_lr)


def test_smoothing_and_steepest_on_synthetic_curve():
    lrs = list(np.geomspace(1e-6, 1, 100))
    x = np.log10(lrs)
    smoothed = list(2 - np.tanh(2 * (x + 3)))      # steepest descent at lr = 1e-3, then flat
    r = _suggest(lrs, smoothed, smoothed, stopped=False)
    assert r.steepest_lr == pytest.approx(1e-3, rel=0.2)
    assert r.divergence_lr is None


@pytest.mark.slow
def test_lr_find_suggestion_trains_digits(tmp_path, cli):
    r = cli("lr-find", "digits", "--out", str(tmp_path / "lr"))
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 10_000
    lr = info["suggested_lr"]
    assert 1e-5 < lr < 1 and "suggested lr" in r.stdout
    run = tw.fit("digits", sets=[f"optim.lr={lr}", *FAST], save=False, verbose=False)
    assert run.metrics["test"]["accuracy"] >= 0.95, (lr, run.metrics["test"])
