"""The hand-written CPU step (train/fast.py) trains exactly as autograd does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainwell.build import build_state, resolve_architecture
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.core.spec import Spec
from trainwell.train.fast import analytic_step, eligible, fused_adam_step
from trainwell.train.loop import fit_loop

TOL = 1e-5


def _state(sets):
    spec = Spec.build(None, sets=["data.source=digits", "train.epochs=2", "stop.enabled=false",
                                  "model.hidden=[16]", "train.monitor=false", *sets])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    return build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))


def _train(sets):
    state = _state(sets)
    state.stopper.enabled = False
    return fit_loop(state)


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


@pytest.mark.parametrize("sets", [[], ["model.dropout=0.2", "model.hidden=[16, 8]"],
                                  ["model.activation=tanh", "model.hidden=[16, 8]"],
                                  ["model.activation=sigmoid", "optim.name=adamw", "optim.weight_decay=0.01"],
                                  ["model.activation=gelu", "model.hidden=[16, 8]"],
                                  ["model.activation=silu", "data.source=breast_cancer"],
                                  ["model.activation=elu", "model.ensemble=1", "data.source=diabetes"],
                                  ["data.source=breast_cancer"], ["data.source=diabetes", "model.activation=leaky_relu"],
                                  ["optim.name=momentum"],
                                  # one network (model.ensemble=1) takes _loss_grad, not the packed ensemble's
                                  ["model.ensemble=1", "model.hidden=[16, 8]"],
                                  ["model.ensemble=1", "data.source=breast_cancer"],
                                  ["model.ensemble=1", "data.source=diabetes", "optim.name=momentum"],
                                  # the L1/L2 gradients added by hand, one network and the packed ensemble's 1/k,
                                  # under momentum, which would see a wrong scale
                                  ["model.ensemble=1", "optim.name=momentum", "regularize.l2=0.01",
                                   "regularize.l1=0.001", "regularize.bias_l2=0.01", "regularize.bias_l1=0.001"],
                                  ["optim.name=momentum", "regularize.l2=0.01", "regularize.l1=0.001",
                                   "regularize.bias_l2=0.01"]])   # Adam
                                  # would not see a gradient off by a constant factor (its step is scale-free)
def test_default_cpu_step_matches_autograd(sets):
    """The default step (backward=auto, hand-written) ends with autograd's weights and the same history."""
    assert eligible(_state(sets))                  # the hand-written step is the one compared, not a fallback
    ref = _train(["train.backward=autograd", *sets])
    auto = _train(sets)
    fast = _train(["train.fast=true", *sets])
    assert _max_diff(ref.model, auto.model) < TOL
    assert _max_diff(ref.model, fast.model) < TOL
    metric = auto.head.metric
    for a, b in zip(ref.history, auto.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a[f"train_{metric}"] == pytest.approx(b[f"train_{metric}"], rel=1e-5, abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert all(np.isnan(r[f"train_{metric}"]) for r in fast.history)   # train.fast skips the per-step metric


def test_eligibility():
    def state_for(sets):
        spec = Spec.build(None, sets=["data.source=digits", "model.hidden=[8]", *sets])
        prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
        return build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))
    assert eligible(state_for([])) is True
    assert eligible(state_for(["data.source=diabetes"])) is True      # plain regression: written out too
    assert eligible(state_for(["regularize.l2=0.01", "regularize.bias_l1=0.01"])) is True   # penalties written out
    for sets in (["train.backward=autograd"], ["model.batchnorm=true"], ["regularize.activity_l2=0.01"],
                 ["model.activation=selu"], ["regularize.clip_norm=1.0"], ["model.residual=true", "model.hidden=[8, 8]"],
                 ["data.source=diabetes", "model.output_activation=softplus"]):
        st = state_for(sets)
        assert eligible(st) is False, sets
        assert analytic_step(st, fallback=None) is None
    st = state_for(["model.dropout=0.1"])
    assert eligible(st) is True
    st.model.blocks[0].drop = torch.nn.AlphaDropout(0.1)    # a dropout the written-out step does not draw
    assert eligible(st) is False


def test_a_weighted_batch_is_handed_to_the_autograd_step():
    """The written-out backward is the unweighted loss's: a batch with a weight other than 1 goes to the
    fallback (autograd) step, whose loss the step returns; weight 1 stays on the written-out step."""
    spec = Spec.build(None, sets=["data.source=digits", "model.hidden=[8]"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    state = build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))
    calls = []

    def fallback(xb, yb, weight=None):
        calls.append(weight)
        return ("fallback", weight)

    step = analytic_step(state, fallback=fallback)
    xb, yb = state.data.X_train[:32], state.data.y_train[:32]
    assert step(xb, yb, 0.5) == ("fallback", 0.5) and calls == [0.5]
    out = step(xb, yb, 1.0)
    assert calls == [0.5] and out[0].dim() == 0          # written out: a scalar loss tensor, no fallback


@pytest.mark.parametrize("cls,wd", [(torch.optim.Adam, 0.0), (torch.optim.Adam, 1e-2), (torch.optim.AdamW, 1e-2)])
def test_direct_fused_adam_is_bit_identical_to_step(cls, wd):
    """fused_adam_step calls torch's fused kernel on the optimizer's own state: results equal opt.step()."""
    torch.manual_seed(0)
    a = [torch.randn(5, 3), torch.randn(3)]
    b = [t.clone() for t in a]
    opt_a = cls(a, lr=1e-2, betas=(0.8, 0.99), weight_decay=wd, fused=True)
    opt_b = cls(b, lr=1e-2, betas=(0.8, 0.99), weight_decay=wd, fused=True)
    direct = fused_adam_step(opt_b)
    assert direct != opt_b.step
    for i in range(6):
        grads = [torch.randn_like(t) for t in a]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        if i == 3:   # a schedule changes the lr between steps
            for o in (opt_a, opt_b):
                o.param_groups[0]["lr"] = 3e-3
        opt_a.step()
        direct()
        for p, q in zip(a, b):
            assert torch.equal(p, q)
    for p, q in zip(a, b):
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[p][k], opt_b.state[q][k])


def test_direct_fused_adam_falls_back_where_it_must():
    p = [torch.randn(3)]
    assert fused_adam_step(torch.optim.Adam(p, amsgrad=True, fused=True)) is not None
    opt = torch.optim.Adam(p, amsgrad=True, fused=True)
    assert fused_adam_step(opt) == opt.step
    opt = torch.optim.SGD(p, lr=0.1)
    assert fused_adam_step(opt) == opt.step
    opt = torch.optim.Adam(p, lr=0.1)          # foreach, not fused
    assert fused_adam_step(opt) == opt.step


def _default_digits_state(sets: list[str]):
    """The default digits run's training state: width auto = 32, a packed ensemble of 8, cross-fitted."""
    spec = Spec.build(None, sets=["data.source=digits", "stop.enabled=false", *sets])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    state = build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))
    assert type(state.model).__name__ == "PackedMLP" and state.model.blocks[0].linear.weight.shape == (8, 32, 64)
    assert state.model.crossfit
    return state


def test_default_run_weights_equal_autograds():
    """README: on the default digits run the hand-written step's weights equal torch autograd's to 1e-6 over
    4 epochs (204 steps; float32 rounding, 9e-8 measured). Over longer runs a ReLU whose input lies within
    rounding of 0 can fall on the other side in one of the two runs (the first time at step 209 of this
    run), and the runs then follow different, equally valid trajectories: what holds at every step is
    the next test."""
    ref = fit_loop(_default_digits_state(["train.epochs=4", "train.backward=autograd"]))
    auto = fit_loop(_default_digits_state(["train.epochs=4"]))
    assert eligible(auto) and not eligible(ref)
    assert 0 < _max_diff(ref.model, auto.model) < 1e-6


def test_default_step_gradients_equal_autograds_along_training():
    """The hand-written step's gradients against autograd's on the same weights and batch, at 100 points of
    a training trajectory of the default digits run (weights moved between them): equal to float32
    rounding, the cross-fitted members' held-out rows included."""
    state = _default_digits_state(["optim.name=sgd", "optim.lr=1e-30"])    # the step's update is negligible
    step = analytic_step(state, None)
    model, X, y = state.model, state.data.X_train, state.data.y_train
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(100):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        rows = torch.randint(0, X.shape[0], (32,), generator=g)
        step(X[rows], y[rows])
        written = [p.grad.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        state.head.loss_fn(model(X[rows]), y[rows]).backward()
        worst = max(worst, *(float((a - p.grad).abs().max()) for a, p in zip(written, model.parameters())))
    assert 0 < worst < 2e-6


def test_train_fast_flushes_denormals_while_training_only():
    """train.fast on CPU: denormal floats read as zero during training (torch.set_flush_denormal), restored after."""
    seen = []

    class Probe:
        def on_epoch_end(self, state):
            seen.append(float(torch.tensor([1e-40], dtype=torch.float32)[0]))

    for fast in (False, True):
        spec = Spec.build(None, sets=["data.source=iris", "train.epochs=1", f"train.fast={str(fast).lower()}"])
        prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
        fit_loop(build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu")), [Probe()])
    assert seen[0] == pytest.approx(1e-40, rel=1e-3) and seen[1] == 0.0
    assert float(torch.tensor([1e-40], dtype=torch.float32)[0]) != 0.0


@pytest.mark.parametrize("task, classes", [("multiclass", 5), ("binary", 1)])
def test_packed_step_scores_the_ensemble_as_the_head_does(task, classes):
    """The packed step's train-metric terms (from the probabilities its gradient needs) equal
    Head.metric_terms on the combined logits: [correct, count] of the ensemble's averaged prediction."""
    from trainwell.nn.heads import Head
    from trainwell.train.fast import _packed_loss_grad
    k, B = 8, 257
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(k, B, classes, generator=gen) * 3
    y = torch.randint(0, 5, (B,), generator=gen) if task == "multiclass" else \
        torch.randint(0, 2, (B,), generator=gen).float()
    head = Head(task=task, loss="cross_entropy" if task == "multiclass" else "bce", members=k)
    nan = torch.full((2,), float("nan"))
    _, terms, _ = _packed_loss_grad(head, out.clone(), y, True, nan, {})
    expected = head.metric_terms(out.transpose(0, 1), y)
    assert torch.equal(terms, expected) and 0 < float(terms[0]) < B
    weighted = Head(task=task, loss=head.loss, members=k, class_weight=(1.0, 3.0, 1.0, 1.0, 1.0)[:max(classes, 2)])
    _, terms_w, _ = _packed_loss_grad(weighted, out.clone(), y, True, nan, {})
    assert torch.equal(terms_w, weighted.metric_terms(out.transpose(0, 1), y))   # weighted: the head's own terms
