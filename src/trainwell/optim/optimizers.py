"""Optimizers by spec name: torch.optim, wired to the lecture notes' names and symbols.

Which spec field feeds what (``OptimSpec``):

* ``lr`` -> alpha / eta everywhere.
* ``momentum`` -> beta of ``momentum``, ``momentum_ema`` and ``nesterov``.
* ``beta1``, ``beta2`` -> Adam's b1, b2 (also NAdam, AdaMax, AdamW).
* ``rho`` -> RMSprop's beta (torch calls it ``alpha``); default 0.9 as in Hinton's lecture 6e (2012),
  kept apart from ``beta2`` whose 0.999 default is Adam's.
* ``eps`` -> the epsilon added to the denominator (Adagrad, RMSprop, Adam family).
* ``weight_decay`` -> for ``adamw`` *decoupled* decay ``w <- w - alpha*lambda*w`` applied
  outside the adaptive update (Loshchilov & Hutter); for every other optimizer torch's
  *coupled* decay, ``dW <- dW + lambda*w`` before the update, i.e. the gradient of the
  L2 penalty ``lambda/2 * sum w^2``. With adaptive optimizers the two differ: the
  coupled term is rescaled by ``1/sqrt(S)``, the decoupled one is not.

Classic momentum ``v = beta v - eta g; w <- w + v`` *is* torch's SGD momentum
``b = beta b + g; w <- w - eta b`` (substitute ``v = -eta b``; both start from 0).
The EMA form ``V = beta V + (1-beta) dW; w <- w - alpha V`` with ``V0 = 0`` is not:
torch's ``dampening`` starts its buffer at the raw first gradient, so it has its own
small optimizer here, ``EMAMomentum``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from trainwell.errors import choose
from trainwell.optim.eager import eager

if TYPE_CHECKING:
    from trainwell.spec import OptimSpec

OPTIMIZERS: dict[str, str] = {
    "sgd": "plain gradient descent: w <- w - alpha dW",
    "momentum": "classic momentum: v = beta v - alpha dW; w <- w + v (torch SGD momentum)",
    "momentum_ema": "EMA momentum: V = beta V + (1-beta) dW; w <- w - alpha V (V0 = 0)",
    "nesterov": "Nesterov momentum: the gradient is taken at the look-ahead point w + beta v",
    "adagrad": "Adagrad: G += dW^2; w <- w - alpha dW / (sqrt(G) + eps)",
    "rmsprop": "RMSprop: S = rho S + (1-rho) dW^2; w <- w - alpha dW / (sqrt(S) + eps)",
    "adam": "Adam: momentum + RMSprop with bias correction (alpha 1e-3, b1 0.9, b2 0.999, eps 1e-8)",
    "nadam": "Nadam: Adam with Nesterov momentum (Dozat 2016, torch's momentum decay schedule)",
    "adamax": "AdaMax: Adam with the infinity norm u = max(b2 u, |dW|)",
    "adamw": "AdamW: Adam with decoupled weight decay w <- w - alpha lambda w",
}

# Optimizers with a fused (single-kernel) implementation in torch, per device type.
_FUSED: dict[str, frozenset[str]] = {
    "cpu": frozenset({"sgd", "momentum", "nesterov", "adam", "adamw", "adagrad"}),
    "cuda": frozenset({"sgd", "momentum", "nesterov", "adam", "adamw"}),
}


class EMAMomentum(torch.optim.Optimizer):
    """Momentum as an exponential moving average of gradients, ``V0 = 0``.

    ``V = beta V + (1-beta) dW;  w <- w - lr V``. ``weight_decay`` is coupled
    (added to dW), as in torch's SGD. Uses foreach kernels when ``foreach``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0, foreach: bool = True) -> None:
        if lr <= 0 or not 0.0 <= momentum < 1.0 or weight_decay < 0:
            raise ValueError("need lr > 0, 0 <= momentum < 1, weight_decay >= 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      foreach=foreach))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
            beta, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
            if group["foreach"]:
                if wd:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                torch._foreach_mul_(bufs, beta)
                torch._foreach_add_(bufs, grads, alpha=1.0 - beta)
                torch._foreach_add_(params, bufs, alpha=-lr)
            else:
                for p, g, v in zip(params, grads, bufs):
                    if wd:
                        g = g.add(p, alpha=wd)
                    v.mul_(beta).add_(g, alpha=1.0 - beta)
                    p.add_(v, alpha=-lr)
        return loss


def _kernel(name: str, device_type: str) -> dict[str, bool]:
    """``fused=True`` where torch has a fused kernel for this optimizer/device, else foreach."""
    return {"fused": True} if name in _FUSED.get(device_type, ()) else {"foreach": True}


def make_optimizer(params: Iterable[Any], spec: "OptimSpec", *,
                   device_type: str = "cpu") -> torch.optim.Optimizer:
    """The torch optimizer that implements ``spec.name`` with the spec's hyperparameters (as
    ``eager(cls)``: torch's class without the wrappers that import torch._dynamo, optim/eager.py)."""
    name = choose("optimizer", spec.name, OPTIMIZERS)
    kernel = _kernel(name, device_type)
    lr, wd, eps = spec.lr, spec.weight_decay, spec.eps
    betas = (spec.beta1, spec.beta2)
    o = torch.optim
    if name == "sgd":
        return eager(o.SGD)(params, lr=lr, momentum=0.0, weight_decay=wd, **kernel)
    if name == "momentum":
        return eager(o.SGD)(params, lr=lr, momentum=spec.momentum, dampening=0.0, weight_decay=wd, **kernel)
    if name == "momentum_ema":
        return eager(EMAMomentum)(params, lr=lr, momentum=spec.momentum, weight_decay=wd)
    if name == "nesterov":
        return eager(o.SGD)(params, lr=lr, momentum=spec.momentum, dampening=0.0, nesterov=True,
                     weight_decay=wd, **kernel)
    if name == "adagrad":
        return eager(o.Adagrad)(params, lr=lr, eps=eps, weight_decay=wd, **kernel)
    if name == "rmsprop":
        return eager(o.RMSprop)(params, lr=lr, alpha=spec.rho, eps=eps, weight_decay=wd, **kernel)
    if name == "adam":
        return eager(o.Adam)(params, lr=lr, betas=betas, eps=eps, weight_decay=wd, **kernel)
    if name == "nadam":
        return eager(o.NAdam)(params, lr=lr, betas=betas, eps=eps, weight_decay=wd, **kernel)
    if name == "adamax":
        return eager(o.Adamax)(params, lr=lr, betas=betas, eps=eps, weight_decay=wd, **kernel)
    return eager(o.AdamW)(params, lr=lr, betas=betas, eps=eps, weight_decay=wd, **kernel)
