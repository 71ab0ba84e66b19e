"""``model.type: custom``: the user's own ``torch.nn.Module`` (docs/topologies/custom.md).

The import, copy and trust rules for the module's file are in nn/custom.py; this file says how
such a module joins a run: its architecture dict, a check that its output fits the task's head,
and its summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainwell.core.inputs import InputLayout
from trainwell.core.errors import UserError
from trainwell.nn.custom import COPY, build_custom, load_class
from trainwell.nn.topology import Topology, base_arch


def resolve(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """Architecture dict of a user module; checks once that its output fits the task's head."""
    m = spec.model
    if not m.module:
        raise UserError("model.type=custom needs model.module=path/to/file.py:ClassName "
                        "(CLI: --model path/to/file.py:ClassName; Python: fit(module=...)).")
    arch, notes = base_arch(spec, prep)
    if m.init == "auto":
        arch["init"] = "keep"
        notes = ["init: the module's own (model.init=auto keeps a user module's initialisation; "
                 "name an initializer to apply it to every Linear/Conv layer)"]
    arch.update(module=m.module, module_kwargs=dict(m.module_kwargs), hidden=[])
    load_class(m.module)                    # the file the user named (or a run's copy trusted on resume)
    _check_output(build_custom(arch), prep, m.module)
    notes.append(f"module: {m.module} (copied into the run directory as {COPY}; loading the run runs that copy "
                 f"only with --trust-module)")
    return arch, notes


def _check_output(model: torch.nn.Module, prep: Any, ref: str) -> None:
    """One forward pass on two training rows: the module must return [rows, n_outputs] raw scores."""
    n = min(2, prep.X_train.shape[0])
    model.eval()
    with torch.no_grad():
        try:
            out = model(torch.from_numpy(prep.X_train[:n]))
        except Exception as exc:
            raise UserError(f"{ref} failed on a batch of input shape {list(prep.X_train[:n].shape)}: "
                            f"{exc.__class__.__name__}: {exc}. Its forward() must accept the data's rows.") from None
    k = prep.pre.coder.n_outputs
    if not isinstance(out, torch.Tensor) or out.shape[0] != n or out[0].numel() != k:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{ref} returned {got} for {n} rows; a {prep.pre.task} head needs [{n}, {k}] raw scores.")


def describe(arch: dict[str, Any]) -> str:
    path, _, cls_name = str(arch["module"]).rpartition(":")
    kw = ", ".join(f"{a}={v!r}" for a, v in arch["module_kwargs"].items())
    return f"custom {cls_name}({kw}) from {Path(path).name}"


TOPOLOGY = Topology(
    name="custom",
    description="your own torch.nn.Module (fit(module=...), --model file.py:Class) trained with every trainwell "
                "practice; its file is copied into the run and runs on load only with --trust-module",
    resolve=resolve, build=build_custom, describe=describe,
    inputs=InputLayout(shaped=True, pixels=False, auto_scale="standard", table_scale=None),
    model_keys=lambda model: ("module", "module_kwargs"),
    ignores=("hidden", "activation", "dropout", "batchnorm", "residual", "preset", "ensemble"),
)
