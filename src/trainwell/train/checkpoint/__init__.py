"""Checkpoints that never lose work: exact resume, crash safety, no pickle (docs/checkpoints.md).

One module per job: ``codec`` (nested state as JSON + tensors), ``capture`` (a ``TrainState``
to bytes and back, RNG included), ``store`` (``RUN_DIR/checkpoints``: atomic writes, verified
reads, retention), ``checkpointer`` (the callback: when to save, resume, signals),
``nan_replay`` (rollback and diagnosis of a NaN loss). Fault injection for the crash tests
is ``trainwell.core.faults``. Building a ``Run`` from a checkpoint and resuming a run
directory are ``trainwell.run``'s (it is the one reader and writer of a run directory).
"""
from trainwell.train.checkpoint.checkpointer import Checkpointer, TrainingInterrupted
from trainwell.train.checkpoint.store import CheckpointStore, CheckpointWarning, CorruptCheckpoint

__all__ = ["Checkpointer", "CheckpointStore", "CheckpointWarning", "CorruptCheckpoint", "TrainingInterrupted"]
