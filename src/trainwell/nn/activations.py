"""Activation functions by spec name.

Every activation is torch's own module; this file only maps the names Keras and the literature
use to them, and says which *family* each belongs to so that initialisation
(``init: auto``) and the doctor can reason about it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.core.errors import choose

ACTIVATIONS: dict[str, str] = {
    "sigmoid": "logistic 1/(1+e^-x); saturates, outputs in (0, 1)",
    "tanh": "hyperbolic tangent; saturates, zero-centred outputs in (-1, 1)",
    "relu": "max(0, x); the default for hidden layers",
    "leaky_relu": "max(0.01x, x); keeps a small slope for x < 0 (no dead units)",
    "prelu": "leaky ReLU whose negative slope is learned (starts at 0.25)",
    "rrelu": "leaky ReLU with a random slope in [1/8, 1/3] while training (regularises)",
    "elu": "x if x > 0 else e^x - 1; smooth, negative outputs push means to 0",
    "selu": "scaled ELU (lambda 1.0507, alpha 1.6733); self-normalising with LeCun normal init",
    "gelu": "x * Phi(x) (Gaussian CDF); smooth ReLU used in transformers",
    "silu": "x * sigmoid(x) (Swish); smooth, non-monotonic ReLU variant",
    "swish": "alias of silu: x * sigmoid(x)",
    "softplus": "log(1 + e^x); smooth ReLU, strictly positive outputs",
    "softmax": "e^x_i / sum_j e^x_j over the last dimension; a probability vector",
    "linear": "identity g(x) = x (no non-linearity)",
    "step": "Heaviside step (x > 0) -> 0/1 for the perceptron; its gradient is zero, so not for backprop",
}


class Heaviside(nn.Module):
    """Heaviside step ``(x > 0) -> 1.0 else 0.0``: the perceptron's threshold unit.

    Its derivative is zero almost everywhere, so gradient descent cannot train
    through it; it exists for the perceptron learning rule, not for backprop.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype if x.is_floating_point() else torch.get_default_dtype())


_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "prelu": nn.PReLU,
    "rrelu": nn.RReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "softplus": nn.Softplus,
    "softmax": lambda: nn.Softmax(dim=-1),
    "linear": nn.Identity,
    "step": Heaviside,
}

_FAMILY: dict[str, str] = {
    **dict.fromkeys(("relu", "leaky_relu", "prelu", "rrelu", "gelu", "silu", "swish"), "relu"),
    **dict.fromkeys(("selu", "elu"), "selu"),
    **dict.fromkeys(("sigmoid", "tanh", "softmax", "softplus"), "saturating"),
    "linear": "linear",
    "step": "step",
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module (new each call: PReLU owns a parameter)."""
    return _FACTORIES[choose("activation", name, ACTIVATIONS)]()


def activation_family(name: str) -> str:
    """The family of ``name``: relu, selu, saturating, linear or step (drives init auto)."""
    return _FAMILY[choose("activation", name, ACTIVATIONS)]
