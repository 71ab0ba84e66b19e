"""Batch-norm folding (docs/practices/normalization.md): fuse each trained BN layer into a neighbouring linear layer.

In evaluation mode batch norm is a fixed affine map per unit,
``BN(h) = s * h + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - s * mu`` (running statistics). So

* BN *before* the activation, right after ``h = W x + b``, folds into that layer:
  ``W' = diag(s) W``, ``b' = s * (b - mu) + beta``;
* BN *after* the activation feeds the next linear layer ``W2 z + b2``, so it folds
  forward: ``W2' = W2 diag(s)``, ``b2' = W2 t + b2`` — when nothing else reads the
  BN output (a residual block adds it to its skip path; then that BN stays).

The folded network gives the same outputs as the original one in ``eval()`` mode
(to float rounding) with fewer operations per prediction. It is for inference:
training it further would train a net without batch norm.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from trainwell.nn.models import MLP


def _affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) of the eval-mode map BN(h) = s * h + t, in float64."""
    mean = bn.running_mean.double()
    var = bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    s = gamma / torch.sqrt(var + bn.eps)
    return s, beta - s * mean


def _foldable(bn: nn.Module | None) -> bool:
    return isinstance(bn, nn.BatchNorm1d) and bn.running_mean is not None and bn.running_var is not None


@torch.no_grad()
def fold_into_previous(linear: nn.Linear, bn: nn.BatchNorm1d) -> None:
    """Linear -> BN becomes one Linear: W' = diag(s) W, b' = s (b - mu) + beta."""
    s, t = _affine(bn)
    w = linear.weight.double()
    b = linear.bias.double() if linear.bias is not None else torch.zeros_like(s)
    linear.weight.copy_((s[:, None] * w).to(linear.weight.dtype))
    if linear.bias is None:
        linear.bias = nn.Parameter(torch.zeros_like(s, dtype=linear.weight.dtype))
    linear.bias.copy_((s * b + t).to(linear.bias.dtype))


@torch.no_grad()
def fold_into_next(bn: nn.BatchNorm1d, linear: nn.Linear) -> None:
    """BN -> Linear becomes one Linear: W2' = W2 diag(s), b2' = W2 t + b2."""
    s, t = _affine(bn)
    w = linear.weight.double()
    b = linear.bias.double() if linear.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    linear.weight.copy_((w * s[None, :]).to(linear.weight.dtype))
    if linear.bias is None:
        linear.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=linear.weight.dtype))
    linear.bias.copy_((w @ t + b).to(linear.bias.dtype))


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (an MLP of DenseBlocks) with its batch norm fused into linear layers.

    BN before the activation is always folded; BN after the activation is folded
    into the next layer unless a residual path also reads it. Other models are
    returned unchanged. Compare in ``eval()`` mode: the outputs agree to ~1e-6.
    """
    if not isinstance(model, MLP):
        return model if inplace else copy.deepcopy(model)
    folded = model if inplace else copy.deepcopy(model)
    blocks = list(folded.blocks)
    for i, block in enumerate(blocks):
        if _foldable(block.bn_before):
            fold_into_previous(block.linear, block.bn_before)
            block.bn_before = None
        if _foldable(block.bn_after) and not block.residual:
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            if nxt is None:
                fold_into_next(block.bn_after, folded.out)
                block.bn_after = None
            elif not nxt.residual:
                fold_into_next(block.bn_after, nxt.linear)
                block.bn_after = None
    return folded


def count_batchnorm(model: nn.Module) -> int:
    """How many batch-norm layers ``model`` still has."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
