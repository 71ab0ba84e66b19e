"""Penalties equal lambda * sum|w| / lambda * sum w^2 on the chosen tensors; clipping as in Géron 2019, ch. 11."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.optim.regularizers import REGULARIZERS, activity_penalty, clip_gradients, weight_penalty
from trainwell.core.spec import RegularizeSpec


def model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(),
                      nn.Linear(4, 1))
    with torch.no_grad():
        m[3].weight.fill_(5.0)   # batch-norm gamma/beta must never count
        m[3].bias.fill_(-7.0)
    return m


def kernels(m):
    return [m[0].weight, m[2].weight, m[5].weight]


def biases(m):
    return [m[0].bias, m[2].bias, m[5].bias]


def test_off_is_none():
    assert weight_penalty(model(), RegularizeSpec()) is None
    assert activity_penalty([torch.ones(2, 3)], RegularizeSpec()) is None
    assert activity_penalty([], RegularizeSpec(activity_l1=1.0)) is None


@pytest.mark.parametrize("field,tensors,power", [
    ("l1", kernels, 1), ("l2", kernels, 2), ("bias_l1", biases, 1), ("bias_l2", biases, 2)])
def test_each_weight_term(field, tensors, power):
    m = model()
    got = weight_penalty(m, RegularizeSpec(**{field: 0.03}))
    want = 0.03 * sum(float((t.detach().double().abs() ** power).sum()) for t in tensors(m))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_terms_add_and_gradient_is_the_penalty_gradient():
    m = model()
    spec = RegularizeSpec(l1=0.01, l2=0.02, bias_l1=0.03, bias_l2=0.04)
    total = weight_penalty(m, spec)
    want = sum(0.01 * t.abs().sum() + 0.02 * t.square().sum() for t in kernels(m)) + \
        sum(0.03 * t.abs().sum() + 0.04 * t.square().sum() for t in biases(m))
    assert total.item() == pytest.approx(want.item(), rel=1e-6)
    total.backward()
    w = m[2].weight
    torch.testing.assert_close(w.grad, 0.01 * w.sign() + 0.04 * w.detach())
    assert m[3].weight.grad is None and m[3].bias.grad is None


def test_activity_penalty_is_per_sample_keras_convention():
    torch.manual_seed(0)
    a1, a2 = torch.randn(8, 5), torch.randn(8, 3)
    spec = RegularizeSpec(activity_l1=0.1, activity_l2=0.2)
    want = sum((0.1 * a.abs().sum() + 0.2 * a.square().sum()) / 8 for a in (a1, a2))
    assert activity_penalty([a1, a2], spec).item() == pytest.approx(want.item(), rel=1e-6)
    # doubling the batch with the same rows leaves it unchanged
    doubled = activity_penalty([torch.cat([a1, a1]), torch.cat([a2, a2])], spec)
    assert doubled.item() == pytest.approx(want.item(), rel=1e-6)


def grad_of(values):
    p = nn.Parameter(torch.zeros(len(values)))
    p.grad = torch.tensor(values)
    return p


def test_clip_by_value_matches_the_notes():
    p = grad_of([0.9, 100.0])
    clip_gradients([p], RegularizeSpec(clip_value=1.0))
    assert p.grad.tolist() == pytest.approx([0.9, 1.0], abs=1e-7)


def test_clip_by_norm_matches_the_notes_and_keeps_direction():
    p = grad_of([0.9, 100.0])
    clip_gradients([p], RegularizeSpec(clip_norm=1.0))
    torch.testing.assert_close(p.grad, torch.tensor([0.00899964, 0.9999595]), rtol=1e-6, atol=1e-8)
    small = grad_of([0.3, 0.4])
    clip_gradients([small], RegularizeSpec(clip_norm=1.0))
    assert small.grad.tolist() == pytest.approx([0.3, 0.4])  # under the threshold: untouched


def test_clip_value_then_norm_over_several_tensors():
    a, b = grad_of([0.9, 100.0]), grad_of([-3.0])
    clip_gradients([a, b], RegularizeSpec(clip_value=1.0, clip_norm=1.0))
    clipped = torch.tensor([0.9, 1.0, -1.0])
    want = clipped / clipped.norm()
    torch.testing.assert_close(torch.cat([a.grad, b.grad]), want, rtol=1e-5, atol=1e-7)


def test_clip_off_leaves_gradients():
    p = grad_of([0.9, 100.0])
    clip_gradients(iter([p]), RegularizeSpec())
    assert p.grad.tolist() == pytest.approx([0.9, 100.0])
    assert {"l1", "l2", "bias_l1", "bias_l2", "activity_l1", "activity_l2", "clip_norm", "clip_value"} <= set(REGULARIZERS)


def test_registry_names_are_the_spec_fields():
    assert set(REGULARIZERS) == set(RegularizeSpec.model_fields)


def test_noise_adds_gaussian_noise_of_that_std_to_training_inputs_only():
    """regularize.noise = sigma: each training step sees x + sigma * eps, eps ~ N(0, 1) (Bishop, "Training with
    Noise is Equivalent to Tikhonov Regularization", 1995); evaluation sees x unchanged."""
    from trainwell.build import build_state, resolve_architecture
    from trainwell.data.loading import load_table
    from trainwell.data.pipeline import prepare
    from trainwell.nn.topologies import topology
    from trainwell.core.spec import Spec
    from trainwell.train.loop import evaluate_tensors, make_step

    spec = Spec.build(None, sets=["data.source=digits", "regularize.noise=0.5", "model.ensemble=1"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    state = build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))
    seen = []
    state.ctx.forward = lambda x: (seen.append(x.clone()), state.model(x))[1]
    step = make_step(state)
    xb, yb = state.data.X_train, state.data.y_train
    torch.manual_seed(7)
    step(xb, yb)
    torch.manual_seed(7)
    torch.testing.assert_close(seen[0], xb + 0.5 * torch.randn_like(xb), rtol=0, atol=0)
    eps = ((seen[0] - xb) / 0.5).flatten().double()
    assert abs(float(eps.mean())) < 0.01 and float(eps.std()) == pytest.approx(1.0, abs=0.01)
    state.model.eval()
    clean = evaluate_tensors(state.model, state.head, xb, yb)
    assert evaluate_tensors(state.model, state.head, xb, yb) == clean     # no noise outside training steps


@pytest.mark.parametrize("field", ["activity_l1", "activity_l2"])
def test_each_activity_term_alone(field):
    a = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    power = 1 if field == "activity_l1" else 2
    got = activity_penalty([a], RegularizeSpec(**{field: 0.5}))
    assert got.item() == pytest.approx(0.5 * float((a.abs() ** power).sum()) / 4, rel=1e-6)
    one = activity_penalty([a[:1]], RegularizeSpec(**{field: 0.5}))          # a batch of one row: divided by 1
    assert one.item() == pytest.approx(0.5 * float((a[:1].abs() ** power).sum()), rel=1e-6)
