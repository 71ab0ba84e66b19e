"""The user's own ``torch.nn.Module``, trained with every trainwell practice; never run on load unless trusted.

``trainwell.fit(module=MyNet(...))`` (or a class, or ``"path/to/file.py:MyNet"``)
and ``trainwell fit DATA --model path/to/file.py:MyNet`` train any module that
maps a batch of network inputs (the scaled rows, shaped like the data) to raw
scores ``[B, n_outputs]`` (logits; the task's head adds the loss and output
activation).

Saving: the weights go to ``model.safetensors`` like every model; the module's
source file is copied into the run directory as ``module.py`` and its sha256 goes
into ``model.json`` (with the class name and the constructor's ``module_kwargs``).
Loading a run never imports anything by itself: :func:`trusted_class` runs that
copy only when the caller says so for this load (``--trust-module`` /
``trust_module=True``), only from inside the run directory, and only if its sha256
is the recorded one. A file is executed in exactly one place, :func:`_execute`.
The copy is one file: a module that imports its own sibling files must be made
self-contained (or installed as a package) to be loaded again.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from trainwell.core.io import atomic_write, sha256_bytes
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec

COPY = "module.py"
# classes this process may build: imported because the user named them (fit --model / module=) or
# trusted for a load; ref -> (class, the source bytes it came from, copied into the run directory)
_ALLOWED: dict[str, tuple[type, bytes]] = {}


def _execute(source: bytes, origin: str) -> ModuleType:
    """Run ``source`` as a fresh module (the one place trainwell executes a Python file).

    Only called with a file the user named for training, or a run's verified copy the user
    trusted for this load. The bytes executed are the bytes checked: the file is not read twice.
    """
    key = "trainwell_module_" + hashlib.sha256(source).hexdigest()[:16]
    cached = sys.modules.get(key)
    if cached is not None:
        return cached
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(key, loader=None, origin=origin))
    mod.__file__ = origin
    sys.modules[key] = mod
    try:
        exec(compile(source, origin, "exec"), mod.__dict__)   # noqa: S102 -- see the docstring
    except Exception as exc:
        del sys.modules[key]
        raise UserError(f"Importing {origin} failed: {exc.__class__.__name__}: {exc}. Fix the file.") from None
    return mod


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
    ref = f"{Path(file).resolve()}:{cls.__qualname__}"
    _ALLOWED.setdefault(ref, (cls, Path(file).read_bytes()))     # already imported by the user
    return ref


def _class_in(mod: ModuleType, name: str, where: str) -> type:
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            have = [k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, nn.Module)]
            raise UserError(f"{where} has no class {name}. nn.Module classes in it: {', '.join(have) or 'none'}.")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise UserError(f"{name} in {where} is not a torch.nn.Module subclass.")
    return obj


def load_class(ref: str) -> type:
    """The class of ``ref`` ("file.py:ClassName"), a file the user named for training: imported (executed,
    as Python's import does) once, then allowed for building in this process."""
    if ref in _ALLOWED:
        return _ALLOWED[ref][0]
    path, _, name = ref.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"The module file {file} does not exist. The run was trained with {ref}; put the file "
                        f"back at that path (or pass --model with the right path).")
    source = file.read_bytes()
    cls = _class_in(_execute(source, str(file)), name, str(file))
    _ALLOWED[ref] = (cls, source)
    return cls


def copy_module(arch: dict[str, Any], run_dir: Path) -> None:
    """Copy the module's source into ``run_dir/module.py`` and record its sha256 in ``arch`` (training)."""
    _, source = _ALLOWED[arch["module"]] if arch["module"] in _ALLOWED else (None, b"")
    if not source:
        load_class(arch["module"])
        source = _ALLOWED[arch["module"]][1]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(run_dir) / COPY, source)
    arch.update(module_file=COPY, module_sha256=sha256_bytes(source))


def trusted_class(run_dir: Path, arch: dict[str, Any], trust: bool) -> type:
    """The class of a saved run's module: its copy inside ``run_dir``, checked, run only with ``trust``."""
    d = Path(run_dir)
    name = str(arch.get("module") or "").rpartition(":")[2]
    expected = arch.get("module_sha256")
    if arch.get("module_file") != COPY or not expected or not name:
        raise UserError(f"{d} names a custom module by path only ({str(arch.get('module'))[:200]}), without a copy "
                        f"inside the run directory and its checksum; trainwell does not import files from outside a "
                        f"run. Train it again with this version of trainwell.")
    copy = d / COPY
    if copy.is_symlink() or not copy.is_file():
        raise UserError(f"{copy} (the run's copy of its custom module) is missing or not a plain file; restore "
                        f"it from a copy of the run, or train again.")
    source = copy.read_bytes()
    if hashlib.sha256(source).hexdigest() != expected:
        raise UserError(f"{copy} does not match the sha256 recorded in {d / 'model.json'}: it was changed after "
                        f"training. Restore it, or train again.")
    if not trust:
        raise UserError(f"{d} was trained with a custom module: loading it runs the Python file {copy} (class "
                        f"{name}, sha256 {expected[:16]}...). Read that file; if you trust it, pass --trust-module "
                        f"(Python: trainwell.load(..., trust_module=True)).")
    cls = _class_in(_execute(source, str(copy)), name, str(copy))
    _ALLOWED[str(arch["module"])] = (cls, source)
    return cls


def construct(cls: type, arch: dict[str, Any]) -> nn.Module:
    try:
        return cls(**arch.get("module_kwargs", {}))
    except TypeError as exc:
        raise UserError(f"Could not construct {arch['module']} with module_kwargs={arch.get('module_kwargs', {})}: "
                        f"{exc}. Pass the constructor arguments as module_kwargs (--set model.module_kwargs=...)."
                        ) from None


def module_spec(spec: Any, module: Any, kwargs: dict | None) -> Any:
    """The spec with model.type=custom and the module's import path (+ constructor kwargs)."""
    model = {"type": "custom", "module": module_ref(module)}
    if kwargs is not None:
        model["module_kwargs"] = dict(kwargs)
    return Spec.build(spec, model=model)


def build_custom(arch: dict[str, Any]) -> nn.Module:
    """The module of ``arch``, from a class this process was allowed to build (never imports anything:
    a saved run's module goes through :func:`trusted_class`)."""
    allowed = _ALLOWED.get(str(arch.get("module")))
    if allowed is None:
        raise UserError(f"The custom module {str(arch.get('module'))[:200]} was not named for training nor trusted "
                        f"for this load; trainwell does not import it. Load the run with --trust-module "
                        f"(trust_module=True) to run the copy inside the run directory.")
    return construct(allowed[0], arch)
