"""``prepare_streaming``: what ``pipeline.prepare`` is for a table read from disk in batches.

One statistics pass (data/streaming/stats.py) decides the split sizes, the task and classes and
the scaling statistics; the result, ``StreamPrepared``, carries the ``Preprocessor`` that goes
into model.json, so a streamed model predicts and loads like any other (docs/scaling.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell.data.labels import MAX_CLASSES, make_coder
from trainwell.data.pipeline import Preprocessor
from trainwell.data.scaling import add_features
from trainwell.data.split import hash_fractions
from trainwell.data.streaming.batches import PREFETCH, Rows, StreamData
from trainwell.data.streaming.choose import stream_files
from trainwell.data.streaming.reader import READ_ROWS, StreamSource
from trainwell.data.streaming.stats import StatisticsPass
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec

CACHE_BYTES = 256 << 20      # validation + test rows kept in memory up to this size


@dataclass
class StreamPrepared:
    """What ``pipeline.prepare`` returns, for a streamed dataset (splits on disk)."""

    pre: Any
    source: StreamSource
    fractions: tuple[float, float, float]
    seed: int
    counts: list[int]                    # rows in train / val / test
    rank_counts: list[int]               # training rows per data-parallel rank
    cached: dict                         # split -> (X scaled float32, y encoded) held in memory
    name: str
    shuffle_buffer: int
    rank: int = 0
    world: int = 1
    notes: list[str] = field(default_factory=list)
    raw_test: Any = None
    streaming: bool = True

    def __post_init__(self):
        shape = list(self.pre.input_shape)
        if self.pre.features:
            shape = [len(add_features(np.zeros((1, shape[0]), np.float32), self.pre.features)[0])]
        self.row_shape = shape
        self.X_train = Rows(self.counts[0], shape)
        self.X_val = self.cached["val"][0] if "val" in self.cached else Rows(self.counts[1], shape)
        self.X_test = self.cached["test"][0] if "test" in self.cached else Rows(self.counts[2], shape)

    def tensors(self, device: torch.device) -> StreamData:
        """The training loop's batch source (train/loop.py) on ``device``."""
        return StreamData(self, device)


def _open(spec: Spec) -> StreamSource:
    """The source, after refusing what a streamed table cannot do."""
    if spec.data.impute in ("median", "mean"):     # auto (the default): streamed rows are read strictly
        raise UserError(f"data.impute={spec.data.impute} needs the data in memory (the fill values come from the "
                        f"whole training split), but this data is streamed from disk. Set data.streaming=false if "
                        f"it fits in memory, or fill the missing values before training.")
    files = stream_files(spec.data.source)
    if files is None:
        raise UserError(f'Cannot stream "{spec.data.source}": it is not a .parquet/.csv file or a folder of them.')
    return StreamSource(files, spec.data.target, spec.data.row_id)


def _task(spec: Spec, stats: StatisticsPass) -> str:
    if stats.counts[0] == 0:
        raise UserError("The hash split put no rows in the training split; the data is too small to stream "
                        "(use data.streaming=false).")
    task = spec.task if spec.task != "auto" else stats.task()
    if task in ("binary", "multiclass") and stats.overflow:
        raise UserError(f"task={task} but the target has more than {MAX_CLASSES} distinct values.")
    if task not in ("regression", "binary", "multiclass"):
        raise UserError(f"Streaming supports regression, binary and multiclass tasks, not {task}; "
                        "use data.streaming=false.")
    return task


def _preprocessor(spec: Spec, src: StreamSource, stats: StatisticsPass, task: str) -> Preprocessor:
    if task == "regression":
        coder = make_coder(np.array([0.0, 1.0]), "regression")
    else:
        values = sorted(stats.uniques, key=lambda v: (str(type(v)), v))
        coder = make_coder(np.asarray(values, dtype=object if stats.text else None), task)
    scaler = stats.moments.standardizer() if spec.data.scale != "none" else None   # tables: z-score per column
    target_scaler = stats.target_moments.standardizer() if task == "regression" else None
    return Preprocessor(coder=coder, features=list(spec.data.features), scaler=scaler, target_scaler=target_scaler,
                        input_shape=[len(src.features)], feature_names=list(src.features))


def _notes(spec: Spec, src: StreamSource, stats: StatisticsPass, pre: Preprocessor, how: str, n_all: int,
           cached: dict) -> list[str]:
    """The lines fit prints about how the data was read, split and scaled."""
    counts, task = stats.counts, pre.task
    notes = [f"streaming: {len(src.files)} {src.fmt.lstrip('.')} file(s), {n_all:,} rows, read in batches of "
             f"{READ_ROWS:,} rows; shuffle buffer {spec.data.shuffle_buffer:,} rows + file/row-group order; "
             f"prefetch {PREFETCH} batches in a background thread",
             f"task: {task}" + (" (detected in the streaming pass)" if spec.task == "auto" else " (given)")
             + (f", {len(pre.coder.classes)} classes" if task in ("binary", "multiclass") else ""),
             f"split {counts[0]:,}/{counts[1]:,}/{counts[2]:,} by a seeded hash of "
             f"{'column ' + spec.data.row_id if spec.data.row_id else 'the row index'}: {how}",
             "scale: z-score from one streaming pass over the training split (float64)"
             if spec.data.scale != "none" else "scale: none"]
    notes[1:1] = src.dialect_notes()
    if stats.world > 1:
        notes.append(f"data-parallel: training rows per rank {stats.rank_counts}")
    if cached:
        notes.append(f"validation/test rows held in memory ({', '.join(cached)}); the rest is streamed")
    return notes


def prepare_streaming(spec: Spec, rank: int = 0, world: int = 1) -> StreamPrepared:
    """One pass over the data: split sizes, classes, scaling statistics; small val/test kept in memory."""
    src = _open(spec)
    n_all = src.count_rows()
    if n_all == 0:
        raise UserError(f"{spec.data.source} has no data rows.")
    fractions, how = hash_fractions(spec.data.split, n_all)
    features = list(spec.data.features)
    stats = StatisticsPass(fractions, spec.train.seed, world, features,
                           row_bytes=4 * len(src.features) * (2 if "squares" in features else 1),
                           cache_bytes=CACHE_BYTES)
    for fi, off, rb in src.chunks():
        path = src.files[fi]
        stats.add(src.ids(fi, off, rb), src.features_of(rb, path), src.target_of(rb, path), path)
    task = _task(spec, stats)
    pre = _preprocessor(spec, src, stats, task)
    cached, raw_test = {}, None
    for k, name in ((1, "val"), (2, "test")):
        held = stats.held_split(k)
        if held is not None:
            cached[name] = (pre.transform_X(held[0]), pre.encode_y(held[1]))
            raw_test = held if name == "test" else raw_test
    files = src.files
    name = Path(spec.data.source).stem if len(files) == 1 else Path(spec.data.source).name
    out = StreamPrepared(pre, src, fractions, spec.train.seed, stats.counts, stats.rank_counts, cached, name,
                         spec.data.shuffle_buffer, rank, world, _notes(spec, src, stats, pre, how, n_all, cached))
    out.raw_test = raw_test
    return out
