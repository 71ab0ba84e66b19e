"""The user's own ``torch.nn.Module``, trained with every trainwell practice.

``trainwell.fit(module=MyNet(...))`` (or a class, or ``"path/to/file.py:MyNet"``)
and ``trainwell fit DATA --model path/to/file.py:MyNet`` train any module that
maps a batch of network inputs (the scaled rows, shaped like the data) to raw
scores ``[B, n_outputs]`` (logits; the task's head adds the loss and output
activation).

Saving: the weights go to ``model.safetensors`` like every model; ``model.json``
stores the module's *import path* — the absolute file path, the class name and
the constructor keyword arguments (``module_kwargs``). ``trainwell.load`` rebuilds
the module by importing that file and calling ``ClassName(**module_kwargs)``:
**loading a run with a user module executes that user's own Python file** (as
importing it would), never pickle. Only load run directories whose module file
you trust.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwell.errors import UserError


def module_ref(module: Any) -> str:
    """``"/abs/path/file.py:ClassName"`` for a module instance, a class or such a string."""
    if isinstance(module, str):
        path, sep, name = module.rpartition(":")
        if not sep or not path or not name:
            raise UserError(f'--model "{module}" must be path/to/file.py:ClassName (a file and a class in it).')
        return f"{Path(path).expanduser().resolve()}:{name}"
    cls = module if isinstance(module, type) else type(module)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(f"module= must be a torch.nn.Module (instance or class) or 'file.py:ClassName'; got {module!r}.")
    try:
        file = inspect.getsourcefile(cls)
    except TypeError:
        file = None
    if not file or "<" in cls.__qualname__:
        raise UserError(
            f"{cls.__qualname__} is not defined at the top level of a Python file, so a saved run could not "
            f"rebuild it. Define the class in a .py file (not inside a function or a notebook cell)."
        )
    return f"{Path(file).resolve()}:{cls.__qualname__}"


def load_class(ref: str) -> type:
    """Import the file of ``ref`` (executing it, as Python's import does) and return the class."""
    path, _, name = ref.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"The module file {file} does not exist. The run was trained with {ref}; put the file "
                        f"back at that path (or pass --model with the right path).")
    key = "trainwell_user_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    mod = sys.modules.get(key)
    if mod is None:
        spec = importlib.util.spec_from_file_location(key, file)
        if spec is None or spec.loader is None:
            raise UserError(f"{file} is not an importable Python file.")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            del sys.modules[key]
            raise UserError(f"Importing {file} failed: {exc.__class__.__name__}: {exc}. Fix the file.") from None
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            have = [k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, nn.Module)]
            raise UserError(f"{file} has no class {name}. nn.Module classes in it: {', '.join(have) or 'none'}.")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise UserError(f"{name} in {file} is not a torch.nn.Module subclass.")
    return obj


def module_spec(spec: Any, module: Any, kwargs: dict | None) -> Any:
    """The spec with model.type=custom and the module's import path (+ constructor kwargs)."""
    from trainwell.spec import Spec
    model = {"type": "custom", "module": module_ref(module)}
    if kwargs is not None:
        model["module_kwargs"] = dict(kwargs)
    return Spec.build(spec, model=model)


def build_custom(arch: dict[str, Any]) -> nn.Module:
    cls = load_class(arch["module"])
    try:
        return cls(**arch.get("module_kwargs", {}))
    except TypeError as exc:
        raise UserError(f"Could not construct {arch['module']} with module_kwargs={arch.get('module_kwargs', {})}: "
                        f"{exc}. Pass the constructor arguments as module_kwargs (--set model.module_kwargs=...)."
                        ) from None


def custom_arch(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """Architecture dict of a user module; checks once that its output fits the task's head."""
    from trainwell.nn.topology import base_arch
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
    model = build_custom(arch)
    n = min(2, prep.X_train.shape[0])
    model.eval()
    with torch.no_grad():
        try:
            out = model(torch.from_numpy(prep.X_train[:n]))
        except Exception as exc:
            raise UserError(f"{m.module} failed on a batch of input shape {list(prep.X_train[:n].shape)}: "
                            f"{exc.__class__.__name__}: {exc}. Its forward() must accept the data's rows.") from None
    k = prep.pre.coder.n_outputs
    if not isinstance(out, torch.Tensor) or out.shape[0] != n or out[0].numel() != k:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{m.module} returned {got} for {n} rows; a {prep.pre.task} head needs [{n}, {k}] raw scores.")
    cls_name = m.module.rpartition(":")[2]
    kw = ", ".join(f"{a}={v!r}" for a, v in arch["module_kwargs"].items())
    arch["summary"] = f"custom {cls_name}({kw}) from {Path(m.module.rpartition(':')[0]).name}"
    notes.append(f"module: {m.module} (saved as an import path; loading the run imports that file)")
    return arch, notes
