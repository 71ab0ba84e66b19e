"""``trainwell.tune``: hyperparameter search with optuna, on one machine or many.

Each trial is a full trainwell run (its own run directory ``trial-NNNN/`` under
the study directory) with early stopping. Validation scores are reported every
epoch to the pruner; the objective is a validation metric, never the test split.
The best trial's test metrics are reported once at the end (tune/results.py).

Workers share one study (tune/storage.py: SQLite in the study directory, or PostgreSQL
to scale out to many machines); each trial's bookkeeping is tune/trials.py's, the same
for trials trained one at a time here and for ``--population`` (tune/population.py).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from trainwell.build import spec_for
from trainwell.core.io import atomic_write
from trainwell.data.loading import load_table
from trainwell.core.errors import UserError, check_range, choose
from trainwell.core.spec import Spec
from trainwell.tune.population import run_population_trials
from trainwell.tune.results import TuneResult, direction_of, summarize
from trainwell.tune.space import Space, parse_space
from trainwell.tune.storage import make_storage, quiet_optuna, redact
from trainwell.tune.study_check import record, refuse_changed_study
from trainwell.tune.trials import SkipTrial, consumed, fit_trial, start_trial

SAMPLERS = ("grid", "random", "tpe", "cmaes", "nsga2")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = ("auto", "val_loss", "val_accuracy", "val_r2")
CONFIG_FILE = "tune.json"


def make_sampler(name: str, space: Space, seed: int, *, trials: int, workers: int):
    optuna = quiet_optuna()
    s = optuna.samplers
    if name == "grid":
        return s.GridSampler(space.grid(), seed=seed)   # same seed in every worker: same grid order
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "tpe":
        return s.TPESampler(seed=seed, multivariate=True, constant_liar=workers > 1,
                            n_startup_trials=min(10, max(2, trials // 3)))
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False, n_startup_trials=min(5, trials // 4 + 1),
                              independent_sampler=s.RandomSampler(seed=seed))
    return s.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))


def make_pruner(name: str, max_epochs: int | str):
    optuna = quiet_optuna()
    p = optuna.pruners
    if name == "median":
        return p.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    return p.NopPruner()


@dataclass
class _Config:
    """Everything a worker process needs (written to tune.json in the study directory)."""

    base: dict
    space: dict
    study: str
    storage: str
    directory: str
    trials: int
    sampler: str
    pruner: str
    objective: str
    seed: int
    workers: int
    heartbeat: int | None
    grace: int | None
    arrays: str | None = None
    trial_reports: bool = False
    threads: int | None = None
    population: int = 1

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, path: Path) -> "_Config":
        return cls(**json.loads(Path(path).read_text()))


class Objective:
    """One optuna trial = one trainwell run in ``<study dir>/trial-NNNN`` (tune/trials.py's ``fit_trial``)."""

    def __init__(self, cfg: _Config, space: Space, budget: int, worker: int, X=None, y=None, say=None):
        self.cfg, self.space, self.budget, self.worker = cfg, space, budget, worker
        self.X, self.y = X, y
        self.say = say or (lambda s: None)
        self.stop_worker = False

    def __call__(self, trial: Any) -> float:
        sys_attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
        fixed = "failed_trial" in sys_attrs or "fixed_params" in sys_attrs
        if not fixed:
            trials = trial.study.get_trials(deepcopy=False)
            rank = sum(1 for t in consumed(trials) if t.number < trial.number)
            if rank >= self.budget:
                trial.set_user_attr("skipped", "over budget (created concurrently by another worker)")
                self.stop_worker = True
                raise SkipTrial()
        values, tree = start_trial(trial, self.space, self.cfg.base, self.worker)
        if "failed_trial" in sys_attrs:
            trial.set_user_attr("retry_of", sys_attrs["failed_trial"])
        value = fit_trial(trial, values, tree, self.cfg, self.X, self.y, say=self.say)
        if value is None:
            raise quiet_optuna().TrialPruned(trial.user_attrs.get("stopped_because", "pruned"))
        return value


def run_worker(cfg: _Config, worker: int = 0, X=None, y=None, verbose: bool = True, storage: Any = None) -> int:
    """Run trials of the shared study until its budget is used up; returns how many this worker ran.

    ``storage``: an open storage for ``cfg.storage`` to reuse (worker 0 in the tuning process).
    """
    optuna = quiet_optuna()
    console = Console(quiet=not verbose, highlight=False)
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.workers > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    if cfg.arrays and X is None:
        with np.load(cfg.arrays, allow_pickle=False) as z:
            X, y = z["X"], z["y"]
    base = Spec.from_dict(cfg.base)
    space = parse_space(cfg.space, base, cfg.sampler)
    budget = min(cfg.trials, space.grid_size()) if cfg.sampler == "grid" else cfg.trials
    storage = storage if storage is not None else make_storage(cfg.storage, cfg.heartbeat, cfg.grace)
    study = optuna.load_study(study_name=cfg.study, storage=storage)
    n0 = len(study.get_trials(deepcopy=False))
    seed = cfg.seed if cfg.sampler == "grid" else (cfg.seed * 1_000_003 + worker * 7919 + n0) % 2**31
    max_epochs: int | str = "auto" if "train.epochs" in cfg.space else base.train.epochs
    study.sampler = make_sampler(cfg.sampler, space, seed, trials=cfg.trials, workers=cfg.workers)
    study.pruner = make_pruner(cfg.pruner, max_epochs)
    tag = f"[dim]w{worker}[/dim] " if cfg.workers > 1 else ""
    if cfg.population > 1:   # P trials at a time, trained as one batched computation (tune/population.py)
        return run_population_trials(cfg, space, study, budget, X, y, say=lambda s: console.print(f"{tag}{s}"))
    objective = Objective(cfg, space, budget, worker, X, y, say=lambda s: console.print(f"{tag}{s}"))
    return _run_trials(optuna, study, objective, budget, cfg.heartbeat)


def _run_trials(optuna: Any, study: Any, objective: Objective, budget: int, heartbeat: int | None) -> int:
    """One trial at a time until the budget is used up and no other worker's trial is still running."""
    TrialState = optuna.trial.TrialState
    ran = 0
    while not objective.stop_worker:
        optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if waiting or len(consumed(trials)) < budget:
            study.optimize(objective, n_trials=1, catch=(SkipTrial, UserError), gc_after_trial=False)
            ran += 1
            continue
        if heartbeat and any(t.state == TrialState.RUNNING for t in trials):
            time.sleep(min(1.0, heartbeat / 2))   # others still running: wait until done, or stale
            continue
        break
    return ran


def worker_main(argv: list[str] | None = None) -> None:
    """``python -m trainwell.tune.worker CONFIG WORKER``: an extra worker process."""
    argv = argv if argv is not None else sys.argv[1:]
    cfg = _Config.load(Path(argv[0]))
    run_worker(cfg, int(argv[1]), verbose=True)


def _check_arguments(sampler: str, pruner: str, objective: str, trials: int, workers: int, population: int,
                     heartbeat: int | None, threads: int | None, storage: str | None) -> None:
    """Refuse settings that cannot run, each with what to do instead."""
    choose("sampler", sampler, SAMPLERS)
    choose("pruner", pruner, PRUNERS)
    choose("objective", objective, OBJECTIVES)
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise UserError("--sampler cmaes needs the cmaes package: pip install cmaes (or use tpe/nsga2).")
    if trials < 1:
        raise UserError(f"--trials must be at least 1; got {trials}.")
    if workers < 1:
        raise UserError(f"--workers must be at least 1; got {workers}.")
    if population < 1:
        raise UserError(f"--population must be at least 1; got {population}.")
    if heartbeat is not None:
        check_range("--heartbeat", heartbeat, 1, meaning="seconds between a worker's signs of life")
    if threads is not None:
        check_range("--threads", threads, 1, meaning="torch CPU threads per worker")
    if storage == "memory" and workers > 1:
        raise UserError("--storage memory keeps the study in this process; use it with --workers 1.")
    if population > 1 and workers > 1:
        raise UserError("--population trains many trials in one process; use it with --workers 1.")


def _open_study(cfg: _Config, directory: Path, continue_study: bool, verbose: bool) -> tuple[Any, Any]:
    """Create or resume the study (refused when it is another search); returns (storage, study)."""
    optuna, name, url, objective = quiet_optuna(), cfg.study, cfg.storage, cfg.objective
    st = make_storage(url, cfg.heartbeat, cfg.grace)
    try:
        study = optuna.create_study(study_name=name, storage=st, direction=direction_of(objective),
                                    load_if_exists=True)
    except ValueError as exc:
        raise UserError(f"Study {name!r} in {redact(url)} cannot be resumed: {exc}") from None
    if study.direction.name.lower() != direction_of(objective):
        raise UserError(f"Study {name!r} already exists with direction {study.direction.name.lower()}; "
                        f"--objective {objective} needs {direction_of(objective)}. Use another --study name.")
    refuse_changed_study(study, cfg.space, cfg.base, name, redact(url), force=continue_study)
    record(study, cfg.space, cfg.base, objective, cfg.sampler)
    cfg.save(directory / CONFIG_FILE)          # once the study is known to be this one: the workers read it
    done = len(consumed(study.get_trials(deepcopy=False)))
    Console(quiet=not verbose, highlight=False).print(
        f"[dim]·[/dim] study {name!r}: {cfg.sampler} sampler, {cfg.pruner} pruner, {cfg.trials} trials "
        f"({done} already in the study), {cfg.workers} worker(s); storage {redact(url)}; "
        f"objective {objective if objective != 'auto' else 'validation metric (maximised)'}")
    return st, study


def _run_workers(cfg: _Config, directory: Path, st: Any, X: Any, y: Any, console: Console) -> None:
    """This process is worker 0; ``cfg.workers - 1`` more run as processes on this machine."""
    procs = [subprocess.Popen([sys.executable, "-m", "trainwell.tune.worker", str(directory / CONFIG_FILE), str(w)],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) for w in range(1, cfg.workers)]
    try:
        run_worker(cfg, 0, X, y, verbose=not console.quiet, storage=st)
    finally:
        for p in procs:
            p.wait()
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        console.print(f"[yellow]warning:[/yellow] {len(bad)} worker process(es) exited with {bad}; "
                      f"their trials were retried or left to a later run.")


def tune(data: str | None = None, X: Any = None, y: Any = None, spec: Spec | dict | str | None = None, *,
         space: Space | dict | str | Path | None = None, trials: int = 20, sampler: str = "tpe",
         pruner: str = "none", storage: str | None = None, study: str | None = None, workers: int = 1,
         sets: list[str] | None = None, out: str | Path | None = None, seed: int | None = None,
         objective: str = "auto", heartbeat: int | None = 10, grace: int | None = None,
         threads: int | None = None, trial_reports: bool = False, verbose: bool = True, population: int = 1,
         continue_study: bool = False, **overrides: Any) -> TuneResult:
    """Search hyperparameters; every trial is a full trainwell run. Returns a TuneResult.

    ``space`` is a YAML path or dict keyed by spec paths (None: the default space, in the
    priority order of docs/practices/hyperparameter_search.md). ``trials`` is the study's
    total budget: calling again with the same study resumes it. ``storage`` is an optuna RDB
    URL (default: SQLite in the study directory); ``workers`` > 1 starts that many worker
    processes in all on this machine.
    ``threads``: torch CPU threads per worker (default: cores / workers; 1 is fastest
    for tiny models on a busy machine). ``trial_reports`` also writes each trial's
    curves.svg and report.html (slower). ``population`` = P > 1 asks P trials at a time and
    trains them as one batched computation (``trainwell.tune.population``); members that
    cannot be batched (batch norm, schedules, regularize, ...) are trained alone.
    """
    _check_arguments(sampler, pruner, objective, trials, workers, population, heartbeat, threads, storage)
    if seed is not None:
        sets = [f"train.seed={seed}", *(sets or [])]
    base = spec_for(data, spec, sets, overrides)
    if X is not None:
        base = Spec.build(base, sets=["data.source=arrays"])
    parsed = parse_space(space, base, sampler)
    track = base.track
    if track.mlflow:      # one parent run per study, a child per trial, logged when it ends (track/mlflow.py)
        from trainwell.track.mlflow import check_tracking   # lazy: mlflow is an optional dependency
        check_tracking(track)
        base = Spec.build(base, sets=["track.mlflow=null"])
    load_table(base, X, y)   # bad data fails here, once, with its own message
    name = study or Path(str(base.data.source)).stem or "study"
    directory = Path(out) if out is not None else Path("runs") / f"tune-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(directory / 'study.db').resolve()}"
    arrays = None
    if X is not None:
        arrays = str((directory / "arrays.npz").resolve())
        np.savez(arrays, X=np.asarray(X), y=np.asarray(y))
    cfg = _Config(base=base.to_dict(), space=parsed.to_dict(), study=name, storage=url,
                  directory=str(directory.resolve()), trials=int(trials), sampler=sampler, pruner=pruner,
                  objective=objective, seed=int(base.train.seed), workers=int(workers), heartbeat=heartbeat,
                  grace=grace, arrays=arrays, trial_reports=trial_reports, threads=threads,
                  population=int(population))
    st, _ = _open_study(cfg, directory, continue_study, verbose)
    console = Console(quiet=not verbose, highlight=False)
    for p in parsed:
        console.print(f"[dim]·[/dim] search {p.describe()}")
    _run_workers(cfg, directory, st, X, y, console)
    result = summarize(quiet_optuna().load_study(study_name=name, storage=st), parsed, directory, objective, verbose)
    if track.mlflow:
        from trainwell.track.mlflow import log_study   # lazy: mlflow is an optional dependency
        log_study(track, name, directory, result.trials,
                  {"trial": result.best_trial, "value": result.best_value, "params": result.best_params},
                  [p.path for p in parsed])
    return result
