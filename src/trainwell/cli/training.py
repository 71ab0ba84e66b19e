"""``trainwell fit``, ``lr-find`` and ``tune``: the commands that train. Each imports trainwell's training
stack only when it runs, so that ``trainwell --help`` stays fast (docs/performance.md, "Start-up")."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from trainwell.cli.common import Target, TrustModule, err, fail, imports_done, out, with_target
from trainwell.core.errors import UserError

Spec = typer.Option(None, "--spec", help="Spec YAML file.")
Sets = typer.Option(None, "--set", help="Override: section.key=value (repeatable).")


def fit(
    data: Optional[str] = typer.Argument(None, help="Built-in name (digits, breast_cancer, diabetes, iris, wine, "
                                         "circles) or a path (.csv, .parquet, .npz, IDX folder). Default: digits."),
    target: Target = None,
    task: Optional[str] = typer.Option(None, "--task", help="auto|regression|binary|multiclass|multilabel"),
    spec: Optional[Path] = Spec,
    set_: Optional[List[str]] = Sets,
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
    trust_module: TrustModule = False,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (launches "
                              "torchrun; gloo on CPU, nccl on GPU). Several machines: see docs/scaling.md."),
) -> None:
    """Train a model: split, scale, MLP, early stopping; writes a run directory and report."""
    from trainwell.api import fit as fit_fn   # lazy: torch and pandas, imported by a command that trains
    from trainwell.run.rundir import next_run_dir   # lazy: trainwell.run imports torch
    from trainwell.train.distributed import in_torchrun, launch   # lazy: torch
    imports_done()
    if resume is not None:
        given = [name for name, v in (("DATA", data), ("--out", out_dir), ("--model", model), ("--target", target),
                                      ("--task", task), ("--seed", seed), ("--overwrite", overwrite)) if v]
        if given:
            fail(UserError(f"--resume continues {resume} exactly as it was started, from its spec.yaml; it takes "
                           f"no {', '.join(given)}. Run: trainwell fit --resume {resume} -- or start a new run "
                           f"without --resume to change the data or settings."))
    data = data or "digits"
    if nproc > 1 and not in_torchrun():          # relaunch as N torchrun workers; rank 0 writes out_dir
        folder = None if (out_dir is not None or resume is not None) else next_run_dir(Path(data).stem)
        raise typer.Exit(code=launch(sys.argv[1:], nproc, folder))
    sets = with_target(list(set_ or []), target)
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
        fail(exc)
    except KeyboardInterrupt as exc:   # SIGINT/SIGTERM: a checkpoint was saved; say how to resume
        err.print(str(getattr(exc, "message", "")) or "interrupted")
        raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None


def lr_find(
    data: str = typer.Argument("digits", help="Built-in name or a path, as for `fit`."),
    target: Target = None,
    spec: Optional[Path] = Spec,
    set_: Optional[List[str]] = Sets,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for lr_find.png/.csv/.json "
                                                                 "(default: runs/NAME-lr-find, then -2, ...)."),
    steps: int = typer.Option(200, "--steps", help="Steps from 1e-7 to 10."),
) -> None:
    """LR range test (Smith 2017): grow the lr geometrically, plot loss vs lr, suggest an lr."""
    from trainwell.diagnose.lr_finder import fit_commands, lr_find as finder   # lazy: torch
    from trainwell.run.rundir import next_run_dir   # lazy: trainwell.run imports torch
    imports_done()
    sets = with_target(list(set_ or []), target)
    try:
        folder = out_dir or next_run_dir(f"{Path(data).stem}-lr-find")
        result = finder(data, spec=spec, sets=sets, out=folder, steps=steps)
    except UserError as exc:
        fail(exc)
        return
    for line in fit_commands(data, spec, sets, result):
        out.print(line, soft_wrap=True, markup=False)


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
    target: Target = None,
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
    from trainwell.tune import tune as tune_fn   # lazy: optuna, torch and pandas
    imports_done()
    sets = with_target(list(set_ or []), target)
    try:
        tune_fn(data, spec=spec, space=space, trials=trials, sampler=sampler, pruner=pruner, storage=storage,
                study=study, workers=workers, objective=objective, sets=sets, out=out_dir, seed=seed,
                heartbeat=heartbeat, threads=threads, population=population, continue_study=continue_study)
    except UserError as exc:
        fail(exc)
