"""Glue between ``trainwell.fit`` and the doctor: callbacks in, diagnosis and run-directory files out.

Files this adds to the run directory (docs/diagnosis.md):
``diagnostics.csv`` (one row per epoch and layer, see monitors.py), ``diagnosis.json``,
``data.json`` (data and split summary) and ``test_predictions.csv`` (for the report's
confusion matrix / predicted-vs-true plot).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainwell.core.io import atomic_write
from trainwell.diagnose.doctor import diagnose_parts
from trainwell.diagnose.monitors import Monitor
from trainwell.diagnose.tensorboard import TensorBoardLogger
from trainwell.nn.crossfit import crossfitted, pools_test_rows


def make_callbacks(spec: Any) -> tuple[Monitor | None, list]:
    """The monitor (unless ``train.monitor=false``) and the TensorBoard writer (if ``train.tensorboard``)."""
    cbs: list = []
    monitor = Monitor(spec.train.monitor_every) if spec.train.monitor else None
    if monitor is not None:
        cbs.append(monitor)
    if spec.train.tensorboard:
        cbs.append(TensorBoardLogger(spec.train.tensorboard, monitor))
    return monitor, cbs


def diagnostics_of(run: Any) -> pd.DataFrame | None:
    d = getattr(run, "diagnostics", None)
    if d is None and run.directory is not None and (Path(run.directory) / "diagnostics.csv").exists():
        d = pd.read_csv(Path(run.directory) / "diagnostics.csv")
        run.diagnostics = d
    return d


def diagnose_run(run: Any, bayes_error: float | None = None) -> dict:
    """The doctor on a Run (in memory after fit, or loaded from its directory); ``bayes_error`` None: no
    estimate (bias is counted from 0 % and reported as an info, doctor.check_bias_variance)."""
    return diagnose_parts(run.history, diagnostics_of(run), run.arch, run.spec, run.metrics,
                          str(run.metrics.get("stopped_because", "")), bayes_error or 0.0, bayes_error is not None)


def data_summary(prep: Any, spec: Any, arch: dict | None = None) -> dict:
    """What the report's "Data and split" table shows. With cross-fitted members the rows that trained and
    stopped the model are the pooled training and validation rows (docs/tabular.md, "Cross-fitted members"),
    so the pool and its folds are named next to the split's counts."""
    pre = prep.pre
    out = {"source": prep.name, "task": pre.task, "n_train": int(len(prep.X_train)), "n_val": int(len(prep.X_val)),
           "n_test": int(len(prep.X_test)), "input_shape": list(prep.X_train.shape[1:]),
           "n_features": int(np.prod(prep.X_train.shape[1:])), "split": spec.data.split, "scale": spec.data.scale,
           "notes": list(prep.notes)}
    classes = getattr(pre.coder, "classes", None)
    if classes is not None and pre.task != "regression":
        out["classes"] = [str(c) for c in list(classes)]
    if arch is not None and crossfitted(arch):
        test = pools_test_rows(arch)
        pooled_rows = out["n_train"] + out["n_val"] + (out["n_test"] if test else 0)
        out["crossfit"] = (f"{pooled_rows:,} training, validation{' and test' if test else ''} rows pooled into "
                           f"{int(arch['members'])} folds, one held out by each member"
                           + ("; each test row scored by the member that holds it out" if test else ""))
    return out


@torch.no_grad()
def test_predictions(run: Any, state: Any) -> pd.DataFrame | None:
    """True and predicted values on the test split (decoded), for the report."""
    d = state.data
    X, y = (d.X_test, d.y_test) if d.X_test.shape[0] else (d.X_val, d.y_val)
    if X.shape[0] == 0:
        return None
    run.model.eval()
    o = torch.cat([run.head.transform(run.model(X[i:i + 8192]).float()) for i in range(0, X.shape[0], 8192)])
    o, yn = o.cpu().numpy(), y.cpu().numpy()
    task = run.pre.task
    if task == "regression":
        t, p = run.pre.decode_regression(yn, prediction=False), run.pre.decode_regression(o)
        t, p = np.asarray(t).reshape(len(t), -1), np.asarray(p).reshape(len(p), -1)
        return pd.DataFrame({**{f"true_{j}": t[:, j] for j in range(t.shape[1])},
                             **{f"pred_{j}": p[:, j] for j in range(p.shape[1])}})
    if task == "multiclass":
        true = yn if yn.ndim == 1 else yn.argmax(-1)
        frame = pd.DataFrame({"true": true.astype(int), "pred": o.argmax(-1).astype(int)})
        return frame.join(_probabilities(o, run.pre.coder))
    if task == "binary":
        p = o.reshape(-1)
        frame = pd.DataFrame({"true": yn.reshape(-1).astype(int), "pred": (p >= 0.5).astype(int)})
        return frame.join(_probabilities(np.stack([1.0 - p, p], axis=1), run.pre.coder))
    return None


def _probabilities(proba: np.ndarray, coder: Any) -> pd.DataFrame:
    """One column per class, ``proba_<class name>`` (the report's ROC, PR and confident-error views read them)."""
    found = getattr(coder, "classes", None)
    classes = [str(c) for c in (list(found) if found is not None else [])]
    names = classes if len(classes) == proba.shape[1] else [str(i) for i in range(proba.shape[1])]
    return pd.DataFrame({f"proba_{n}": proba[:, j] for j, n in enumerate(names)})


def attach(run: Any, state: Any, prep: Any, monitor: Monitor | None) -> dict:
    """After training: monitors, data summary, test predictions and the diagnosis on the Run."""
    run.diagnostics = monitor.frame() if monitor is not None else None
    run.data_summary = data_summary(prep, run.spec, run.arch)
    try:
        run.test_predictions = test_predictions(run, state)
    except Exception:                       # a report nicety; never fail a fit over it
        run.test_predictions = None
    run.diagnosis = diagnose_parts(run.history, run.diagnostics, run.arch, run.spec, run.metrics,
                                   state.stopped_because, bayes_given=False)
    return run.diagnosis


def diagnose_failure(run: Any, state: Any, prep: Any, monitor: Monitor | None, run_dir: Path | None) -> dict:
    """A NaN stop: diagnose the partial history/monitors and write what there is before the error is raised."""
    run.diagnostics = monitor.frame() if monitor is not None else None
    run.data_summary = data_summary(prep, run.spec, run.arch)
    run.diagnosis = diagnose_parts(run.history, run.diagnostics, run.arch, run.spec, {}, "nan")
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        run.spec.to_yaml(run_dir / "spec.yaml")
        if not run.history.empty:
            atomic_write(run_dir / "history.csv", run.history.to_csv(index=False))
        write_files(run, run_dir)
    return run.diagnosis


def write_files(run: Any, run_dir: Path) -> None:
    """The doctor's files, each written atomically (core/io.py); the caller re-seals model.json."""
    run_dir = Path(run_dir)
    d = getattr(run, "diagnostics", None)
    if d is not None and not d.empty:
        atomic_write(run_dir / "diagnostics.csv", d.to_csv(index=False))
    atomic_write(run_dir / "diagnosis.json", json.dumps(_safe(run.diagnosis), indent=2))
    summary = getattr(run, "data_summary", None)
    if summary:
        atomic_write(run_dir / "data.json", json.dumps(_safe(summary), indent=2))
    preds = getattr(run, "test_predictions", None)
    if preds is not None:
        atomic_write(run_dir / "test_predictions.csv", preds.to_csv(index=False))


def _safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
