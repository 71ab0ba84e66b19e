"""Models built from a plain architecture dict (what ``model.json`` stores).

The architecture dict is the single description of a network: its topology's ``build``
(nn/topologies/, ``build_model``) turns it into modules, and the same dict saved next to
the weights rebuilds it.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from trainwell.nn.activations import activation_family, make_activation
from trainwell.nn.ensemble import PackedLinear
from trainwell.nn.init import init_layer

# Keras' convention (docs/practices/normalization.md): mu <- mu * momentum + mu_B * (1 - momentum), momentum 0.9.
# torch's BatchNorm1d(momentum=m) writes the same update the other way round: (1 - m) mu + m mu_B.
BN_MOMENTUM = 0.9


class DenseBlock(nn.Module):
    """Linear -> [batch norm before] -> activation -> [batch norm after] -> dropout.

    With ``residual`` the block returns ``a + F(a)`` (He et al. 2016); where the widths differ
    the skip path is a learned linear projection ``P a + F(a)`` (no bias).
    """

    def __init__(self, n_in: int, n_out: int, activation: str, dropout: float,
                 batchnorm: str | bool, residual: bool = False, alpha_dropout: bool = False):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.bn_before = nn.BatchNorm1d(n_out, momentum=1 - BN_MOMENTUM) if batchnorm in (True, "before") else None
        self.act = make_activation(activation)
        self.bn_after = nn.BatchNorm1d(n_out, momentum=1 - BN_MOMENTUM) if batchnorm == "after" else None
        if dropout > 0:
            self.drop = nn.AlphaDropout(dropout) if alpha_dropout else nn.Dropout(dropout)
        else:
            self.drop = None
        self.residual = bool(residual)
        self.proj = nn.Linear(n_in, n_out, bias=False) if residual and n_in != n_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        if self.bn_before is not None:
            h = self.bn_before(h)
        h = self.act(h)
        if self.bn_after is not None:
            h = self.bn_after(h)
        if self.drop is not None:
            h = self.drop(h)
        if not self.residual:
            return h
        return (x if self.proj is None else self.proj(x)) + h


class MLP(nn.Module):
    """Feed-forward network: dense blocks, then a linear output layer (no dropout on it)."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        widths = [arch["n_inputs"], *arch["hidden"]]
        alpha = arch.get("activation") == "selu"
        self.blocks = nn.ModuleList(
            DenseBlock(widths[i], widths[i + 1], arch["activation"], arch.get("dropout", 0.0),
                       arch.get("batchnorm", False), arch.get("residual", False), alpha)
            for i in range(len(widths) - 1)
        )
        self.out = nn.Linear(widths[-1], arch["n_outputs"])
        self.record_activity = False
        self.activity: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        if self.record_activity:
            self.activity = []
        for block in self.blocks:
            x = block(x)
            if self.record_activity:
                self.activity.append(x)
        return self.out(x)


def initialize(model: nn.Module, arch: dict[str, Any], seed: int) -> None:
    """Apply the architecture's initializer to every linear layer, reproducibly."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    options = dict(std=arch.get("init_std", 1.0), limit=arch.get("init_limit", 0.5),
                   value=arch.get("init_value", 0.0), bias=arch.get("bias_init", 0.0))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            init_layer(module, arch["init"], **options)
        elif isinstance(module, PackedLinear):      # each member's slice, as if it were its own nn.Linear
            with torch.no_grad():                   # what a narrower member does not use is zero (nn/member_widths.py)
                module.weight.zero_()
                module.bias.zero_()
            for weight, bias in module.member_views():
                init_layer(SimpleNamespace(weight=weight, bias=bias), arch["init"], **options)
    torch.random.set_rng_state(gen_state)


LARGE = 10_000     # training rows from which the default network is ISLR's MNIST network (docs/practices/width.md)


def default_hidden(n_samples: int, n_inputs: int, n_outputs: int) -> tuple[list[int], str]:
    """``model.hidden: auto``: the width heuristic below 10,000 rows, [256, 128] from there on.

    On small tables the heuristic's narrow layer (with the default ensemble, nn/ensemble.py)
    matches or beats wider and deeper ones (docs/tabular.md); on large data it starves the
    network (MNIST: N_h = 36.5 -> [32, 32], 0.960 test accuracy), where ISLR's (James et al. 2021)
    784-256-128-10 network has the data to fit it.
    """
    if n_samples < LARGE:
        return auto_hidden(n_samples, n_inputs, n_outputs)
    return [256, 128], (f"hidden [256, 128]: {n_samples:,} training rows (10,000 or more) fit ISLR's MNIST "
                        f"256-128 pyramid; model.hidden=heuristic gives N_s/((N_i+N_o)*gamma)")


def auto_hidden(n_samples: int, n_inputs: int, n_outputs: int, gamma: float = 2.0) -> tuple[list[int], str]:
    """Width heuristic N_h = N_s / ((N_i + N_o) * gamma) (docs/practices/width.md), with a floor.

    The formula (gamma = 2, its most generous end) is rounded to a power of two.
    On small tables it gives very narrow layers (digits: 9.7 units), so the width
    is raised to at least 16 and to the power of two at or above 2 x N_o (a
    bottleneck narrower than the output loses classes), and capped at 512.
    Data of 10,000 rows or more gets a second, halved layer (the "pyramid").
    """
    raw = n_samples / ((n_inputs + n_outputs) * gamma)
    floor = max(16, 2 ** math.ceil(math.log2(2 * n_outputs)))
    width = int(min(512, max(floor, 2 ** round(math.log2(max(raw, 1.0))))))
    hidden = [width] if n_samples < 10_000 else [width, max(width // 2, floor)]
    reason = (f"hidden {hidden}: N_h = N_s/((N_i+N_o)*gamma) = {n_samples}/(({n_inputs}+{n_outputs})*{gamma:g})"
              f" = {raw:.1f}, rounded to a power of two within [{floor}, 512]; "
              f"{'1 layer (fewer than 10,000 rows)' if len(hidden) == 1 else '2 layers, halved (10,000 rows or more)'}")
    return hidden, reason


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def uses_saturating(arch: dict[str, Any]) -> bool:
    return activation_family(arch["activation"]) == "saturating"
