"""``model.type: perceptron``: Rosenblatt's (1958) single layer of step units; modules and rule in nn/perceptron.py."""
from __future__ import annotations

from typing import Any

from trainwell.core.inputs import InputLayout
from trainwell.core.errors import UserError
from trainwell.nn.init import resolve_init
from trainwell.nn.perceptron import Perceptron, perceptron_spec_changes
from trainwell.nn.presets import apply_preset
from trainwell.nn.topologies.mlp import dense_arch
from trainwell.nn.topology import Topology


def resolve(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """No hidden layer, step units, the perceptron criterion; weights start at zero (no symmetry to break)."""
    m = spec.model
    arch, notes = dense_arch(spec, prep)
    task = arch.get("task")
    if task not in ("binary", "multiclass", "multilabel"):
        raise UserError(f"model.type=perceptron classifies (step units output 0/1); this is a {task} task. "
                        "Use model.type=mlp for it.")
    notes[:] = [n for n in notes if not n.startswith(("hidden", "init:"))]
    init = "zeros" if m.init == "auto" else resolve_init(m.init, "step")[0]
    arch.update(hidden=[], activation="step", init=init, loss="perceptron", dropout=0.0,
                batchnorm=False, residual=False)
    units = "1 step unit" if task == "binary" else f"{arch['n_outputs']} step units, one-vs-rest"
    notes.append(f"perceptron: {units}, weights start at {init}"
                 f"{' (one layer: no symmetry to break)' if init == 'zeros' else ''}")
    apply_preset(spec, arch, notes)
    return arch, notes


TOPOLOGY = Topology(
    name="perceptron",
    description="one layer of Heaviside step units trained by the perceptron rule "
                "w <- w + lr (y - y_hat) x (binary; one-vs-rest for multiclass/multilabel)",
    resolve=resolve, build=lambda arch: Perceptron(arch["n_inputs"], arch["n_outputs"]),
    describe=lambda arch: f"{arch['n_inputs']}-{arch['n_outputs']}",
    spec_changes=perceptron_spec_changes,
    ignores=("hidden", "activation", "dropout", "batchnorm", "residual", "ensemble"),   # step units, one layer
    inputs=InputLayout(table_scale="standard", table_why="the perceptron's inputs"),
)
