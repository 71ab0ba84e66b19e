"""``train.fast`` on CUDA: the whole training step captured once as a CUDA graph, then replayed.

On a GPU a small network's step is launch-bound: some thirty kernels of a few
microseconds each, issued one by one from Python. The issue's anchor for the
MNIST MLP on an H100: 0.52 s/epoch with fused Adam, 0.12 s with the step in a
CUDA graph. Capturing forward, backward and the fused optimizer step once and
replaying it issues all of them with one call.

The pattern is PyTorch's whole-network capture (docs: "CUDA Graphs"):

* static input buffers of the training batch size: each step copies its batch
  in and replays the graph; loss is a static output the loop accumulates;
* the optimizer runs in capturable mode (its step counter lives on the GPU) and
  reads its lr from a GPU tensor during capture, so schedules and the NaN
  rollback keep working: a new ``param_groups[0]["lr"]`` is copied into that
  tensor before the next replay;
* the first steps (``WARMUP``) run eagerly on a side stream, as capture
  requires; they are ordinary training steps;
* what the graph cannot take runs eagerly: the smaller last batch of an epoch,
  steps with forward hooks armed (the monitors' sampled steps), weighted
  data-parallel steps. A failed capture warns once and trains eagerly;
* when the optimizer's state tensors are replaced (the NaN rollback loads a
  checkpoint), the graph is captured again on the new ones.

``train.fast`` already skips the per-step train metric, so the graph holds no
metric work. The plumbing (buffers, lr sync, warm-up, fallbacks) is tested on
CPU with a stand-in for the graph that re-runs the captured function
(tests/test_graphs.py); the capture itself needs a GPU.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from trainwell.optim.eager import torch_class
from trainwell.optim.optimizers import OPTIMIZERS, for_torch_class

WARMUP = 3


class _CudaGraph:
    """torch.cuda.CUDAGraph behind the two calls GraphedStep needs."""

    def __init__(self) -> None:
        self.graph = None

    def capture(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        self.graph = torch.cuda.CUDAGraph()     # a fresh graph for every capture (re-captures included)
        with torch.cuda.graph(self.graph):
            return fn()

    def replay(self) -> None:
        self.graph.replay()

    @staticmethod
    def side_stream(fn: Callable):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(stream)
        return out


def graphable(state) -> str | None:
    """Why ``state`` cannot take the graphed step (None when it can)."""
    reg = state.spec.regularize
    if any((reg.l1, reg.l2, reg.bias_l1, reg.bias_l2, reg.activity_l1, reg.activity_l2, reg.noise,
            reg.clip_norm, reg.clip_value)):
        return "the regularize section"
    if state.ctx.forward is not None:
        return "data-parallel training"
    opt = state.optimizer
    capturable = any(o.graph_capturable for o in for_torch_class(torch_class(opt)))   # optim/optimizers.py
    if not capturable or len(opt.param_groups) != 1 or not opt.param_groups[0].get("fused"):
        takes = ", ".join(o.name for o in OPTIMIZERS.values() if o.graph_capturable)
        return f"the {torch_class(opt).__name__} optimizer (graphs take the fused step of {takes})"
    if not state.data.in_memory:
        return "streamed data"
    return None


class GraphedStep:
    """The training step as a replayed graph, with the eager step for everything else."""

    def __init__(self, state, eager: Callable, backend=None, autocast: bool = True):
        self.state, self.eager = state, eager
        self.model, self.head, self.opt = state.model, state.head, state.optimizer
        self.batch = state.batch_size
        self.backend = backend or _CudaGraph()
        self.autocast = autocast
        self.hooked = list(self.model.modules())
        self.graph = None
        self.disabled = False
        self.warm = 0
        self.group = self.opt.param_groups[0]
        self.group["capturable"] = True      # the step counter on the device; needed before the first step
        device = next(self.model.parameters()).device
        self.lr = torch.tensor(float(self.group["lr"]), device=device)
        self.lr_value = float(self.group["lr"])
        self.nan_terms = torch.full((4 if self.head.task == "regression" else 2,), float("nan"), device=device)
        self.replays = 0

    def _takes(self, xb: torch.Tensor, weight: float | None) -> bool:
        if self.disabled or (weight is not None and weight != 1.0) or xb.shape[0] != self.batch:
            return False
        if getattr(self.model, "record_activity", False):
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks for m in self.hooked)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, weight: float | None = None):
        if not self._takes(xb, weight):
            return self.eager(xb, yb, weight) if weight is not None else self.eager(xb, yb)
        if self.graph is None:
            if self.warm < WARMUP:
                self.warm += 1
                return self.backend.side_stream(lambda: self.eager(xb, yb))
            try:
                self._capture(xb, yb)
            except Exception as exc:   # noqa: BLE001 - an uncapturable model still trains, eagerly
                self.disabled = True
                self.group["lr"] = self.lr_value
                warnings.warn(f"train.fast: the CUDA graph capture failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); training continues without it.",
                              RuntimeWarning, stacklevel=2)
                return self.eager(xb, yb)
        if self._state_ids() != self.captured_state:   # the NaN rollback loaded new optimizer state tensors:
            self.graph = None                           # the graph would update the old ones; capture again
            return self(xb, yb, weight)
        lr = self.group["lr"]
        if float(lr) != self.lr_value:     # a schedule or the NaN rollback changed it
            self.lr_value = float(lr)
            self.lr.fill_(self.lr_value)
        self.static_x.copy_(xb)
        self.static_y.copy_(yb)
        self.backend.replay()
        self.replays += 1
        return self.static_loss, self.nan_terms

    def _body(self) -> torch.Tensor:
        if self.autocast:
            with torch.autocast(self.static_x.device.type, dtype=torch.bfloat16, cache_enabled=False):
                out = self.model(self.static_x)
        else:
            out = self.model(self.static_x)
        loss = self.head.loss_fn(out.float(), self.static_y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.static_x = xb.clone()
        self.static_y = yb.clone()
        self.lr.fill_(float(self.group["lr"]))
        self.lr_value = float(self.group["lr"])
        self.opt.zero_grad(set_to_none=True)
        self.group["lr"] = self.lr            # the graph reads the lr from this tensor
        try:
            self.static_loss = self.backend.capture(self._body)
        finally:
            self.group["lr"] = self.lr_value  # the rest of trainwell sees a float
        self.static_grads = [p.grad for p in self.model.parameters()]   # kept alive with the graph
        self.captured_state = self._state_ids()
        self.graph = self.backend

    def _state_ids(self) -> tuple:
        """Identity of the parameter and optimizer-state tensors the graph was captured on."""
        return tuple(id(t) for p in self.group["params"]
                     for t in (p, *(v for v in self.opt.state.get(p, {}).values() if isinstance(v, torch.Tensor))))
