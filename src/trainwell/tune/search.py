"""``trainwell.tune``: hyperparameter search with optuna, on one machine or many.

Each trial is a full trainwell run (its own run directory ``trial-NNNN/`` under
the study directory) with early stopping. Validation scores are reported every
epoch to the pruner; the objective is a validation metric, never the test split.
The best trial's test metrics are reported once at the end.

Workers share one study through an optuna RDB storage: an SQLite file in the
study directory by default, or any RDB URL (PostgreSQL) to scale out to many
machines. Heartbeats mark a killed worker's trial failed and a retry callback
re-queues it, so the study still finishes its trials.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainwell.errors import UserError, check_range, choose
from trainwell.spec import Spec
from trainwell.tune.space import Space, apply_values, parse_space
from trainwell.tune.study_check import record, refuse_changed_study, tie_warning

SAMPLERS = ("grid", "random", "tpe", "cmaes", "nsga2")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = ("auto", "val_loss", "val_accuracy", "val_r2")
CONFIG_FILE = "tune.json"


# -- optuna plumbing --------------------------------------------------------------
def _optuna():
    import optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def make_storage(url: str, heartbeat: int | None = 10, grace: int | None = None, max_retry: int = 3):
    """An RDBStorage with heartbeats and a retry-on-stale-trial callback (``memory``: optuna's
    in-memory storage, one per process: no study file, nothing to resume, one worker)."""
    if url == "memory":
        optuna = _optuna()
        return _MEMORY.setdefault(url, optuna.storages.InMemoryStorage())
    optuna = _optuna()
    from optuna import storages
    url = _driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    retry_cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {"heartbeat_interval": int(heartbeat), "grace_period": int(grace) if grace else None}
    try:
        try:
            return storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs,
                                       **({"heartbeat_stale_trial_callback": retry_cls(max_retry=max_retry)}
                                          if heartbeat else {}))
        except TypeError:   # optuna < 4.9 names it failed_trial_callback
            return storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs,
                                       **({"failed_trial_callback": retry_cls(max_retry=max_retry)}
                                          if heartbeat else {}))
    except ImportError as exc:
        raise UserError(f"Cannot open the study storage {_redact(url)}: {exc}. For PostgreSQL install "
                        f"psycopg2-binary (pip install psycopg2-binary).") from None
    except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError ...
        if isinstance(exc, optuna.exceptions.OptunaError) or type(exc).__module__.startswith("sqlalchemy"):
            raise UserError(f"Cannot open the study storage {_redact(url)}: {str(exc).splitlines()[0]}. "
                            f"Check the --storage URL (e.g. postgresql://user:password@host:5432/db or "
                            f"sqlite:///path/study.db) and that the server is running.") from None
        raise


_MEMORY: dict = {}


def _driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util
        rest = url.split("://", 1)[1]
        for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{dialect}://{rest}"
    return url


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


def make_sampler(name: str, space: Space, seed: int, *, trials: int, workers: int):
    optuna = _optuna()
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
    optuna = _optuna()
    p = optuna.pruners
    if name == "median":
        return p.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    return p.NopPruner()


def _direction(objective: str) -> str:
    return "minimize" if objective == "val_loss" else "maximize"


def _consumed(trials: list) -> list:
    """Trials that use up the budget: all but stale trials already retried and over-budget skips."""
    from optuna.trial import TrialState
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", []))
    return [t for t in trials
            if t.state != TrialState.FAIL or (t.number not in retried and "skipped" not in t.user_attrs)]


class _SkipTrial(Exception):
    """A trial created past the budget by a concurrent worker: marked failed, not run."""


class _Report:
    """Callback: report the validation score each epoch; stop the run when the pruner says so."""

    def __init__(self, trial: Any, objective: str, prune: bool, pruner: str):
        self.trial, self.objective, self.prune, self.pruner = trial, objective, prune, pruner
        self.key = "val_loss"
        self.pruned = self.diverged = False
        self.history: list[dict] = []

    def on_train_begin(self, state) -> None:
        metric = state.head.metric
        if self.objective == "auto":
            self.key = f"val_{metric}"
        elif self.objective != "val_loss" and self.objective != f"val_{metric}":
            raise UserError(f'--objective {self.objective} is not tracked for a {state.head.task} task; '
                            f"use auto, val_loss or val_{metric}.")
        else:
            self.key = self.objective

    def on_epoch_end(self, state) -> None:
        self.history = state.history
        value = state.history[-1].get(self.key)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), state.epoch)
        if self.prune and not state.stop and self.trial.should_prune():
            state.stop = True
            state.stopped_because = f"pruned by the {self.pruner} pruner at epoch {state.epoch}"
            self.pruned = True

    def on_train_end(self, state) -> None:
        self.history = state.history
        self.diverged = state.stopped_because == "nan"


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
        path.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, path: Path) -> "_Config":
        return cls(**json.loads(Path(path).read_text()))


class Objective:
    """One optuna trial = one trainwell run in ``<study dir>/trial-NNNN``."""

    def __init__(self, cfg: _Config, space: Space, budget: int, worker: int, X=None, y=None, say=None):
        self.cfg, self.space, self.budget, self.worker = cfg, space, budget, worker
        self.X, self.y = X, y
        self.say = say or (lambda s: None)
        self.stop_worker = False

    def __call__(self, trial: Any) -> float:
        optuna = _optuna()
        from trainwell.api import fit
        sys_attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
        fixed = "failed_trial" in sys_attrs or "fixed_params" in sys_attrs
        if not fixed:
            trials = trial.study.get_trials(deepcopy=False)
            rank = sum(1 for t in _consumed(trials) if t.number < trial.number)
            if rank >= self.budget:
                trial.set_user_attr("skipped", "over budget (created concurrently by another worker)")
                self.stop_worker = True
                raise _SkipTrial()
        values = self.space.suggest(trial)
        tree = apply_values(json.loads(json.dumps(self.cfg.base)), values)
        tree.setdefault("train", {})["progress"] = False
        run_dir = Path(self.cfg.directory) / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", run_dir.name)
        trial.set_user_attr("values", json.loads(json.dumps(values)))
        trial.set_user_attr("worker", self.worker)
        if "failed_trial" in sys_attrs:
            trial.set_user_attr("retry_of", sys_attrs["failed_trial"])
        report = _Report(trial, self.cfg.objective, self.cfg.pruner != "none", self.cfg.pruner)
        t0 = time.perf_counter()
        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        try:
            run = fit(spec=tree, X=self.X, y=self.y, save=False, verbose=False, callbacks=[report])
        except UserError as exc:
            if report.diverged:
                run_dir.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(report.history).to_csv(run_dir / "history.csv", index=False)
                trial.set_user_attr("stopped_because", "diverged (loss NaN/inf)")
                trial.set_user_attr("epochs_run", len(report.history))
                self.say(f"trial {trial.number:>4}: {shown} -> diverged at epoch {len(report.history)}; pruned")
                raise optuna.TrialPruned("diverged") from None
            trial.set_user_attr("error", str(exc))
            self.say(f"trial {trial.number:>4}: {shown} -> failed: {exc}")
            raise
        if self.cfg.trial_reports:
            from trainwell.api import write_run_directory
            write_run_directory(run, run_dir, run.metrics["best_epoch"])
        else:
            run.save(run_dir)
        m = run.metrics
        seconds = time.perf_counter() - t0
        for k in ("epochs_run", "best_epoch", "stopped_because"):
            trial.set_user_attr(k, m.get(k))
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("objective", report.key)
        if report.pruned:
            self.say(f"trial {trial.number:>4}: {shown} -> pruned at epoch {m['epochs_run']} ({seconds:.1f} s)")
            raise optuna.TrialPruned(m["stopped_because"])
        name = "loss" if report.key == "val_loss" else report.key[4:]
        value = float(m["val"][name])
        self.say(f"trial {trial.number:>4}: {shown} -> {report.key} {value:.4f} "
                 f"(epoch {m['best_epoch']}/{m['epochs_run']}, {seconds:.1f} s)")
        if not math.isfinite(value):
            raise optuna.TrialPruned("non-finite objective")
        return value


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def run_worker(cfg: _Config, worker: int = 0, X=None, y=None, verbose: bool = True, storage: Any = None) -> int:
    """Run trials of the shared study until its budget is used up; returns how many this worker ran.

    ``storage``: an open storage for ``cfg.storage`` to reuse (worker 0 in the tuning process).
    """
    optuna = _optuna()
    from optuna.trial import TrialState
    from rich.console import Console
    console = Console(quiet=not verbose, highlight=False)
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.workers > 1 else None)
    if threads:
        import torch
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
        from trainwell.tune.population import run_population_trials
        return run_population_trials(cfg, space, study, budget, X, y, say=lambda s: console.print(f"{tag}{s}"))
    objective = Objective(cfg, space, budget, worker, X, y, say=lambda s: console.print(f"{tag}{s}"))
    ran = 0
    while not objective.stop_worker:
        optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if waiting or len(_consumed(trials)) < budget:
            study.optimize(objective, n_trials=1, catch=(_SkipTrial, UserError), gc_after_trial=False)
            ran += 1
            continue
        if cfg.heartbeat and any(t.state == TrialState.RUNNING for t in trials):
            time.sleep(min(1.0, cfg.heartbeat / 2))   # others still running: wait until done, or stale
            continue
        break
    return ran


def worker_main(argv: list[str] | None = None) -> None:
    """``python -m trainwell.tune.worker CONFIG WORKER``: an extra worker process."""
    argv = argv if argv is not None else sys.argv[1:]
    cfg = _Config.load(Path(argv[0]))
    run_worker(cfg, int(argv[1]), verbose=True)


# -- results ---------------------------------------------------------------------
@dataclass
class TuneResult:
    """A finished (or resumed) study: best configuration, its test scores, all trials."""

    study: Any
    directory: Path
    space: Space
    objective: str
    direction: str
    trials: pd.DataFrame
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict = field(default_factory=dict)
    best_run_dir: Path | None = None
    test: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        if self.best_trial is None:
            return f"TuneResult(no completed trial, dir={self.directory})"
        return (f"TuneResult(best trial {self.best_trial}: {self.objective}={self.best_value:.4f}, "
                f"params={self.best_params}, dir={self.directory})")


def trials_frame(study: Any, space: Space, objective: str) -> pd.DataFrame:
    """One row per trial (over-budget skips left out), sorted by the objective, best first."""
    from optuna.trial import TrialState
    retried: dict[int, int] = {}
    for t in study.get_trials(deepcopy=False):
        for n in t.system_attrs.get("retry_history", []):
            retried.setdefault(n, t.number)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "skipped" in t.user_attrs:
            continue
        u = t.user_attrs
        values = u.get("values") or space.values(t.params)
        last = max(t.intermediate_values) if t.intermediate_values else None
        note = u.get("stopped_because", "")
        if t.state == TrialState.FAIL:
            note = (f"worker lost (no heartbeat); retried as trial {retried[t.number]}" if t.number in retried
                    else u.get("error", "failed"))
        elif u.get("retry_of") is not None:
            note = f"retry of trial {u['retry_of']}; {note}"
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     objective: t.value if t.state == TrialState.COMPLETE else None,
                     "last_reported": t.intermediate_values[last] if last is not None else None,
                     **{k: _short(v) if isinstance(v, (list, dict)) else v for k, v in values.items()},
                     "epochs": u.get("epochs_run"), "best_epoch": u.get("best_epoch"),
                     "seconds": u.get("seconds"), "worker": u.get("worker"), "run_dir": u.get("run_dir"),
                     "note": note})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}
    frame["_o"] = frame["state"].map(order).fillna(5)
    sign = 1 if _direction(objective) == "minimize" else -1
    frame["_v"] = sign * frame[objective].where(frame[objective].notna(), frame["last_reported"]).astype(float)
    frame = frame.sort_values(["_o", "_v", "trial"], na_position="last").drop(columns=["_o", "_v"])
    return frame.reset_index(drop=True)


def summarize(study: Any, space: Space, directory: Path, objective: str, verbose: bool = True) -> TuneResult:
    from rich.console import Console
    from rich.table import Table as RichTable

    from trainwell.tune.report import write_study_html
    console = Console(quiet=not verbose, highlight=False)
    if objective == "auto":   # the head's metric, known once a trial has run: val_accuracy or val_r2
        keys = [t.user_attrs["objective"] for t in study.get_trials(deepcopy=False) if "objective" in t.user_attrs]
        objective = keys[0] if keys else "value"
    frame = trials_frame(study, space, objective)
    frame.to_csv(directory / "trials.csv", index=False)
    result = TuneResult(study=study, directory=directory, space=space, objective=objective,
                        direction=_direction(objective), trials=frame)
    complete = frame[frame["state"] == "complete"] if not frame.empty else frame
    if not complete.empty:
        best = complete.iloc[0]
        result.best_trial = int(best["trial"])
        result.best_value = float(best[objective])
        t = study.get_trials(deepcopy=False)[result.best_trial]
        result.best_params = t.user_attrs.get("values") or space.values(t.params)
        result.best_run_dir = directory / t.user_attrs.get("run_dir", f"trial-{result.best_trial:04d}")
        metrics_file = result.best_run_dir / "metrics.json"
        if metrics_file.exists():
            result.test = json.loads(metrics_file.read_text()).get("test", {}) or {}
            spec_file = result.best_run_dir / "spec.yaml"
            if spec_file.exists():
                (directory / "best_spec.yaml").write_text(spec_file.read_text())
        (directory / "best.json").write_text(json.dumps(
            {"trial": result.best_trial, objective: result.best_value, "params": result.best_params,
             "run_dir": str(result.best_run_dir), "test": {k: v for k, v in result.test.items()
                                                           if isinstance(v, (int, float))}}, indent=2))
    write_study_html(study, space, frame, result, directory / "study.html")
    if verbose and not frame.empty:
        table = RichTable(title=f"trials (best first, by {objective}); all in {directory / 'trials.csv'}")
        cols = ["trial", "state", objective, *[p.path for p in space], "epochs", "seconds"]
        for c in cols:
            table.add_column(c, justify="left" if c in ("state",) else "right")
        for _, r in frame.head(15).iterrows():
            table.add_row(*[_cell(r.get(c)) for c in cols])
        console.print(table)
        counts = frame["state"].value_counts().to_dict()
        console.print("[dim]·[/dim] " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        tie = tie_warning(frame, objective)
        if tie:
            console.print(f"[yellow]warning:[/yellow] {tie}")
        if result.best_trial is not None:
            key = "r2" if "r2" in result.test else "accuracy" if "accuracy" in result.test else "loss"
            test = f"; test {key} {result.test[key]:.4f}" if key in result.test else ""
            console.print(f"[bold]best trial {result.best_trial}[/bold]: {objective} {result.best_value:.4f}{test} "
                          f"(test split evaluated once, never used for selection)")
            console.print(f"[dim]·[/dim] best spec: {directory / 'best_spec.yaml'}; report: {directory / 'study.html'}")
    return result


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# -- the public entry point -------------------------------------------------------------
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
    curves.png and report.html (slower). ``population`` = P > 1 asks P trials at a time and
    trains them as one batched computation (``trainwell.tune.population``); members that
    cannot be batched (batch norm, schedules, regularize, ...) are trained alone.
    """
    optuna = _optuna()
    choose("sampler", sampler, SAMPLERS)
    choose("pruner", pruner, PRUNERS)
    choose("objective", objective, OBJECTIVES)
    if sampler == "cmaes":
        import importlib.util
        if importlib.util.find_spec("cmaes") is None:
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
    if seed is not None:
        sets = [f"train.seed={seed}", *(sets or [])]
    from trainwell.api import load_table, spec_for
    base = spec_for(data, spec, sets, overrides)
    if X is not None:
        base = Spec.build(base, sets=["data.source=arrays"])
    parsed = parse_space(space, base, sampler)
    track = base.track
    if track.mlflow:      # one parent run per study, a child per trial, logged when it ends (track/mlflow.py)
        from trainwell.track.mlflow import check_tracking   # imported with the rest of tune's optional parts
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
    st = make_storage(url, heartbeat, grace)
    try:
        study_obj = optuna.create_study(study_name=name, storage=st, direction=_direction(objective),
                                        load_if_exists=True)
    except ValueError as exc:
        raise UserError(f"Study {name!r} in {_redact(url)} cannot be resumed: {exc}") from None
    if study_obj.direction.name.lower() != _direction(objective):
        raise UserError(f"Study {name!r} already exists with direction {study_obj.direction.name.lower()}; "
                        f"--objective {objective} needs {_direction(objective)}. Use another --study name.")
    refuse_changed_study(study_obj, cfg.space, cfg.base, name, _redact(url), force=continue_study)
    record(study_obj, cfg.space, cfg.base, objective, sampler)
    cfg.save(directory / CONFIG_FILE)          # once the study is known to be this one: the workers read it
    console = _console(verbose)
    done = len(_consumed(study_obj.get_trials(deepcopy=False)))
    console.print(f"[dim]·[/dim] study {name!r}: {sampler} sampler, {pruner} pruner, {trials} trials "
                  f"({done} already in the study), {workers} worker(s); storage {_redact(url)}; "
                  f"objective {objective if objective != 'auto' else 'validation metric (maximised)'}")
    for p in parsed:
        console.print(f"[dim]·[/dim] search {p.describe()}")
    procs = []
    for w in range(1, workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "trainwell.tune.worker",
                                       str(directory / CONFIG_FILE), str(w)],
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    try:
        run_worker(cfg, 0, X, y, verbose=verbose, storage=st)
    finally:
        for p in procs:
            p.wait()
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        console.print(f"[yellow]warning:[/yellow] {len(bad)} worker process(es) exited with {bad}; "
                      f"their trials were retried or left to a later run.")
    result = summarize(optuna.load_study(study_name=name, storage=st), parsed, directory, objective, verbose)
    if track.mlflow:
        from trainwell.track.mlflow import log_study   # imported with the rest of tune's optional parts
        log_study(track, name, directory, result.trials,
                  {"trial": result.best_trial, "value": result.best_value, "params": result.best_params},
                  [p.path for p in parsed])
    return result


def _console(verbose: bool):
    from rich.console import Console
    return Console(quiet=not verbose, highlight=False)

