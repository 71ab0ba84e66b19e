"""Run: a trained model with its preprocessing, history and scores; saved as safetensors + JSON.

The on-disk form is the run-directory contract of docs/checkpoints.md. Nothing here uses
pickle: tensors go to ``model.safetensors``, everything else to JSON/YAML/CSV.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from safetensors.torch import load as parse_tensors
from safetensors.torch import save as save_tensors

from trainwell.core.io import atomic_write
from trainwell.core.manifest import Architecture, read_verified, seal
from trainwell.data.pipeline import Preprocessor
from trainwell.errors import UserError
from trainwell.nn.custom import construct, copy_module, trusted_class
from trainwell.nn.heads import Head, make_head
from trainwell.nn.models import build_model
from trainwell.spec import Spec
from trainwell.train.calibration import temperature_of
from trainwell.train.metrics import classification_metrics, regression_metrics

PREDICT_CHUNK = 8192


class Run:
    """A trained model and everything needed to use, evaluate and explain it."""

    def __init__(self, model: torch.nn.Module, arch: dict, pre: Preprocessor, spec: Spec,
                 history: pd.DataFrame | None = None, metrics: dict | None = None,
                 directory: Path | None = None, diagnosis: dict | None = None):
        self.model = model
        self.arch = arch
        self.pre = pre
        self.spec = spec
        self.history = history if history is not None else pd.DataFrame()
        self.metrics = metrics or {}
        self.directory = directory
        self.diagnosis = diagnosis or {"findings": []}
        self.head: Head = make_head(pre.task, arch.get("loss", "auto"), arch.get("output_activation", "auto"),
                                     arch.get("members", 1), temperature_of(arch), arch.get("class_weight"))

    # -- prediction ----------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _outputs(self, X: Any, mc_samples: int = 0) -> torch.Tensor:
        Xp = torch.from_numpy(self.pre.transform_X(X)).to(self.device)
        self.model.eval()
        if mc_samples:
            for m in self.model.modules():
                if isinstance(m, (torch.nn.Dropout, torch.nn.AlphaDropout)):
                    m.train()
        chunks = [self.head.transform(self.model(Xp[i:i + PREDICT_CHUNK]).float())
                  for i in range(0, Xp.shape[0], PREDICT_CHUNK)]
        self.model.eval()
        return torch.cat(chunks) if chunks else torch.empty(0)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: [N, K] for multiclass, [N, 2] for binary, [N, K] for multilabel."""
        if self.pre.task == "regression":
            raise UserError("predict_proba is for classification; this model does regression. Use predict().")
        p = self._outputs(X).cpu().numpy()
        if self.pre.task == "binary":
            return np.stack([1.0 - p, p], axis=1)
        return p

    def predict(self, X: Any, mc_samples: int = 0) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Decoded predictions (original labels or target units).

        With ``mc_samples=T`` (MC dropout), returns (mean, std) over T stochastic
        passes of the transformed outputs (probabilities or regression values).
        """
        if mc_samples:
            outs = torch.stack([self._outputs(X, mc_samples=mc_samples) for _ in range(mc_samples)])
            mean, std = outs.mean(0).cpu().numpy(), outs.std(0).cpu().numpy()
            if self.pre.task == "regression":
                scale = self.pre.target_scaler.std if self.pre.target_scaler is not None else 1.0
                return self.pre.decode_regression(mean), std * scale
            return mean, std
        out = self._outputs(X).cpu().numpy()
        return self._decode(out)

    def _decode(self, out: np.ndarray) -> np.ndarray:
        task = self.pre.task
        if task == "reconstruction":       # autoencoder: reconstructions in the data's original units
            out = out.reshape(len(out), *self.pre.input_shape)
            return self.pre.scaler.inverse(out) if self.pre.scaler is not None else out
        if task == "regression":
            return self.pre.coder.decode(self.pre.decode_regression(out))
        if task == "binary":
            return self.pre.coder.decode((out >= 0.5).astype(np.int64))
        if task == "multiclass":
            return self.pre.coder.decode(out.argmax(-1))
        return self.pre.coder.decode((out >= 0.5).astype(np.int64))

    def evaluate(self, X: Any, y: Any) -> dict:
        """All metrics of the task on raw (X, y)."""
        out = self._outputs(X).cpu().numpy()
        if self.pre.task == "reconstruction":   # y is ignored: the target is the input itself
            from trainwell.nn.autoencoder import reconstruction_metrics
            return reconstruction_metrics(self.pre.transform_X(X), out)
        codes = self.pre.coder.encode(np.asarray(y))
        if self.pre.task == "regression":
            return regression_metrics(codes, self.pre.decode_regression(out))
        return classification_metrics(self.pre.task, codes, out)

    def fold(self) -> "Run":
        """A copy of this Run with batch norm folded in, for inference (docs/practices/normalization.md).

        Same predictions in evaluation mode (to ~1e-6), fewer operations; saving it
        records ``batchnorm_folded`` so that ``load`` rebuilds the folded modules.
        """
        from trainwell.nn.fold import fold_batchnorm
        model = fold_batchnorm(self.model).eval()
        arch = {**self.arch, "batchnorm_folded": True}
        return Run(model, arch, self.pre, self.spec, self.history, dict(self.metrics), None, self.diagnosis)

    @torch.no_grad()
    def encode(self, X: Any) -> np.ndarray:
        """Bottleneck codes [N, bottleneck] of an autoencoder for raw inputs X."""
        if not hasattr(self.model, "encode"):
            raise UserError("encode needs an autoencoder run (model.type=autoencoder); this model has no encoder.")
        Xp = torch.from_numpy(self.pre.transform_X(X)).to(self.device)
        self.model.eval()
        chunks = [self.model.encode(Xp[i:i + PREDICT_CHUNK]).float() for i in range(0, Xp.shape[0], PREDICT_CHUNK)]
        return torch.cat(chunks).cpu().numpy()

    def export(self, format: str = "onnx", out: str | Path | None = None, data: Any = None,
               encoder: bool = False) -> dict:
        """Write the model with its preprocessing as one ONNX file (``format="torch-export"``: a
        ``torch.export`` archive) plus its JSON description, kept only if onnxruntime reproduces this
        run's predictions on held-out rows (or ``data``) to 1e-5; see docs/export.md."""
        from trainwell.export import export   # onnx and onnxscript load only when exporting
        return export(self, format, out, data, encoder)

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write spec.yaml, model.safetensors, history.csv, metrics.json, then model.json (last).

        Each file is written atomically (core/io.py), so a process killed while saving leaves the
        previous version or the new one, never half a file. ``model.json`` is written last and lists
        the sha256 of every file a load reads (core/manifest.py): a run is complete once it exists.
        A custom module's source is copied in as ``module.py`` (nn/custom.py).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(d / "spec.yaml", self.spec.to_yaml())
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        atomic_write(d / "model.safetensors", save_tensors(state))
        if self.arch.get("type") == "custom":
            copy_module(self.arch, d)
        if not self.history.empty:
            atomic_write(d / "history.csv", self.history.to_csv(index=False))
        atomic_write(d / "metrics.json", json.dumps(_json_safe(self.metrics), indent=2))
        self.seal(d)
        self.directory = d
        return d

    def seal(self, directory: str | Path) -> None:
        """(Re)write model.json with the checksums of the run's files as they are now."""
        seal(Path(directory), self.arch, self.pre.to_json())

    def __repr__(self) -> str:
        test = self.metrics.get("test", {})
        key = "accuracy" if "accuracy" in test else "r2"
        score = f", test {key}={test[key]:.4f}" if test.get(key) is not None else ""
        return f"Run(task={self.pre.task}, hidden={self.arch.get('hidden')}{score}, dir={self.directory})"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def load(directory: str | Path, device: str = "cpu", checkpoint: str | None = None,
         trust_module: bool = False) -> Run:
    """Load a run directory written by ``fit`` (weights from safetensors, no pickle), every file verified.

    ``checkpoint="epoch-12"`` (or ``step-340``, ``best``, ``last``) loads that saved
    point instead of the final model; it works on a run that was killed, too.
    ``trust_module=True`` allows running the copy of a custom module kept in the run
    directory (checked against its sha256); without it such a run is refused, saying
    which file would run. Nothing else in a run directory is ever executed.
    """
    d = Path(directory)
    if checkpoint is not None:
        from trainwell.train.checkpoint import load_checkpoint_run   # late: the loop sits below Run
        return load_checkpoint_run(d, checkpoint, device, trust_module=trust_module)
    if not (d / "model.json").exists() or not (d / "model.safetensors").exists():
        _not_a_run(d)
    meta, blobs = read_verified(d)
    arch = meta["architecture"]
    try:
        state = parse_tensors(blobs["model.safetensors"])
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own types for a bad header
        raise UserError(f"{d / 'model.safetensors'} cannot be read as safetensors ({str(exc)[:120]}). Restore it "
                        f"from a copy of the run, or train again.") from None
    model = build_for_load(arch, state, d, trust_module).to(device).eval()
    pre = _preprocessor(meta["preprocessing"], d)
    spec = _parse(d / "spec.yaml", lambda: Spec.from_yaml(d / "spec.yaml"))
    history = _parse(d / "history.csv", lambda: pd.read_csv(io.BytesIO(blobs["history.csv"]))) \
        if "history.csv" in blobs else None
    metrics = _parse(d / "metrics.json", lambda: _object(json.loads(blobs["metrics.json"]))) \
        if "metrics.json" in blobs else {}
    diagnosis = _parse(d / "diagnosis.json", lambda: _object(json.loads(blobs["diagnosis.json"]))) \
        if "diagnosis.json" in blobs else None
    return Run(model, arch, pre, spec, history, metrics, d, diagnosis)


def _not_a_run(d: Path) -> None:
    ckpts = d / "checkpoints"
    if ckpts.is_dir() and any(ckpts.iterdir()):
        raise UserError(f"{d} is an unfinished run: it has checkpoints but no final model (training was stopped "
                        f"before it ended). Continue it with: trainwell fit --resume {d} -- or use a saved point "
                        f"as it is with --checkpoint last (Python: load(..., checkpoint='last')).")
    raise UserError(f"{d} is not a trainwell run directory (model.json and model.safetensors are missing). "
                    f"Pass the folder that `trainwell fit` wrote, e.g. runs/digits.")


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    return value


def _parse(path: Path, read: Callable[[], Any]) -> Any:
    """``read()`` of a verified file; a file trainwell wrote always parses, so failure means damage."""
    try:
        return read()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a parser's own error types
        raise UserError(f"{path} cannot be read ({str(exc)[:160]}). Restore it from a copy of the run, or train "
                        f"again.") from None


def _preprocessor(doc: dict, d: Path) -> Preprocessor:
    return _parse(d / "model.json", lambda: Preprocessor.from_json(doc))


def build_for_load(arch: dict, state: dict[str, torch.Tensor], run_dir: Path, trust_module: bool) -> torch.nn.Module:
    """The saved network with ``state`` loaded, built only after the architecture's fields were validated
    and its parameter shapes matched against the saved tensors on the meta device (no memory allocated
    for a model.json that asks for an impossible network). A custom module runs only if trusted."""
    where = run_dir / "model.json"
    try:
        Architecture.model_validate(arch)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{where} has an invalid architecture field {'.'.join(map(str, first['loc']))}: "
                        f"{first['msg']}. Restore the file, or train again.") from None
    cls = trusted_class(run_dir, arch, trust_module) if arch.get("type") == "custom" else None
    make = (lambda: construct(cls, arch)) if cls is not None else (lambda: build_model(arch))
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in make().state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != saved:
            diff = sorted(set(shapes.items()) ^ set(saved.items()))[:3]
            raise ValueError(f"the architecture and the saved tensors disagree (e.g. {diff})")
        model = make()
        model.load_state_dict(state)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever the builders raise for values they never wrote
        raise UserError(f"{where} and model.safetensors do not describe the same network ({str(exc)[:200]}). "
                        f"Restore the run from a copy, or train again.") from None
    return model
