"""Run: a trained model with its preprocessing, history and scores; saved as safetensors + JSON.

The on-disk form is the run-directory contract of DESIGN.md. Nothing here uses
pickle: tensors go to ``model.safetensors``, everything else to JSON/YAML/CSV.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from trainwell.data.pipeline import Preprocessor
from trainwell.errors import UserError
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
        """A copy of this Run with batch norm folded into the linear layers (S4), for inference.

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
        """Write spec.yaml, model.safetensors, model.json, history.csv, metrics.json.

        Each file goes through a temporary file renamed into place, so a process killed while
        saving leaves the previous version or the new one, never half a file (``--resume``
        reads spec.yaml, and a truncated YAML would still parse, with defaults for the rest).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _atomic(d / "spec.yaml", lambda p: p.write_text(self.spec.to_yaml()))
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        _atomic(d / "model.safetensors", lambda p: save_file(state, str(p)))
        meta = {"format": "trainwell-model/1", "architecture": self.arch, "preprocessing": self.pre.to_json()}
        _atomic(d / "model.json", lambda p: p.write_text(json.dumps(meta, indent=2)))
        if not self.history.empty:
            _atomic(d / "history.csv", lambda p: self.history.to_csv(p, index=False))
        _atomic(d / "metrics.json", lambda p: p.write_text(json.dumps(_json_safe(self.metrics), indent=2)))
        self.directory = d
        return d

    def __repr__(self) -> str:
        test = self.metrics.get("test", {})
        key = "accuracy" if "accuracy" in test else "r2"
        score = f", test {key}={test[key]:.4f}" if test.get(key) is not None else ""
        return f"Run(task={self.pre.task}, hidden={self.arch.get('hidden')}{score}, dir={self.directory})"


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename ``tmp`` over ``path`` (atomic on POSIX); no fsync: a kill, not a
    power cut, is what this guards against, and run directories are written once per trial."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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


def load(directory: str | Path, device: str = "cpu", checkpoint: str | None = None) -> Run:
    """Load a run directory written by ``fit`` (weights from safetensors, no pickle).

    ``checkpoint="epoch-12"`` (or ``step-340``, ``best``, ``last``) loads that saved
    point instead of the final model; it works on a run that was killed, too.
    """
    d = Path(directory)
    if checkpoint is not None:
        from trainwell.train.checkpoint import load_checkpoint_run   # late: the loop sits below Run
        return load_checkpoint_run(d, checkpoint, device)
    if not (d / "model.json").exists() or not (d / "model.safetensors").exists():
        raise UserError(
            f"{d} is not a trainwell run directory (model.json and model.safetensors are missing). "
            f"Pass the folder that `trainwell fit` wrote, e.g. runs/digits."
        )
    try:
        meta = json.loads((d / "model.json").read_text())
        state = load_file(str(d / "model.safetensors"), device=device)
    except Exception as exc:  # corrupt file: say which and what to do
        raise UserError(f"Could not read the model in {d}: {exc}. The file is damaged; retrain or restore it.") from None
    arch = meta["architecture"]
    model = build_model(arch)
    model.load_state_dict(state)
    model.to(device).eval()
    pre = Preprocessor.from_json(meta["preprocessing"])
    spec = Spec.from_yaml(d / "spec.yaml") if (d / "spec.yaml").exists() else Spec()
    history = pd.read_csv(d / "history.csv") if (d / "history.csv").exists() else None
    metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
    diagnosis = json.loads((d / "diagnosis.json").read_text()) if (d / "diagnosis.json").exists() else None
    return Run(model, arch, pre, spec, history, metrics, d, diagnosis)
