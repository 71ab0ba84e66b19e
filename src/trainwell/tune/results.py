"""A finished study as a reader sees it: the trials table (best first), best.json, the report and the summary.

The objective is a validation metric, never the test split: the best trial's test metrics are read once,
from its run directory, for the summary.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table as RichTable

from trainwell.core.io import atomic_write
from trainwell.tune.space import Space
from trainwell.tune.study_check import tie_warning
from trainwell.tune.trials import short


def direction_of(objective: str) -> str:
    """optuna's study direction for an objective: losses are minimised, metrics maximised."""
    return "minimize" if objective == "val_loss" else "maximize"


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
    from optuna.trial import TrialState   # lazy: optuna costs about a second to import
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
                     **{k: short(v) if isinstance(v, (list, dict)) else v for k, v in values.items()},
                     "epochs": u.get("epochs_run"), "best_epoch": u.get("best_epoch"),
                     "seconds": u.get("seconds"), "worker": u.get("worker"), "run_dir": u.get("run_dir"),
                     "note": note})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}
    frame["_o"] = frame["state"].map(order).fillna(5)
    sign = 1 if direction_of(objective) == "minimize" else -1
    frame["_v"] = sign * frame[objective].where(frame[objective].notna(), frame["last_reported"]).astype(float)
    frame = frame.sort_values(["_o", "_v", "trial"], na_position="last").drop(columns=["_o", "_v"])
    return frame.reset_index(drop=True)


def summarize(study: Any, space: Space, directory: Path, objective: str, verbose: bool = True) -> TuneResult:
    """Write trials.csv, best.json, best_spec.yaml and study.html; print the summary; return the TuneResult."""
    from trainwell.tune.report import write_study_html   # lazy: matplotlib; worker processes never need it
    console = Console(quiet=not verbose, highlight=False)
    if objective == "auto":   # the head's metric, known once a trial has run: val_accuracy or val_r2
        keys = [t.user_attrs["objective"] for t in study.get_trials(deepcopy=False) if "objective" in t.user_attrs]
        objective = keys[0] if keys else "value"
    frame = trials_frame(study, space, objective)
    atomic_write(directory / "trials.csv", frame.to_csv(index=False))
    result = TuneResult(study=study, directory=directory, space=space, objective=objective,
                        direction=direction_of(objective), trials=frame)
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
                atomic_write(directory / "best_spec.yaml", spec_file.read_bytes())
        atomic_write(directory / "best.json", json.dumps(
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
