"""A trained model's full metrics on each split, computed as ``trainwell.fit`` reports them (run.metrics).

Classification: accuracy, F1, AUC ... (train/metrics.py); regression: on the targets decoded to their own
units; reconstruction: the autoencoder's errors (nn/autoencoder.py). A streamed split may be larger than
memory: its outputs come from the source's evaluation batches (data/streaming/), up to ``MAX_EVAL_ROWS``
rows of each split read from disk (docs/scaling.md).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trainwell.data.weights import weighted_accuracy
from trainwell.nn.autoencoder import reconstruction_metrics
from trainwell.nn.crossfit import without_folds
from trainwell.train.metrics import classification_metrics, regression_metrics

EVAL_ROWS = 8192          # rows per forward pass while scoring
MAX_EVAL_ROWS = 200_000   # rows of a streamed split scored for the full metric table


def split_metrics(run: Any, prep: Any, state: Any) -> dict:
    """Full metrics on train and validation, and once on the held-out test split (``run``: model and head;
    ``state``: the data on the device).

    Cross-fitted members (nn/crossfit.py) train and validate on one pool of rows: its ``train`` scores are
    the whole ensemble's on the pool, its ``val`` scores the out-of-fold ones (each row scored by the member
    that held it out)."""
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
        if split == "train":
            X = without_folds(run.model, X)
        with torch.no_grad():
            logits = torch.cat([run.model(X[i:i + EVAL_ROWS]).float() for i in range(0, X.shape[0], EVAL_ROWS)])
            loss = float(run.head.loss_fn(logits, y))
            o = run.head.transform(logits).cpu().numpy()
        yn = y.cpu().numpy()
        if prep.pre.task == "reconstruction":
            out[split] = reconstruction_metrics(yn, o)
        elif prep.pre.task == "regression":
            out[split] = regression_metrics(prep.pre.decode_regression(yn, prediction=False), prep.pre.decode_regression(o))
        else:
            out[split] = classification_metrics(prep.pre.task, yn, o)
            if run.head.class_weight is not None:
                out[split]["weighted_accuracy"] = weighted_accuracy(prep.pre.task, yn, o, run.head.class_weight)
        out[split]["loss"] = loss
    return out


@torch.no_grad()
def split_outputs(model: torch.nn.Module, head: Any, data: Any, split: str, limit: int = MAX_EVAL_ROWS
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """(encoded y, transformed outputs, mean loss) on a split of ``data`` (a BatchSource, data/batches.py),
    every rank's rows (not a shard)."""
    model.eval()
    ys, outs, loss, n = [], [], 0.0, 0
    for xb, yb in data.eval_batches(split, limit=limit, shard=False):
        out = model(xb).float()
        loss += float(head.loss_fn(out, yb)) * xb.shape[0]
        n += xb.shape[0]
        ys.append(yb.cpu().numpy())
        outs.append(head.transform(out).cpu().numpy())
    if not ys:
        return np.zeros(0), np.zeros(0), math.nan
    return np.concatenate(ys), np.concatenate(outs), loss / max(n, 1)


def stream_split_metrics(run: Any, prep: Any, state: Any) -> dict:
    """Full metrics per split; streamed splits are scored on their first ``MAX_EVAL_ROWS`` rows."""
    out = {}
    pre = prep.pre
    for split, count in zip(("train", "val", "test"), prep.counts):
        if count == 0:
            out[split] = {}
            continue
        y, o, loss = split_outputs(run.model, run.head, state.data, split)
        if pre.task == "regression":
            m = regression_metrics(pre.decode_regression(y, prediction=False), pre.decode_regression(o))
        else:
            m = classification_metrics(pre.task, y, o)
        m["loss"] = loss
        if len(y) < count:
            m["rows_scored"] = int(len(y))
        out[split] = m
    return out
