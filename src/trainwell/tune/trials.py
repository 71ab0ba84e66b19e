"""One trial's bookkeeping, the same whether a search trains its trials one at a time or as populations.

A trial is a trainwell run in ``<study dir>/trial-NNNN``: :func:`start_trial` draws its values and records
what it is, :func:`record_trial` writes its run directory and what it gave (epochs, stop reason, seconds,
the objective), and :func:`fit_trial` trains one alone with ``trainwell.fit`` and records it. The
sequential search (tune/search.py) and the population search (tune/population.py) both go through them,
so a trial's attributes and run directory do not depend on how it was trained.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from trainwell.api import fit
from trainwell.core.io import atomic_write
from trainwell.core.errors import UserError
from trainwell.report.write import write_run_directory
from trainwell.run import Run
from trainwell.tune.space import Space, apply_values


def consumed(trials: list) -> list:
    """Trials that use up the budget: all but stale trials already retried and over-budget skips."""
    from optuna.trial import TrialState   # lazy: optuna costs about a second to import
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", []))
    return [t for t in trials
            if t.state != TrialState.FAIL or (t.number not in retried and "skipped" not in t.user_attrs)]


class SkipTrial(Exception):
    """A trial created past the budget by a concurrent worker: marked failed, not run."""


def short(v: Any) -> str:
    """A trial's value as a table cell or log line shows it."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def objective_key(objective: str, metric: str) -> str:
    """The history column a search optimises: ``auto`` is the task's validation metric."""
    return f"val_{metric}" if objective == "auto" else objective


class TrialReport:
    """Callback: report the validation score each epoch; stop the run when the pruner says so."""

    def __init__(self, trial: Any, objective: str, prune: bool, pruner: str):
        self.trial, self.objective, self.prune, self.pruner = trial, objective, prune, pruner
        self.key = "val_loss"
        self.pruned = self.diverged = False
        self.history: list[dict] = []

    def on_train_begin(self, state) -> None:
        metric = state.head.metric
        if self.objective not in ("auto", "val_loss", f"val_{metric}"):
            raise UserError(f'--objective {self.objective} is not tracked for a {state.head.task} task; '
                            f"use auto, val_loss or val_{metric}.")
        self.key = objective_key(self.objective, metric)

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


def start_trial(trial: Any, space: Space, base: dict, worker: int) -> tuple[dict, dict]:
    """Draw the trial's values; returns them and the spec tree they give, and records both on the trial."""
    values = space.suggest(trial)
    tree = apply_values(json.loads(json.dumps(base)), values)
    tree.setdefault("train", {})["progress"] = False
    trial.set_user_attr("run_dir", f"trial-{trial.number:04d}")
    trial.set_user_attr("values", json.loads(json.dumps(values)))
    trial.set_user_attr("worker", worker)
    return values, tree


def record_trial(trial: Any, values: dict, run: Run, key: str, directory: str | Path, seconds: float, *,
                 say: Callable[[str], None], note: str, pruned: bool = False, reports: bool = False,
                 attrs: dict | None = None) -> float | None:
    """Write the trial's run directory and attributes; its objective value, or None when it counts as pruned.

    ``pruned``: stopped by the pruner, or diverged (``attrs`` then says so). A non-finite objective also
    counts as pruned: optuna's samplers cannot rank it. ``reports`` writes curves.svg and report.html too.
    """
    run_dir = Path(directory) / f"trial-{trial.number:04d}"
    if reports:
        write_run_directory(run, run_dir, run.metrics["best_epoch"])
    else:
        run.save(run_dir)
    m = run.metrics
    for k in ("epochs_run", "best_epoch", "stopped_because"):
        trial.set_user_attr(k, m.get(k))
    trial.set_user_attr("seconds", seconds)
    trial.set_user_attr("objective", key)
    for k, v in (attrs or {}).items():
        trial.set_user_attr(k, v)
    shown = ", ".join(f"{k}={short(v)}" for k, v in values.items())
    value = math.nan if pruned else float(m["val"].get("loss" if key == "val_loss" else key[4:], math.nan))
    if pruned:
        say(f"trial {trial.number:>4}: {shown} -> pruned at epoch {m['epochs_run']} ({note})")
        return None
    say(f"trial {trial.number:>4}: {shown} -> {key} {value:.4f} (epoch {m['best_epoch']}/{m['epochs_run']}, {note})")
    return value if math.isfinite(value) else None


def fit_trial(trial: Any, values: dict, tree: dict | Any, cfg: Any, X: Any = None, y: Any = None,
              say: Callable[[str], None] = print) -> float | None:
    """Train one trial alone with ``trainwell.fit`` and record it; its value, or None when pruned or diverged.

    ``cfg``: the search's settings (objective, pruner, directory, trial_reports). A trial that fails
    otherwise raises its UserError with the message recorded on the trial.
    """
    report = TrialReport(trial, cfg.objective, cfg.pruner != "none", cfg.pruner)
    t0 = time.perf_counter()
    try:
        run = fit(spec=tree, X=X, y=y, save=False, verbose=False, callbacks=[report])
    except UserError as exc:
        shown = ", ".join(f"{k}={short(v)}" for k, v in values.items())
        if report.diverged:
            run_dir = Path(cfg.directory) / f"trial-{trial.number:04d}"
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(run_dir / "history.csv", pd.DataFrame(report.history).to_csv(index=False))
            trial.set_user_attr("stopped_because", "diverged (loss NaN/inf)")
            trial.set_user_attr("epochs_run", len(report.history))
            say(f"trial {trial.number:>4}: {shown} -> diverged at epoch {len(report.history)}; pruned")
            return None
        trial.set_user_attr("error", str(exc))
        say(f"trial {trial.number:>4}: {shown} -> failed: {exc}")
        raise
    seconds = time.perf_counter() - t0
    return record_trial(trial, values, run, report.key, cfg.directory, seconds, say=say, note=f"{seconds:.1f} s",
                        pruned=report.pruned, reports=cfg.trial_reports)


def tell(study: Any, trial: Any, value: float | None, failed: bool = False) -> None:
    """study.tell: the value, or pruned when None (failed: failed). optuna's GridSampler calls study.stop()
    once the grid is used up, which raises outside study.optimize after the trial has been recorded: that is
    the end, not an error."""
    from optuna.trial import TrialState   # lazy: optuna costs about a second to import
    try:
        if failed or value is None:
            study.tell(trial, state=TrialState.FAIL if failed else TrialState.PRUNED)
        else:
            study.tell(trial, value)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
