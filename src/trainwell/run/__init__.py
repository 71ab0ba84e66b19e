"""A run: the trained-model artifact and its directory, of which this package is the one reader and writer.

``artifact`` (:class:`Run`: predict, evaluate, save), ``loading`` (a run directory or one of its
checkpoints back into a Run, every file verified), ``manifest`` (``model.json``: the checksums
of every file), ``rundir`` (the folder: its default name, the lock, replacing it safely),
``resume`` (spec.yaml and the checkpoints of a fit, ``--resume``). Every file is written
atomically (``trainwell.core.io.atomic_write``). See docs/checkpoints.md.
"""
from trainwell.run.artifact import Run
from trainwell.run.loading import load

__all__ = ["Run", "load"]
