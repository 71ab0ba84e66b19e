"""What a topology (a ``model.type``) is: one :class:`Topology` per file in ``nn/topologies/``.

A topology says everything the rest of trainwell asks of a model type: its line in
``trainwell list``, the spec defaults it brings, how its ``auto`` choices resolve into the
architecture dict saved in ``model.json`` (with a one-line reason each), how that dict becomes
modules, a one-line summary, how ``data/`` should shape and scale its inputs, and which
``model.*`` keys it reads. Nothing else in trainwell compares ``model.type`` against a list of
names; ``nn/topologies/__init__.py`` collects the topologies (docs/architecture.md, "Adding a
topology").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from torch import nn

from trainwell.core.inputs import InputLayout
from trainwell.nn.init import resolve_init


def no_defaults(spec: Any) -> tuple[list[str], list[str]]:
    """No topology-specific defaults: no ``--set`` overrides, no notes."""
    return [], []


def no_spec_changes(spec: Any) -> tuple[dict[str, dict], list[str]]:
    """No settings the topology fixes: no spec sections changed, no notes."""
    return {}, []


def no_model_keys(model: dict) -> tuple[str, ...]:
    """No ``model.*`` keys of its own (it reads only the keys every topology shares)."""
    return ()


@dataclass(frozen=True)
class Topology:
    """One ``model.type``: what each part of trainwell asks of it.

    ``resolve(spec, prep) -> (arch, notes)``: the architecture dict (saved as ``model.json``) with
    its ``auto`` choices made, and one note per choice. ``build(arch) -> nn.Module``: the modules
    (weights initialised later, ``nn/models.initialize``). ``describe(arch) -> str``: the one-line
    summary printed at fit time (None: the widths ``n_inputs-hidden-n_outputs``).
    ``defaults(spec) -> (sets, notes)``: ``--set`` overrides applied where the user set nothing.
    ``spec_changes(spec) -> (sections, notes)``: settings the topology cannot train without
    (applied after the data is known). ``inputs``: how ``data/`` shapes and scales its rows.
    ``model_keys(model) -> keys``: the ``model.*`` keys only it reads (the report shows those).
    ``ignores``: the shared ``model.*`` keys it does not read (a recurrent net has no residual blocks), so a
    value set there is reported instead of silently doing nothing (``unread_model_keys``).
    """

    name: str
    description: str
    resolve: Callable[[Any, Any], tuple[dict, list[str]]]
    build: Callable[[dict], nn.Module]
    describe: Callable[[dict], str] | None = None
    defaults: Callable[[Any], tuple[list[str], list[str]]] = no_defaults
    spec_changes: Callable[[Any], tuple[dict[str, dict], list[str]]] = no_spec_changes
    inputs: InputLayout = field(default_factory=InputLayout)
    model_keys: Callable[[dict], tuple[str, ...]] = no_model_keys
    ignores: tuple[str, ...] = ()


def base_arch(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """The architecture keys every topology shares (sizes, activation, init, loss, task) and the init note."""
    m = spec.model
    init, why_init = resolve_init(m.init, m.activation)
    arch = {"type": m.type, "n_inputs": int(np.prod(prep.X_train.shape[1:])),
            "input_shape": list(prep.X_train.shape[1:]), "n_outputs": prep.pre.coder.n_outputs,
            "activation": m.activation, "init": init, "init_std": m.init_std, "init_limit": m.init_limit,
            "init_value": m.init_value, "bias_init": m.bias_init, "dropout": m.dropout,
            "batchnorm": m.batchnorm, "residual": False, "loss": m.loss,
            "output_activation": m.output_activation, "task": prep.pre.task}
    return arch, [f"init: {why_init}"]


def augment_arch(spec: Any, arch: dict, notes: list[str]) -> None:
    """``data.augment`` into ``arch`` (train-time shifts and noise on the device, nn/cnn.py), with a note."""
    aug = spec.data.augment
    arch["augment"] = {"shift": aug.shift, "noise": aug.noise} if (aug.shift or aug.noise) else {}
    if arch["augment"]:
        notes.append(f"augment (training steps only, on the device): random shifts up to {aug.shift}, "
                     f"Gaussian noise sigma {aug.noise:g}")


def batch_128(spec: Any) -> tuple[list[str], list[str]]:
    """Batch 128 where ``train.batch_size`` is left at auto: convolutions and recurrences amortise their
    per-step cost over bigger batches than a small MLP's."""
    if spec.train.batch_size != "auto":
        return [], []
    return (["train.batch_size=128"],
            [f"batch 128 (default for model.type={spec.model.type}; set train.batch_size to change)"])
