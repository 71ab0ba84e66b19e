"""Run: a trained model with its preprocessing, history and scores; saved as safetensors + JSON.

Loading one is run/loading.py; the folder itself (its name, lock, replacement) is run/rundir.py.

The on-disk form is the run-directory contract of docs/checkpoints.md. Nothing here uses
pickle: tensors go to ``model.safetensors``, everything else to JSON/YAML/CSV.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save as save_tensors

from trainwell.core.io import atomic_write, json_safe
from trainwell.data.fingerprints import SeenRows, seen_rows_warning
from trainwell.data.pipeline import Preprocessor
from trainwell.core.errors import UserError
from trainwell.export import export as export_run
from trainwell.nn.autoencoder import reconstruction_metrics
from trainwell.nn.custom import copy_module
from trainwell.nn.fold import fold_batchnorm
from trainwell.nn.heads import Head, make_head
from trainwell.run.manifest import SEEN_ROWS, seal
from trainwell.core.spec import Spec
from trainwell.train.calibration import temperature_of
from trainwell.train.metrics import classification_metrics, regression_metrics

PREDICT_CHUNK = 8192


class SeenRowsWarning(UserWarning):
    """Rows being scored are rows the model was trained or early-stopped on (data/fingerprints.py)."""


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
        self.seen_rows: SeenRows | None = None     # the training and validation rows' fingerprints (evaluate warns)
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

    def evaluate(self, X: Any, y: Any, where: str = "the data") -> dict:
        """All metrics of the task on raw (X, y); a warning when rows of X are rows the model learned from
        (data/fingerprints.py). ``where`` names X in that warning."""
        self.warn_seen_rows(X, where)
        out = self._outputs(X).cpu().numpy()
        if self.pre.task == "reconstruction":   # y is ignored: the target is the input itself
            return reconstruction_metrics(self.pre.transform_X(X), out)
        codes = self.pre.coder.encode(np.asarray(y))
        if self.pre.task == "regression":
            return regression_metrics(codes, self.pre.decode_regression(out))
        return classification_metrics(self.pre.task, codes, out)

    def warn_seen_rows(self, X: Any, where: str) -> None:
        """Warn when some rows of X have the features of training or validation rows: scores on them overstate
        how the model does on new data."""
        if self.seen_rows is None or self.pre.task == "reconstruction":
            return
        message = seen_rows_warning(self.seen_rows, self.pre.encode_X(X), where,
                                    str(self.directory) if self.directory is not None else "RUN")
        if message:
            warnings.warn(message, SeenRowsWarning, stacklevel=3)

    def fold(self) -> "Run":
        """A copy of this Run with batch norm folded in, for inference (docs/practices/normalization.md).

        Same predictions in evaluation mode (to ~1e-6), fewer operations; saving it
        records ``batchnorm_folded`` so that ``load`` rebuilds the folded modules.
        """
        model = fold_batchnorm(self.model).eval()
        arch = {**self.arch, "batchnorm_folded": True}
        folded = Run(model, arch, self.pre, self.spec, self.history, dict(self.metrics), None, self.diagnosis)
        folded.seen_rows = self.seen_rows
        return folded

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
        return export_run(self, format, out, data, encoder)

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write spec.yaml, model.safetensors, history.csv, metrics.json, then model.json (last).

        Each file is written atomically (core/io.py), so a process killed while saving leaves the
        previous version or the new one, never half a file. ``model.json`` is written last and lists
        the sha256 of every file a load reads (run/manifest.py): a run is complete once it exists.
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
        atomic_write(d / "metrics.json", json.dumps(json_safe(self.metrics), indent=2))
        if self.seen_rows is not None:
            atomic_write(d / SEEN_ROWS, self.seen_rows.to_bytes())
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
