"""``trainwell evaluate``, ``predict``, ``export`` and ``encode``: the commands that use a trained run on data.
torch and pandas are imported when a command runs, not at ``trainwell --help`` (docs/performance.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from trainwell.cli.common import Target, TrustModule, fail, imports_done, out
from trainwell.core.errors import UserError

RunDir = typer.Argument(..., help="A run directory written by `trainwell fit`.")


def evaluate(
    run_dir: Path = RunDir,
    data: Optional[str] = typer.Argument(None, help="Data to score (default: the run's own test split)."),
    target: Target = None,
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Score a saved point instead of the "
                                             "final model: best, last, epoch-N or step-N."),
    trust_module: TrustModule = False,
) -> None:
    """Scores of a trained model on its test split, or on new labelled data."""
    from trainwell.data.sources import load_source   # lazy: pandas
    from trainwell.run import load   # lazy: torch
    from trainwell.run.loading import score_test_split   # lazy: torch
    imports_done()
    try:
        run = load(run_dir, checkpoint=checkpoint, trust_module=trust_module)
        if data is None and checkpoint is not None:
            scores = score_test_split(run)
            source = f"the run's held-out test split (checkpoint {run.checkpoint})"
        elif data is None:
            scores = run.metrics.get("test", {})
            source = "the run's held-out test split"
        else:
            tgt = (target[0] if len(target) == 1 else list(target)) if target else run.spec.data.target
            table = load_source(data, tgt, seed=run.spec.train.seed, onehot=run.pre.onehot,
                                allow_missing=run.pre.impute is not None)
            X, y = (table.X_test, table.y_test) if table.X_test is not None else (table.X, table.y)
            if y is None:
                raise UserError(f"{data} has no target column to score against. Pass --target COLUMN.")
            scores = run.evaluate(X, y, where=data)
            source = data
    except UserError as exc:
        fail(exc)
        return
    out.print(f"scores on {source}:")
    for key, value in scores.items():
        if isinstance(value, (int, float)):
            out.print(f"  {key:<12} {value:.4f}")


def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit` (with --onnx: the data)."),
    data: Optional[str] = typer.Argument(None, help="Features to predict (.csv, .parquet, .npz, IDX folder)."),
    out_file: Path = typer.Option(Path("predictions.csv"), "--out", help="Where to write predictions (.csv)."),
    proba: bool = typer.Option(False, "--proba", help="Also write class probabilities."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Predict with a file written by `trainwell export` "
                                        "through onnxruntime: trainwell predict --onnx model.onnx data.csv"),
    trust_module: TrustModule = False,
) -> None:
    """Decoded predictions (original labels / units) for new data, written as CSV."""
    if onnx is not None or data is None:
        return _predict_exported(onnx, data or str(run_dir), out_file, proba)
    import numpy as np    # lazy: `trainwell --help` stays fast (docs/performance.md)
    import pandas as pd   # lazy: `trainwell --help` stays fast
    from trainwell.core.io import atomic_write   # lazy: numpy
    from trainwell.data.dialect import source_dialect, to_delimited   # lazy: pandas
    from trainwell.run import load   # lazy: torch
    from trainwell.run.rundir import guard_output   # lazy: trainwell.run imports torch
    imports_done()
    try:
        guard_output(out_file, data, run_dir=run_dir)
        run = load(run_dir, trust_module=trust_module)
        X = _new_inputs(run, data, run.spec.data.target)
        pred = run.predict(X)
        frame = pd.DataFrame(pred if np.ndim(pred) > 1 else {"prediction": pred})
        if np.ndim(pred) > 1:
            frame.columns = [f"prediction_{c}" for c in run.pre.coder.classes] or frame.columns
        if proba and run.pre.task != "regression":
            p = run.predict_proba(X)
            labels = run.pre.coder.classes if run.pre.task != "binary" else run.pre.coder.classes[-2:]
            for j, c in enumerate(labels if len(labels) == p.shape[1] else range(p.shape[1])):
                frame[f"proba_{c}"] = p[:, j]
        out_file.parent.mkdir(parents=True, exist_ok=True)
        dialect = source_dialect(data)
        atomic_write(out_file, to_delimited(frame, dialect))
    except UserError as exc:
        fail(exc)
        return
    out.print(f"wrote {len(frame)} predictions to {out_file}{_written_as(dialect)}")


def _written_as(dialect: Any) -> str:
    """How the output file is written when it follows a data file's convention (data/dialect.py)."""
    if dialect.usual:
        return ""
    return f", {dialect.describe()} as the data"


def _new_inputs(run: Any, data: str, target: Any) -> Any:
    """New data's features encoded as in training: its columns, text categories and imputation."""
    from trainwell.data.sources import load_features   # lazy: pandas
    return load_features(data, run.pre.feature_names, target, onehot=run.pre.onehot,
                         allow_missing=run.pre.impute is not None)


def _predict_exported(model: Optional[Path], data: str, out_file: Path, proba: bool) -> None:
    """``predict --onnx FILE DATA``: the exported graph and its JSON description, no run directory."""
    import pandas as pd   # lazy: `trainwell --help` stays fast
    from trainwell.core.io import atomic_write   # lazy: numpy
    from trainwell.data.dialect import source_dialect, to_delimited   # lazy: pandas
    from trainwell.export.runtime import Session, decode   # lazy: onnxruntime and pandas, only here
    from trainwell.run.rundir import guard_output   # lazy: trainwell.run imports torch
    imports_done()
    try:
        if model is None:
            raise UserError("predict needs a run directory and the data (trainwell predict runs/iris new.csv), "
                            "or an exported model: trainwell predict --onnx model.onnx new.csv.")
        guard_output(out_file, data, model=model)   # never over the model or the data
        session = Session(model)
        outputs = session.run(data)
        pred = decode(session.meta, outputs)
        frame = pd.DataFrame(pred if pred.ndim > 1 else {"prediction": pred})
        if proba and "probabilities" in outputs:
            p, classes = outputs["probabilities"], session.meta["classes"]
            for j in range(p.shape[1]):
                frame[f"proba_{classes[j] if len(classes) == p.shape[1] else j}"] = p[:, j]
        out_file.parent.mkdir(parents=True, exist_ok=True)
        dialect = source_dialect(data)
        atomic_write(out_file, to_delimited(frame, dialect))
    except UserError as exc:
        fail(exc)
        return
    out.print(f"wrote {len(frame)} predictions to {out_file} (onnxruntime, {model}){_written_as(dialect)}")


def export(
    run_dir: Path = RunDir,
    fmt: str = typer.Option("onnx", "--format", help="onnx (onnxruntime, any language) or torch-export "
                            "(a torch.export .pt2 archive, for graphs ONNX cannot express)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Where to write it (default: RUN/model.onnx); "
                                            "its description goes beside it as FILE.json."),
    data: Optional[str] = typer.Option(None, "--data", help="Rows to check the export on (default: the run's "
                                       "held-out test rows, reloaded from its data)."),
    encoder: bool = typer.Option(False, "--encoder", help="An autoencoder's encoder (the default for autoencoders)."),
    trust_module: TrustModule = False,
) -> None:
    """The model with its preprocessing as one ONNX file, kept only if onnxruntime matches trainwell to 1e-5."""
    from trainwell.run import load   # lazy: torch
    imports_done()
    try:
        result = load(run_dir, trust_module=trust_module).export(fmt, out_file, data, encoder)
    except UserError as exc:
        fail(exc)
        return
    out.print(f"wrote {result['path']} and {result['description']}: checked on {result['rows']} held-out rows, "
              f"largest difference {result['largest_difference']:.2g} (allowed {result['tolerance']:g})")


def encode(
    run_dir: Path = typer.Argument(..., help="An autoencoder run directory (model.type=autoencoder)."),
    data: str = typer.Argument(..., help="Inputs to encode (.csv, .parquet, .npz, IDX folder)."),
    out_file: Path = typer.Option(Path("codes.csv"), "--out", help="Where to write the codes (.csv)."),
    trust_module: TrustModule = False,
) -> None:
    """Bottleneck codes of an autoencoder for new inputs, one row per input, written as CSV."""
    import pandas as pd   # lazy: `trainwell --help` stays fast (docs/performance.md)
    from trainwell.core.io import atomic_write   # lazy: numpy
    from trainwell.data.dialect import source_dialect, to_delimited   # lazy: pandas
    from trainwell.run import load   # lazy: torch
    from trainwell.run.rundir import guard_output   # lazy: trainwell.run imports torch
    imports_done()
    try:
        guard_output(out_file, data, run_dir=run_dir)
        run = load(run_dir, trust_module=trust_module)
        X = _new_inputs(run, data, None)
        codes = run.encode(X)
        frame = pd.DataFrame(codes, columns=[f"code_{j}" for j in range(codes.shape[1])])
        out_file.parent.mkdir(parents=True, exist_ok=True)
        dialect = source_dialect(data)
        atomic_write(out_file, to_delimited(frame, dialect))
    except UserError as exc:
        fail(exc)
        return
    out.print(f"wrote {len(frame)} codes of size {codes.shape[1]} to {out_file}{_written_as(dialect)}")
