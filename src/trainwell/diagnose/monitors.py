"""Babysitting monitors (docs/practices/gradients.md): cheap per-layer statistics sampled every K steps.

For each dense layer (every ``nn.Linear`` / ``nn.Conv*``, input to output) the
monitor records, on sampled steps only:

* ``grad_norm``     L2 norm of the weight gradient of the sampled step,
* ``weight_norm``   L2 norm of the weights after the step,
* ``update_ratio``  ||W_after - W_before|| / ||W_before|| (healthy: around 1e-3),
* ``out_grad_rms``  root mean square of dLoss/d(layer output), the back-propagated
  gradient (a tensor hook on the layer's output): it shrinks geometrically from
  the output layer to the input layer when gradients vanish,

and for the activation module that follows the layer (ReLU, tanh, sigmoid, ...):

* ``act_mean``, ``act_std``  of the activations of the batch,
* ``dead_frac``       share of units that output exactly 0 for every sample of the batch,
* ``saturated_frac``  share of sigmoid/tanh outputs near their bounds
  (sigmoid below 0.01 or above 0.99, tanh beyond +-0.99; derivative < 1/25 of its peak).

How it stays cheap: on step k-1 the monitor arms itself (registers forward
hooks, copies the weights); the sampled step k runs with the hooks; on step k's
``on_step_end`` it reads the gradients (still in ``.grad`` after the optimizer
step), computes the statistics as one on-device tensor, adds it to an on-device
sum and removes the hooks. Every other step runs hook-free, and the host reads
the sums once per epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from trainwell.nn.ensemble import PackedLinear

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, PackedLinear)
SATURATING = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
RELU_LIKE = (nn.ReLU, nn.ReLU6)
ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
                    nn.Softplus, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Mish, nn.Identity)
STATS = ("grad_norm", "weight_norm", "update_ratio", "out_grad_rms", "act_mean", "act_std", "dead_frac", "saturated_frac")
SAT_SIGMOID = 0.01      # sigmoid output within 0.01 of 0 or 1
SAT_TANH = 0.99         # |tanh| above 0.99


MIN_GAP = 400          # auto sampling: at least this many steps between samples ...
FIRST_EPOCHS = 3       # ... except in the first epochs, sampled once each (what training starts from)


def auto_every(steps_per_epoch: int) -> int:
    """Default sampling period within an epoch: once per epoch, or every MIN_GAP steps in long epochs."""
    return int(max(1, min(MIN_GAP, steps_per_epoch)))


def auto_stride(steps_per_epoch: int) -> int:
    """Default sampling stride in epochs after the first FIRST_EPOCHS: at least MIN_GAP steps apart.

    A sampled step runs with hooks, so it takes the autograd step instead of the hand-written one
    and costs five to seven plain steps on a small network (Carseats, 320 rows, 10 steps per
    epoch: a sample every epoch was a third of the epoch's time). One sample per MIN_GAP steps
    keeps the monitors near 1-2 % of training at any table size; the first epochs, where most
    problems show, are still sampled each.
    """
    return int(max(1, -(-MIN_GAP // max(1, steps_per_epoch))))


@dataclass
class _Layer:
    name: str
    module: nn.Module
    act: nn.Module | None = None
    act_kind: str = ""          # "relu", "sigmoid", "tanh", "other" or ""


def monitored_layers(model: nn.Module) -> list[_Layer]:
    """Weight layers in registration order, each paired with the first activation module after it."""
    layers: list[_Layer] = []
    for name, module in model.named_modules():
        if isinstance(module, LAYER_TYPES):
            layers.append(_Layer(name or "layer", module))
        elif isinstance(module, ACTIVATION_TYPES) and layers and layers[-1].act is None:
            if isinstance(module, nn.Identity):
                continue
            kind = SATURATING.get(type(module)) or ("relu" if isinstance(module, RELU_LIKE) else "other")
            layers[-1].act, layers[-1].act_kind = module, kind
    return layers


class Monitor:
    """Training-loop callback that records the per-layer statistics; ``frame()`` gives them per epoch."""

    def __init__(self, every: int = 0):
        self.every = int(every)
        self.auto = self.every <= 0        # monitor_every: 0 -> auto_every and auto_stride
        self.stride = 1
        self.steps_per_epoch = 1
        self._next = 1                     # the next sampled step
        self.rows: list[dict] = []
        self.layers: list[_Layer] = []
        self._handles: list = []
        self._before: list[torch.Tensor] | None = None
        self._acts: dict[int, torch.Tensor] = {}
        self._deltas: dict[int, torch.Tensor] = {}
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._armed = False
        self._init: torch.Tensor | None = None
        self._seen = 0
        self._first = True

    # -- callback protocol ----------------------------------------------------
    def on_train_begin(self, state) -> None:
        self.layers = monitored_layers(state.model)
        self.steps_per_epoch = max(1, state.steps_per_epoch)
        if self.auto:
            self.every = auto_every(self.steps_per_epoch)
            self.stride = auto_stride(self.steps_per_epoch)
        self._first = state.step == 0     # a resumed run has no "as initialised" sample
        self._next = self._following(state.step)
        if self._next == state.step + 1:
            self._arm(state)

    def sampled(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based) is sampled: the first step (the gradients at
        init), then every ``every``-th step (auto: in the first FIRST_EPOCHS epochs, then in every
        ``stride``-th epoch).

        A function of the step number alone, so a resumed run samples exactly the steps an
        uninterrupted run samples. That matters for the weights, not only for the statistics: a
        sampled step runs with hooks, so it takes the autograd step instead of the hand-written one
        (train/fast.py), whose gradients differ in the last bits (issue 15: arming on every
        start made each resume add an autograd step, ~6e-8 drift).
        """
        if step == 1:
            return True
        if step % self.every:
            return False
        epoch = -(-step // self.steps_per_epoch)      # the epoch (1-based) the step belongs to
        return self.stride == 1 or epoch <= FIRST_EPOCHS or epoch % self.stride == 0

    def _following(self, step: int) -> int:
        """The first sampled step after ``step``."""
        k = step + 1
        while not self.sampled(k):
            k = (k // self.every + 1) * self.every     # the next multiple of every
        return k

    def on_step_end(self, state) -> None:       # every step: one comparison unless sampling
        if self._armed:
            self._collect()
        if state.step + 1 == self._next:
            self._arm(state)
        elif state.step + 1 > self._next:
            self._next = self._following(state.step)
            if self._next == state.step + 1:
                self._arm(state)

    def on_epoch_end(self, state) -> None:
        if self._sum is None or self._count == 0:
            return
        if self._init is not None:          # epoch 0: the very first step, weights as initialised
            self._rows(0, self._init.cpu().tolist(), 1)
            self._init = None
        self._rows(state.epoch, (self._sum / self._count).cpu().tolist(), self._count)   # one read per epoch
        self._sum, self._count = None, 0

    def _rows(self, epoch: int, means: list, count: int) -> None:
        for i, layer in enumerate(self.layers):
            row = {"epoch": epoch, "layer": layer.name, "index": i,
                   "activation": layer.act_kind or "none", "samples": count}
            row.update({k: (v if layer.act is not None or j < 4 else math.nan)
                        for j, (k, v) in enumerate(zip(STATS, means[i]))})
            self.rows.append(row)

    def on_train_end(self, state) -> None:
        self._disarm()
        if self._count:                     # a partial epoch (NaN stop, interruption): keep what was seen
            self.on_epoch_end(_EpochOnly(state.epoch + 1))

    # -- sampling ---------------------------------------------------------------
    def _arm(self, state) -> None:
        if self._armed or not self.layers:
            return
        self._acts, self._deltas = {}, {}
        with torch.no_grad():
            self._before = [layer.module.weight.detach().clone() for layer in self.layers]
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.module.register_forward_hook(self._out_hook(i)))
            if layer.act is not None:
                self._handles.append(layer.act.register_forward_hook(self._hook(i, layer.act_kind)))
        self._armed = True

    def _out_hook(self, i: int):
        def hook(module, inputs, output):
            if module.training and i not in self._deltas and output.requires_grad:
                def grad_hook(g):
                    self._deltas[i] = torch.linalg.vector_norm(g.detach().float()) / math.sqrt(max(g.numel(), 1))
                self._deltas[i] = None
                output.register_hook(grad_hook)
        return hook

    def _hook(self, i: int, kind: str):
        def hook(module, inputs, output):
            if not module.training or i in self._acts:     # evaluation passes are not sampled
                return
            out = output.detach().float()
            used = None
            if out.dim() == 3 and isinstance(self.layers[i].module, PackedLinear):
                out = out.transpose(0, 1)      # [members, batch, units] -> a unit is (member, unit)
                if self.layers[i].module.narrowed:        # units a narrower member does not use (nn/member_widths.py)
                    used = self.layers[i].module.unit_mask().to(out.device).flatten()
            a = out.flatten(1) if out.dim() > 1 else out[:, None]
            if used is not None:
                a = a[:, used]
            mean, std = a.mean(), a.std(unbiased=False)
            dead = (a == 0).all(dim=0).float().mean() if kind == "relu" else torch.zeros((), device=a.device)
            if kind == "sigmoid":
                sat = ((a < SAT_SIGMOID) | (a > 1 - SAT_SIGMOID)).float().mean()
            elif kind == "tanh":
                sat = (a.abs() > SAT_TANH).float().mean()
            else:
                sat = torch.zeros((), device=a.device)
            self._acts[i] = torch.stack([mean, std, dead, sat])
        return hook

    @torch.no_grad()
    def _collect(self) -> None:
        weights = [layer.module.weight.detach() for layer in self.layers]
        dev = weights[0].device
        grads = [w.grad.detach() if w.grad is not None else torch.zeros((), device=dev, dtype=w.dtype)
                 for w in (layer.module.weight for layer in self.layers)]
        assert self._before is not None
        diffs = torch._foreach_sub(weights, self._before)          # fused: few kernel launches per sample
        g, wn, upd, before = (torch.stack(torch._foreach_norm(t)).float()
                              for t in (grads, weights, diffs, self._before))
        ratio = upd / before.clamp_min(1e-12)
        nan = torch.full((), math.nan, device=dev)
        deltas = torch.stack([d if (d := self._deltas.get(i)) is not None else nan for i in range(len(self.layers))])
        zeros = torch.zeros(4, device=dev)
        acts = torch.stack([self._acts.get(i, zeros) for i in range(len(self.layers))])
        stats = torch.cat([torch.stack([g, wn, ratio, deltas], dim=1), acts], dim=1)
        self._sum = stats if self._sum is None else self._sum + stats
        if self._seen == 0 and self._first:
            self._init = stats.clone()
        self._seen += 1
        self._count += 1
        self._disarm()

    def _disarm(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self._before, self._acts, self._deltas, self._armed = [], None, {}, {}, False

    # -- results ---------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """One row per (epoch, layer): epoch, layer, index, activation, samples and the statistics.

        Epoch 0 holds the very first training step alone (the network as initialised)."""
        cols = ["epoch", "layer", "index", "activation", "samples", *STATS]
        return pd.DataFrame(self.rows, columns=cols)


@dataclass
class _EpochOnly:
    epoch: int
