"""Initializers match their variance formulas; auto follows the activation table; symmetry."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.core.errors import UserError
from trainwell.nn.init import INITIALIZERS, init_layer, resolve_init

FAN_IN, FAN_OUT = 1000, 500
FAN_AVG = (FAN_IN + FAN_OUT) / 2
VARIANCE = {  # sigma^2 from Glorot & Bengio 2010, He et al. 2015, LeCun et al. 1998
    "glorot_normal": 1 / FAN_AVG, "glorot_uniform": 1 / FAN_AVG,
    "he_normal": 2 / FAN_IN, "he_uniform": 2 / FAN_IN,
    "lecun_normal": 1 / FAN_IN, "lecun_uniform": 1 / FAN_IN,
    "normal": 0.3 ** 2, "uniform": 0.2 ** 2 / 3,
}


def big_layer(init: str, **kw) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_layer(layer, init, std=0.3, limit=0.2, bias=0.7, **kw)
    return layer


@pytest.mark.parametrize("name", sorted(VARIANCE))
def test_variance_matches_formula(name):
    layer = big_layer(name)
    w = layer.weight.detach().double()
    assert abs(w.mean().item()) < 0.05 * math.sqrt(VARIANCE[name])
    assert w.var().item() == pytest.approx(VARIANCE[name], rel=0.05)
    assert torch.all(layer.bias == 0.7)
    if name.endswith("uniform"):
        r = math.sqrt(3 * VARIANCE[name])  # r = sqrt(3 sigma^2)
        assert w.abs().max().item() <= r + 1e-7
        assert w.abs().max().item() > 0.99 * r
    else:
        assert w.abs().max().item() > math.sqrt(3 * VARIANCE[name]) * 1.2  # normal tails exceed r


def test_conv_fan_in_counts_the_receptive_field():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 64, kernel_size=5)
    init_layer(conv, "he_normal")
    assert conv.weight.var().item() == pytest.approx(2 / (16 * 25), rel=0.05)


def test_constant_and_zeros():
    layer = nn.Linear(7, 3)
    init_layer(layer, "constant", value=0.25, bias=-1.0)
    assert torch.all(layer.weight == 0.25) and torch.all(layer.bias == -1.0)
    init_layer(layer, "zeros")
    assert torch.all(layer.weight == 0) and torch.all(layer.bias == 0)


@pytest.mark.parametrize("activation,expected", [
    ("relu", "he_uniform"), ("leaky_relu", "he_uniform"), ("prelu", "he_uniform"), ("rrelu", "he_uniform"),
    ("gelu", "he_uniform"), ("silu", "he_uniform"), ("swish", "he_uniform"),
    ("selu", "lecun_normal"), ("elu", "lecun_normal"),
    ("tanh", "glorot_uniform"), ("sigmoid", "glorot_uniform"), ("softmax", "glorot_uniform"),
    ("linear", "glorot_uniform"), ("softplus", "glorot_uniform"), ("step", "glorot_uniform"),
])
def test_auto_follows_the_table(activation, expected):
    name, reason = resolve_init("auto", activation)
    assert name == expected and activation in reason


def test_explicit_init_wins_and_names_are_checked():
    assert resolve_init("he_normal", "tanh")[0] == "he_normal"
    with pytest.raises(UserError, match='Did you mean "glorot_uniform"'):
        resolve_init("glorot_unifrom", "relu")
    with pytest.raises(UserError, match="Valid choices"):
        resolve_init("auto", "rleu")
    with pytest.raises(UserError, match="resolve_init"):
        init_layer(nn.Linear(2, 2), "auto")
    with pytest.raises(UserError):
        init_layer(nn.ReLU(), "zeros")
    assert set(INITIALIZERS) >= set(VARIANCE) | {"auto", "zeros", "constant"}


def hidden_rows_after_training(init: str) -> torch.Tensor:
    """Train a 3-4-1 tanh MLP a few SGD steps; return the hidden layer's weight rows."""
    torch.manual_seed(1)
    l1, l2 = nn.Linear(3, 4), nn.Linear(4, 1)
    for layer in (l1, l2):
        init_layer(layer, init, value=0.3, bias=0.1)
    model = nn.Sequential(l1, nn.Tanh(), l2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert not torch.allclose(l1.weight, torch.full_like(l1.weight, 0.3))  # it did train
    return torch.cat([l1.weight, l1.bias[:, None]], dim=1).detach()


def test_all_equal_init_keeps_units_identical_random_breaks_symmetry():
    same = hidden_rows_after_training("constant")
    assert torch.allclose(same, same[0].expand_as(same), atol=1e-7)
    broken = hidden_rows_after_training("glorot_uniform")
    assert (broken - broken[0]).abs().max() > 0.1
