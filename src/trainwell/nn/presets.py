"""Presets: architecture choices that fix several knobs at once, for the dense topologies.

``apply_preset`` runs at the end of the mlp and perceptron topologies' ``resolve``
(nn/topologies/); it turns ``model.preset=self_normalizing`` into the concrete
architecture dict (saved in model.json), and says what it changed and why.
"""
from __future__ import annotations

from typing import Any

from trainwell.core.errors import UserError

PRESETS: dict[str, str] = {
    "none": "no preset: every model.* setting as given",
    "self_normalizing": "SELU + LeCun normal init + standardized inputs + alpha dropout, no BN (Klambauer et al. 2017)",
}


def apply_preset(spec: Any, arch: dict, notes: list[str]) -> None:
    """Apply ``model.preset``'s fixed choices to a dense net's ``arch`` (in place) and explain them."""
    m = spec.model
    if m.preset == "self_normalizing":
        if m.type != "mlp":
            raise UserError(f"model.preset=self_normalizing is for dense nets (model.type=mlp), not {m.type}.")
        if m.batchnorm:
            raise UserError("model.preset=self_normalizing keeps activations normalized by SELU itself; "
                            "remove model.batchnorm (or drop the preset and use batch norm instead).")
        if m.activation not in ("relu", "selu"):   # relu is the default: the preset replaces it
            raise UserError(f"model.preset=self_normalizing uses SELU; remove model.activation={m.activation}.")
        if m.init not in ("auto", "lecun_normal", "lecun_uniform"):
            raise UserError(f"model.preset=self_normalizing needs LeCun init (variance 1/fan_in); "
                            f"remove model.init={m.init}.")
        if getattr(spec.data, "scale", "standard") in ("none", "pixels"):
            raise UserError("model.preset=self_normalizing needs standardized inputs (mean 0, variance 1); "
                            f"set data.scale=standard instead of {spec.data.scale}.")
        init = "lecun_normal" if m.init == "auto" else m.init
        arch.update(activation="selu", init=init)
        notes[:] = [n for n in notes if not n.startswith("init:")]
        drop = f"alpha dropout p={m.dropout:g}" if m.dropout else "alpha dropout if model.dropout > 0"
        notes.append(f"preset self_normalizing: SELU, {init} (1/fan_in), standardized inputs, {drop}, no batch norm")
