"""Activations match their closed forms; families drive init auto. Also the catalogue."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.catalogue import catalogue
from trainwell.core.errors import UserError
from trainwell.nn.activations import ACTIVATIONS, activation_family, make_activation
from trainwell.nn.init import INITIALIZERS
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.optim.regularizers import REGULARIZERS
from trainwell.optim.schedules import SCHEDULES

X = torch.linspace(-3, 3, 25, dtype=torch.float64)
SELU_LAMBDA, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
sig = lambda x: 1 / (1 + torch.exp(-x))  # noqa: E731

CLOSED = {
    "sigmoid": sig,
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "relu": lambda x: torch.where(x > 0, x, 0 * x),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "prelu": lambda x: torch.where(x > 0, x, 0.25 * x),                # initial learned slope
    "rrelu": lambda x: torch.where(x > 0, x, (1 / 8 + 1 / 3) / 2 * x),  # eval: mean slope
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": lambda x: SELU_LAMBDA * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1)),
    "gelu": lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
    "silu": lambda x: x * sig(x),
    "swish": lambda x: x * sig(x),
    "softplus": lambda x: torch.log(1 + torch.exp(x)),
    "softmax": lambda x: torch.exp(x) / torch.exp(x).sum(),
    "linear": lambda x: x,
    "step": lambda x: (x > 0).double(),
}


def test_every_activation_has_a_closed_form_test():
    assert set(CLOSED) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_matches_closed_form(name):
    act = make_activation(name).double().eval()
    assert isinstance(act, nn.Module)
    torch.testing.assert_close(act(X), CLOSED[name](X), rtol=1e-10, atol=1e-12)


def test_fresh_module_each_call():
    a, b = make_activation("prelu"), make_activation("prelu")
    assert a is not b and a.weight is not b.weight
    with torch.no_grad():
        a.weight.fill_(0.5)
    assert b.weight.item() == 0.25


def test_rrelu_random_slope_in_training():
    act = make_activation("rrelu").train()
    x = -torch.ones(10_000)
    slopes = -act(x)
    assert slopes.min() >= 1 / 8 and slopes.max() <= 1 / 3 and slopes.std() > 0.01


def test_step_outputs_zero_one_and_has_no_gradient():
    out = make_activation("step")(torch.tensor([-2.0, 0.0, 1e-6, 3.0]))
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    x = torch.tensor([0.5, -0.5], requires_grad=True)
    assert not make_activation("step")(x).requires_grad  # zero gradient: for the perceptron rule


def test_swish_is_silu_and_linear_is_identity():
    assert isinstance(make_activation("swish"), nn.SiLU)
    assert isinstance(make_activation("linear"), nn.Identity)


def test_families():
    assert {n for n in ACTIVATIONS if activation_family(n) == "relu"} == {
        "relu", "leaky_relu", "prelu", "rrelu", "gelu", "silu", "swish"}
    assert {n for n in ACTIVATIONS if activation_family(n) == "selu"} == {"selu", "elu"}
    assert {n for n in ACTIVATIONS if activation_family(n) == "saturating"} == {
        "sigmoid", "tanh", "softmax", "softplus"}
    assert activation_family("linear") == "linear" and activation_family("step") == "step"


def test_unknown_activation():
    with pytest.raises(UserError, match='Did you mean "sigmoid"'):
        make_activation("sigmiod")
    with pytest.raises(UserError, match="Valid choices"):
        activation_family("nope")


def test_catalogue_lists_every_registry_entry():
    cat = catalogue()
    from trainwell.nn.presets import PRESETS
    from trainwell.nn.topologies import TOPOLOGIES
    registries = {"activations": ACTIVATIONS, "initializers": INITIALIZERS, "optimizers": OPTIMIZERS,
                  "schedules": SCHEDULES, "regularizers": REGULARIZERS,
                  "model types": TOPOLOGIES, "model presets": PRESETS}
    assert set(cat) == set(registries)
    for area, registry in registries.items():
        assert list(cat[area]) == list(registry) and registry
        assert all(isinstance(d, str) and d.strip() and "\n" not in d for d in cat[area].values()), area
