"""Checkpoints that never lose work: exact resume, crash safety, no pickle.

A checkpoint is a directory ``RUN_DIR/checkpoints/<name>/`` (``epoch-12``,
``step-340``, ``best``, ``last``) holding two files:

* ``state.safetensors`` — every tensor: weights, optimizer state, scheduler
  tensors, RNG states (as uint8), the epoch's permutation, the on-device epoch
  accumulators and the best weights;
* ``state.json`` — everything else (counters, param groups, history, early
  stopping, the architecture and preprocessing), the sha256 of the safetensors
  bytes and the sha256 of the JSON body itself.

Writes are crash-safe: both files go to a fresh ``.tmp-*`` directory, are
fsynced (files and directory; every file of one batch at once), then the
directory is renamed into place and the parent fsynced. Loading verifies both checksums before parsing any tensor and
never unpickles anything (no ``pickle``, no ``torch.load``); a damaged
checkpoint is skipped with a warning in favour of the previous good one.

The :class:`Checkpointer` callback writes to disk rarely, because on a small
table one fsynced write costs more than an epoch (issue 13: 275 rows, 200
epochs, 50 s): the best weights are kept in memory (a copy on improvement;
every checkpoint carries them, ``best`` is written once, weights only);
``last`` is written on a time budget (at most one every ``MIN_INTERVAL_S``, and
never sooner than ``1/MAX_COST`` times the previous write's duration after it),
at the end of training (with ``best``, in one batch of fsyncs) and on
SIGINT/SIGTERM; ``epoch-N``/``step-N`` every ``checkpoint.every`` epochs /
``checkpoint.every_steps`` steps when set. Between saves it costs an integer
check and a clock read per step. It also turns SIGINT/SIGTERM into "save, then
exit cleanly", and turns a NaN loss into a diagnosis (or, with ``stop.on_nan:
rollback``, into a rollback to the last good state with half the learning rate).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from trainwell.core.io import atomic_write, fsync_path
from trainwell.core.manifest import read_manifest
from trainwell.errors import UserError
from trainwell.nn.custom import trusted_class
from trainwell.spec import Spec
from trainwell.train.loop import TrainState, fit_loop

FORMAT = "trainwell-checkpoint/1"
TENSORS = "state.safetensors"
META = "state.json"
NAME_RE = re.compile(r"^(best|last|epoch-\d+|step-\d+)$")
NUMBERED_RE = re.compile(r"^(epoch|step)-(\d+)$")
MAX_ROLLBACKS = 3


class CheckpointWarning(UserWarning):
    """A checkpoint was damaged and skipped, or could not be used."""


class CorruptCheckpoint(UserError):
    """A checkpoint failed verification (truncated, bit-flipped, not ours)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training after saving a checkpoint.

    ``exit_code`` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM);
    ``message`` names the checkpoint and the exact command that resumes.
    """

    def __init__(self, signum: int, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
        self.message = message
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------- encoding
_SCALARS = frozenset({bool, int, float, str, type(None)})


def _encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with tensors moved into ``tensors`` (referenced by key)."""
    kind = type(obj)
    if kind in _SCALARS:                # fast paths: the history's floats, the python RNG's 625 ints
        return obj
    if (kind is list or kind is tuple) and all(type(v) in _SCALARS for v in obj):
        return list(obj) if kind is list else {"__tuple__": list(obj)}
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, f"{prefix}.k{i}", tensors), _encode(v, f"{prefix}.{i}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": prefix}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _to_cpu_unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, none sharing memory (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t
    return out


# --------------------------------------------------------------------------- capture / restore
def capture(state: TrainState, meta: dict | None = None) -> tuple[bytes, dict]:
    """Serialise everything needed to resume ``state`` exactly: (safetensors bytes, JSON body)."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state.model.state_dict().items():
        tensors[f"model.{k}"] = v
    if state.best_state is not None:
        for k, v in state.best_state.items():
            tensors[f"best.{k}"] = v
    mid_epoch = state.batch_in_epoch > 0 and state.permutation is not None
    if mid_epoch:
        tensors["loop.permutation"] = state.permutation
        if state.extra.get("epoch_loss") is not None:
            tensors["loop.epoch_loss"] = state.extra["epoch_loss"]
        if state.extra.get("epoch_terms") is not None:
            tensors["loop.epoch_terms"] = state.extra["epoch_terms"]
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors["rng.generator"] = state.generator.get_state()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.ascontiguousarray(np_keys).view(np.uint8).copy())
    optimizer = _encode(state.optimizer.state_dict(), "optim", tensors)
    schedule = _encode(state.schedule.state_dict(), "sched", tensors)
    interrupted = state.stopped_because == "interrupted"
    body = {
        "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
        "steps_per_epoch": state.steps_per_epoch, "n_train": int(state.data.X_train.shape[0]),
        "mid_epoch": mid_epoch,
        "stop": bool(state.stop) and not interrupted,
        "stopped_because": "" if interrupted else state.stopped_because,
        "optimizer": optimizer, "schedule": schedule,
        "stopper": _encode(state.stopper.state_dict(), "stopper", tensors),
        "history": _encode(state.history, "history", tensors),
        # the JSON is written with sorted keys: the rows' column order, so a resumed history is the same table
        "history_columns": list(state.history[-1]) if state.history else [],
        "rng": {"python": _encode(random.getstate(), "rng.python", tensors),
                "numpy": {"name": np_name, "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                          "cached_gaussian": float(np_cached)},
                "cuda_devices": sum(1 for k in tensors if k.startswith("rng.cuda."))},
        "rollbacks": int(state.extra.get("nan_rollbacks", 0)),
        "spec": state.spec.to_dict(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(meta or {}),
    }
    return st_save(_to_cpu_unshared(tensors)), body


def _history(body: dict, tensors: dict[str, torch.Tensor]) -> list[dict]:
    """The history rows, each in the column order training made them (the JSON sorts keys)."""
    rows = _decode(body["history"], tensors)
    order = body.get("history_columns") or []
    return [{**{k: row[k] for k in order if k in row}, **row} for row in rows]


def parse(data: bytes) -> dict[str, torch.Tensor]:
    """Safetensors bytes -> tensors (no pickle involved)."""
    return st_load(data)


def restore(state: TrainState, data: bytes | dict[str, torch.Tensor], body: dict) -> None:
    """Put a captured checkpoint back into ``state`` (weights, optimizer, RNG, position...)."""
    tensors = parse(data) if isinstance(data, (bytes, bytearray)) else data
    if body.get("n_train") != state.data.X_train.shape[0] or body.get("steps_per_epoch") != state.steps_per_epoch:
        raise UserError(
            f"The checkpoint was made with {body.get('n_train')} training rows in {body.get('steps_per_epoch')} "
            f"batches per epoch, but this run has {state.data.X_train.shape[0]} rows in {state.steps_per_epoch}. "
            "Resume with the same data and spec the run was started with."
        )
    device = state.data.X_train.device
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        state.model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise UserError(f"The checkpoint's weights do not fit this model ({str(exc).splitlines()[0]}). "
                        "Resume with the spec the run was started with.") from None
    best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    state.best_state = best or None
    state.optimizer.load_state_dict(_decode(body["optimizer"], tensors))
    state.schedule.load_state_dict(_decode(body["schedule"], tensors))
    state.stopper.load_state_dict(_decode(body["stopper"], tensors))
    state.history = _history(body, tensors)
    state.step, state.epoch = int(body["step"]), int(body["epoch"])
    state.batch_in_epoch = int(body["batch_in_epoch"])
    state.stop, state.stopped_because = bool(body["stop"]), str(body["stopped_because"])
    state.extra["nan_rollbacks"] = int(body.get("rollbacks", 0))
    if body.get("mid_epoch"):
        state.permutation = tensors["loop.permutation"].to(device)
        state.extra["epoch_loss"] = tensors["loop.epoch_loss"].to(device)
        terms = tensors.get("loop.epoch_terms")
        state.extra["epoch_terms"] = None if terms is None else terms.to(device)
    else:
        state.permutation = None
        state.batch_in_epoch = 0
    # RNG last: everything above may have drawn random numbers.
    rng = body["rng"]
    random.setstate(_decode(rng["python"], tensors))
    npd = rng["numpy"]
    keys = np.frombuffer(tensors["rng.numpy"].numpy().tobytes(), dtype=np.uint32).copy()
    np.random.set_state((npd["name"], keys, npd["pos"], npd["has_gauss"], npd["cached_gaussian"]))
    torch.set_rng_state(tensors["rng.torch"])
    n_cuda = int(rng.get("cuda_devices", 0))
    if n_cuda and torch.cuda.is_available() and torch.cuda.device_count() == n_cuda:
        torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(n_cuda)])
    state.generator.set_state(tensors["rng.generator"])


# --------------------------------------------------------------------------- faults (tests only)
class _Faults:
    """Fault injection for the crash tests, from ``TRAINWELL_FAULT`` (comma-separated):

    ``kill@step=N`` / ``sigterm@step=N`` / ``sigint@step=N``: send that signal to this
    process after optimizer step N. ``kill@PHASE=N``: SIGKILL the N-th time this process
    reaches PHASE of a checkpoint write: ``data`` (tensors half written), ``tmp`` (tmp
    dir complete, not renamed), ``swap`` (old copy of ``last``/``best`` moved aside, new
    one not yet in place) or ``done`` (published, not yet pruned). Unset: nothing runs.
    """

    SIGNALS = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}

    def __init__(self, text: str):
        self.at_step: dict[int, int] = {}
        self.at_phase: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            what, _, where = item.partition("@")
            kind, _, value = where.partition("=")
            if kind == "step":
                self.at_step[int(value)] = self.SIGNALS[what]
            else:                      # kill@data=N, kill@tmp=N, kill@swap=N, kill@done=N
                self.at_phase[kind] = int(value)

    def on_step_end(self, state: TrainState) -> None:
        sig = self.at_step.get(state.step)
        if sig is not None:
            os.kill(os.getpid(), sig)

    def wants(self, phase: str) -> bool:
        return phase in self.at_phase

    def point(self, phase: str) -> None:
        """The N-th time this process reaches ``phase``, die by SIGKILL."""
        if phase in self.at_phase:
            self.seen[phase] = self.seen.get(phase, 0) + 1
            if self.seen[phase] == self.at_phase[phase]:
                os.kill(os.getpid(), signal.SIGKILL)


_NO_FAULTS: _Faults | None = None


# --------------------------------------------------------------------------- the store
_fsync_dir = fsync_path      # a folder or a file (core/io.py: the one fsync helper)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _write_file(path: Path, data: bytes, faults: _Faults | None = None, sync: bool = True) -> None:
    """Create ``path`` (it must not exist), write ``data`` and fsync it (``sync=False``: the caller does)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        if faults is not None:          # crash test: die with the file half written
            _write_all(fd, view[:len(view) // 2])
            os.fsync(fd)
            faults.point("data")
            view = view[len(view) // 2:]
        _write_all(fd, view)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _fsync_all(paths: list[Path]) -> None:
    """fsync files or folders, concurrently (the file system commits them together); raises the first error."""
    global _POOL
    if len(paths) < 2:
        for p in paths:
            _fsync_dir(p)
        return
    if _POOL is None or _POOL[0] != os.getpid():     # one pool per process (a forked child makes its own)
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="trainwell-fsync"))
    list(_POOL[1].map(_fsync_dir, paths))


def _order(body: dict) -> tuple[int, int, int]:
    return int(body.get("step", 0)), int(body.get("epoch", 0)), 0 if body.get("mid_epoch") else 1


class CheckpointStore:
    """``RUN_DIR/checkpoints``: atomic writes, verified reads, retention."""

    def __init__(self, run_dir: str | Path, faults: _Faults | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "checkpoints"
        self.faults = faults

    # -- writing -------------------------------------------------------------
    def recover(self) -> None:
        """Finish or undo what a crash interrupted: drop tmp dirs, put back a half-swapped copy."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".old-"):
                name = p.name[len(".old-"):].rsplit("-", 1)[0]
                if NAME_RE.match(name) and not (self.path / name).exists():
                    os.rename(p, self.path / name)
                else:
                    shutil.rmtree(p, ignore_errors=True)
        _fsync_dir(self.path)

    def write(self, data: bytes, body: dict, names: list[str]) -> None:
        """Publish one checkpoint under each of ``names``; atomically per name."""
        self.write_many([(data, body, names)])

    def write_many(self, items: list[tuple[bytes, dict, list[str]]]) -> None:
        """Publish checkpoints, each under each of its names, atomically per name.

        Every file is written into its fresh ``.tmp-*`` folder first; then all files and folders are
        fsynced together, and only then renamed into place (the parent fsynced last).
        Concurrent fsyncs are committed together by the file system (one journal commit on ext4
        instead of one per file: 3-5x faster for the four files of ``last`` + ``best``), with the
        same guarantee: nothing is renamed into place before its bytes are on disk.
        """
        faults = self.faults
        tmps: list[Path] = []
        every_name = [n for _, _, names in items for n in names]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            files: list[Path] = []
            sources: list[tuple[Path, str]] = []
            for data, body, names in items:
                canonical = _canonical(body)
                head = {"format": FORMAT, "tensors_sha256": hashlib.sha256(data).hexdigest(),
                        "tensors_bytes": len(data), "body_sha256": hashlib.sha256(canonical).hexdigest()}
                # {"body": <the canonical bytes>, the rest}: the body is encoded once (JSON, sorted keys)
                meta = b'{"body":' + canonical + b"," + json.dumps(head, sort_keys=True).encode()[1:]
                tmp = self.path / f".tmp-{uuid.uuid4().hex[:12]}"
                os.mkdir(tmp)
                tmps.append(tmp)
                _write_file(tmp / TENSORS, data, faults if faults is not None and faults.wants("data") else None,
                            sync=False)
                _write_file(tmp / META, meta, sync=False)
                files += [tmp / TENSORS, tmp / META]
                sources.append((tmp, names[0]))
                for name in names[1:]:   # further names share the bytes: hard links (copies where unsupported)
                    extra = self.path / f".tmp-{uuid.uuid4().hex[:12]}"
                    os.mkdir(extra)
                    tmps.append(extra)
                    for f in (TENSORS, META):
                        try:
                            os.link(tmp / f, extra / f)
                        except OSError:
                            _write_file(extra / f, (tmp / f).read_bytes(), sync=False)
                            files.append(extra / f)
                    sources.append((extra, name))
            _fsync_all([*files, *(src for src, _ in sources)])   # the bytes and the folders' entries
            if faults is not None:
                faults.point("tmp")
            for src, name in sources:
                self._publish(src, name)
            _fsync_dir(self.path)
            if faults is not None:
                faults.point("done")
        except OSError as exc:
            for t in tmps:
                shutil.rmtree(t, ignore_errors=True)
            raise UserError(self._write_failure(exc, every_name)) from None

    def _publish(self, src: Path, name: str) -> None:
        dest = self.path / name
        if dest.exists():
            old = self.path / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
            if self.faults is not None:
                self.faults.point("swap")
            os.rename(src, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(src, dest)

    def _write_failure(self, exc: OSError, names: list[str]) -> str:
        why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(
                   exc.errno, exc.strerror or str(exc))
        good = [n for n, _ in self.candidates() if not n.startswith(".")]
        kept = (f"Earlier checkpoints are intact ({', '.join(good)})" if good
                else "No earlier checkpoint exists")
        return (f"Could not save checkpoint {'/'.join(names)} in {self.path}: {why} "
                f"({exc.__class__.__name__}: {exc.strerror or exc}). {kept}. Free some space or make "
                f"the folder writable (or choose another --out), then continue with "
                f"`trainwell fit --resume {self.run_dir}`.")

    def prune(self, keep: int) -> None:
        """Keep the newest ``keep`` numbered checkpoints (``best`` and ``last`` always stay)."""
        numbered = []
        for name, path in self.candidates():
            if NUMBERED_RE.match(name):
                try:
                    body = json.loads((path / META).read_bytes())["body"]
                except (OSError, ValueError, KeyError):
                    body = {}
                numbered.append((_order(body), name, path))
        numbered.sort(reverse=True)
        for _, _, path in numbered[keep:]:
            shutil.rmtree(path, ignore_errors=True)

    # -- reading -------------------------------------------------------------
    def candidates(self) -> list[tuple[str, Path]]:
        if not self.path.is_dir():
            return []
        return sorted((p.name, p) for p in self.path.iterdir()
                      if p.is_dir() and NAME_RE.match(p.name))

    def read(self, name: str) -> tuple[dict[str, torch.Tensor], dict]:
        """Verify and parse one checkpoint; raise CorruptCheckpoint saying what is wrong."""
        if not NAME_RE.match(name):
            raise UserError(f'"{name}" is not a checkpoint name. Use best, last, epoch-N or step-N '
                            f"(see {self.path}).")
        path = self.path / name
        if not path.is_dir():
            have = ", ".join(n for n, _ in self.candidates()) or "none"
            raise UserError(f"No checkpoint {name} in {self.path} (available: {have}).")
        try:
            raw = (path / META).read_bytes()
            doc = json.loads(raw)
            body = doc["body"]
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            if hashlib.sha256(_canonical(body)).hexdigest() != doc["body_sha256"]:
                raise ValueError(f"{META} fails its checksum")
            data = (path / TENSORS).read_bytes()
            if len(data) != doc["tensors_bytes"]:
                raise ValueError(f"{TENSORS} has {len(data)} bytes, expected {doc['tensors_bytes']} (truncated)")
            if hashlib.sha256(data).hexdigest() != doc["tensors_sha256"]:
                raise ValueError(f"{TENSORS} fails its sha256 checksum")
            tensors = parse(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, Exception) as exc:  # noqa: B014
            raise CorruptCheckpoint(f"checkpoint {path} is damaged: {exc}") from None
        return tensors, body

    def newest(self, prefer: str | None = None, *, warn: Callable[[str], None] | None = None,
               exclude: tuple[str, ...] = ()) -> tuple[str, dict[str, torch.Tensor], dict] | None:
        """The requested checkpoint, else the newest good one (damaged ones are skipped with a warning).

        ``exclude``: names not to consider (resuming skips the weights-only ``best``).
        Returns None when there is no checkpoint at all; raises UserError when
        every checkpoint is damaged.
        """
        bodies = []
        for name, path in self.candidates():
            if name in exclude:
                continue
            try:
                body = json.loads((path / META).read_bytes())["body"]
                order = _order(body)
            except Exception:  # noqa: BLE001 - damaged: try it last, read() will say why
                order = (-1, -1, -1)
            bodies.append((order, name))
        if not bodies:
            return None
        bodies.sort(reverse=True)
        names = [n for _, n in bodies]
        if prefer is not None:
            if prefer not in names:
                self.read(prefer)            # raises the "bad name / not found" UserError
            rank = dict((n, o) for o, n in bodies)
            older = [n for n in names if n != prefer and rank[n] <= rank[prefer]]
            names = [prefer, *older, *[n for n in names if n != prefer and n not in older]]
        problems = []
        for name in names:
            try:
                tensors, body = self.read(name)
            except CorruptCheckpoint as exc:
                problems.append(str(exc))
                if warn is not None:
                    warn(f"{exc}; falling back to the previous checkpoint.")
                continue
            return name, tensors, body
        raise UserError(
            "No usable checkpoint: " + "; ".join(problems) +
            ". Every saved checkpoint is damaged; restart the run without --resume (or restore the "
            "folder from a backup).")


def _warn(console: Any | None) -> Callable[[str], None]:
    def warn(message: str) -> None:
        warnings.warn(message, CheckpointWarning, stacklevel=3)
        if console is not None:
            console.print(f"[yellow]warning:[/yellow] {message}")
    return warn


# --------------------------------------------------------------------------- the callback
class Checkpointer:
    """Saves, resumes, handles signals and NaN for one ``fit``; see the module docstring."""

    MIN_INTERVAL_S = 30.0   # the time-budgeted `last`: at most one every this many seconds ...
    MAX_COST = 0.05         # ... and never more often than writing takes this share of the time between writes

    def __init__(self, spec: Spec, run_dir: str | Path | None, meta: dict | None = None,
                 console: Any | None = None):
        ck = spec.checkpoint
        self.spec = spec
        self.every, self.every_steps, self.keep = ck.every, ck.every_steps, ck.keep
        self.run_dir = Path(run_dir) if run_dir is not None else None
        fault_text = os.environ.get("TRAINWELL_FAULT", "")
        self.faults = _Faults(fault_text) if fault_text else None
        self.store = CheckpointStore(self.run_dir, self.faults) if self.run_dir is not None else None
        self.meta = meta or {}
        self.console = console
        self.rollback_mode = spec.stop.on_nan == "rollback"
        self.in_memory = self.store is None and self.rollback_mode
        self.active = self.store is not None or self.in_memory
        self.last_good: tuple[bytes, dict, str] | None = None
        self.signal: int | None = None
        self.resumed_from: str | None = None
        self.warned_exploding = False
        self.next_due = math.inf        # time.monotonic() from which a time-budgeted `last` is due
        self.write_seconds: list[float] = []   # each disk write (capture included), for the budget and tests
        self.sampled: Callable[[int], bool] | None = None   # the monitors' sampled steps (NaN replay)
        self.best_written = False

    # -- resume ---------------------------------------------------------------
    def resume(self, state: TrainState) -> str | None:
        """Restore the newest good checkpoint into ``state``; None when nothing was saved yet."""
        if self.store is None:
            return None
        self.store.recover()
        found = self.store.newest(warn=_warn(self.console), exclude=("best",))   # best: weights only
        if found is None:
            return None
        name, tensors, body = found
        restore(state, tensors, body)
        self.resumed_from = name
        return name

    # -- callback hooks ------------------------------------------------------------
    def on_train_begin(self, state: TrainState) -> None:
        first = self.last_good is None          # a NaN rollback calls fit_loop (and this) again
        if self.store is not None and first:
            self.store.recover()
            state.extra["keep_best"] = True     # the best weights stay in memory (fit_loop) for `best`
            self.next_due = time.monotonic() + self.MIN_INTERVAL_S
        if first:                      # one in-memory capture per fit: NaN replay/rollback start here
            data, body = capture(state, self.meta)
            self.last_good = (data, body, f"checkpoints/{self.resumed_from}" if self.resumed_from
                              else "the initial weights")
            if self.store is not None and self.resumed_from not in (None, "last") and self._finished(state):
                # a finished run killed while publishing its final `last`: publish it now
                self._save(state, ["last"], force=True, with_best=True)

    def on_step_end(self, state: TrainState) -> None:
        if self.signal is not None:
            state.stop = True
            state.stopped_because = "interrupted"
        elif self.store is not None:
            if self.every_steps and state.step % self.every_steps == 0:
                self._save(state, [f"step-{state.step}"])
            elif time.monotonic() >= self.next_due and state.batch_in_epoch < state.steps_per_epoch:
                self._save(state, ["last"])          # a long epoch: the time budget's `last`, mid-epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if not self.active or state.stopped_because == "nan":
            return
        if self.store is None:                       # stop.on_nan=rollback without a run directory
            self._save(state, ["last"])
            return
        names = [f"epoch-{state.epoch}"] if self.every and state.epoch % self.every == 0 else []
        final = self._finished(state)
        if names or final or time.monotonic() >= self.next_due:
            self._save(state, [*names, "last"], with_best=final)   # the end: `last` and `best` in one write
        elif self.rollback_mode:                     # rollback restores the last epoch: keep it in memory
            self._save(state, ["last"], disk=False)

    def on_train_end(self, state: TrainState) -> None:
        if self.store is None:
            return
        if state.stopped_because == "interrupted":
            self._save(state, ["last"], force=True, with_best=True)
        if state.stopped_because != "nan" and not self.best_written:
            item = self._best_item(state)
            if item is not None:
                t0 = time.monotonic()
                self.store.write_many([item])
                self._spent(t0)
            self.best_written = True

    def _finished(self, state: TrainState) -> bool:
        """This epoch is the run's last (the Checkpointer is the last callback: nothing changes it after)."""
        return bool(state.stop) or state.epoch >= self.spec.train.epochs

    # -- saving -----------------------------------------------------------------
    def _health(self, state: TrainState) -> tuple[bool, float | None]:
        """(weights and loss finite, current mean training loss): one host sync, only when saving."""
        checks = [torch.isfinite(p).all() for p in state.model.parameters()]
        loss_sum = state.extra.get("epoch_loss") if state.batch_in_epoch > 0 else None
        if loss_sum is not None:
            checks.append(torch.isfinite(loss_sum).all())
        finite = bool(torch.stack(checks).all()) if checks else True
        if loss_sum is not None:
            seen = min(state.batch_in_epoch * state.batch_size, state.data.X_train.shape[0])
            return finite, float(loss_sum) / max(seen, 1)
        if state.batch_in_epoch == 0 and state.history:
            return finite, state.history[-1].get("train_loss")
        return finite, None

    def _exploding(self, state: TrainState, loss: float | None) -> bool:
        """The loss is 10x (+1) above the best epoch so far: not a state worth going back to."""
        if loss is None:
            return False
        past = state.history[:-1] if state.batch_in_epoch == 0 else state.history
        best = min((r["train_loss"] for r in past if math.isfinite(r.get("train_loss", math.nan))),
                   default=None)
        return best is not None and loss > 10 * best + 1.0

    def _save(self, state: TrainState, names: list[str], force: bool = False, disk: bool = True,
              with_best: bool = False) -> None:
        t0 = time.monotonic()
        finite, loss = self._health(state)
        if not finite:                     # never save a poisoned state: flag the NaN instead
            state.stop = True
            state.stopped_because = "nan"
            state.extra["nan_epoch"] = state.epoch + (1 if state.batch_in_epoch else 0)
            return
        if not force and self._exploding(state, loss):   # keep the last good one on disk and in memory
            if not self.warned_exploding and self.console is not None:
                self.console.print(f"[yellow]·[/yellow] training loss {loss:.3g} is exploding: not saving "
                                   "checkpoints until it comes back down")
            self.warned_exploding = True
            return
        data, body = capture(state, self.meta)
        on_disk = self.store is not None and disk
        label = f"checkpoints/{names[0]}" if on_disk else "the last good state (kept in memory)"
        self.last_good = (data, body, label)
        if on_disk:
            best = self._best_item(state) if with_best else None
            self.store.write_many([(data, body, names), *([best] if best is not None else [])])
            self.best_written = self.best_written or with_best
            if any(NUMBERED_RE.match(n) for n in names):
                self.store.prune(self.keep)
            self._spent(t0)

    def _spent(self, t0: float) -> None:
        """A write took ``now - t0``: the next time-budgeted `last` waits at least 1/MAX_COST times that."""
        now = time.monotonic()
        self.write_seconds.append(now - t0)
        self.next_due = now + max(self.MIN_INTERVAL_S, (now - t0) / self.MAX_COST)

    def _best_item(self, state: TrainState) -> tuple[bytes, dict, list[str]] | None:
        """``best``: the best epoch's weights, kept in memory while training, written once at the end.

        A weights-only checkpoint (``"kind": "best"``): loaded and scored like any other, never
        resumed from (that epoch's optimizer and RNG states are not kept); every full checkpoint
        carries the best weights so far (``best.*``), so a resume loses nothing."""
        epoch, best = state.stopper.best_epoch, state.best_state
        if best is None or epoch < 1:
            return None
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in best.items()}
        history = state.history[:epoch]
        body = {"kind": "best", "step": epoch * state.steps_per_epoch, "epoch": epoch, "batch_in_epoch": 0,
                "steps_per_epoch": state.steps_per_epoch, "n_train": int(state.data.X_train.shape[0]),
                "mid_epoch": False, "stop": False, "stopped_because": "",
                "history": _encode(history, "history", tensors),
                "history_columns": list(history[-1]) if history else [],
                "spec": state.spec.to_dict(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **self.meta}
        return st_save(_to_cpu_unshared(tensors)), body, ["best"]

    # -- signals -------------------------------------------------------------------
    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: finish the current step, save, stop (a second signal aborts at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: Any) -> None:
            if self.signal is not None:
                raise KeyboardInterrupt
            self.signal = signum

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- the training driver --------------------------------------------------------------
    def train(self, state: TrainState, callbacks: list | None = None,
              on_epoch: Callable[[TrainState, dict], None] | None = None) -> TrainState:
        """``fit_loop`` with checkpoints, signal handling and NaN rollback/diagnosis."""
        faults = [self.faults] if self.faults is not None and self.faults.at_step else []
        cbs = [*(callbacks or []), *faults, self]
        self.sampled = next((cb.sampled for cb in callbacks or [] if callable(getattr(cb, "sampled", None))), None)
        with self.signals():
            while True:
                fit_loop(state, cbs, on_epoch=on_epoch)
                if state.stopped_because == "nan":
                    if self.spec.stop.on_nan == "rollback" and self.last_good is not None \
                            and state.extra.get("nan_rollbacks", 0) < MAX_ROLLBACKS:
                        self.rollback(state)
                        continue
                    state.extra["nan_diagnosis"] = self.diagnose(state)   # fit raises it as a UserError
                break
        if state.stopped_because == "interrupted" and self.signal is not None:
            raise self._interrupted(state)
        return state

    def _interrupted(self, state: TrainState) -> TrainingInterrupted:
        name = signal.Signals(self.signal).name
        where = describe_position(state)
        if self.store is None:
            return TrainingInterrupted(self.signal, f"{name}: training stopped at {where}; nothing was saved "
                                       "(save=False).", None)
        msg = (f"{name}: saved a checkpoint at {where} in {self.store.path / 'last'}. "
               f"Resume with:\n  trainwell fit --resume {self.run_dir}")
        return TrainingInterrupted(self.signal, msg, self.store.path / "last")

    # -- NaN --------------------------------------------------------------------------------
    def rollback(self, state: TrainState) -> None:
        """Restore the last good checkpoint, halve every learning rate, carry on."""
        data, body, label = self.last_good  # type: ignore[misc]
        count = state.extra.get("nan_rollbacks", 0) + 1
        nan_epoch = state.extra.get("nan_epoch")
        restore(state, data, body)
        state.extra["nan_rollbacks"] = count
        _scale_lr(state, 0.5 ** (count - int(body.get("rollbacks", 0))))   # half per rollback, in all
        if self.console is not None:
            self.console.print(
                f"[yellow]·[/yellow] loss became NaN/inf in epoch {nan_epoch}: rolled back to {label} "
                f"(epoch {state.epoch}, step {state.step}) and halved the learning rate to "
                f"{state.optimizer.param_groups[0]['lr']:.3g} (rollback {count} of {MAX_ROLLBACKS})")

    def diagnose(self, state: TrainState) -> str:
        """One paragraph: where the loss went non-finite, which layer blew up first, why, what is kept."""
        nan_epoch = state.extra.get("nan_epoch")
        found = None
        if self.last_good is not None:
            data, body, label = self.last_good
            # the replay moves the state back; keep what the run's report shows of the failure
            kept_state = (state.history, state.epoch, state.step, state.stopped_because,
                          state.extra.get("nan_rollbacks", 0))
            try:
                found = _replay_to_nan(state, data, body, nan_epoch, self.sampled)
            except Exception:  # noqa: BLE001 - the diagnosis must not hide the real problem
                found = None
            (state.history, state.epoch, state.step, state.stopped_because,
             state.extra["nan_rollbacks"]) = kept_state
            state.stop, state.extra["nan_epoch"] = True, nan_epoch
        spec = self.spec
        if found is not None:
            where = (f"at step {found['step']} (epoch {found['epoch']}, batch {found['batch']} of "
                     f"{state.steps_per_epoch})")
            layer = (f" The gradient norm of layer {found['layer']} blew up first "
                     f"({found['first_norm']:.3g} at step {found['first_step']} -> {found['norm']:.3g} at step "
                     f"{found['blowup_step']}).") if found.get("layer") else ""
        else:
            where, layer = f"in epoch {nan_epoch}", ""
        kept = ""
        if self.store is not None:
            label = self.last_good[2] if self.last_good is not None else ""
            if label.startswith("checkpoints/"):
                name, good_body = label.split("/", 1)[1], self.last_good[1]  # type: ignore[index]
                kept = (f" The last good checkpoint is kept: {self.run_dir / label} (step {good_body['step']}); "
                        f"`trainwell evaluate {self.run_dir} --checkpoint {name}` scores it.")
            else:
                kept = " No checkpoint had been saved yet."
        rolled = state.extra.get("nan_rollbacks", 0)
        tried = (f" {rolled} rollback(s) to the last good checkpoint, down to lr "
                 f"{spec.optim.lr * 0.5 ** rolled:g}, did not help." if rolled else
                 " Set stop.on_nan=rollback to restore the last good checkpoint, halve the lr and continue.")
        return (f"Training diverged: the loss became NaN or inf {where}.{layer} Likely causes: a learning rate "
                f"too high (optim.lr={spec.optim.lr:g} with {spec.optim.name}; try 10x lower or "
                f"`trainwell lr-find`), exploding gradients (set regularize.clip_norm=1.0), or bad input values "
                f"(extreme or unscaled features; keep data.scale=standard).{tried}{kept}")


def describe_position(state: TrainState) -> str:
    """Where training stands, in words: "epoch 3, batch 12 of 45 (step 102)"."""
    if state.batch_in_epoch:
        return (f"epoch {state.epoch + 1}, batch {state.batch_in_epoch} of {state.steps_per_epoch} "
                f"(step {state.step})")
    return f"end of epoch {state.epoch} (step {state.step})"


def _scale_lr(state: TrainState, factor: float) -> None:
    for group in state.optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if isinstance(group.get(key), (int, float)) and not isinstance(group.get(key), bool):
                group[key] = group[key] * factor
    sched = state.schedule.scheduler
    if sched is not None:
        for attr in ("base_lrs", "_last_lr"):
            values = getattr(sched, attr, None)
            if isinstance(values, list):
                setattr(sched, attr, [v * factor for v in values])


class _NanProbe:
    """Replay hook: per-step finite checks and per-layer gradient norms (diagnosis only).

    The replay starts at the last good state, which may be epochs before the NaN (checkpoints
    are written on a time budget): the steps before the NaN epoch run at full speed, unprobed."""

    def __init__(self, state: TrainState, limit_epoch: int | None):
        self.named = [(n, p) for n, p in state.model.named_parameters() if p.requires_grad]
        self.limit = limit_epoch
        self.from_epoch = (limit_epoch or 1) - 1      # steps of epoch N run with state.epoch == N - 1
        self.norms: list[np.ndarray] = []
        self.steps: list[int] = []
        self.found: dict | None = None

    def on_step_end(self, state: TrainState) -> None:
        if state.epoch < self.from_epoch:
            return
        grads = [p.grad.detach().float().norm() if p.grad is not None else torch.zeros((), device=p.device)
                 for _, p in self.named]
        vals = torch.stack([*grads, state.extra["epoch_loss"].float().reshape(()),
                            torch.stack([torch.isfinite(p).all() for _, p in self.named]).all().float()]).cpu().numpy()
        norms, loss_sum, params_ok = vals[:-2], vals[-2], vals[-1]
        self.norms.append(norms)
        self.steps.append(state.step)
        bad = not math.isfinite(float(loss_sum)) or not np.isfinite(norms).all() or params_ok < 1
        if bad:
            self.found = self._explain(state)
            state.stop = True
        elif self.limit is not None and state.epoch >= self.limit:
            state.stop = True

    def _explain(self, state: TrainState) -> dict:
        names = [n.rsplit(".", 1)[0] if n.endswith((".weight", ".bias")) else n for n, _ in self.named]
        N = np.stack(self.norms)
        base = np.where(N[0] > 0, N[0], 1.0)
        ratio = np.where(np.isfinite(N), N / base, np.inf)
        # the first step where some layer's norm grew 10x over its first value (or went non-finite)
        layer_i, blow_row = None, None
        for row in range(len(N)):
            if (ratio[row] > 10).any():
                blow_row = row
                layer_i = int(np.argmax(ratio[row]))
                break
        out = {"step": state.step, "epoch": state.epoch + 1, "batch": state.batch_in_epoch}
        if layer_i is not None:
            out.update(layer=names[layer_i], first_norm=float(N[0, layer_i]), first_step=self.steps[0],
                       norm=float(N[blow_row, layer_i]), blowup_step=self.steps[blow_row])
        return out


class _SamePath:
    """Replay hook: a no-op forward hook on the steps the monitors sampled in the run.

    A step with a forward hook takes the autograd step instead of the hand-written one
    (train/fast.py); arming the same steps makes the replay follow the run bit for bit."""

    def __init__(self, model: torch.nn.Module, sampled: Callable[[int], bool]):
        self.model, self.sampled, self.handle = model, sampled, None

    def on_step_end(self, state: TrainState) -> None:
        self.close()
        if self.sampled(state.step + 1):
            self.handle = self.model.register_forward_hook(lambda *args: None)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def _replay_to_nan(state: TrainState, data: bytes, body: dict, nan_epoch: int | None,
                   sampled: Callable[[int], bool] | None = None) -> dict | None:
    """Re-run from the last good checkpoint with per-step checks; where did it go non-finite?"""
    restore(state, data, body)
    probe = _NanProbe(state, nan_epoch)
    hooks: list = [probe.on_step_end]
    same = _SamePath(state.model, sampled) if sampled is not None else None
    if same is not None:
        same.on_step_end(state)           # the first replayed step
        hooks.append(same.on_step_end)
    saved = state.extra.get("step_hooks")
    state.extra["step_hooks"] = hooks
    try:
        fit_loop(state, [])
    finally:
        state.extra["step_hooks"] = saved
        if same is not None:
            same.close()
    return probe.found


# --------------------------------------------------------------------------- wiring helpers
def write_spec_atomically(spec: Spec, path: Path) -> None:
    atomic_write(path, spec.to_yaml())


def resume_spec(run_dir: str | Path, data: Any = None, spec: Any = None, sets: list[str] | None = None,
                overrides: dict | None = None) -> Spec:
    """The spec a run was started with (its spec.yaml); resuming takes no other settings."""
    d = Path(run_dir)
    if data is not None or spec is not None or sets or overrides:
        raise UserError("--resume continues a run exactly as it was started, from its spec.yaml; do not "
                        "pass data, --spec or --set with it (start a new run to change settings).")
    if not (d / "spec.yaml").exists():
        raise UserError(f"Cannot resume {d}: it has no spec.yaml, so it is not a trainwell run directory. "
                        "Pass the folder given as --out to the run that stopped.")
    spec = Spec.from_yaml(d / "spec.yaml")
    found = CheckpointStore(d).newest(warn=_warn(None), exclude=("best",))
    if found is not None and isinstance(found[2].get("spec"), dict):
        _same_spec(d, spec, Spec.from_dict(found[2]["spec"]), found[0])
    return spec


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _same_spec(d: Path, on_disk: Spec, saved: Spec, name: str) -> None:
    """A resumed run continues exactly as checkpointed: a spec.yaml edited since is refused, saying what differs."""
    a, b = _flat(on_disk.to_dict()), _flat(saved.to_dict())
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diff:
        shown = "; ".join(f"{k} is {a.get(k)!r} in spec.yaml but {b.get(k)!r} in the checkpoint" for k in diff[:5])
        raise UserError(f"{d / 'spec.yaml'} was edited after checkpoint {name} was saved ({shown}). --resume "
                        f"continues a run exactly as it was checkpointed: put the values back, or start a new run "
                        f"with the new settings (trainwell fit DATA --spec {d / 'spec.yaml'} --out NEW_DIR).")


def trust_resumed_module(run_dir: str | Path, trust: bool) -> None:
    """Resuming a run with a custom module runs its copy in the run directory: verified, and only if trusted."""
    d = Path(run_dir)
    found = CheckpointStore(d).newest(warn=_warn(None), exclude=("best",))
    if found is not None:
        arch = found[2].get("architecture", {})
    else:
        arch = read_manifest(d)["architecture"] if (d / "model.json").exists() else {}
    trusted_class(d, arch, trust)


def make_checkpointer(state: TrainState, run_dir: str | Path | None, arch: dict, pre: Any,
                      console: Any | None = None, *, resume: bool = False) -> Checkpointer:
    """The Checkpointer of one ``fit``: writes spec.yaml first, restores on resume."""
    spec = state.spec
    meta = {"architecture": arch, "preprocessing": pre.to_json()}
    if run_dir is not None:
        d = Path(run_dir)        # created empty (or replaced) by core/rundir.py's Claim: fit never writes over a run
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"Cannot create the run directory {d}: {exc.strerror or exc}.") from None
        if not resume:
            write_spec_atomically(spec, d / "spec.yaml")
    ckpt = Checkpointer(spec, run_dir, meta, console)
    if resume:
        name = ckpt.resume(state)
        if console is not None:
            if name is None:
                console.print("[dim]·[/dim] resume: no checkpoint was saved yet; starting from the beginning")
            else:
                console.print(f"[dim]·[/dim] resumed from checkpoints/{name}: {describe_position(state)}")
    return ckpt


# --------------------------------------------------------------------------- loading a saved point
def _best_so_far(store: CheckpointStore) -> tuple[str, dict[str, torch.Tensor], dict] | None:
    """``best`` of a run that stopped before writing it (killed): the best weights kept in the newest
    full checkpoint (``best.*``), as a weights-only checkpoint of the best epoch."""
    found = store.newest(warn=_warn(None), exclude=("best",))
    if found is None:
        return None
    _, tensors, body = found
    best = {f"model.{k[len('best.'):]}": v for k, v in tensors.items() if k.startswith("best.")}
    epoch = int(_decode(body["stopper"], tensors).get("best_epoch", -1))
    if not best or epoch < 1:
        return None
    return "best", best, {**body, "epoch": epoch, "step": epoch * int(body["steps_per_epoch"]),
                          "batch_in_epoch": 0, "mid_epoch": False}


def load_checkpoint_run(run_dir: str | Path, name: str = "last", device: str = "cpu",
                        trust_module: bool = False) -> Any:
    """A :class:`~trainwell.run.Run` with the weights of checkpoint ``name`` (falls back if damaged)."""
    from trainwell.data.pipeline import Preprocessor
    from trainwell.run import Run, build_for_load
    import pandas as pd

    store = CheckpointStore(run_dir)
    found = None
    if name in ("best", "last") and not (store.path / name).is_dir():   # not written yet (a killed run)
        found = (_best_so_far(store) if name == "best" else    # the newest checkpoint's best weights
                 store.newest(warn=_warn(None), exclude=("best",)))   # `last`: the newest checkpoint
    found = found or store.newest(prefer=name, warn=_warn(None))
    if found is None:
        raise UserError(f"{Path(run_dir)} has no checkpoints (looked in {store.path}).")
    got, tensors, body = found
    arch = body["architecture"]
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = build_for_load(arch, weights, Path(run_dir), trust_module).to(device).eval()
    try:
        pre = Preprocessor.from_json(body["preprocessing"])
        spec = Spec.from_dict(body["spec"])
    except Exception as exc:  # noqa: BLE001 -- a body that passed its checksum but not ours
        raise CorruptCheckpoint(f"checkpoint {store.path / got} is damaged: {str(exc)[:200]}") from None
    history = pd.DataFrame(_history(body, tensors)[:body["epoch"]])
    metrics = {"checkpoint": got, "epoch": body["epoch"], "step": body["step"]}
    run = Run(model, arch, pre, spec, history, metrics, Path(run_dir))
    run.checkpoint = got
    return run


def score_test_split(run: Any) -> dict:
    """Scores of ``run`` on its own held-out test split, rebuilt from its spec."""
    from trainwell.data.pipeline import prepare
    from trainwell.data.sources import load_source

    spec = run.spec
    if spec.data.source == "arrays":
        raise UserError("This run was trained on in-memory arrays, so its test split cannot be rebuilt. "
                        "Pass labelled data to score: trainwell evaluate RUN DATA --checkpoint NAME.")
    prep = prepare(load_source(spec.data.source, spec.data.target, seed=spec.train.seed,
                               allow_missing=spec.data.impute != "none"), spec)
    if prep.raw_test is None or len(prep.raw_test[0]) == 0:
        raise UserError("The run has no test split to score; pass labelled data: trainwell evaluate RUN DATA.")
    return run.evaluate(*prep.raw_test)
