"""Running an exported model: raw rows -> the graph's inputs -> onnxruntime -> decoded predictions.

The JSON file written beside ``model.onnx`` (``model.onnx.json``) holds what stays outside the
graph (export/graph.py): how each raw column is read (the column typing of data/columns.py),
the table that maps each category column's strings to the integer codes the graph one-hot
encodes (a value not in the table gets the ``(other)`` code when the column has one, else -1:
all indicators 0, as in ``trainwell predict``), the class names, and the graph's input and
output names. A row goes through it like this::

    numbers[i] = the row's numeric columns, booleans (1/0), numbers read from text, date features
    codes[i]   = categories[column].index(value) for each category column
    probabilities, label = session.run(None, {"numbers": numbers, "codes": codes})
    classes[label]                                     # the decoded label

Nothing here needs torch at predict time beyond what ``import trainwell`` loads.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainwell.data import dates
from trainwell.data.column_types import reading_of
from trainwell.data.columns import ColumnEncoder
from trainwell.core.errors import UserError

FORMAT = "trainwell-onnx/1"


def sidecar_path(model_path: str | Path) -> Path:
    return Path(f"{model_path}.json")


def read_sidecar(model_path: str | Path) -> dict:
    path = sidecar_path(model_path)
    if not path.exists():
        raise UserError(f"{path} is missing: an exported model needs the JSON file written beside it by "
                        f"`trainwell export` (column reading, category codes, class names). Copy both files.")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a trainwell export description (format {meta.get('format')!r}, "
                        f"expected {FORMAT!r}). Export the run again with `trainwell export`.")
    return meta


def _frame(X: Any, reading: dict) -> pd.DataFrame | None:
    if isinstance(X, (str, Path)):
        from trainwell.data.frames import read_frame   # lazy: pyarrow, only for a file path; CSV / Parquet as fit reads them
        return read_frame(Path(X), **reading)
    return X if isinstance(X, pd.DataFrame) else None


def graph_inputs(meta: dict, X: Any) -> dict[str, np.ndarray]:
    """Raw rows (a DataFrame, a CSV/Parquet path, or a numeric array) -> the graph's inputs."""
    enc = ColumnEncoder.from_json(meta.get("columns"))
    frame = _frame(X, reading_of(enc.options if enc is not None else None))
    if enc is None:
        if frame is not None and meta["numbers"] and all(n in frame.columns for n in meta["numbers"]):
            frame = frame[meta["numbers"]]                 # by name, in training order
        arr = np.asarray(frame.to_numpy() if frame is not None else X, dtype=np.float32)
        shape = [int(s) for s in meta["input_shape"]]
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        return {"numbers": np.ascontiguousarray(arr.reshape(len(arr), *shape))}
    if frame is None:
        frame = pd.DataFrame(np.asarray(X, dtype=object), columns=enc.raw_names)
    typed = enc.parse(frame.rename(columns=str), "the input table")
    numbers, codes = [], []
    for c in enc.kept:
        v = typed[c.name]
        if c.kind == "category":
            index = {value: j for j, value in enumerate(meta["categories"][c.name])}
            missing = len(c.categories) if c.other else -1
            code = np.fromiter((index.get(s, missing) for s in v), dtype=np.int64, count=len(v))
            if missing < 0 and (code < 0).any():
                warn_unseen(c.name, X, np.asarray(v, dtype=object)[code < 0])
            codes.append(code)
        elif c.kind == "date":
            numbers.append(dates.date_features(v, c.reference, c.time))
        else:
            numbers.append(np.asarray(v, dtype=np.float64)[:, None])
    n = len(frame)
    out = {"numbers": np.hstack(numbers).astype(np.float32) if numbers else np.zeros((n, 0), np.float32)}
    if "codes" in meta["inputs"]:
        out["codes"] = np.stack(codes, axis=1) if codes else np.zeros((n, 0), np.int64)
    return out


def warn_unseen(column: str, X: Any, values: np.ndarray) -> None:
    """The warning trainwell's own predict gives (data/columns.py) for categories training never saw: the
    graph gives those rows all-zero indicators, a guess the user should know about."""
    where = X if isinstance(X, (str, Path)) else "the input table"
    unseen = sorted(set(map(str, values)))
    warnings.warn(f'Feature column "{column}" in {where} has {len(values)} value(s) not seen in training '
                  f"({', '.join(map(repr, unseen[:5]))}{', ...' if len(unseen) > 5 else ''}); those rows get "
                  f"all-zero indicators for it.", UserWarning, stacklevel=4)


def decode(meta: dict, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's outputs -> labels as the user gave them, or values in original units."""
    task = meta["task"]
    if task == "regression":
        v = outputs["value"].astype(np.float64)
        return v[:, 0] if v.shape[1] == 1 else v
    if task == "reconstruction":
        return outputs["code"]
    if task == "multilabel":
        return outputs["label"]
    return np.asarray(meta["classes"], dtype=object)[outputs["label"]]


class Session:
    """An onnxruntime session for an exported file and its description."""

    def __init__(self, model_path: str | Path, meta: dict | None = None):
        try:
            import onnxruntime as ort   # lazy: optional dependency (pip install 'trainwell[export]')
        except ImportError:
            raise UserError("Running an exported model needs onnxruntime: pip install 'trainwell[export]' "
                            "(or onnxruntime).") from None
        if not Path(model_path).exists():
            raise UserError(f"{model_path} does not exist. Pass the .onnx file written by `trainwell export`.")
        self.meta = meta if meta is not None else read_sidecar(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1        # small graphs: one thread (see train/threads.py)
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def run(self, X: Any) -> dict[str, np.ndarray]:
        feeds = graph_inputs(self.meta, X)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, feeds)))

    def predict(self, X: Any) -> np.ndarray:
        return decode(self.meta, self.run(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        out = self.run(X)
        if "probabilities" not in out:
            raise UserError("predict_proba is for classifiers; this exported model does "
                            f"{self.meta['task']}. Use predict().")
        return out["probabilities"]
