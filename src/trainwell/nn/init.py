"""Weight initializers by spec name, and ``auto``: the init matched to the activation.

The sampling is torch.nn.init's; this file maps the usual names (Keras') to it:
Glorot ``sigma^2 = 1/fan_avg``, He ``2/fan_in``, LeCun ``1/fan_in``; the uniform
variants draw from ``U(-r, r)`` with ``r = sqrt(3 sigma^2)`` (same variance).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.core.errors import UserError, choose
from trainwell.nn.activations import activation_family

INITIALIZERS: dict[str, str] = {
    "auto": "matched to the activation: ReLU family -> he_uniform, SELU/ELU -> lecun_normal, else glorot_uniform",
    "zeros": "all weights 0 (units stay identical: fails to break symmetry)",
    "constant": "all weights = model.init_value (fails to break symmetry; for demonstrations)",
    "normal": "N(0, init_std^2)",
    "uniform": "U(-init_limit, init_limit), e.g. U(-0.5, 0.5)",
    "glorot_normal": "Glorot/Xavier: N(0, 1/fan_avg), fan_avg = (fan_in+fan_out)/2; for tanh, sigmoid, softmax, none",
    "glorot_uniform": "Glorot/Xavier: U(-r, r), r = sqrt(3/fan_avg); for tanh, sigmoid, softmax, none",
    "he_normal": "He/Kaiming: N(0, 2/fan_in); for ReLU and its variants",
    "he_uniform": "He/Kaiming: U(-r, r), r = sqrt(6/fan_in); for ReLU and its variants",
    "lecun_normal": "LeCun: N(0, 1/fan_in); for SELU (self-normalising nets) and ELU",
    "lecun_uniform": "LeCun: U(-r, r), r = sqrt(3/fan_in); for SELU and ELU",
}

_LABEL = {
    "zeros": "zeros", "constant": "constant", "normal": "random normal", "uniform": "random uniform",
    "glorot_normal": "Glorot normal", "glorot_uniform": "Glorot uniform",
    "he_normal": "He normal", "he_uniform": "He uniform",
    "lecun_normal": "LeCun normal", "lecun_uniform": "LeCun uniform",
}

_AUTO = {"relu": "he_uniform", "selu": "lecun_normal"}   # any other family -> glorot_uniform


def resolve_init(init: str, activation: str) -> tuple[str, str]:
    """Concrete initializer for ``init`` (``auto`` follows the activation) and why."""
    init = choose("initializer", init, INITIALIZERS)
    family = activation_family(activation)
    if init != "auto":
        return init, f"{_LABEL[init]} (set in the spec)"
    concrete = _AUTO.get(family, "glorot_uniform")
    return concrete, f"{_LABEL[concrete]} (matched to {activation})"


def _kaiming(fn: Callable, nonlinearity: str) -> Callable[[torch.Tensor], None]:
    return lambda w: fn(w, mode="fan_in", nonlinearity=nonlinearity)


def init_layer(layer: nn.Module, init: str, *, std: float = 1.0, limit: float = 0.5,
               value: float = 0.0, bias: float = 0.0) -> None:
    """Initialise ``layer.weight`` with a concrete initializer and set its bias to ``bias``."""
    init = choose("initializer", init, INITIALIZERS)
    if init == "auto":
        raise UserError('init_layer needs a concrete initializer; call resolve_init(init, activation) '
                        'first to turn "auto" into one.')
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise UserError(f"Cannot initialise {type(layer).__name__}: it has no weight tensor "
                        "(initializers apply to Linear and Conv layers).")
    fill: dict[str, Callable[[torch.Tensor], object]] = {
        "zeros": nn.init.zeros_,
        "constant": lambda w: nn.init.constant_(w, value),
        "normal": lambda w: nn.init.normal_(w, 0.0, std),
        "uniform": lambda w: nn.init.uniform_(w, -limit, limit),
        "glorot_normal": nn.init.xavier_normal_,        # std = sqrt(2/(fan_in+fan_out))
        "glorot_uniform": nn.init.xavier_uniform_,      # r = sqrt(6/(fan_in+fan_out))
        "he_normal": _kaiming(nn.init.kaiming_normal_, "relu"),     # gain sqrt(2)
        "he_uniform": _kaiming(nn.init.kaiming_uniform_, "relu"),
        "lecun_normal": _kaiming(nn.init.kaiming_normal_, "linear"),  # gain 1: 1/fan_in
        "lecun_uniform": _kaiming(nn.init.kaiming_uniform_, "linear"),
    }
    fill[init](weight)
    if isinstance(getattr(layer, "bias", None), torch.Tensor):
        nn.init.constant_(layer.bias, bias)
