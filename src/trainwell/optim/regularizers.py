"""Regularisation terms added to the loss, and gradient clipping.

Penalties follow Keras' split: kernels (weight matrices/filters of Linear, Conv and
RNN layers), biases of those layers, and activities (hidden-layer outputs) each get
their own L1 / L2 coefficient. Batch-norm parameters are never penalised.
An L2 penalty here is *in the loss* (``lambda sum w^2``, gradient ``2 lambda w``);
decoupled weight decay is ``optim.weight_decay`` with ``adamw``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from trainwell.core.spec import RegularizeSpec

REGULARIZERS: dict[str, str] = {
    "l1": "kernel L1 penalty l1 * sum |W| added to the loss (sparse weights)",
    "l2": "kernel L2 penalty l2 * sum W^2 added to the loss (small weights)",
    "bias_l1": "bias L1 penalty bias_l1 * sum |b|",
    "bias_l2": "bias L2 penalty bias_l2 * sum b^2",
    "activity_l1": "hidden-activity L1 penalty activity_l1 * sum |a| / batch size (sparse codes)",
    "activity_l2": "hidden-activity L2 penalty activity_l2 * sum a^2 / batch size",
    "clip_value": "clip each gradient component to [-clip_value, clip_value] (changes direction)",
    "clip_norm": "rescale all gradients so their global L2 norm <= clip_norm (keeps direction)",
    "noise": "Gaussian input noise of this std added to training inputs (augmentation)",
}

_WEIGHTED = (nn.Linear, _ConvNd, nn.RNNBase, nn.Bilinear)


def packed_members(module: nn.Module) -> int:
    """How many members a packed layer (nn/ensemble.py's ``PackedLinear``: kernels ``[k, out, in]``) holds;
    0 for any other module. Recognised by its ``members`` count so that optim/ needs nothing from nn/."""
    members = getattr(module, "members", None)
    return members if isinstance(members, int) and isinstance(getattr(module, "weight", None), nn.Parameter) else 0


def _kernels_and_biases(model: nn.Module) -> tuple[list[tuple[torch.Tensor, float]], list[tuple[torch.Tensor, float]]]:
    """Every penalised layer's kernels and biases. A packed ensemble's trains k members on the mean of their
    losses, so its tensors count divided by k: each member then gets the penalty it would get alone."""
    kernels: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    for module in model.modules():
        members = packed_members(module)
        if not (members or isinstance(module, _WEIGHTED)):
            continue
        scale = 1.0 / members if members else 1.0
        for name, p in module.named_parameters(recurse=False):
            if name.startswith("weight") and p.dim() >= 2:
                kernels.append((p, scale))
            elif name.startswith("bias"):
                biases.append((p, scale))
    return kernels, biases


def _l1_l2(tensors: list[tuple[torch.Tensor, float]], l1: float, l2: float) -> list[torch.Tensor]:
    terms = []
    if l1 and tensors:
        terms.append(l1 * torch.stack([t.abs().sum() * scale for t, scale in tensors]).sum())
    if l2 and tensors:
        terms.append(l2 * torch.stack([t.square().sum() * scale for t, scale in tensors]).sum())
    return terms


def weight_penalty(model: nn.Module, spec: "RegularizeSpec") -> torch.Tensor | None:
    """``l1 sum|W| + l2 sum W^2`` over kernels plus the bias terms; None when all are 0."""
    if not (spec.l1 or spec.l2 or spec.bias_l1 or spec.bias_l2):
        return None
    kernels, biases = _kernels_and_biases(model)
    terms = _l1_l2(kernels, spec.l1, spec.l2) + _l1_l2(biases, spec.bias_l1, spec.bias_l2)
    if not terms:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return torch.stack(terms).sum() if len(terms) > 1 else terms[0]


def penalty_gradient(p: torch.Tensor, l1: float, l2: float, scale: float = 1.0) -> torch.Tensor | None:
    """The gradient of ``scale * (l1 sum|p| + l2 sum p^2)``: ``scale (l1 sign(p) + 2 l2 p)``, what autograd
    gives for ``weight_penalty``'s term on ``p`` (|x|'s gradient at 0 is 0, as torch's); None when both are 0.
    For the hand-written step (train/fast.py), which has no graph to differentiate."""
    if not (l1 or l2):
        return None
    grad = p.sign().mul_(l1 * scale) if l1 else None
    if l2:
        grad = p.mul(2.0 * l2 * scale) if grad is None else grad.add_(p, alpha=2.0 * l2 * scale)
    return grad


def activity_penalty(activations: list[torch.Tensor], spec: "RegularizeSpec") -> torch.Tensor | None:
    """``(activity_l1 sum|a| + activity_l2 sum a^2) / batch`` per layer, summed (Keras).

    The sum runs over every unit and sample of each hidden output; dividing by that
    output's batch size (dim 0) makes the term a per-sample average, as Keras does,
    so it does not grow with the batch size. None when off or nothing is given.
    """
    if not (spec.activity_l1 or spec.activity_l2) or not activations:
        return None
    terms = [torch.stack(_l1_l2([(a, 1.0 / max(a.shape[0], 1))], spec.activity_l1, spec.activity_l2)).sum()
             for a in activations]
    return torch.stack(terms).sum()


def clip_gradients(parameters: Iterable[torch.Tensor] | torch.Tensor, spec: "RegularizeSpec") -> None:
    """Clip gradients in place: by value (``clip_value``) then by global norm (``clip_norm``)."""
    if spec.clip_value is None and spec.clip_norm is None:
        return
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    if spec.clip_value is not None:
        nn.utils.clip_grad_value_(params, spec.clip_value, foreach=True)
    if spec.clip_norm is not None:
        nn.utils.clip_grad_norm_(params, spec.clip_norm, foreach=True)
