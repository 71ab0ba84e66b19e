"""``trainwell.fit``: data in, a well-trained model, its scores, curves and run directory out.

Reads top to bottom like the data path (docs/architecture.md): the spec, the assembly (build.py: source ->
split -> scale -> tensors on the device -> model), the loop with its checkpoints, the metrics, the run
directory. Each decision is printed in one line with its reason.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape

from trainwell.build import Assembly, assemble, spec_for
from trainwell.data.validation import join_validation
from trainwell.data.weights import with_weight_column
from trainwell.deep_ensemble import fit_ensemble_run
from trainwell.diagnose.report_cli import doctor_lines
from trainwell.diagnose.session import attach, diagnose_failure, make_callbacks
from trainwell.core.errors import UserError
from trainwell.nn.crossfit import pools_test_rows, without_folds
from trainwell.nn.custom import copy_module, module_spec
from trainwell.nn.models import count_parameters
from trainwell.nn.topologies import topology_defaults
from trainwell.report.write import write_run_directory
from trainwell.run import Run
from trainwell.run.resume import make_checkpointer, resume_spec, trust_resumed_module
from trainwell.run.rundir import claims_run_dir, next_run_dir
from trainwell.core.spec import Spec
from trainwell.track.mlflow import tracker_for
from trainwell.train.calibration import calibrate_run
from trainwell.train.crossfit import learned_rows
from trainwell.train.smearing import smear_run
from trainwell.train.distributed import Distributed
from trainwell.train.population_resume import saved_members
from trainwell.train.progress import epoch_log, fit_console, note, step_note, summary_table
from trainwell.train.scoring import split_metrics
from trainwell.train.threads import threads_for


@claims_run_dir        # out/resume: refused if it holds a run (unless overwrite=True), locked while training
def fit(data: str | dict | None = None, X: Any = None, y: Any = None, spec: Spec | dict | str | None = None,
        *, sets: list[str] | None = None, out: str | Path | None = None, save: bool = True,
        verbose: bool = True, callbacks: list | None = None, resume: str | Path | None = None,
        module: Any = None, module_kwargs: dict | None = None, ensemble: int = 1, overwrite: bool = False,
        trust_module: bool = False, class_weight: Any = None, sample_weight: Any = None,
        validation_data: Any = None, **overrides: Any) -> Run:
    """Train a model well and return the Run.

    ``data`` is a built-in name or a path (or a dict: the whole ``data`` section);
    or pass arrays as ``X``/``y``.
    ``spec`` is a Spec, dict or YAML path; keyword sections (``model={...}``,
    ``optim={...}``, ``task="binary"``, ...) and ``sets=["a.b=value"]`` override it.
    ``resume=RUN_DIR`` continues a stopped run from its spec.yaml and newest good checkpoint.
    ``module=`` trains your own ``torch.nn.Module`` (an instance, a class, or "file.py:ClassName";
    ``module_kwargs=`` are its constructor arguments, saved so ``load`` can rebuild it).
    ``ensemble=P`` trains a deep ensemble of P networks (seeds seed..seed+P-1) as one batched
    population; ``Run.predict`` averages the members' probabilities.
    ``out`` that already holds a run is refused unless ``overwrite=True``, which replaces it only once
    the new run has finished (docs/checkpoints.md); ``trust_module=True`` lets ``resume`` run the
    custom module copied into the run directory.
    ``class_weight`` ("balanced" or {class: weight}) weights the loss by class (data.class_weight);
    ``sample_weight`` (one weight per row of X) resamples rows in proportion (data.weight);
    ``validation_data=(X_val, y_val)`` (or a DataFrame with the target column) is the validation split.
    """
    data, X, y = arrays_first(data, X, y)
    if resume is not None:   # the saved spec, the same folder; arrays-trained runs pass X, y again
        spec, ensemble = resumed(resume, data, spec, sets, overrides, ensemble, trust_module)
        out, data, sets = resume, None, None
    topo_notes: list[str] = []
    spec = spec_for(data, spec, sets, overrides, notes=topo_notes)
    spec, X, y, val_rows = given_rows(spec, X, y, class_weight, sample_weight, validation_data, ensemble)
    if ensemble > 1:   # P members as one batched computation (train/population.py)
        return fit_ensemble_run(spec, ensemble, X, y, out=out, save=save, verbose=verbose, resume=resume is not None)
    if module is not None:
        spec = module_spec(spec, module, module_kwargs)
    spec, more = topology_defaults(spec)   # batch 128 for conv/recurrent nets, rnn clipping
    console = fit_console(verbose)
    dist = Distributed.from_env(spec)      # torchrun ranks: DDP; only rank 0 writes
    if dist.rank != 0:
        console, verbose = Console(quiet=True), False
    built = assemble(spec, X, y, val_rows=val_rows, module=module, dist=dist, notes=topo_notes + more)
    spec, state, prep, arch = built.spec, built.state, built.prep, built.arch
    announce(console, built)
    writes = save and dist.rank == 0
    run_dir = dist.same_path(Path(out) if out is not None else
                             next_run_dir(prep.name) if writes else Path("runs") / prep.name)
    if writes and arch.get("type") == "custom":   # module.py + its sha256, before any checkpoint
        copy_module(arch, run_dir)
    monitor, doctor_callbacks = make_callbacks(spec)      # babysitting monitors (+ TensorBoard)
    tracker = tracker_for(spec, prep.name) if dist.rank == 0 else None   # track.mlflow (track/mlflow.py)
    callbacks = [*(callbacks or []), *doctor_callbacks, *([tracker] if tracker else [])]
    ckpt = dist.checkpointer(make_checkpointer, state, run_dir if save else None, arch, prep.pre, console,
                             resume=resume is not None)   # saves, resumes, signals, NaN rollback
    t0 = time.perf_counter()
    with threads_for(state.model, state.batch_size, built.device):   # small nets: one thread (train/threads.py)
        if verbose and spec.train.progress:
            with epoch_log(console, spec.train.epochs, state.head.metric) as bar:
                ckpt.train(state, callbacks, on_epoch=bar)
        else:
            ckpt.train(state, callbacks)
    seconds = time.perf_counter() - t0
    run = Run(state.model, arch, prep.pre, spec, pd.DataFrame(state.history), directory=None)
    run.seen_rows = learned_rows(prep, arch)
    sample = without_folds(state.model, state.data.X_test if state.data.X_test.shape[0] else state.data.X_val)
    run.sample_inputs = sample[:8].cpu()
    if state.stopped_because == "nan":
        raise_diverged(run, built, monitor, tracker, run_dir if save else None)
    score(run, built, monitor, seconds, console)
    if writes:
        write_run_directory(run, run_dir, state.stopper.best_epoch)
    if tracker:
        tracker.finish(run, run_dir if save else None)
    if verbose:
        print_summary(console, run, run_dir if save else None, writes)
    dist.finish()
    return run


def arrays_first(data: Any, X: Any, y: Any) -> tuple[Any, Any, Any]:
    """``fit(X, y)`` as scikit-learn users write it: arrays or a DataFrame in the first two places are the
    features and the targets (the first place is otherwise the data's name or path)."""
    if data is None or isinstance(data, (str, Path, dict)):
        return data, X, y
    if X is None or y is not None:
        raise UserError("fit's first argument is a data name or path, or the features X followed by the targets y: "
                        "call tw.fit(X, y) or tw.fit(X=X, y=y).")
    return None, data, X


def resumed(resume: str | Path, data: Any, spec: Any, sets: list[str] | None, overrides: dict, ensemble: int,
            trust_module: bool) -> tuple[Spec, int]:
    """``fit(resume=RUN_DIR)``: the run's saved spec and member count; its custom module only if trusted."""
    spec = resume_spec(resume, data, spec, sets, overrides)
    ensemble = saved_members(resume, ensemble)     # a fit(ensemble=P) run: P from its directory
    if spec.model.type == "custom":     # its copy in the run directory, checked, only if trusted
        trust_resumed_module(resume, trust_module)
    return spec, ensemble


def given_rows(spec: Spec, X: Any, y: Any, class_weight: Any, sample_weight: Any, validation_data: Any,
               ensemble: int) -> tuple[Spec, Any, Any, Any]:
    """fit's class_weight, sample_weight and validation_data: into the spec (data.class_weight, data.weight)
    and the rows (validation rows appended and marked, data/validation.py; weights as a column)."""
    if ensemble > 1 and (class_weight is not None or validation_data is not None):
        raise UserError("fit(ensemble=P) takes neither class_weight nor validation_data yet. Train one network "
                        "(ensemble=1), or use model.ensemble (packed members) with them.")
    if class_weight is not None:
        given = class_weight if isinstance(class_weight, str) else {str(k): v for k, v in dict(class_weight).items()}
        spec = Spec.build(spec, data={"class_weight": given})
    val_rows = None
    if validation_data is not None:
        X, y, val_rows = join_validation(X, y, validation_data, spec.data.target)
    if sample_weight is not None:
        if X is None:
            raise UserError("sample_weight= goes with X and y; for a file, name its weight column with data.weight.")
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if val_rows is not None and len(w) == len(X) - len(val_rows):
            w = np.concatenate([w, np.ones(len(val_rows))])          # validation rows weigh 1
        X, column = with_weight_column(X, w)
        spec = Spec.build(spec, data={"weight": column})
    return spec, X, y, val_rows


def announce(console: Console, built: Assembly) -> None:
    """The assembly's decisions, the model in one line, and how each step runs."""
    spec, state, arch = built.spec, built.state, built.arch
    for text in built.notes:      # plain text: a column named "[x]" or a hint "data.categorical=[a]" is not markup
        note(console, escape(text))
    note(console, "model: " + (arch.get("summary") or
                  f"{arch['n_inputs']}-{'-'.join(map(str, arch['hidden']))}-{arch['n_outputs']}")
                  + f" {arch['activation']}, {count_parameters(state.model):,} parameters, on {built.device.type};"
                  f" {spec.optim.name} lr {spec.optim.lr:g}, batch {state.batch_size}"
                  f" ({state.steps_per_epoch} steps/epoch)")
    note(console, step_note(state))


def raise_diverged(run: Run, built: Assembly, monitor: Any, tracker: Any, run_dir: Path | None) -> None:
    """The loss became NaN or inf: the doctor's diagnosis (written to diagnosis.json), then a UserError."""
    state, spec = built.state, built.spec
    if tracker:
        tracker.fail()
    diagnosis = diagnose_failure(run, state, built.prep, monitor, run_dir)
    titles = "; ".join(f["title"] for f in diagnosis["findings"])
    raise UserError(
        (state.ctx.nan_diagnosis or   # checkpoint replay: step, layer, causes, what is kept
         f"Training diverged: the loss became NaN or inf in epoch {state.ctx.nan_epoch}. "
         f"Likely causes: a learning rate too high (optim.lr={spec.optim.lr:g}; try 10x lower), "
         f"exploding gradients (set regularize.clip_norm=1.0), or extreme input values.")
        + (f" Diagnosis: {titles}" if titles else "")
        + (f" (written to {run_dir / 'diagnosis.json'})." if run_dir is not None else "")
    )


def score(run: Run, built: Assembly, monitor: Any, seconds: float, console: Console) -> None:
    """run.metrics (each split, the calibration) and run.diagnosis (the doctor's findings)."""
    state, prep, spec = built.state, built.prep, built.spec
    best = state.stopper.best_epoch
    with threads_for(state.model, state.batch_size, built.device):   # scoring a small net: one thread, as in training
        streaming = getattr(prep, "streaming", False)
        cal_note, cal = (None, None) if streaming else calibrate_run(run, state.data, spec.train.calibrate)
        smear_note = None if streaming else smear_run(run, state.data, spec.data.smearing)
        run.metrics = {"task": prep.pre.task, "best_epoch": best, "epochs_run": state.epoch,
                       "stopped_because": state.stopped_because, "seconds": seconds,
                       **split_metrics(run, prep, state), **({"calibration": cal} if cal else {}),
                       **({"leakage": prep.leakage} if getattr(prep, "leakage", None) else {})}
        attach(run, state, prep, monitor)                      # run.diagnosis: the doctor's findings
    for line in (cal_note, smear_note):
        if line:
            console.print(f"[dim]·[/dim] {line}")
    restored = f"; restored epoch {best}" if spec.stop.restore_best and best > 0 else ""
    note(console, f"stopped at epoch {state.epoch}: {state.stopped_because}{restored} ({seconds:.1f} s)")


def print_summary(console: Console, run: Run, run_dir: Path | None, wrote: bool) -> None:
    """The scores table, the doctor's lines and where the run directory is."""
    console.print(summary_table(run.metrics))
    if pools_test_rows(run.arch):
        note(console, "val and test: each row scored by the one member that did not train on it; predict averages "
                      "all members, which usually scores a little higher (docs/tabular.md#the-test-rows-in-the-folds)")
    head, *problems = doctor_lines(run.diagnosis, run_dir)
    note(console, head)
    for line in problems:
        note(console, line, bullet=" ")
    if wrote:
        note(console, f"run directory: {run_dir}; report: {run_dir / 'report.html'}")
