"""``model.type: mlp`` (the default): dense blocks, then a linear output layer; modules in nn/models.py.

Its width comes from the data (``model.hidden: auto``, nn/models.py ``default_hidden``), and small
plain MLPs train as a packed deep ensemble (``model.ensemble: auto``, nn/ensemble.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from trainwell.core.errors import UserError
from trainwell.nn.crossfit import crossfit_choice
from trainwell.nn.ensemble import PackedMLP, ensemble_size
from trainwell.nn.member_widths import member_widths_choice
from trainwell.nn.member_widths import summary as widths_summary
from trainwell.nn.init import resolve_init
from trainwell.nn.models import MLP, auto_hidden, default_hidden
from trainwell.nn.presets import apply_preset
from trainwell.nn.topology import Topology


def dense_arch(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """The architecture dict of a dense net (mlp, perceptron): widths, init and packed members, with notes."""
    m = spec.model
    refuse_augment(spec)
    n_inputs = int(np.prod(prep.X_train.shape[1:]))
    n_outputs = prep.pre.coder.n_outputs
    notes = []
    if m.hidden in ("auto", "heuristic"):      # the rule counts the table's inputs, not its bins (data/piecewise.py)
        n_columns = n_inputs - getattr(prep.pre.scaler, "n_bins", 0)
        hidden, why = (auto_hidden if m.hidden == "heuristic" else default_hidden)(prep.X_train.shape[0], n_columns,
                                                                                   n_outputs)
        notes.append(why)
    else:
        hidden = list(m.hidden)
    init, why_init = resolve_init(m.init, m.activation)
    notes.append(f"init: {why_init}")
    members, why_members = packed_members(spec, prep, n_inputs, hidden, n_outputs)
    if why_members:
        notes.append(why_members)
    pool_test = m.crossfit_test and members > 1 and not getattr(prep, "test_given", False)   # never a given test set
    test_rows = int(prep.X_test.shape[0]) if pool_test else 0
    crossfit, why_crossfit = crossfit_choice(m.crossfit, members, int(prep.X_val.shape[0]) if members > 1 else 0,
                                             getattr(prep, "validation_given", False), test_rows)
    if why_crossfit:
        notes.append(why_crossfit)
    member_widths, why_widths = member_widths_choice(m.mixed_width and m.type == "mlp", members=members,
                                                     hidden=hidden, activation=m.activation)
    if why_widths:
        notes.append(why_widths)
    arch = {"members": members, "crossfit": crossfit, "crossfit_test": bool(crossfit and test_rows), "type": m.type,
            "n_inputs": n_inputs, "input_shape": list(prep.X_train.shape[1:]),
            "hidden": hidden, "n_outputs": n_outputs, "activation": m.activation, "init": init,
            "init_std": m.init_std, "init_limit": m.init_limit, "init_value": m.init_value,
            "bias_init": m.bias_init, "dropout": m.dropout, "batchnorm": m.batchnorm,
            "residual": m.residual, "loss": m.loss, "output_activation": m.output_activation,
            "task": prep.pre.task}
    if member_widths:
        arch.update(member_widths=member_widths, summary=widths_summary(n_inputs, member_widths, n_outputs))
    return arch, notes


def refuse_augment(spec: Any) -> None:
    """``data.augment`` is applied by the conv, recurrent and autoencoder models (nn/cnn.py), whose inputs keep
    their positions; a dense net would silently train without it, so it is refused with the dense equivalent."""
    aug = spec.data.augment
    if aug.shift or aug.noise:
        noise = f"regularize.noise={aug.noise:g}" if aug.noise else "regularize.noise=0.1"
        raise UserError(f"data.augment (shift={aug.shift}, noise={aug.noise:g}) is applied by model.type=cnn, rnn "
                        f"and autoencoder, not by model.type={spec.model.type}, which would train without it. For "
                        f"Gaussian input noise on a dense net set {noise} instead (and data.augment.shift=0, "
                        f"data.augment.noise=0); for shifted images use model.type=cnn (docs/topologies/cnn.md).")


def packed_members(spec: Any, prep: Any, n_inputs: int, hidden: list[int], n_outputs: int) -> tuple[int, str]:
    """``model.ensemble`` for a plain MLP: how many members train at once (nn/ensemble.py), and why."""
    m = spec.model
    if m.type != "mlp":
        return 1, ""
    unpackable = unpackable_reason(spec, prep)
    if unpackable:
        if isinstance(m.ensemble, int) and m.ensemble > 1:
            raise UserError(f"model.ensemble={m.ensemble} packs plain MLPs (no batch norm, residual blocks, presets "
                            f"or streaming); this spec has {unpackable}. Set model.ensemble=1, or use "
                            "fit(ensemble=P) / tune --population for other models.")
        if m.ensemble == "auto":
            return 1, (f"ensemble: off ({unpackable}: only plain MLPs are packed into an ensemble; in Python, "
                       f"trainwell.fit(..., ensemble=P) trains P such networks one after another and averages them)")
        return 1, ""
    widths = [n_inputs, *hidden, n_outputs]
    params = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    return ensemble_size(m.ensemble, int(prep.X_train.shape[0]), params)


def unpackable_reason(spec: Any, prep: Any) -> str | None:
    """What keeps an MLP out of a packed ensemble, in the user's keys; None for a plain MLP."""
    m = spec.model
    for reason, present in (("batch norm (model.batchnorm)", m.batchnorm), ("residual blocks (model.residual)",
                                                                            m.residual),
                            (f"the {m.preset} preset (model.preset)", m.preset != "none"),
                            ("streamed data (data.streaming)", getattr(prep, "streaming", False))):
        if present:
            return reason
    return None


def resolve(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """Widths from the data, the initializer for the activation, packed members, the preset's choices."""
    arch, notes = dense_arch(spec, prep)
    apply_preset(spec, arch, notes)
    if arch.get("residual"):
        widths = [arch["n_inputs"], *arch.get("hidden", [])]
        proj = sum(a != b for a, b in zip(widths, widths[1:]))
        notes.append(f"residual blocks a + F(a) in {len(widths) - 1} layers"
                     + (f" ({proj} with a linear projection P a where the width changes)" if proj else ""))
    return arch, notes


def build(arch: dict[str, Any]) -> nn.Module:
    """One MLP, or ``members`` of them packed into one batched network (nn/ensemble.py)."""
    return PackedMLP(arch) if int(arch.get("members", 1)) > 1 else MLP(arch)


TOPOLOGY = Topology(
    name="mlp",
    description="dense blocks a = g(W x + b), then a linear output layer; options: batchnorm before/after, "
                "dropout, residual a + F(a) (projection where widths differ)",
    resolve=resolve, build=build,
)
