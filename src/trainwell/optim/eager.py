"""torch.optim optimizers that do not import ``torch._dynamo`` in eager mode.

torch wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
``torch._disable_dynamo`` and every ``step`` in ``_use_grad_for_differentiable``; both import
``torch._dynamo`` on first call (torch/_compile.py, torch/optim/optimizer.py), so constructing the
first ``torch.optim.Adam`` of a process costs about a second of imports (docs/performance.md,
"Start-up") although eager mode runs none of it: the wrappers only tell a compiler not to trace the
function. ``eager(cls)`` is a subclass of ``cls`` that calls the undecorated methods (reached through
``functools.wraps``' ``__wrapped__``), with ``step`` under the grad mode torch's wrapper sets. Step
hooks, ``fused``/``foreach`` kernels, state dicts and schedules are torch's own, unchanged. Where a
wrapper is not found (another torch), the torch class itself is returned.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def torch_class(opt: torch.optim.Optimizer) -> type:
    """The torch class behind ``opt`` (``torch.optim.Adam`` for ``eager(torch.optim.Adam)``)."""
    return getattr(type(opt), "torch_class", type(opt))


@functools.cache
def eager(cls: type) -> type:
    """``cls`` with torch's dynamo wrappers skipped (the same class for every call, so that torch's
    per-class step hook is installed once)."""
    methods: dict[str, Any] = {}
    for name in _WRAPPED:
        inner = getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None)
        if inner is None:
            return cls
        methods[name] = inner
    raw_step = inspect.unwrap(cls.step)          # below torch's profile hook and grad-mode wrapper

    @functools.wraps(raw_step)
    def plain(self, *args: Any, **kwargs: Any) -> Any:
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, *args, **kwargs)
    methods["step"] = plain
    methods["torch_class"] = cls
    return type(cls.__name__, (cls,), {**methods, "__module__": __name__, "__qualname__": cls.__name__})
