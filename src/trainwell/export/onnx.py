"""``trainwell export RUN --format onnx``: the run's whole prediction path as one ONNX file.

torch's current exporter (``torch.onnx.export(..., dynamo=True)``, which traces with
``torch.export`` and writes the graph with onnxscript; https://pytorch.org/docs/stable/onnx.html)
writes export/graph.py's ``Pipeline`` — preprocessing, the network in evaluation mode with batch
norm folded, the head — with a dynamic batch dimension. Beside it goes ``FILE.json``: what stays
outside the graph (export/runtime.py). ``--format torch-export`` writes the same module as a
``torch.export`` archive (``.pt2``) for graphs ONNX cannot express. Every export is checked before
it is kept (export/verify.py).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from trainwell.core.io import atomic_write
from trainwell.core.errors import UserError
from trainwell.export.graph import Pipeline
from trainwell.export.runtime import FORMAT, sidecar_path

OPSET = 18


def layout_for(pre) -> tuple[list | None, list[str], list[str]]:
    """(Encode layout, the ``numbers`` input's column names, the category columns of ``codes``)."""
    enc = pre.columns
    if enc is None:
        return None, list(pre.feature_names), []
    layout, names, cats = [], [], []
    for c in enc.kept:
        if c.kind == "category":
            layout.append(("codes", len(cats), c.width()))
            cats.append(c.name)
        else:
            layout.append(("numbers", len(names), c.width()))
            names += c.names()
    return layout, names, cats


def pipeline(run, encoder_only: bool = False) -> tuple[Pipeline, dict]:
    """The module to export and its JSON description (the sidecar)."""
    if run.pre.task == "reconstruction" and not encoder_only:
        encoder_only = True            # an autoencoder is exported as its encoder: the codes are the product
    if encoder_only and not hasattr(run.model, "encode"):
        raise UserError("--encoder needs an autoencoder run (model.type=autoencoder).")
    if any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in run.model.modules()):
        run = run.fold()               # batch norm folded into the linear layers (nn/fold.py)
    run.model.eval()
    layout, names, cats = layout_for(run.pre)
    module = Pipeline(run, layout, encoder_only).eval()
    task = run.pre.task
    outputs = ["code"] if encoder_only else ["value"] if task == "regression" else ["probabilities", "label"]
    enc = run.pre.columns
    meta = {"format": FORMAT, "task": task, "classes": list(run.pre.coder.classes),
            "input_shape": list(run.pre.input_shape) if enc is None else [len(names)],
            "inputs": ["numbers", "codes"] if cats else ["numbers"], "outputs": outputs,
            "numbers": names, "codes": cats,
            "categories": {c.name: list(c.categories) for c in (enc.kept if enc else []) if c.kind == "category"},
            "columns": enc.to_json() if enc is not None else None,
            "outside": "text columns are parsed and category strings mapped to codes before the graph "
                       "(trainwell.export.runtime); class names are read from 'classes'"}
    return module, meta


def example_inputs(meta: dict) -> tuple[torch.Tensor, ...]:
    numbers = torch.zeros(2, *meta["input_shape"], dtype=torch.float32)
    if "codes" in meta["inputs"]:
        return numbers, torch.zeros(2, len(meta["codes"]), dtype=torch.int64)
    return (numbers,)


def _dynamic(meta: dict) -> tuple:
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} for _ in meta["inputs"])


def write_onnx(module: Pipeline, meta: dict, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401  # lazy: optional dependency of the dynamo exporter
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxscript: pip install 'trainwell[export]'.") from None
    args = example_inputs(meta)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, args, dynamo=True, input_names=meta["inputs"],
                                        output_names=meta["outputs"], dynamic_shapes=_dynamic(meta),
                                        opset_version=OPSET, verbose=False, optimize=True)
        except Exception as exc:     # an op ONNX lacks: say so, and what to use instead
            raise UserError(f"torch's ONNX exporter could not write this model: {str(exc).splitlines()[0][:300]}. "
                            f"Export it with --format torch-export (a torch.export archive) instead.") from None
    program.save(str(path), external_data=False)


def write_torch_export(module: Pipeline, meta: dict, path: Path) -> torch.export.ExportedProgram:
    """Write the ``.pt2`` archive and return the program itself: the check runs that, because reading an
    archive back (``torch.export.load``) unpickles it, and trainwell never unpickles a file."""
    with torch.no_grad():
        program = torch.export.export(module, example_inputs(meta), dynamic_shapes=_dynamic(meta))
    torch.export.save(program, str(path))
    return program


def write_sidecar(meta: dict, path: Path) -> Path:
    side = sidecar_path(path)
    atomic_write(side, json.dumps(meta, indent=1))      # never half a description (core/io.py)
    return side
