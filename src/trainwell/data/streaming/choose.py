"""Whether a source is streamed: ``data.streaming`` true / false / auto (docs/scaling.md)."""
from __future__ import annotations

import os
from pathlib import Path

from trainwell.core.errors import UserError
from trainwell.core.spec import Spec

SUFFIXES = (".parquet", ".csv")


def stream_files(source: str) -> list[Path] | None:
    """The .parquet/.csv files of ``source`` (a file or a folder of them), or None if not a table."""
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() in SUFFIXES:
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        if not files:
            return None
        kinds = {f.suffix.lower() for f in files}
        if len(kinds) > 1:
            raise UserError(f"{p} mixes .csv and .parquet files; a streamed folder must hold one format. "
                            "Convert them to one format or move the others out.")
        return files
    return None


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable), or total RAM as a fallback."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def wants_streaming(spec: Spec) -> tuple[bool, str]:
    """(stream?, why): ``data.streaming`` true/false, or auto = a folder of table files, or files above a
    quarter of free RAM."""
    mode = spec.data.streaming
    if not spec.data.header:
        if mode is True:
            raise UserError("data.streaming=true reads the column names from the files' first line, and "
                            "data.header=false says there are none: add a header line to the files, or set "
                            "data.streaming=false.")
        return False, ""
    files = stream_files(spec.data.source)
    if mode is False:
        return False, ""
    if files is None:
        if mode is True:
            raise UserError(f'data.streaming=true needs a .parquet or .csv file (or a folder of them); '
                            f'"{spec.data.source}" is not one. Set data.streaming=auto or false for this source.')
        return False, ""
    size = sum(f.stat().st_size for f in files)
    if mode is True:
        return True, f"streaming: data.streaming=true ({_mb(size)} on disk)"
    if Path(spec.data.source).expanduser().is_dir():   # parts of one table: only the streaming reader joins them
        return True, (f"streaming: a folder of {len(files)} {files[0].suffix} file(s), {_mb(size)} on disk, read in "
                      f"batches as one table (data.streaming=auto; docs/scaling.md)")
    threshold = int(os.environ.get("TRAINWELL_STREAMING_BYTES", 0)) or available_memory() // 4
    if size > threshold:
        return True, (f"streaming: {_mb(size)} on disk is more than a quarter of the available memory "
                      f"({_mb(threshold)}); reading in batches (set data.streaming=false to load it all)")
    return False, ""


def _mb(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
