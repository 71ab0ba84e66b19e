"""Every ``model.type``: one module per topology in this folder, each defining ``TOPOLOGY`` (nn/topology.py).

The registry is the folder itself: a module added here is a new ``model.type`` (``trainwell list``
shows it, fit/tune/load build it), with nothing to register elsewhere (docs/architecture.md,
"Adding a topology"). The modules are trainwell's own files, found with ``pkgutil`` in this
package's folder; nothing outside the package is imported.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from trainwell.core.errors import UserError, did_you_mean
from trainwell.core.unread import changed_keys, warn_unread
from trainwell.nn.fold import fold_batchnorm
from trainwell.nn.topology import Topology
from trainwell.core.spec import Spec


def _collect() -> dict[str, Topology]:
    """name -> Topology of every module in this package, in file-name order."""
    found: dict[str, Topology] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        topology = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TOPOLOGY", None)
        if isinstance(topology, Topology):
            found[topology.name] = topology
    return found


TOPOLOGIES: dict[str, Topology] = _collect()


def topology(name: str) -> Topology:
    """The topology of ``model.type=name``; a UserError naming the known ones otherwise."""
    found = TOPOLOGIES.get(str(name))
    if found is None:
        raise UserError(f"model.type={name} is not a model type trainwell knows.{did_you_mean(name, TOPOLOGIES)} "
                        f"Choose one of {', '.join(TOPOLOGIES)} (`trainwell list` describes them).")
    return found


def topology_defaults(spec: Any) -> tuple[Any, list[str]]:
    """The spec with its topology's defaults applied where the user set nothing, and a note for each
    (e.g. batch 128 for conv and recurrent nets, clipping for recurrent ones)."""
    sets, notes = topology(spec.model.type).defaults(spec)
    if not sets:
        return spec, notes
    return Spec.build(spec, sets=sets), notes


def unread_model_keys(model: Any) -> dict[str, list[str]]:
    """The ``model.*`` keys set away from their default that ``model.type`` does not read, each with the
    types that do read it: another type's own keys (``channels`` on an MLP) and the shared keys the type
    ignores (``residual`` on a recurrent net)."""
    kind, as_dict = topology(model.type), model.model_dump()
    own_keys = {name: set(t.model_keys(as_dict)) for name, t in TOPOLOGIES.items()}
    anyone_own = set().union(*own_keys.values())
    unread = {}
    for key, value in changed_keys(model).items():
        if key == "ensemble" and value == 1:       # one network: what every type but the MLP trains anyway
            continue
        if (key in anyone_own and key not in own_keys[kind.name]) or key in kind.ignores:
            unread[key] = [name for name, t in TOPOLOGIES.items()
                           if key in own_keys[name] or (key not in anyone_own and key not in t.ignores)]
    return unread


def resolve_architecture(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """The architecture dict of ``spec.model`` on the prepared data (``auto`` choices made, a note for each),
    with the one-line summary of its topology where it has one."""
    kind = topology(spec.model.type)
    unread = unread_model_keys(spec.model)
    warn_unread("model", "model.type", spec.model.type, {k: getattr(spec.model, k) for k in unread}, unread)
    arch, notes = kind.resolve(spec, prep)
    if kind.describe is not None:
        arch["summary"] = kind.describe(arch)
    return arch, notes


def build_model(arch: dict[str, Any]) -> nn.Module:
    """Modules for an architecture dict (weights not initialised by trainwell yet)."""
    model = topology(arch.get("type", "mlp")).build(arch)
    if arch.get("batchnorm_folded"):   # saved by Run.fold(): the same modules, BN fused into Linear
        model = fold_batchnorm(model, inplace=True)
    return model
