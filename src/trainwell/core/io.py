"""Writing files so that a crash never leaves half of one: the one atomic-write helper.

Every file of a run directory goes through :func:`atomic_write`: the bytes go to a
temporary file next to the target, are fsynced, the temporary file is renamed over
the target (``os.replace`` is atomic on POSIX) and the folder is fsynced, so after a
kill or a power cut the path holds the old version or the new one, never a mix
(the rename-then-fsync pattern of https://lwn.net/Articles/457667/).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trainwell.core import faults
from trainwell.core.errors import UserError


def fsync_path(path: Path) -> None:
    """fsync a folder (its entries) or a file opened read-only (Linux syncs its data all the same)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """A hidden, unique sibling of ``path``: same folder, so the final rename stays on one file system."""
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def is_temp(name: str) -> bool:
    """``name`` is a :func:`temp_path` left by a process killed while writing (never read as data)."""
    return name.startswith(".") and len(name) > 13 and name[-13:-8] == ".tmp-"


def atomic_write(path: str | Path, content: bytes | str | Callable[[Path], Any], *, sync: bool = True) -> Path:
    """Write ``content`` (bytes, text or ``write(tmp_path)``) to ``path`` atomically; returns ``path``.

    ``sync=False`` skips both fsyncs (for files that are cheap to regenerate, such as a
    plot, where an fsync would cost more than the file is worth); the rename stays atomic.
    """
    path = Path(path)
    tmp = temp_path(path)
    crash_test = faults.current()       # None unless TRAINWELL_FAULT is set (core/faults.py)
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        if crash_test is not None:      # kill@write=NAME: die with this file half written
            crash_test.torn_write(tmp, path.name)
        if sync:
            fsync_path(tmp)
        os.replace(tmp, path)
        if sync:
            fsync_path(path.parent)
    except OSError as exc:
        raise UserError(f"Could not write {path}: {exc.strerror or exc}. Make the folder writable (and check "
                        f"the disk has space), or choose another output path.") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and non-finite floats as ``None`` (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
