"""Data larger than memory: Parquet / CSV read in batches, shuffled on the fly (docs/scaling.md).

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
from __future__ import annotations

import math
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from trainwell.data.labels import MAX_CLASSES, make_coder
from trainwell.data.scaling import Standardizer, add_features
from trainwell.errors import UserError
from trainwell.spec import Spec

READ_ROWS = 16384            # rows per pyarrow record batch
PREFETCH = 4                 # batches prepared ahead by the reader thread
CACHE_BYTES = 256 << 20      # validation + test rows kept in memory up to this size
MAX_EVAL_ROWS = 200_000      # rows of a streamed split scored for the full metric table
SUFFIXES = (".parquet", ".csv")
TARGET_NAMES = ("target", "y", "label", "class")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# --------------------------------------------------------------------------- hashing
def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def row_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """uint64 hash of (seed, row id): the same on every run, worker and machine."""
    key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return splitmix64(np.asarray(ids, dtype=np.uint64) ^ key)


def hash_uniform(h: np.ndarray) -> np.ndarray:
    """Top 53 bits of the hash as a float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def assign_split(h: np.ndarray, fractions: tuple[float, float, float]) -> np.ndarray:
    """0 = train, 1 = validation, 2 = test, by comparing the hash uniform with the fractions."""
    u = hash_uniform(h)
    return (u >= fractions[0]).astype(np.int8) + (u >= fractions[0] + fractions[1]).astype(np.int8)


def assign_rank(h: np.ndarray, world: int) -> np.ndarray:
    """Data-parallel rank of each row (low bits of a re-mixed hash)."""
    if world <= 1:
        return np.zeros(len(h), dtype=np.int64)
    return (splitmix64(h) % np.uint64(world)).astype(np.int64)


# --------------------------------------------------------------------------- deciding to stream
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


# --------------------------------------------------------------------------- reading
class StreamSource:
    """Record batches of a file or folder, in natural or seeded-shuffled file / row-group order."""

    def __init__(self, files: list[Path], target: str | list[str] | None, row_id: str | None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.files = files
        self.fmt = files[0].suffix.lower()
        self.row_id = row_id
        self._row_groups: list[list[int]] = []
        try:
            if self.fmt == ".parquet":
                self.columns = [str(n) for n in pq.read_schema(files[0]).names
                                if not str(n).startswith("__index_level_")]   # a pandas index, not data
                self.n_rows = 0
                for f in files:
                    md = pq.ParquetFile(f).metadata
                    self._row_groups.append([md.row_group(i).num_rows for i in range(md.num_row_groups)])
                    self.n_rows += md.num_rows
            else:
                import pyarrow.csv as pacsv
                reader = pacsv.open_csv(files[0], read_options=pacsv.ReadOptions(block_size=1 << 20))
                self.columns = [str(n) for n in reader.schema.names]
                first = reader.read_next_batch()
                self._csv_first = first.schema
                reader.close()
                self.n_rows = None          # known after a counting pass
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow's message is the useful part
            raise UserError(f"Could not read {files[0]}: {exc}. Check that it is a valid "
                            f"{self.fmt.lstrip('.')} file.") from None
        self.targets = self._resolve_target(target)
        if len(self.targets) != 1:
            raise UserError("Streaming supports one target column; got "
                            f"{', '.join(self.targets)}. Pass a single --target (or data.streaming=false).")
        if row_id is not None and row_id not in self.columns:
            raise UserError(f'data.row_id="{row_id}" is not a column of {files[0]}. '
                            f"Columns: {', '.join(self.columns)}.")
        skip = set(self.targets) | ({row_id} if row_id else set())
        self.features = [c for c in self.columns if c not in skip]
        if not self.features:
            raise UserError(f"{files[0]} has no feature columns once the target is set aside.")
        self.read_columns = [*self.features, *self.targets, *([row_id] if row_id else [])]
        self._pa = pa

    def _resolve_target(self, target: str | list[str] | None) -> list[str]:
        cols = self.columns
        if target is None:
            found = [c for c in cols if c in TARGET_NAMES] or [c for c in cols if c.lower() in TARGET_NAMES]
            if len(found) == 1:
                return found
            raise UserError(f"Cannot tell which column of {self.files[0]} is the target. Columns: "
                            f"{', '.join(cols[:30])}. Pass --target COLUMN.")
        names = [target] if isinstance(target, str) else list(target)
        for t in names:
            if t not in cols:
                raise UserError(f'Target column "{t}" is not in {self.files[0]}. Columns: {", ".join(cols[:30])}. '
                                "Pass --target with one of these names.")
        return names

    def _csv_options(self):
        import pyarrow as pa
        import pyarrow.csv as pacsv
        types = {c: pa.float64() for c in self.features}
        t = self.targets[0]
        tt = self._csv_first.field(t).type
        types[t] = (pa.int64() if pa.types.is_integer(tt) else pa.float64() if pa.types.is_floating(tt)
                    else pa.bool_() if pa.types.is_boolean(tt) else pa.string())
        return (pacsv.ReadOptions(block_size=4 << 20),
                pacsv.ConvertOptions(column_types=types, include_columns=self.read_columns))

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[tuple[int, int, Any]]:
        """(file number, first row's number in the file, record batch); shuffled order with ``rng``."""
        order = list(range(len(self.files)))
        if rng is not None:
            rng.shuffle(order)
        for fi in order:
            path = self.files[fi]
            try:
                if self.fmt == ".parquet":
                    yield from self._parquet_chunks(fi, path, rng)
                else:
                    yield from self._csv_chunks(fi, path)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise UserError(f"Could not read {path} while streaming: {msg}. Feature columns must be numeric "
                                "and every file must have the same columns.") from None

    def _parquet_chunks(self, fi: int, path: Path, rng):
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        sizes = self._row_groups[fi]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        groups = list(range(len(sizes)))
        if rng is not None:
            rng.shuffle(groups)
        for g in groups:
            offset = int(starts[g])
            for rb in pf.iter_batches(batch_size=READ_ROWS, row_groups=[g], columns=self.read_columns,
                                      use_threads=False):
                yield fi, offset, rb
                offset += rb.num_rows
        pf.close()

    def _csv_chunks(self, fi: int, path: Path):
        import pyarrow.csv as pacsv
        ro, co = self._csv_options()
        reader = pacsv.open_csv(path, read_options=ro, convert_options=co)
        offset = 0
        try:
            for rb in reader:
                yield fi, offset, rb
                offset += rb.num_rows
        finally:
            reader.close()

    def count_rows(self) -> int:
        if self.n_rows is None:
            self.n_rows = sum(rb.num_rows for _, _, rb in self.chunks())
        return self.n_rows

    # -- decoding one record batch --------------------------------------------------
    def ids(self, fi: int, offset: int, rb: Any) -> np.ndarray:
        if self.row_id is None:
            return (np.uint64(fi) << np.uint64(40)) + np.arange(offset, offset + rb.num_rows, dtype=np.uint64)
        col = rb.column(self.row_id)
        pa = self._pa
        if pa.types.is_integer(col.type):
            return col.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
        import pandas as pd
        return pd.util.hash_array(np.asarray(col.to_pylist(), dtype=object)).astype(np.uint64)

    def features_of(self, rb: Any, path: Path) -> np.ndarray:
        X = np.empty((rb.num_rows, len(self.features)), dtype=np.float32)
        pa = self._pa
        for j, c in enumerate(self.features):
            col = rb.column(c)
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
                    or pa.types.is_boolean(col.type) or pa.types.is_null(col.type)):
                raise UserError(f'Feature column "{c}" in {path} is not numeric ({col.type}). Encode it as '
                                "numbers or drop it.")
            X[:, j] = col.to_numpy(zero_copy_only=False)
        if not np.isfinite(X).all():
            j = int(np.flatnonzero(~np.isfinite(X).all(axis=0))[0])
            raise UserError(f'Features in {path} contain NaN or infinite values (column "{self.features[j]}"). '
                            "Drop those rows or impute the missing values before training.")
        return X

    def target_of(self, rb: Any, path: Path) -> np.ndarray:
        col = rb.column(self.targets[0])
        if col.null_count:
            raise UserError(f'Target column "{self.targets[0]}" in {path} has {col.null_count} missing value(s). '
                            "Drop the rows without a label and try again.")
        pa = self._pa
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return np.asarray(col.to_pylist(), dtype=object)
        return col.to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------- the statistics pass
class _Moments:
    """Running mean and M2 per column in float64, merged batch by batch (Chan et al.)."""

    def __init__(self):
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, X: np.ndarray) -> None:
        if len(X) == 0:
            return
        X = np.asarray(X, dtype=np.float64)
        nb = X.shape[0]
        mb = X.mean(axis=0)
        m2b = ((X - mb) ** 2).sum(axis=0)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        d = mb - self.mean
        self.mean = self.mean + d * (nb / n)
        self.m2 = self.m2 + m2b + d * d * (self.n * nb / n)
        self.n = n

    def standardizer(self) -> Standardizer:
        std = np.sqrt(self.m2 / max(self.n, 1))
        return Standardizer(mean=self.mean, std=np.where(std > 1e-12, std, 1.0))


def split_fractions(spec: Spec, n: int) -> tuple[tuple[float, float, float], str]:
    """Fractions for the hash split, and the sentence that explains them."""
    s = spec.data.split
    if s == "auto":
        if n > 10_000:
            return (1 - 2000 / n, 1000 / n, 1000 / n), "1,000 validation + 1,000 test (more than 10,000 rows)"
        return (0.8, 0.1, 0.1), "80/10/10 (at most 10,000 rows)"
    f = [float(v) for v in s]
    if abs(sum(f) - 1.0) > 1e-6:          # row counts
        f = [v / n for v in f]
        f[0] = 1.0 - f[1] - f[2]
    return (f[0], f[1], f[2]), f"{f[0]:.0%}/{f[1]:.0%}/{f[2]:.0%} (given)"


def _detect_task(uniques: set, integral: bool, text: bool, overflow: bool, n: int) -> str:
    """detect_task's rules, from what one pass can know (distinct values, integrality)."""
    if text:
        return "binary" if len(uniques) <= 2 else "multiclass"
    if not integral:
        return "regression"
    if not overflow and len(uniques) <= 2:
        return "binary"
    if overflow:
        return "regression"
    v = sorted(float(u) for u in uniques)
    limit = max(2, min(MAX_CLASSES, n // 5))
    looks_like_ids = v[0] >= 0 and (v[-1] - v[0] + 1) <= 2 * len(v)
    return "multiclass" if len(v) <= limit and looks_like_ids else "regression"


class _Rows:
    """Shape-only stand-in for a split that lives on disk (len, .shape, .device)."""

    def __init__(self, n: int, row_shape: list[int], device: torch.device | str = "cpu"):
        self.shape = torch.Size([n, *row_shape])
        self.device = torch.device(device)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, item: Any) -> torch.Tensor:     # rows on disk: an empty sample
        return torch.zeros((0, *self.shape[1:]), device=self.device)


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
        self.X_train = _Rows(self.counts[0], shape)
        self.X_val = self.cached["val"][0] if "val" in self.cached else _Rows(self.counts[1], shape)
        self.X_test = self.cached["test"][0] if "test" in self.cached else _Rows(self.counts[2], shape)

    def tensors(self, device: torch.device) -> "StreamData":
        return StreamData(self, device)


def prepare_streaming(spec: Spec, rank: int = 0, world: int = 1,
                      progress: Callable[[str], None] | None = None) -> StreamPrepared:
    """One pass over the data: split sizes, classes, scaling statistics; small val/test kept in memory."""
    from trainwell.data.pipeline import Preprocessor

    if spec.data.impute in ("median", "mean"):     # auto (the default): streamed rows are read strictly
        raise UserError(f"data.impute={spec.data.impute} needs the data in memory (the fill values come from the "
                        f"whole training split), but this data is streamed from disk. Set data.streaming=false if "
                        f"it fits in memory, or fill the missing values before training.")
    files = stream_files(spec.data.source)
    if files is None:
        raise UserError(f'Cannot stream "{spec.data.source}": it is not a .parquet/.csv file or a folder of them.')
    src = StreamSource(files, spec.data.target, spec.data.row_id)
    n_all = src.count_rows()
    if n_all == 0:
        raise UserError(f"{spec.data.source} has no data rows.")
    fractions, how = split_fractions(spec, n_all)
    seed = spec.train.seed
    features = list(spec.data.features)
    mom, ymom = _Moments(), _Moments()
    uniques: set = set()
    integral, text, overflow = True, False, False
    counts = [0, 0, 0]
    rank_counts = [0] * world
    held: dict[int, list] = {1: [], 2: []}
    held_bytes, hold = 0, True
    row_bytes = 4 * len(src.features) * (2 if "squares" in features else 1)
    for fi, off, rb in src.chunks():
        path = src.files[fi]
        h = row_hash(src.ids(fi, off, rb), seed)
        part = assign_split(h, fractions)
        X = src.features_of(rb, path)
        y = src.target_of(rb, path)
        for k in (0, 1, 2):
            counts[k] += int((part == k).sum())
        tr = part == 0
        ranks = assign_rank(h[tr], world)
        for r in range(world):
            rank_counts[r] += int((ranks == r).sum())
        Xf = add_features(X, features) if features else X
        mom.add(Xf[tr])
        if y.dtype == object or y.dtype.kind in "USb":
            text = True
            uniques.update(y.tolist())
        else:
            yf = y.astype(np.float64)
            if not np.isfinite(yf).all():
                raise UserError(f'The target in {path} has NaN/infinite values. Drop those rows.')
            integral = integral and bool((yf == np.round(yf)).all())
            ymom.add(yf[tr].reshape(-1, 1))
            if not overflow:
                uniques.update(np.unique(y).tolist())
                overflow = len(uniques) > MAX_CLASSES
        if hold:
            for k in (1, 2):
                sel = part == k
                if sel.any():
                    held[k].append((X[sel], y[sel]))
                    held_bytes += int(sel.sum()) * row_bytes
            if held_bytes > CACHE_BYTES:
                hold, held = False, {1: [], 2: []}
    if counts[0] == 0:
        raise UserError("The hash split put no rows in the training split; the data is too small to stream "
                        "(use data.streaming=false).")
    task = spec.task if spec.task != "auto" else _detect_task(uniques, integral, text, overflow, counts[0])
    if task in ("binary", "multiclass") and overflow:
        raise UserError(f"task={task} but the target has more than {MAX_CLASSES} distinct values.")
    if task not in ("regression", "binary", "multiclass"):
        raise UserError(f"Streaming supports regression, binary and multiclass tasks, not {task}; "
                        "use data.streaming=false.")
    if task == "regression":
        coder = make_coder(np.array([0.0, 1.0]), "regression")
    else:
        values = sorted(uniques, key=lambda v: (str(type(v)), v))
        coder = make_coder(np.asarray(values, dtype=object if text else None), task)
    scaler = mom.standardizer() if spec.data.scale != "none" else None   # tables: z-score per column
    target_scaler = ymom.standardizer() if task == "regression" else None
    pre = Preprocessor(coder=coder, features=features, scaler=scaler, target_scaler=target_scaler,
                       input_shape=[len(src.features)], feature_names=list(src.features))
    cached = {}
    for k, name in ((1, "val"), (2, "test")):
        if hold and held[k]:
            Xk = np.concatenate([a for a, _ in held[k]])
            yk = np.concatenate([b for _, b in held[k]])
            cached[name] = (pre.transform_X(Xk), pre.encode_y(yk))
            if name == "test":
                raw_test = (Xk, yk)
    notes = [f"streaming: {len(files)} {src.fmt.lstrip('.')} file(s), {n_all:,} rows, read in batches of "
             f"{READ_ROWS:,} rows; shuffle buffer {spec.data.shuffle_buffer:,} rows + file/row-group order; "
             f"prefetch {PREFETCH} batches in a background thread",
             f"task: {task}" + (" (detected in the streaming pass)" if spec.task == "auto" else " (given)")
             + (f", {len(coder.classes)} classes" if task in ("binary", "multiclass") else ""),
             f"split {counts[0]:,}/{counts[1]:,}/{counts[2]:,} by a seeded hash of "
             f"{'column ' + spec.data.row_id if spec.data.row_id else 'the row index'}: {how}",
             "scale: z-score from one streaming pass over the training split (float64)"
             if scaler is not None else "scale: none"]
    if world > 1:
        notes.append(f"data-parallel: training rows per rank {rank_counts}")
    if cached:
        notes.append(f"validation/test rows held in memory ({', '.join(cached)}); the rest is streamed")
    name = Path(spec.data.source).stem if len(files) == 1 else Path(spec.data.source).name
    out = StreamPrepared(pre, src, fractions, seed, counts, rank_counts, cached, name,
                         spec.data.shuffle_buffer, rank, world, notes)
    out.raw_test = raw_test if "test" in cached else None
    return out


# --------------------------------------------------------------------------- batches
def batch_sizes(n_rows: int, steps: int) -> np.ndarray:
    """``steps`` batch sizes summing to ``n_rows``, as equal as possible (first ones one larger)."""
    base, extra = divmod(n_rows, steps)
    return np.full(steps, base, dtype=np.int64) + (np.arange(steps) < extra)


class _Prefetch:
    """Run an iterator in a background thread into a bounded queue (I/O overlaps compute)."""

    _END = object()

    def __init__(self, it: Iterator, depth: int = PREFETCH):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="trainwell-prefetch")
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._put(("__error__", exc))

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is self._END:
                return
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0] == "__error__":
                raise item[1]
            yield item

    def close(self) -> None:
        self.stop.set()
        while True:
            try:
                self.q.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=5)


class StreamData:
    """``state.data`` of a streamed run: batches come from disk, small splits from memory."""

    streaming = True

    def __init__(self, prep: StreamPrepared, device: torch.device):
        self.prep, self.device = prep, torch.device(device)
        self.X_train = _Rows(prep.counts[0], prep.row_shape, device)
        self.y_train = _Rows(prep.counts[0], [], device)
        self.split_tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, (X, y) in prep.cached.items():
            self.split_tensors[name] = (torch.from_numpy(X).to(device), torch.from_numpy(np.ascontiguousarray(y)).to(device))
        self.X_val, self.y_val = self.split_tensors.get("val", (_Rows(prep.counts[1], prep.row_shape, device),
                                                                _Rows(prep.counts[1], [], device)))
        self.X_test, self.y_test = self.split_tensors.get("test", (_Rows(prep.counts[2], prep.row_shape, device),
                                                                   _Rows(prep.counts[2], [], device)))
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None   # all_reduce(SUM) when data-parallel

    # -- row streams ---------------------------------------------------------------------
    def rows(self, split: int, rng: np.random.Generator | None = None, shard: bool = True
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Raw (X, y) chunks of one split (of this rank's shard for training), in (shuffled) file order."""
        p = self.prep
        src = p.source
        for fi, off, rb in src.chunks(rng):
            h = row_hash(src.ids(fi, off, rb), p.seed)
            sel = assign_split(h, p.fractions) == split
            if shard and p.world > 1:
                sel &= assign_rank(h, p.world) == p.rank
            if not sel.any():
                continue
            rb = rb.filter(p.source._pa.array(sel))
            path = src.files[fi]
            yield src.features_of(rb, path), src.target_of(rb, path)

    def _encoded(self, chunks: Iterator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        pre = self.prep.pre
        for X, y in chunks:
            yield pre.transform_X(X), pre.encode_y(y)

    @staticmethod
    def _shuffled(chunks: Iterator, capacity: int, rng: np.random.Generator) -> Iterator:
        """Bounded shuffle buffer: keep ``capacity`` rows, emit a random selection of the overflow."""
        bx = by = None
        for X, y in chunks:
            if bx is not None:
                X, y = np.concatenate([bx, X]), np.concatenate([by, y])
            if len(X) <= capacity:
                bx, by = X, y
                continue
            perm = rng.permutation(len(X))
            out, keep = perm[:len(X) - capacity], perm[len(X) - capacity:]
            yield X[out], y[out]
            bx, by = X[keep], y[keep]
        if bx is not None and len(bx):
            perm = rng.permutation(len(bx))
            yield bx[perm], by[perm]

    @staticmethod
    def _batched(chunks: Iterator, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Cut a row stream into batches of exactly ``sizes``."""
        pend_x: list[np.ndarray] = []
        pend_y: list[np.ndarray] = []
        have, k = 0, 0
        for X, y in chunks:
            pend_x.append(X)
            pend_y.append(y)
            have += len(X)
            while k < len(sizes) and have >= sizes[k]:
                bx, by = np.concatenate(pend_x), np.concatenate(pend_y)
                s = int(sizes[k])
                yield bx[:s], by[:s]
                pend_x, pend_y = [bx[s:]], [by[s:]]
                have -= s
                k += 1
        if k < len(sizes):
            raise UserError(f"The data changed while training: expected {int(sizes.sum()):,} training rows, the "
                            f"stream gave {int(sizes[:k].sum()) + have:,}. Do not modify the files during a run.")

    def steps(self, batch_size: int) -> int:
        return max(1, math.ceil(self.prep.counts[0] / batch_size))

    def _sizes(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(this rank's batch sizes, global batch sizes) for one epoch; every rank takes the same steps."""
        steps = self.steps(batch_size)
        per_rank = [batch_sizes(c, steps) for c in self.prep.rank_counts]
        return per_rank[self.prep.rank], np.sum(per_rank, axis=0)

    def train_batches(self, epoch: int, batch_size: int, skip: int = 0) -> Iterator:
        """The epoch's batches as tensors (a background thread reads and prepares them)."""
        p = self.prep
        rng = np.random.default_rng([p.seed & 0xFFFFFFFF, epoch, 0x5EED])
        local, glob = self._sizes(batch_size)

        def gen():
            stream = self._batched(self._shuffled(self._encoded(self.rows(0, rng)), p.shuffle_buffer, rng), local)
            for k, (X, y) in enumerate(stream):
                if k < skip:
                    continue
                yield k, torch.from_numpy(X), torch.from_numpy(np.ascontiguousarray(y)), int(glob[k])
        return _Prefetch(gen())

    # -- training ------------------------------------------------------------------------
    def run_epoch(self, state: Any, step_fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """``loop.run_epoch`` for streamed data (same accumulators, exact mid-epoch resume)."""
        from trainwell.train.loop import after_step   # late import: the loop sits above the data layer
        dev = self.device
        if state.permutation is None or state.batch_in_epoch == 0:
            state.batch_in_epoch = 0
            state.extra["epoch_loss"] = torch.zeros((), device=dev)
            state.extra["epoch_terms"] = None
        state.permutation = torch.tensor([state.epoch], dtype=torch.int64)   # marks "mid-epoch" for checkpoints
        loss_sum, terms = state.extra["epoch_loss"], state.extra["epoch_terms"]
        per_batch = state.schedule.per == "batch"
        step_hooks = state.extra.get("step_hooks", [])
        world = self.prep.world
        batches = self.train_batches(state.epoch, state.batch_size, skip=state.batch_in_epoch)
        try:
            for _, xb, yb, gsize in batches:
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                n_local = xb.shape[0]
                if world > 1:
                    weight = n_local * world / max(gsize, 1)
                    if n_local == 0:
                        raise UserError("A data-parallel rank has no rows for a step; use fewer processes "
                                        "or a larger dataset.")
                    loss, t = step_fn(xb, yb, weight)
                else:
                    loss, t = step_fn(xb, yb)
                loss_sum = loss_sum + loss * n_local
                terms = t if terms is None else terms + t
                if after_step(state, loss_sum, terms, per_batch, step_hooks):
                    break
        finally:
            batches.close()
        state.extra["epoch_loss"], state.extra["epoch_terms"] = loss_sum, terms
        return loss_sum, terms

    # -- evaluation ----------------------------------------------------------------------
    def _eval_stream(self, split: str, limit: int | None = None, shard: bool = True):
        k = {"train": 0, "val": 1, "test": 2}[split]
        seen = 0
        for X, y in self._encoded(self.rows(k, None, shard=shard)):
            if limit is not None and seen + len(X) > limit:
                X, y = X[:limit - seen], y[:limit - seen]
            seen += len(X)
            yield torch.from_numpy(X).to(self.device), torch.from_numpy(np.ascontiguousarray(y)).to(self.device)
            if limit is not None and seen >= limit:
                return

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, head: Any, split: str = "val") -> tuple[float, float]:
        """Mean loss and epoch metric of a split: from memory when held, else streamed (and reduced)."""
        from trainwell.train.loop import evaluate_tensors
        if split in self.split_tensors:
            return evaluate_tensors(model, head, *self.split_tensors[split])
        was = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        terms = None
        n = 0
        for xb, yb in self._eval_stream(split):
            out = model(xb).float()
            loss_sum += head.loss_fn(out, yb).double() * xb.shape[0]
            t = head.metric_terms(out, yb).double()
            terms = t if terms is None else terms + t
            n += xb.shape[0]
        model.train(was)
        if terms is None:
            terms = head.metric_terms(torch.zeros(0, max(1, self.prep.pre.coder.n_outputs), device=self.device),
                                      torch.zeros(0, device=self.device)).double()
        stats = torch.cat([loss_sum.reshape(1), terms, torch.tensor([float(n)], dtype=torch.float64,
                                                                     device=self.device)])
        if self.reduce is not None and self.prep.world > 1:
            stats = self.reduce(stats)
        v = stats.cpu().numpy()
        total = v[-1]
        if total == 0:
            return math.nan, math.nan
        return float(v[0] / total), head.metric_value(v[1:-1])

    @torch.no_grad()
    def outputs(self, model: torch.nn.Module, head: Any, split: str, limit: int = MAX_EVAL_ROWS
                ) -> tuple[np.ndarray, np.ndarray, float]:
        """(encoded y, transformed outputs, mean loss) on up to ``limit`` rows of a split (unsharded)."""
        if split in self.split_tensors:
            X, y = self.split_tensors[split]
            chunks = [(X[i:i + 8192], y[i:i + 8192]) for i in range(0, X.shape[0], 8192)]
        else:
            chunks = self._eval_stream(split, limit=limit, shard=False)
        model.eval()
        ys, os_, loss, n = [], [], 0.0, 0
        for xb, yb in chunks:
            out = model(xb).float()
            loss += float(head.loss_fn(out, yb)) * xb.shape[0]
            n += xb.shape[0]
            ys.append(yb.cpu().numpy())
            os_.append(head.transform(out).cpu().numpy())
        if not ys:
            return np.zeros(0), np.zeros(0), math.nan
        return np.concatenate(ys), np.concatenate(os_), loss / max(n, 1)


def stream_split_metrics(run: Any, prep: StreamPrepared, state: Any) -> dict:
    """Full metrics per split; streamed splits are scored on their first ``MAX_EVAL_ROWS`` rows."""
    from trainwell.train.metrics import classification_metrics, regression_metrics
    out = {}
    data: StreamData = state.data
    for split, count in zip(("train", "val", "test"), prep.counts):
        if count == 0:
            out[split] = {}
            continue
        y, o, loss = data.outputs(run.model, run.head, split)
        if prep.pre.task == "regression":
            m = regression_metrics(prep.pre.decode_regression(y), prep.pre.decode_regression(o))
        else:
            m = classification_metrics(prep.pre.task, y, o)
        m["loss"] = loss
        if len(y) < count:
            m["rows_scored"] = int(len(y))
        out[split] = m
    return out
