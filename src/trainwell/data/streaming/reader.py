"""Record batches of a Parquet / CSV file or folder, read with pyarrow, decoded to numpy.

Nothing here holds more than one record batch: ``ParquetFile.iter_batches`` per row group,
``pyarrow.csv.open_csv`` for CSV (https://arrow.apache.org/docs/python/parquet.html), in each file's own
separator, decimal mark, encoding and header line, found from its first lines as for a file read whole
(data/dialect.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from trainwell.data.dialect import UTF8, Dialect, dialect_of
from trainwell.data.frames import resolve_target
from trainwell.core.errors import UserError

READ_ROWS = 16384            # rows per pyarrow record batch


class StreamSource:
    """Record batches of a file or folder, in natural or seeded-shuffled file / row-group order."""

    def __init__(self, files: list[Path], target: str | list[str] | None, row_id: str | None):
        import pyarrow as pa           # lazy: pyarrow adds start-up time to every fit; only streamed runs need it
        import pyarrow.parquet as pq   # lazy: as above

        self.files = files
        self.fmt = files[0].suffix.lower()
        self.row_id = row_id
        self._row_groups: list[list[int]] = []
        self._dialects: dict[Path, Dialect] = {}
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
                import pyarrow.csv as pacsv   # lazy: as pyarrow above
                reader = pacsv.open_csv(files[0], read_options=self._csv_read(files[0], 1 << 20),
                                        parse_options=self._csv_parse(files[0]),
                                        convert_options=pacsv.ConvertOptions(decimal_point=self.dialect(files[0]).decimal))
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
        self.targets = resolve_target(self.columns, target, files[0])
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

    def dialect(self, path: Path) -> Dialect:
        """How one CSV file of the source is written (each file may have its own): data/dialect.py."""
        if path not in self._dialects:
            self._dialects[path] = dialect_of(path)
        return self._dialects[path]

    def dialect_notes(self) -> list[str]:
        """One line per CSV file read in a dialect other than comma-separated UTF-8 with a decimal point."""
        return [f"read: {path.name} is {d.describe()} (found from its lines; a .csv is usually comma-separated UTF-8 "
                f"with a decimal point)" for path, d in self._dialects.items() if not d.usual]

    def _csv_read(self, path: Path, block_size: int):
        import pyarrow.csv as pacsv   # lazy: as in __init__
        dialect = self.dialect(path)
        encoding = "utf8" if dialect.encoding in UTF8 else dialect.encoding
        if dialect.spaced:     # "a, b, y": the names without the space, as a file read whole has them
            names = [str(c) for c in pd.read_csv(path, sep=dialect.sep, nrows=0, skiprows=dialect.skip, skipinitialspace=True,
                                                 encoding=dialect.encoding, encoding_errors="replace").columns]
            return pacsv.ReadOptions(block_size=block_size, encoding=encoding, skip_rows=dialect.skip + 1,
                                     column_names=names)
        return pacsv.ReadOptions(block_size=block_size, encoding=encoding, skip_rows=dialect.skip)

    def _csv_parse(self, path: Path):
        import pyarrow.csv as pacsv   # lazy: as in __init__
        return pacsv.ParseOptions(delimiter=self.dialect(path).sep)

    def _csv_options(self, path: Path):
        import pyarrow as pa          # lazy: as in __init__
        import pyarrow.csv as pacsv   # lazy: as in __init__
        types = {c: pa.float64() for c in self.features}
        t = self.targets[0]
        tt = self._csv_first.field(t).type
        types[t] = (pa.int64() if pa.types.is_integer(tt) else pa.float64() if pa.types.is_floating(tt)
                    else pa.bool_() if pa.types.is_boolean(tt) else pa.string())
        return (self._csv_read(path, 4 << 20),
                self._csv_parse(path),
                pacsv.ConvertOptions(column_types=types, include_columns=self.read_columns,
                                     decimal_point=self.dialect(path).decimal))

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
                points = (" A decimal comma with thousands points (1.234,5) cannot be streamed: "
                          "data.streaming=false reads the file whole.") if self.fmt == ".csv" \
                    and self.dialect(path).decimal == "," else ""
                raise UserError(f"Could not read {path} while streaming: {msg}. Feature columns must be numeric "
                                f"and every file must have the same columns.{points}") from None

    def _parquet_chunks(self, fi: int, path: Path, rng):
        import pyarrow.parquet as pq   # lazy: as in __init__
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
        import pyarrow.csv as pacsv   # lazy: as in __init__
        ro, po, co = self._csv_options(path)
        reader = pacsv.open_csv(path, read_options=ro, parse_options=po, convert_options=co)
        spaced = self.dialect(path).spaced
        offset = 0
        try:
            for rb in reader:
                yield fi, offset, without_layout_spaces(rb) if spaced else rb
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


def without_layout_spaces(rb: Any) -> Any:
    """A record batch of a file written "39, State-gov, <=50K" with the space after each separator removed
    from its text columns, as pandas' ``skipinitialspace`` reads the file whole: the labels are "<=50K" in
    both, so a streamed model predicts the classes an in-memory one does (pyarrow's reader has no such
    option; its numbers already parse with the space)."""
    import pyarrow as pa            # lazy: as in __init__
    import pyarrow.compute as pc    # lazy: as in __init__
    columns = [pc.utf8_ltrim(c, characters=" ") if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
               else c for c in rb.columns]
    return pa.RecordBatch.from_arrays(columns, schema=rb.schema)
