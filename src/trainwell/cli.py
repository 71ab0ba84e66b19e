"""The ``trainwell`` command line (typer). Bad input exits with code 2 and one paragraph."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from trainwell.errors import UserError, shorten

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train neural networks well: the field's practices built in, explained and fast.")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version   # only for --version: the installed distribution's metadata
        out.print(f"trainwell {version('trainwell')}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print trainwell's version and exit.")) -> None:
    """Train neural networks well: the field's practices built in, explained and fast."""


MESSAGE_LIMIT = 2000     # characters of an error shown: one paragraph, whatever input it quotes


def _fail(exc: UserError) -> None:
    err.print(f"[bold red]error:[/bold red] {shorten(str(exc), MESSAGE_LIMIT)}")
    raise typer.Exit(code=2)


@app.command()
def fit(
    data: Optional[str] = typer.Argument(None, help="Built-in name (digits, breast_cancer, diabetes, iris, wine, "
                                         "circles) or a path (.csv, .parquet, .npz, IDX folder). Default: digits."),
    target: Optional[List[str]] = typer.Option(None, "--target", help="Target column(s) of a table."),
    task: Optional[str] = typer.Option(None, "--task", help="auto|regression|binary|multiclass|multilabel"),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Spec YAML file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override: section.key=value (repeatable)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/NAME, then runs/NAME-2, "
                                           "...). An existing run is refused unless --overwrite."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --out; the old one is kept "
                                   "until the new one finishes, and put back if it fails."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for every random source."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the stopped run in this folder "
                                          "from its newest good checkpoint (its own spec.yaml)."),
    model: Optional[str] = typer.Option(None, "--model", help="Train your own torch module: path/to/file.py:ClassName "
                                        "(constructor args: --set model.module_kwargs={...}); copied into the run "
                                        "directory, run again on load only with --trust-module."),
    trust_module: bool = typer.Option(False, "--trust-module", help="With --resume: run the custom module copied "
                                      "into the run directory (checked against its sha256)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (launches "
                              "torchrun; gloo on CPU, nccl on GPU). Several machines: see docs/scaling.md."),
) -> None:
    """Train a model: split, scale, MLP, early stopping; writes a run directory and report."""
    from trainwell.api import fit as fit_fn
    from trainwell.train.distributed import in_torchrun, launch
    if resume is not None:
        given = [name for name, v in (("DATA", data), ("--out", out_dir), ("--model", model), ("--target", target),
                                      ("--task", task), ("--seed", seed), ("--overwrite", overwrite)) if v]
        if given:
            _fail(UserError(f"--resume continues {resume} exactly as it was started, from its spec.yaml; it takes "
                            f"no {', '.join(given)}. Run: trainwell fit --resume {resume} -- or start a new run "
                            f"without --resume to change the data or settings."))
    data = data or "digits"
    if nproc > 1 and not in_torchrun():          # relaunch as N torchrun workers; rank 0 writes out_dir
        from trainwell.run.rundir import next_run_dir
        folder = None if (out_dir is not None or resume is not None) else next_run_dir(Path(data).stem)
        raise typer.Exit(code=launch(sys.argv[1:], nproc, folder))
    sets = list(set_ or [])
    if target:
        sets.insert(0, f"data.target={target[0] if len(target) == 1 else list(target)}")
    if task:
        sets.insert(0, f"task={task}")
    if seed is not None:
        sets.insert(0, f"train.seed={seed}")
    try:
        if resume is not None:
            fit_fn(None, spec=spec, sets=sets or None, resume=resume, trust_module=trust_module)
        else:
            fit_fn(data, spec=spec, sets=sets, out=out_dir, module=model, overwrite=overwrite)
    except UserError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:   # SIGINT/SIGTERM: a checkpoint was saved; say how to resume
        err.print(str(getattr(exc, "message", "")) or "interrupted")
        raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit`."),
    data: Optional[str] = typer.Argument(None, help="Data to score (default: the run's own test split)."),
    target: Optional[List[str]] = typer.Option(None, "--target"),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Score a saved point instead of the "
                                             "final model: best, last, epoch-N or step-N."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """Scores of a trained model on its test split, or on new labelled data."""
    from trainwell.data.sources import load_source
    from trainwell.run import load
    try:
        run = load(run_dir, checkpoint=checkpoint, trust_module=trust_module)
        if data is None and checkpoint is not None:
            from trainwell.run.loading import score_test_split
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
            scores = run.evaluate(X, y)
            source = data
    except UserError as exc:
        _fail(exc)
        return
    out.print(f"scores on {source}:")
    for key, value in scores.items():
        if isinstance(value, (int, float)):
            out.print(f"  {key:<12} {value:.4f}")


def _new_inputs(run, data: str, target):
    """New data's features encoded as in training: its columns, text categories and imputation."""
    from trainwell.data.sources import load_features
    return load_features(data, run.pre.feature_names, target, onehot=run.pre.onehot,
                         allow_missing=run.pre.impute is not None)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit` (with --onnx: the data)."),
    data: Optional[str] = typer.Argument(None, help="Features to predict (.csv, .parquet, .npz, IDX folder)."),
    out_file: Path = typer.Option(Path("predictions.csv"), "--out", help="Where to write predictions (.csv)."),
    proba: bool = typer.Option(False, "--proba", help="Also write class probabilities."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Predict with a file written by `trainwell export` "
                                        "through onnxruntime: trainwell predict --onnx model.onnx data.csv"),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """Decoded predictions (original labels / units) for new data, written as CSV."""
    if onnx is not None or data is None:
        return _predict_exported(onnx, data or str(run_dir), out_file, proba)
    import numpy as np    # imported on use: `trainwell --help` stays fast (docs/performance.md)
    import pandas as pd   # imported on use: `trainwell --help` stays fast
    from trainwell.core.io import atomic_write
    from trainwell.run.rundir import guard_output
    from trainwell.run import load
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
        atomic_write(out_file, frame.to_csv(index=False))
    except UserError as exc:
        _fail(exc)
        return
    out.print(f"wrote {len(frame)} predictions to {out_file}")


def _predict_exported(model: Optional[Path], data: str, out_file: Path, proba: bool) -> None:
    """``predict --onnx FILE DATA``: the exported graph and its JSON description, no run directory."""
    import pandas as pd   # imported on use: `trainwell --help` stays fast
    try:
        if model is None:
            raise UserError("predict needs a run directory and the data (trainwell predict runs/iris new.csv), "
                            "or an exported model: trainwell predict --onnx model.onnx new.csv.")
        from trainwell.export import Session   # onnxruntime loads only here
        from trainwell.export.runtime import decode
        from trainwell.run.rundir import guard_output
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
        from trainwell.core.io import atomic_write
        atomic_write(out_file, frame.to_csv(index=False))
    except UserError as exc:
        _fail(exc)
        return
    out.print(f"wrote {len(frame)} predictions to {out_file} (onnxruntime, {model})")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit`."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (onnxruntime, any language) or torch-export "
                            "(a torch.export .pt2 archive, for graphs ONNX cannot express)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Where to write it (default: RUN/model.onnx); "
                                            "its description goes beside it as FILE.json."),
    data: Optional[str] = typer.Option(None, "--data", help="Rows to check the export on (default: the run's "
                                       "held-out test rows, reloaded from its data)."),
    encoder: bool = typer.Option(False, "--encoder", help="An autoencoder's encoder (the default for autoencoders)."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """The model with its preprocessing as one ONNX file, kept only if onnxruntime matches trainwell to 1e-5."""
    from trainwell.run import load
    try:
        result = load(run_dir, trust_module=trust_module).export(fmt, out_file, data, encoder)
    except UserError as exc:
        _fail(exc)
        return
    out.print(f"wrote {result['path']} and {result['description']}: checked on {result['rows']} held-out rows, "
              f"largest difference {result['largest_difference']:.2g} (allowed {result['tolerance']:g})")


@app.command()
def encode(
    run_dir: Path = typer.Argument(..., help="An autoencoder run directory (model.type=autoencoder)."),
    data: str = typer.Argument(..., help="Inputs to encode (.csv, .parquet, .npz, IDX folder)."),
    out_file: Path = typer.Option(Path("codes.csv"), "--out", help="Where to write the codes (.csv)."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """Bottleneck codes of an autoencoder for new inputs, one row per input, written as CSV."""
    import pandas as pd   # imported on use: `trainwell --help` stays fast (docs/performance.md)
    from trainwell.core.io import atomic_write
    from trainwell.run.rundir import guard_output
    from trainwell.run import load
    try:
        guard_output(out_file, data, run_dir=run_dir)
        run = load(run_dir, trust_module=trust_module)
        X = _new_inputs(run, data, None)
        codes = run.encode(X)
        frame = pd.DataFrame(codes, columns=[f"code_{j}" for j in range(codes.shape[1])])
        out_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_file, frame.to_csv(index=False))
    except UserError as exc:
        _fail(exc)
        return
    out.print(f"wrote {len(frame)} codes of size {codes.shape[1]} to {out_file}")


@app.command()
def summary(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit`."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """Per-layer summary of a trained model: each layer's output shape and parameter count."""
    from rich.table import Table

    from trainwell.nn.summary import layer_rows
    from trainwell.run import load
    try:
        run = load(run_dir, trust_module=trust_module)
        rows = layer_rows(run.model, run.arch.get("input_shape") or [run.arch["n_inputs"]])
    except UserError as exc:
        _fail(exc)
        return
    members = run.arch.get("members", 1)
    table = Table(title=f"{run_dir}: {run.arch.get('type', 'mlp')}" + (f", {members} packed members" if members > 1
                                                                          else ""), title_justify="left")
    for column, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for r in rows:
        table.add_row(r["name"], r["type"], str(r["output"]).replace("'", ""), f"{r['parameters']:,}")
    out.print(table)
    out.print(f"{sum(r['parameters'] for r in rows):,} parameters in all")


@app.command("list")
def list_catalogue() -> None:
    """Print the catalogue: every activation, initializer, optimizer, schedule, regularizer."""
    from rich.table import Table

    from trainwell.catalogue import catalogue
    for area, entries in catalogue().items():
        table = Table(title=area, show_header=True, title_justify="left")
        table.add_column("spec name")
        table.add_column("description")
        for name, text in entries.items():
            table.add_row(name, text)
        out.print(table)


@app.command()
def diagnose(
    target: str = typer.Argument(..., help="A run directory; with --overfit-check: the data (built-in name or path)."),
    bayes_error: float = typer.Option(0.0, "--bayes-error", help="Bayes (e.g. human) error as a fraction, for "
                                      "the bias/variance verdict (docs/practices/bias_variance.md)."),
    overfit_check: bool = typer.Option(False, "--overfit-check",
                                       help="Can the model overfit a small batch? (Bengio 2012)"),
    n: int = typer.Option(32, "--n", min=1, help="Samples for --overfit-check."),
    steps: int = typer.Option(300, "--steps", min=1, help="Full-batch steps for --overfit-check."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override for --overfit-check: section.key=value."),
    save: bool = typer.Option(False, "--save", help="Rewrite diagnosis.json (and report.html) of the run."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """The doctor: findings with evidence and remedies (or --overfit-check on data)."""
    from trainwell.diagnose.report_cli import print_diagnosis, print_overfit
    try:
        if overfit_check:
            from trainwell.diagnose.overfit import overfit_check as check
            print_overfit(out, check(target, sets=list(set_ or []), n=n, steps=steps))
            return
        from trainwell.diagnose import diagnose as doctor
        from trainwell.run import load
        run = load(Path(target), trust_module=trust_module)
        result = doctor(run, bayes_error=bayes_error)
        print_diagnosis(out, result, Path(target))
        if save:
            from trainwell.diagnose.session import write_files
            from trainwell.report.html import write_report
            run.diagnosis = result
            write_files(run, Path(target))
            run.seal(Path(target))          # model.json lists the new diagnosis files' checksums
            write_report(run, Path(target))
    except UserError as exc:
        _fail(exc)


@app.command("lr-find")
def lr_find(
    data: str = typer.Argument("digits", help="Built-in name or a path, as for `fit`."),
    target: Optional[List[str]] = typer.Option(None, "--target", help="Target column(s) of a table."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Spec YAML file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override: section.key=value (repeatable)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for lr_find.png/.csv/.json "
                                                                 "(default: runs/NAME-lr-find, then -2, ...)."),
    steps: int = typer.Option(200, "--steps", help="Steps from 1e-7 to 10."),
) -> None:
    """LR range test (Smith 2017): grow the lr geometrically, plot loss vs lr, suggest an lr."""
    from trainwell.run.rundir import next_run_dir
    from trainwell.diagnose.lr_finder import lr_find as finder
    sets = list(set_ or [])
    if target:
        sets.insert(0, f"data.target={target[0] if len(target) == 1 else list(target)}")
    try:
        folder = out_dir or next_run_dir(f"{Path(data).stem}-lr-find")
        result = finder(data, spec=spec, sets=sets, out=folder, steps=steps)
    except UserError as exc:
        _fail(exc)
        return
    from trainwell.diagnose.lr_finder import fit_commands
    for line in fit_commands(data, spec, sets, result):
        out.print(line, soft_wrap=True, markup=False)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    trust_module: bool = typer.Option(False, "--trust-module", help="Run the custom module copied into the run "
                                      "directory (checked against its sha256); without it such a run is refused."),
) -> None:
    """Regenerate report.html of a run directory."""
    from trainwell.report.html import write_report
    from trainwell.run import load
    try:
        run = load(run_dir, trust_module=trust_module)
    except UserError as exc:
        _fail(exc)
        return
    path = write_report(run, run_dir)
    out.print(f"wrote {path}")


@app.command()
def tune(
    data: str = typer.Argument("digits", help="Built-in name or a path, as for `trainwell fit`."),
    space: Optional[Path] = typer.Option(None, "--space", help="Search space YAML keyed by spec paths "
                                         "(default: lr, momentum/beta1, batch size, units, layers)."),
    trials: int = typer.Option(20, "--trials", help="Total trials in the study (a rerun resumes up to this)."),
    sampler: str = typer.Option("tpe", "--sampler", help="grid|random|tpe|cmaes|nsga2"),
    pruner: str = typer.Option("none", "--pruner", help="none|median|hyperband"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna RDB URL, e.g. postgresql://u:p@host/db "
                                          "(default: SQLite file in the study directory)."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the data name)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine sharing the study."),
    objective: str = typer.Option("auto", "--objective", help="auto (val accuracy / val r2, maximised)|val_loss"),
    target: Optional[List[str]] = typer.Option(None, "--target", help="Target column(s) of a table."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Base spec YAML file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override of the base spec: section.key=value."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Study directory (default: runs/tune-STUDY)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sampler and of every trial."),
    heartbeat: int = typer.Option(10, "--heartbeat", help="Seconds between worker heartbeats; a trial silent for "
                                  "twice this is marked failed and retried."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per worker "
                                          "(default: cores / workers)."),
    population: int = typer.Option(1, "--population", help="Train this many trials at once as one batched "
                                   "computation (random/grid search; same results as one at a time)."),
    continue_study: bool = typer.Option(False, "--continue-study", help="Add trials to an existing study even if "
                                        "its search space or base spec changed (old and new trials ranked together)."),
) -> None:
    """Hyperparameter search (grid, random, TPE, CMA-ES, NSGA-II; median/Hyperband pruning), one machine or many."""
    from trainwell.tune import tune as tune_fn
    sets = list(set_ or [])
    if target:
        sets.insert(0, f"data.target={target[0] if len(target) == 1 else list(target)}")
    try:
        tune_fn(data, spec=spec, space=space, trials=trials, sampler=sampler, pruner=pruner, storage=storage,
                study=study, workers=workers, objective=objective, sets=sets, out=out_dir, seed=seed,
                heartbeat=heartbeat, threads=threads, population=population, continue_study=continue_study)
    except UserError as exc:
        _fail(exc)


def main() -> None:
    """Console-script entry point: typer's usage errors already exit with 2."""
    try:
        app()
    except UserError as exc:  # raised outside a command body
        err.print(f"[bold red]error:[/bold red] {shorten(str(exc), MESSAGE_LIMIT)}")
        sys.exit(2)
    except OSError as exc:    # a path the system refuses (too long, a folder, no permission): the user's to fix
        where = f" {escape(shorten(str(exc.filename), 200))}:" if exc.filename else ""
        err.print(f"[bold red]error:[/bold red]{where} {exc.strerror or exc}. Check the path and its permissions.")
        sys.exit(2)


if __name__ == "__main__":
    main()
