"""A run directory as a place on disk: its default name, one writer at a time, replacing it safely.

``fit`` never loses work: a folder that already holds files is refused unless the user
says ``--resume`` (continue it) or ``--overwrite`` (replace it). Replacing moves the old
run aside with one atomic rename and keeps it until the new run has finished; a run that
fails, diverges or is interrupted puts the old one back, so a good folder is never left
half-replaced. A lock file refuses a second writer; a lock left by a process that no
longer exists (killed) is taken over. See docs/checkpoints.md.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable

from trainwell.core import faults
from trainwell.core.io import fsync_path, is_temp, temp_path
from trainwell.core.errors import UserError

LOCK = ".trainwell.lock"
ASIDE = ".replaced-"


def next_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/NAME`` for the first run of NAME, then ``runs/NAME-2``, ``-3``, ...: one more than the highest
    number there, so a name is never handed out twice while its folder exists. The folder is created
    (empty) here, so two processes choosing at once get different names."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(name)}(?:-(\d+))?$")
    taken = [int(m.group(1) or 1) for p in root.iterdir() if (m := pattern.match(p.name))]
    n = max(taken, default=0) + 1
    while True:
        path = root / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def has_files(d: Path) -> bool:
    """True when ``d`` is a folder with anything in it other than a lock file and the temporary files of
    writes a killed process never finished (core/io.py): such a folder holds nothing to keep."""
    return d.is_dir() and any(p.name != LOCK and not is_temp(p.name) for p in d.iterdir())


def free_name(d: Path) -> Path:
    """The first ``D-2``, ``D-3``, ... next to ``d`` that does not exist (for the "keep both" suggestion)."""
    n = 2
    while (d.parent / f"{d.name}-{n}").exists():
        n += 1
    return d.parent / f"{d.name}-{n}"


def refuse_existing(d: Path) -> None:
    """The message for ``fit --out D`` when D already holds a run (or other files)."""
    what = ("a trainwell run" if (d / "spec.yaml").exists() or (d / "checkpoints").is_dir()
            else "files")
    aside = sorted(d.parent.glob(f".{d.name}{ASIDE}*"))
    kept = (f" An earlier --overwrite of it was killed before it finished: the run it replaced is kept in "
            f"{aside[0]} (rename it back to keep it, or delete it)." if aside else "")
    raise UserError(
        f"{d} already holds {what}; trainwell fit does not write over it. To continue that run: "
        f"trainwell fit --resume {d}. To keep both: --out {free_name(d)}. To replace it: add --overwrite "
        f"(Python: fit(..., overwrite=True)); the old run is kept until the new one finishes and put back "
        f"if it fails.{kept}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:           # exists, owned by someone else
        return True
    return True


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``O_EXCL`` (FileExistsError when it exists), write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_whole(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, complete when it appears; FileExistsError when it exists.

    The bytes go to a temporary file (fsynced), which is then hard-linked to ``path``: ``link``
    fails when the name exists, like ``O_EXCL``, and a process killed while writing leaves only
    its temporary file, never a lock with half an owner (which would read as another machine's).
    Where hard links are not supported, the file is created with ``O_EXCL`` and written in place."""
    tmp = temp_path(path)
    _write_new(tmp, data)
    try:
        crash_test = faults.current()     # kill@write=.trainwell.lock (core/faults.py)
        if crash_test is not None:
            crash_test.torn_write(tmp, path.name)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:                   # no hard links on this file system
            _write_new(path, data)
        fsync_path(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class RunLock:
    """``D/.trainwell.lock`` holding ``pid host``; created with O_EXCL so only one process gets it."""

    def __init__(self, d: Path):
        self.path = Path(d) / LOCK
        self.held = False

    def acquire(self) -> "RunLock":
        me = f"{os.getpid()} {socket.gethostname()}\n".encode()
        for _ in range(3):
            try:
                _create_whole(self.path, me)
            except FileExistsError:
                if not self._stale():
                    raise self._busy() from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()       # a dead process's lock: take it over
                continue
            self.held = True
            return self
        raise self._busy()

    def _owner(self) -> tuple[int | None, str]:
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
            return int(pid), host
        except (OSError, ValueError):
            return None, ""

    def _stale(self) -> bool:
        """A lock is stale when its process is gone (same machine) or it is unreadable (a crash mid-write)."""
        pid, host = self._owner()
        if pid is None:
            return True
        return host == socket.gethostname() and pid != os.getpid() and not _alive(pid)

    def _busy(self) -> UserError:
        pid, host = self._owner()
        return UserError(
            f"{self.path.parent} is being written by another trainwell process (pid {pid} on {host or '?'}; "
            f"lock file {self.path}). Wait for it to finish, or choose another --out. If that process is "
            f"gone (another machine), delete {self.path}.")

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False


class Replacement:
    """``--overwrite``: the old run moved aside (one rename), restored unless :meth:`commit` is called."""

    def __init__(self, d: Path):
        self.d = d
        self.aside: Path | None = None

    def begin(self) -> None:
        if not has_files(self.d):
            return
        RunLock(self.d).acquire().release()            # refuse while another process writes the old run
        self.aside = self.d.parent / f".{self.d.name}{ASIDE}{uuid.uuid4().hex[:8]}"
        os.rename(self.d, self.aside)

    def commit(self) -> None:
        """The new run finished: delete the old one."""
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def rollback(self) -> None:
        """The new run failed: remove what it wrote and put the old run back (one rename)."""
        if self.aside is None:
            return
        failed = self.d.parent / f".{self.d.name}.failed-{uuid.uuid4().hex[:8]}"
        if self.d.exists():
            os.rename(self.d, failed)
        os.rename(self.aside, self.d)
        shutil.rmtree(failed, ignore_errors=True)
        self.aside = None


class Claim:
    """What ``fit`` holds on its run directory while training: the lock, and the old run when replacing."""

    def __init__(self, d: Path | None, *, overwrite: bool = False, resume: bool = False):
        self.d = d
        self.replacement = Replacement(d) if d is not None and overwrite and not resume else None
        self.lock: RunLock | None = None
        if d is not None and not resume and not overwrite and has_files(d):
            refuse_existing(d)

    def __enter__(self) -> "Claim":
        if self.d is None:
            return self
        if self.replacement is not None:
            self.replacement.begin()
        try:
            self.d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._undo()
            raise UserError(f"Cannot create the run directory {self.d}: {exc.strerror or exc}.") from None
        try:
            self.lock = RunLock(self.d).acquire()
        except UserError:
            self._undo()
            raise
        for p in self.d.iterdir():      # what a killed writer left half written (core/io.py): never read, dropped
            if is_temp(p.name) and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
        return self

    def _undo(self) -> None:
        if self.replacement is not None:
            self.replacement.rollback()

    def __exit__(self, kind, exc, tb) -> None:
        if self.lock is not None:
            self.lock.release()
        if self.replacement is not None:
            if kind is None:
                self.replacement.commit()
            else:
                self.replacement.rollback()
                note = (f" (--overwrite: the new run did not finish, so the previous run was put back in {self.d}; "
                        f"nothing the new run wrote is kept.)")
                if hasattr(exc, "message"):       # an interrupt: its "resume with ..." no longer applies
                    exc.message = f"{exc.message}{note}"
                elif isinstance(exc, UserError):
                    exc.args = (f"{exc}{note}",)


def claims_run_dir(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fit`` so that it holds a :class:`Claim` on ``out`` (or ``resume``) while it runs.

    The default folder (``out=None``) is created empty by :func:`next_run_dir`, so only a named one
    needs the check; torchrun ranks other than 0 write nothing and claim nothing.
    """
    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        p = bound.arguments
        target = p.get("resume") if p.get("resume") is not None else p.get("out")
        writes = target is not None and p.get("save", True) and os.environ.get("RANK", "0") == "0"
        with Claim(Path(target) if writes else None, overwrite=bool(p.get("overwrite")),
                   resume=p.get("resume") is not None):
            return fit(*args, **kwargs)
    return wrapper


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def guard_output(out_file: Path, data: str, run_dir: Path | None = None, model: Path | None = None) -> None:
    """``predict``/``encode --out``: never over a file of the run directory or an exported ``model``, nor
    over the input data."""
    out_file = Path(out_file)
    inside = run_dir is not None and Path(run_dir).resolve() in out_file.resolve().parents
    if (inside and out_file.exists()) or (model is not None and _same(out_file, Path(model))):
        raise UserError(f"--out {out_file} is a file of the model ({run_dir or model}); predictions never write "
                        f"over a run. Choose a path outside it (e.g. --out predictions.csv).")
    if _same(out_file, Path(data)):
        raise UserError(f"--out {out_file} is the input file {data}; writing predictions there would destroy "
                        f"the data. Choose another path (e.g. --out predictions.csv).")
