"""EMA momentum, ``V = beta V + (1-beta) dW; w <- w - alpha V`` with ``V0 = 0``: a small torch optimizer.

torch's SGD ``dampening`` starts its buffer at the raw first gradient rather than at
``(1-beta) dW``, so the exponential-moving-average form of momentum needs its own class
(docs/practices/optimizers.md); registered as ``momentum_ema`` in optim/optimizers.py.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


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
