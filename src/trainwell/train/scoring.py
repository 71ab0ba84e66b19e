"""A trained model's full metrics on each split, computed as ``trainwell.fit`` reports them (run.metrics).

Classification: accuracy, F1, AUC ... (train/metrics.py); regression: on the targets decoded to their own
units; reconstruction: the autoencoder's errors (nn/autoencoder.py). Streamed splits are scored by
data/streaming.py on their first rows.
"""
from __future__ import annotations

from typing import Any

import torch

from trainwell.data.streaming import stream_split_metrics
from trainwell.data.weights import weighted_accuracy
from trainwell.nn.autoencoder import reconstruction_metrics
from trainwell.train.metrics import classification_metrics, regression_metrics

EVAL_ROWS = 8192          # rows per forward pass while scoring


def split_metrics(run: Any, prep: Any, state: Any) -> dict:
    """Full metrics on train and validation, and once on the held-out test split (``run``: model and head;
    ``state``: the data on the device)."""
    if getattr(prep, "streaming", False):      # splits on disk: scored by streaming
        return stream_split_metrics(run, prep, state)
    out = {}
    d = state.data
    run.model.eval()
    for split, (X, y) in {"train": (d.X_train, d.y_train), "val": (d.X_val, d.y_val),
                          "test": (d.X_test, d.y_test)}.items():
        if X.shape[0] == 0:
            out[split] = {}
            continue
        with torch.no_grad():
            logits = torch.cat([run.model(X[i:i + EVAL_ROWS]).float() for i in range(0, X.shape[0], EVAL_ROWS)])
            loss = float(run.head.loss_fn(logits, y))
            o = run.head.transform(logits).cpu().numpy()
        yn = y.cpu().numpy()
        if prep.pre.task == "reconstruction":
            out[split] = reconstruction_metrics(yn, o)
        elif prep.pre.task == "regression":
            out[split] = regression_metrics(prep.pre.decode_regression(yn, clip=False), prep.pre.decode_regression(o))
        else:
            out[split] = classification_metrics(prep.pre.task, yn, o)
            if run.head.class_weight is not None:
                out[split]["weighted_accuracy"] = weighted_accuracy(prep.pre.task, yn, o, run.head.class_weight)
        out[split]["loss"] = loss
    return out
