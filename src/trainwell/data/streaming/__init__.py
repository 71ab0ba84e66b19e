"""Data larger than memory: Parquet / CSV read in batches, shuffled on the fly (docs/scaling.md).

This package only yields batches (it implements ``BatchSource``, data/batches.py); the one
training loop, train/loop.py, runs the epochs and the evaluation.

How a streamed run sees its data:

* **Source**: one ``.parquet`` / ``.csv`` file or a folder of them, read with pyarrow
  record batch by record batch (``ParquetFile.iter_batches`` per row group,
  ``pyarrow.csv.open_csv`` for CSV). Nothing holds more than a few batches.
* **Split**: each row's id (the ``data.row_id`` column when given, else
  ``file number << 40 | row number in the file``) is hashed with splitmix64 together
  with the seed into a uniform number in [0, 1) compared with the split fractions,
  so the split is the same in every run, on every worker and in any reading order.
  A second part of the hash assigns training rows to data-parallel ranks.
* **One statistics pass** over the data before training: row counts per split (and
  per rank), feature mean / std of the training split (Chan/Welford merge in
  float64), the target's classes (or its mean / std for regression). Validation and
  test rows are kept in memory when they are small (the usual case: the split rule
  gives 1,000 + 1,000 rows), otherwise they are scored by streaming as well.
* **Each epoch**: files (and Parquet row groups) in a fresh seeded order, rows
  through a bounded shuffle buffer (``data.shuffle_buffer`` rows), cut into
  batches, prepared by a background thread into a bounded queue so reading and
  decoding overlap the training step. The epoch's order depends only on
  (seed, epoch), so a checkpoint taken mid-epoch resumes exactly by skipping the
  batches already used.

The trained model is an ordinary run directory: the scaler and label coder from
the statistics pass go into model.json, so predict/load work unchanged.
"""
from trainwell.data.streaming.batches import Rows, StreamData, batch_sizes
from trainwell.data.streaming.choose import available_memory, stream_files, wants_streaming
from trainwell.data.streaming.hashing import assign_rank, assign_split, hash_uniform, row_hash, splitmix64
from trainwell.data.streaming.prepare import StreamPrepared, prepare_streaming
from trainwell.data.streaming.reader import StreamSource

__all__ = ["Rows", "StreamData", "StreamPrepared", "StreamSource", "assign_rank", "assign_split", "available_memory",
           "batch_sizes", "hash_uniform", "prepare_streaming", "row_hash", "splitmix64", "stream_files",
           "wants_streaming"]
