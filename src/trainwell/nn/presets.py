"""Model types and presets: the architecture choices that fix several knobs at once.

``finish_architecture`` runs at the end of ``build.resolve_architecture``; it turns
``model.type=perceptron`` and ``model.preset=self_normalizing`` into the concrete
architecture dict (saved in model.json), and says what it changed and why.
"""
from __future__ import annotations

from typing import Any

from trainwell.errors import UserError
from trainwell.nn.init import resolve_init

MODEL_TYPES: dict[str, str] = {
    "mlp": "dense blocks a = g(W x + b), then a linear output layer; options: batchnorm before/after, "
           "dropout, residual a + F(a) (projection where widths differ)",
    "perceptron": "one layer of Heaviside step units trained by the perceptron rule "
                  "w <- w + lr (y - y_hat) x (binary; one-vs-rest for multiclass/multilabel)",
}

PRESETS: dict[str, str] = {
    "none": "no preset: every model.* setting as given",
    "self_normalizing": "SELU + LeCun normal init + standardized inputs + alpha dropout, no BN (Klambauer et al. 2017)",
}


def finish_architecture(spec: Any, arch: dict, notes: list[str]) -> dict:
    """Apply the model type's and preset's fixed choices to ``arch`` (in place) and explain them."""
    m = spec.model
    if m.type == "perceptron":
        task = arch.get("task")
        if task not in ("binary", "multiclass", "multilabel"):
            raise UserError(f"model.type=perceptron classifies (step units output 0/1); this is a {task} task. "
                            "Use model.type=mlp for it.")
        notes[:] = [n for n in notes if not n.startswith(("hidden", "init:"))]
        init = "zeros" if m.init == "auto" else resolve_init(m.init, "step")[0]
        arch.update(hidden=[], activation="step", init=init, loss="perceptron", dropout=0.0,
                    batchnorm=False, residual=False, summary=f"{arch['n_inputs']}-{arch['n_outputs']}")
        units = "1 step unit" if task == "binary" else f"{arch['n_outputs']} step units, one-vs-rest"
        notes.append(f"perceptron: {units}, weights start at {init}"
                     f"{' (one layer: no symmetry to break)' if init == 'zeros' else ''}")
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
    if arch.get("type") == "mlp" and arch.get("residual"):
        widths = [arch["n_inputs"], *arch.get("hidden", [])]
        proj = sum(a != b for a, b in zip(widths, widths[1:]))
        notes.append(f"residual blocks a + F(a) in {len(widths) - 1} layers"
                     + (f" ({proj} with a linear projection P a where the width changes)" if proj else ""))
    return arch

