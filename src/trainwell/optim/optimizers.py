"""The optimizer registry: one entry per ``optim.name``, everything trainwell knows about it.

An entry (:class:`Optimizer`) holds the torch class and the arguments it takes from the
spec, whether torch has a fused kernel for it (per device type, and the kernel
train/fast.py calls directly), its update on a population's stacked ``[P, N]`` weights
(train/stacked.py), whether the CUDA-graph step can capture it (train/graphs.py), and the
facts other modules ask instead of comparing names: whether it adapts per-parameter step
sizes (the batch-size lr rule, train/batch_size.py), which spec field is its momentum and
the lr range a search starts from (tune/space.py). Adding an optimizer is adding one entry
to ``OPTIMIZERS`` (docs/architecture.md, "Adding an optimizer").


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
small optimizer, ``EMAMomentum`` (optim/ema_momentum.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from trainwell.core.errors import choose
from trainwell.core.unread import KeysRead, changed_keys, warn_unread
from trainwell.optim.eager import eager
from trainwell.optim.ema_momentum import EMAMomentum
from trainwell.core.spec import OptimSpec

__all__ = ["OPTIMIZERS", "EMAMomentum", "MemberHyper", "Optimizer", "for_torch_class", "make_optimizer", "optimizer",
           "warn_unread_optim"]


@dataclass(frozen=True)
class MemberHyper:
    """A population's per-member hyperparameters, as the stacked updates read them.

    ``f64``: ``[P]`` float64, for the per-step scalars (bias corrections) that torch's fused
    CPU kernels derive in double; ``col``: ``[P, 1]`` float32 columns that broadcast over
    the ``[P, N]`` weights (with ``one_minus_beta1``, ``one_minus_beta2`` and the decoupled
    ``decay = 1 - lr lambda`` precomputed), made once, not per step.
    """

    f64: dict[str, torch.Tensor]
    col: dict[str, torch.Tensor]
    has_wd: bool

    @classmethod
    def of(cls, hp: dict[str, torch.Tensor], device: torch.device) -> "MemberHyper":
        f64 = {k: v.to(device=device, dtype=torch.float64) for k, v in hp.items()}
        derived = {**f64, "one_minus_beta1": 1 - f64["beta1"], "one_minus_beta2": 1 - f64["beta2"],
                   "decay": 1 - f64["lr"] * f64["weight_decay"]}
        col = {k: v.to(dtype=torch.float32).view(-1, 1) for k, v in derived.items()}
        return cls(f64, col, bool((f64["weight_decay"] != 0).any()))

    def column(self, values: torch.Tensor) -> torch.Tensor:
        """A per-member float64 ``[P]`` scalar as a float32 ``[P, 1]`` column."""
        return values.float().view(-1, 1)


# (weights p [P, N], gradient g [P, N], state: the moment buffers, created on the first step and updated
# in place, hyperparameters, step t counted from 1) -> None; updates p in place.
StackedUpdate = Callable[[torch.Tensor, torch.Tensor, list, MemberHyper, int], None]


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: how to build it from ``OptimSpec`` and what the rest of trainwell needs to know."""

    name: str
    description: str                       # one line, for ``trainwell list``
    torch_class: type                      # a torch.optim.Optimizer subclass
    arguments: Callable[["OptimSpec"], dict[str, Any]]   # its keyword arguments from the spec
    adaptive: bool = False                 # per-parameter step sizes: lr ~ sqrt(batch) (Malladi et al. 2022)
    momentum_field: str | None = None      # OptimSpec field of its momentum term, tuned second
    lr_range: tuple[float, float] = (1e-5, 1e-1)   # log range a default search draws lr from
    fused_on: frozenset[str] = frozenset()  # device types where torch has a fused (single-kernel) step
    fused_kernel: str | None = None        # torch's fused Adam-family function train/fast.py calls directly
    stacked: StackedUpdate | None = None   # its update on a population's stacked weights (None: not in populations)
    graph_capturable: bool = False         # its fused step can be captured in a CUDA graph (train/graphs.py)

    def build(self, params: Iterable[Any], spec: "OptimSpec", device_type: str = "cpu") -> torch.optim.Optimizer:
        """The torch optimizer, fused where torch has a kernel for this device type, else foreach (as
        ``eager(cls)``: torch's class without the wrappers that import torch._dynamo, optim/eager.py)."""
        kernel = {"fused": True} if device_type in self.fused_on else {"foreach": True}
        return eager(self.torch_class)(params, **self.arguments(spec), **kernel)


# ---- stacked updates: torch's formulas on [P, N] tensors, one kernel per term for all members -------------
def _coupled_decay(p: torch.Tensor, g: torch.Tensor, h: MemberHyper) -> torch.Tensor:
    """Coupled weight decay, ``dW + lambda w`` (the L2 penalty's gradient)."""
    return g + p * h.col["weight_decay"] if h.has_wd else g


def _stacked_sgd(p, g, state, h, t) -> None:
    p.sub_(h.col["lr"] * _coupled_decay(p, g, h))


def _stacked_momentum(nesterov: bool) -> StackedUpdate:
    """torch's SGD momentum ``b = mu b + g`` (``b_1 = g``); Nesterov steps along ``g + mu b``."""
    def update(p, g, state, h, t) -> None:
        g = _coupled_decay(p, g, h)
        mu = h.col["momentum"]
        if not state:
            state.append(g.clone())
        else:
            state[0].mul_(mu).add_(g)
        p.sub_(h.col["lr"] * (g + mu * state[0] if nesterov else state[0]))
    return update


def _adam_moments(p, g, state, h) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's moments, updated in place: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``."""
    if not state:
        state += [torch.zeros_like(p), torch.zeros_like(p)]
    m, sq = state
    m.lerp_(g, h.col["one_minus_beta1"])
    sq.mul_(h.col["beta2"]).addcmul_(h.col["one_minus_beta2"] * g, g)
    return m, sq


def _stacked_adam(decoupled: bool) -> StackedUpdate:
    """Adam (coupled decay) or AdamW (decoupled: ``w <- (1 - lr lambda) w`` first, Loshchilov & Hutter 2019)."""
    def update(p, g, state, h, t) -> None:
        if decoupled and h.has_wd:
            p.mul_(h.col["decay"])
        elif not decoupled:
            g = _coupled_decay(p, g, h)
        m, sq = _adam_moments(p, g, state, h)
        neg_step = h.column(-(h.f64["lr"] / (1 - h.f64["beta1"] ** t)))
        bc2_sqrt = h.column(torch.sqrt(1 - h.f64["beta2"] ** t))
        p.addcdiv_(neg_step * m, sq.sqrt().div_(bc2_sqrt).add_(h.col["eps"]))
    return update


def _stacked_radam(p, g, state, h, t) -> None:
    """RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond", Algorithm 2), as
    torch.optim.RAdam: Adam's step rectified by ``r_t`` once the variance of the adaptive rate is tractable
    (``rho_t > 5``, torch's threshold), plain bias-corrected momentum before. Per member, no host sync."""
    m, sq = _adam_moments(p, _coupled_decay(p, g, h), state, h)
    b2, bc2 = h.f64["beta2"], 1 - h.f64["beta2"] ** t
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2 ** t / bc2
    on = rho_t > 5                              # implies rho_inf > 5: every factor below is positive
    rect = torch.where(on, (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0).sqrt()
    on = h.column(on.double())
    adaptive = sq.sqrt().add_(h.col["eps"]).reciprocal_().mul_(h.column(rect * bc2.sqrt()))
    p.sub_(h.column(h.f64["lr"] / (1 - h.f64["beta1"] ** t)) * m * (on * adaptive + (1 - on)))


# ---- the registry ------------------------------------------------------------------------------------------
def _plain(s: "OptimSpec") -> dict[str, Any]:
    return {"lr": s.lr, "weight_decay": s.weight_decay}


def _adam_like(s: "OptimSpec") -> dict[str, Any]:
    return {"lr": s.lr, "betas": (s.beta1, s.beta2), "eps": s.eps, "weight_decay": s.weight_decay}


_SGD_FUSED = frozenset({"cpu", "cuda"})
_ENTRIES = [
    Optimizer("sgd", "plain gradient descent: w <- w - alpha dW", torch.optim.SGD,
              lambda s: {**_plain(s), "momentum": 0.0}, lr_range=(1e-5, 1.0), fused_on=_SGD_FUSED,
              stacked=_stacked_sgd, graph_capturable=True),
    Optimizer("momentum", "classic momentum: v = beta v - alpha dW; w <- w + v (torch SGD momentum)",
              torch.optim.SGD, lambda s: {**_plain(s), "momentum": s.momentum, "dampening": 0.0},
              momentum_field="momentum", lr_range=(1e-5, 1.0), fused_on=_SGD_FUSED,
              stacked=_stacked_momentum(nesterov=False), graph_capturable=True),
    Optimizer("momentum_ema", "EMA momentum: V = beta V + (1-beta) dW; w <- w - alpha V (V0 = 0)",
              EMAMomentum, lambda s: {**_plain(s), "momentum": s.momentum}, momentum_field="momentum"),
    Optimizer("nesterov", "Nesterov momentum: the gradient is taken at the look-ahead point w + beta v",
              torch.optim.SGD, lambda s: {**_plain(s), "momentum": s.momentum, "dampening": 0.0, "nesterov": True},
              momentum_field="momentum", lr_range=(1e-5, 1.0), fused_on=_SGD_FUSED,
              stacked=_stacked_momentum(nesterov=True), graph_capturable=True),
    Optimizer("adagrad", "Adagrad: G += dW^2; w <- w - alpha dW / (sqrt(G) + eps)", torch.optim.Adagrad,
              lambda s: {**_plain(s), "eps": s.eps}, adaptive=True, fused_on=frozenset({"cpu"})),
    Optimizer("rmsprop", "RMSprop: S = rho S + (1-rho) dW^2; w <- w - alpha dW / (sqrt(S) + eps)",
              torch.optim.RMSprop, lambda s: {**_plain(s), "alpha": s.rho, "eps": s.eps}, adaptive=True,
              momentum_field="rho"),
    Optimizer("adam", "Adam: momentum + RMSprop with bias correction (alpha 1e-3, b1 0.9, b2 0.999, eps 1e-8)",
              torch.optim.Adam, _adam_like, adaptive=True, momentum_field="beta1",
              fused_on=frozenset({"cpu", "cuda"}), fused_kernel="_fused_adam_",
              stacked=_stacked_adam(decoupled=False), graph_capturable=True),
    Optimizer("nadam", "Nadam: Adam with Nesterov momentum (Dozat 2016, torch's momentum decay schedule)",
              torch.optim.NAdam, _adam_like, adaptive=True, momentum_field="beta1"),
    Optimizer("adamax", "AdaMax: Adam with the infinity norm u = max(b2 u, |dW|)", torch.optim.Adamax,
              _adam_like, adaptive=True, momentum_field="beta1"),
    Optimizer("adamw", "AdamW: Adam with decoupled weight decay w <- w - alpha lambda w", torch.optim.AdamW,
              _adam_like, adaptive=True, momentum_field="beta1", fused_on=frozenset({"cpu", "cuda"}),
              fused_kernel="_fused_adamw_", stacked=_stacked_adam(decoupled=True), graph_capturable=True),
    Optimizer("radam", "RAdam: Adam with its adaptive rate rectified while its variance is large (Liu et al. 2020)",
              torch.optim.RAdam, _adam_like, adaptive=True, momentum_field="beta1", stacked=_stacked_radam),
]
OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in _ENTRIES}


def optimizer(name: str) -> Optimizer:
    """The registry entry for ``name``; an unknown name is a UserError that lists the valid ones."""
    return OPTIMIZERS[choose("optimizer", name, OPTIMIZERS)]


def for_torch_class(cls: type) -> list[Optimizer]:
    """The entries built on torch class ``cls`` (several share torch.optim.SGD)."""
    return [o for o in _ENTRIES if o.torch_class is cls]


def make_optimizer(params: Iterable[Any], spec: "OptimSpec", *,
                   device_type: str = "cpu") -> torch.optim.Optimizer:
    """The torch optimizer that implements ``spec.name`` with the spec's hyperparameters."""
    return optimizer(spec.name).build(params, spec, device_type)


def warn_unread_optim(keys: KeysRead) -> None:
    """Name the ``optim.*`` keys changed from their default that the chosen optimizer did not read while it was
    built from ``keys`` (``optim.momentum`` with Adam, whose momentum is ``optim.beta1``)."""
    spec = keys.section
    unread = {k: v for k, v in changed_keys(spec).items() if k not in keys.read}
    if not unread:
        return
    readers: dict[str, list[str]] = {}
    for entry in OPTIMIZERS.values():
        probe = KeysRead(spec)
        entry.arguments(probe)
        for k in probe.read:
            readers.setdefault(k, []).append(entry.name)
    field = optimizer(spec.name).momentum_field
    note = (f" (the momentum of optim.name={spec.name} is optim.{field})"
            if "momentum" in unread and field not in (None, "momentum") else "")
    warn_unread("optim", "optim.name", spec.name, unread, readers, note)
