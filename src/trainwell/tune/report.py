"""study.html: one self-contained page per study (PNG plots embedded as base64).

Optimization history, per-trial validation curves (pruning visible), parameter
importances (optuna.importance) and a parallel-coordinates plot.
"""
from __future__ import annotations

import base64
import html
import io
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from trainwell.core.figures import plt
from trainwell.core.io import atomic_write
from trainwell.report.html import CSS
from trainwell.tune.space import Space


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def history_plot(study: Any, objective: str, maximize: bool, chosen: int | None = None) -> str:
    """Objective by trial (with the best so far) and the per-trial validation curves; ``best``: the trial the
    study selected (``chosen``: its tie-break may differ from the first maximum)."""
    from optuna.trial import TrialState   # lazy: optuna is imported on use (start-up)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    if done:
        xs, ys = [t.number for t in done], [t.value for t in done]
        ax.scatter(xs, ys, s=18, label="complete")
        best = np.maximum.accumulate(ys) if maximize else np.minimum.accumulate(ys)
        ax.step(xs, best, where="post", color="C3", label="best so far")
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   marker="x", color="grey", s=18, label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title("optimization history")
    ax.legend(fontsize=8)
    _curves(axes[1], trials, done, objective, maximize, chosen)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


def _curves(ax, trials: list, done: list, objective: str, maximize: bool, chosen: int | None) -> None:
    """Per-trial validation curves: the best trial drawn thick and named, the other complete trials in one
    colour, pruned trials in grey (one legend entry each, whatever the number of trials)."""
    from optuna.trial import TrialState   # lazy: optuna is imported on use (start-up)
    best = chosen if chosen is not None else (
        (max if maximize else min)(done, key=lambda t: t.value).number if done else None)
    seen: set[str] = set()
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        if best is not None and t.number == best:
            style, label = {"color": "C3", "lw": 2.2, "zorder": 3}, f"best (trial {t.number})"
        elif t.state == TrialState.PRUNED:
            style, label = {"color": "grey", "lw": 0.8, "alpha": 0.6}, "pruned trials"
        else:
            style, label = {"color": "C0", "lw": 0.8, "alpha": 0.6}, "other complete trials"
        ax.plot(steps, [t.intermediate_values[s] for s in steps], label=None if label in seen else label, **style)
        seen.add(label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    ax.set_title("validation curves per trial")
    if seen:
        ax.legend(fontsize=8)


def importance_plot(study: Any) -> tuple[str, dict]:
    import optuna   # lazy: optuna is imported on use (start-up)
    from optuna.trial import TrialState   # lazy: optuna is imported on use (start-up)
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 3:
        return "<p>Parameter importances need at least three completed trials.</p>", {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study)
    except Exception as exc:  # too few trials, a single value per param, ...
        return f"<p>Parameter importances not available: {html.escape(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}.</p>", {}
    if not imp:
        return "<p>Parameter importances not available (no varying parameter).</p>", {}
    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(names, [imp[n] for n in names], color="C0")
    ax.set_xlabel("importance (optuna default evaluator, normalised to sum 1)")
    ax.set_title("parameter importances")
    return _png(fig), dict(imp)


def parallel_plot(frame: pd.DataFrame, space: Space, objective: str, maximize: bool) -> str:
    done = frame[frame["state"] == "complete"] if not frame.empty else frame
    if len(done) < 2:
        return "<p>Parallel coordinates need at least two completed trials.</p>"
    cols = [p.path for p in space if p.path in done.columns]
    axes_vals, labels = [], []
    for p in space:
        if p.path not in done.columns:
            continue
        col = done[p.path]
        if p.kind in ("choice", "grid"):
            cats = [str(c) if not isinstance(c, str) else c for c in p.grid_values()]
            keyed = col.map(lambda v: str(v))
            idx = keyed.map({c: i for i, c in enumerate(cats)}).astype(float)
            scaled = idx / max(1, len(cats) - 1)
            labels.append(f"{p.path}\n[{cats[0][:10]} .. {cats[-1][:10]}]")
        else:
            v = col.astype(float).to_numpy()
            if p.kind == "one_minus_log":
                v = np.log10(np.clip(1.0 - v, 1e-300, None))
                name = f"log10(1-{p.path})"
            elif p.log:
                v = np.log10(v)
                name = f"log10 {p.path}"
            else:
                name = p.path
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            scaled = pd.Series((v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5))
            labels.append(f"{name}\n[{lo:.3g} .. {hi:.3g}]")
        axes_vals.append(np.asarray(scaled, dtype=float))
    obj = done[objective].astype(float).to_numpy()
    lo, hi = float(obj.min()), float(obj.max())
    axes_vals.append((obj - lo) / (hi - lo) if hi > lo else np.full_like(obj, 0.5))
    labels.append(f"{objective}\n[{lo:.4g} .. {hi:.4g}]")
    data = np.vstack(axes_vals)           # (axes, trials)
    fig, ax = plt.subplots(figsize=(max(7, 2.2 * len(labels)), 4.5))
    cmap = plt.get_cmap("viridis" if maximize else "viridis_r")
    norm = (obj - lo) / (hi - lo) if hi > lo else np.full_like(obj, 0.5)
    order = np.argsort(norm if maximize else -norm)
    x = np.arange(len(labels))
    for j in order:
        ax.plot(x, data[:, j], color=cmap(norm[j]), lw=1.0, alpha=0.8)
    ax.plot(x, data[:, 0], color="C3", lw=2.5, label=f"best (trial {int(done.iloc[0]['trial'])})")
    for xi in x:
        ax.axvline(xi, color="k", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yticks([])
    ax.set_title(f"parallel coordinates ({len(done)} completed trials, colour = {objective}); {len(cols)} parameters")
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def write_study_html(study: Any, space: Space, frame: pd.DataFrame, result: Any, path: Path) -> Path:
    """study.html for ``result``, the search's TuneResult (tune/results.py, which calls this at the end)."""
    maximize = result.direction == "maximize"
    objective = result.objective
    parts = [f"<h1>trainwell study: {html.escape(study.study_name)}</h1>"]
    n = frame["state"].value_counts().to_dict() if not frame.empty else {}
    parts.append("<p>" + html.escape(", ".join(f"{v} {k}" for k, v in n.items()) or "no trials") + "</p>")
    if result.best_trial is not None:
        test = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in result.test.items()
                       if isinstance(v, (int, float)) and math.isfinite(v))
        params = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                         for k, v in result.best_params.items())
        parts.append(f"<h2>Best trial: {result.best_trial}</h2><p>{html.escape(objective)} = "
                     f"<b>{result.best_value:.4f}</b> (selected on validation). Run directory: "
                     f"<code>{html.escape(str(result.best_run_dir))}</code></p>"
                     f"<table><tr><th>parameter</th><th>value</th></tr>{params}</table>"
                     f"<h3>Test split (evaluated once, not used for selection)</h3>"
                     f"<table><tr><th>metric</th><th>test</th></tr>{test}</table>")
    parts.append("<h2>Optimization history</h2>" + history_plot(study, objective, maximize, result.best_trial))
    imp_html, _ = importance_plot(study)
    parts.append("<h2>Parameter importances</h2>" + imp_html)
    parts.append("<h2>Parallel coordinates</h2>" + parallel_plot(frame, space, objective, maximize))
    if not frame.empty:
        parts.append(f"<h2>Trials (best first{', first 50' if len(frame) > 50 else ''})</h2>" + trials_table(frame))
    space_rows = "".join(f"<li><code>{html.escape(p.describe())}</code></li>" for p in space)
    parts.append(f"<h2>Search space</h2><ul>{space_rows}</ul>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>trainwell study — "
            f"{html.escape(study.study_name)}</title><style>{CSS}{TABLE_CSS}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write(path, page)
    return path


TABLE_CSS = """.scroll{overflow-x:auto;max-width:100%}.trials{font-size:.85em}.trials td{white-space:nowrap}
.trials td,.trials th{padding:.2em .4em}.trials td.note{white-space:normal;min-width:14em;text-align:left}"""


def trials_table(frame: pd.DataFrame) -> str:
    """The first 50 trials, best first, in a box that scrolls sideways rather than widening the page; the
    note column keeps a readable width and columns with one value for every trial (the worker of a
    one-process study) are left out."""
    shown = frame.head(50)
    drop = [c for c in ("worker",) if c in shown and shown[c].nunique(dropna=False) <= 1]
    if "run_dir" in shown and (shown["run_dir"] == shown["trial"].map(lambda t: f"trial-{int(t):04d}")).all():
        drop.append("run_dir")        # always trial-NNNN: said once below the table
    shown = shown.drop(columns=drop)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    note = list(shown.columns).index("note") if "note" in shown.columns else -1
    body = "".join("<tr>" + "".join(f"<td{' class=note' if j == note else ''}>{html.escape(_fmt(v))}</td>"
                                    for j, v in enumerate(r)) + "</tr>" for r in shown.itertuples(index=False))
    where = "<p>Each trial's run directory is <code>trial-NNNN</code> in the study folder.</p>" \
        if "run_dir" in drop else ""
    return f"<div class='scroll'><table class='trials'><tr>{head}</tr>{body}</table></div>{where}"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
