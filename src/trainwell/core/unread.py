"""Settings a user changed that the chosen component never reads, named instead of silently ignored.

A spec holds every section's keys for every choice within it: ``optim.momentum`` is there whether
``optim.name`` is SGD with momentum or Adam (whose momentum is ``optim.beta1``), ``model.channels``
whether ``model.type`` is a CNN or an MLP. A value changed on a key the chosen component does not read
trains exactly what the default would, which looks like a setting that was tried and did not help. The
component itself says what it reads: its builder is handed a :class:`KeysRead` view of the section, and
every key changed but not read is named in one warning, with the choices that do read it.
"""
from __future__ import annotations

import json
import warnings
from typing import Any

from pydantic import BaseModel


def changed_keys(section: BaseModel) -> dict[str, Any]:
    """The keys of a spec section set away from their default, with their values (a key written with its
    default value changes nothing, read or not)."""
    fields = type(section).model_fields
    changed = {}
    for key in sorted(section.model_fields_set):
        if key in fields and getattr(section, key) != fields[key].get_default(call_default_factory=True):
            changed[key] = getattr(section, key)
    return changed


class KeysRead:
    """A spec section that notes the name of every key read from it, passed where the section would be."""

    def __init__(self, section: BaseModel):
        self.section = section
        self.read: set[str] = set()

    def __getattr__(self, key: str) -> Any:          # called for the section's keys only (not section/read)
        self.read.add(key)
        return getattr(self.section, key)


def warn_unread(prefix: str, chooser: str, chosen: str, unread: dict[str, Any], readers: dict[str, list[str]],
                note: str = "") -> None:
    """One warning: ``{prefix}.{key}={value}`` (each key of ``unread``) is not read when ``{chooser}={chosen}``
    (``model.type=mlp``, ``task=multiclass``) and has no effect; ``readers`` names the values of ``chooser``
    that do read each key; ``note`` adds a pointer (Adam's momentum is ``optim.beta1``)."""
    if not unread:
        return
    one = len(unread) == 1
    settings = ", ".join(f"{prefix}.{k}={json.dumps(v)}" for k, v in unread.items())
    who = "; ".join(f"only {chooser}={_either(readers.get(k) or ['none'])} reads {k}" for k in unread)
    warnings.warn(f"{settings} {'is' if one else 'are'} not read by {chooser}={chosen} and "
                  f"{'has' if one else 'have'} no effect on this run: {who}{note}. Set {chooser} to the one "
                  f"meant, or remove the setting{'' if one else 's'} (`trainwell list` describes the choices; "
                  f"docs/spec.md).", UserWarning, stacklevel=3)


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


# settings read only under one value of another key: (section, keys, the deciding key, the value that reads them)
CONDITIONAL = (
    ("data", ("target_transform", "clip_predictions", "smearing"), "task", "regression"),
    ("train", ("monitor_every",), "train.monitor", "true"),
)


def warn_unread_conditional(spec: Any, task: str) -> None:
    """The settings of ``CONDITIONAL`` changed from their default where the deciding key rules them out
    (``data.target_transform`` on a classifier, ``train.monitor_every`` with the monitors off)."""
    decided = {"task": task, "train.monitor": json.dumps(bool(spec.train.monitor))}
    for section, keys, chooser, reads in CONDITIONAL:
        if decided[chooser] == reads:
            continue
        changed = changed_keys(getattr(spec, section))
        unread = {k: changed[k] for k in keys if k in changed}
        warn_unread(section, chooser, decided[chooser], unread, {k: [reads] for k in unread})
