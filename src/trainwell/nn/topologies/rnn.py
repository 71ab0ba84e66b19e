"""``model.type: rnn``: Elman, LSTM and GRU networks (docs/topologies/rnn.md); modules in nn/rnn.py."""
from __future__ import annotations

from typing import Any

import numpy as np

from trainwell.core.inputs import InputLayout
from trainwell.nn.rnn import RNN
from trainwell.nn.topology import Topology, augment_arch, base_arch, batch_128


def defaults(spec: Any) -> tuple[list[str], list[str]]:
    """Batch 128, and gradient clipping by norm 1.0 (no clip_norm / clip_value given): gradients
    through time can explode (Pascanu et al. 2013)."""
    sets, notes = batch_128(spec)
    reg = spec.regularize
    if reg.clip_norm is None and reg.clip_value is None:
        sets.append("regularize.clip_norm=1.0")
        notes.append("gradient clipping: clip_norm 1.0 (on by default for recurrent nets, whose gradients can "
                     "explode through time; set regularize.clip_norm to change)")
    return sets, notes


def resolve(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """Rows as sequences [T, F] (a [T] row is univariate); no dense head unless model.hidden is given."""
    m = spec.model
    arch, notes = base_arch(spec, prep)
    augment_arch(spec, arch, notes)
    shape = arch["input_shape"]
    seq = [int(shape[0]), 1] if len(shape) == 1 else [int(shape[0]), int(np.prod(shape[1:]))]
    arch.update(seq_shape=seq, cell=m.cell, layers=m.layers, hidden_size=m.hidden_size,
                bidirectional=m.bidirectional, hidden=[] if m.hidden == "auto" else list(m.hidden))
    notes.append(f"input: sequences of {seq[0]} steps x {seq[1]} feature(s)"
                 + (" (a [N, T] array is read as univariate)" if len(shape) == 1 else ""))
    return arch, notes


def describe(arch: dict[str, Any]) -> str:
    T, F = arch["seq_shape"]
    bi = "bidirectional " if arch["bidirectional"] else ""
    dense = "".join(f" -> dense{h}" for h in arch["hidden"])
    return (f"rnn {T}x{F} -> {bi}{arch['cell']} x{arch['layers']} ({arch['hidden_size']} units){dense}"
            f" -> {arch['n_outputs']}")


TOPOLOGY = Topology(
    name="rnn",
    description="recurrent net over sequences [T, F]: Elman, LSTM or GRU cells (model.cell), stacked, optionally "
                "bidirectional; the last hidden state feeds a dense head; gradient clipping on by default",
    resolve=resolve, build=RNN, describe=describe, defaults=defaults,
    inputs=InputLayout(shaped=True, pixels=False, auto_scale="channel", axes="sequence", table_scale=None),
    model_keys=lambda model: ("cell", "layers", "hidden_size", "bidirectional"),
    ignores=("batchnorm", "residual", "preset", "ensemble"),
)
