"""A per-layer summary of a network: each layer that holds parameters or transforms the data, its output
shape and its parameter count, as Keras' ``model.summary()`` prints (``trainwell summary RUN``).

Shapes are measured, not inferred: forward passes of zero batches of two and of three rows with a forward
hook on every leaf module, so custom modules and packed ensembles are described as they really run. The
dimension that follows the batch is shown as ``N`` wherever it is: a packed ensemble's layers compute
``[members, N, units]``, not ``[N, ...]``.
"""
from __future__ import annotations

import torch
from torch import nn


def layer_rows(model: nn.Module, input_shape: list[int], dtype: torch.dtype = torch.float32) -> list[dict]:
    """``[{"name", "type", "output", "parameters"}]`` for each leaf module in the order the forward pass
    calls it (a module called twice, such as a shared layer, is listed each time, its parameters once)."""
    rows = _rows_for_batch(model, input_shape, dtype, 2)
    other = _rows_for_batch(model, input_shape, dtype, 3)
    for row, again in zip(rows, other):
        if row["output"] != "-":
            row["output"] = ["N" if a != b else a for a, b in zip(row["output"], again["output"])]
    return rows


def _rows_for_batch(model: nn.Module, input_shape: list[int], dtype: torch.dtype, batch: int) -> list[dict]:
    """The rows of one forward pass of ``batch`` zero rows, with each output's full shape."""
    rows: list[dict] = []
    counted: set[int] = set()

    def hook(name: str):
        def record(module: nn.Module, _inputs, output) -> None:
            first = id(module) not in counted
            counted.add(id(module))
            params = sum(p.numel() for p in module.parameters(recurse=False)) if first else 0
            shape = list(output.shape) if isinstance(output, torch.Tensor) else None
            rows.append({"name": name, "type": type(module).__name__,
                         "output": shape if shape else "-", "parameters": params})
        return record

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook(n or type(model).__name__)) for n, m in leaves]
    param = next(model.parameters(), None)
    x = torch.zeros(batch, *input_shape, dtype=dtype, device=param.device if param is not None else "cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows
