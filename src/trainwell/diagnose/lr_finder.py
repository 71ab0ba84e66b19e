"""LR range test (Smith 2017): grow the lr geometrically, watch the loss, suggest an lr.

The practice and its sources: docs/practices/lr_range_test.md.

The lr goes from ``start_lr`` (1e-7) to ``end_lr`` (10) over ``steps`` (200) mini-batch
steps (geometric: ``lr_i = start * (end/start)^(i/(steps-1))``). The loss is
smoothed with a bias-corrected EMA (``beta`` = 0.9, a window of about 10 steps, so the curve lags little; ``avg = beta avg + (1-beta) loss``;
``smoothed = avg / (1 - beta^(i+1))``) and the test stops once the smoothed loss
exceeds ``diverge`` (4) times the best seen. Two candidates are reported:

* ``steepest_lr``: where the smoothed loss falls fastest per unit of log lr
  (before the minimum),
* ``half_divergence_lr``: half the lr at which the loss diverged (Shukla 2019's rule;
  the lr of the minimum if the test never diverged),

and ``suggested_lr`` is **the smaller of the two** (the safer choice: both rules
are heuristics; the smaller one is never in the region where the loss rises).

The test runs on deep copies of the model and optimizer: the originals are left
exactly as they were (weights and optimizer state).
"""
from __future__ import annotations

import copy
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from torch import nn

from trainwell.build import assemble, spec_for
from trainwell.core.io import atomic_write
from trainwell.core.errors import UserError, check_range


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    steepest_lr: float
    divergence_lr: float | None
    half_divergence_lr: float
    min_loss_lr: float
    suggested_lr: float
    stopped_early: bool
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"suggested_lr": self.suggested_lr, "rule": "min(steepest_lr, half_divergence_lr)",
                "steepest_lr": self.steepest_lr, "divergence_lr": self.divergence_lr,
                "half_divergence_lr": self.half_divergence_lr, "min_loss_lr": self.min_loss_lr,
                "stopped_early": self.stopped_early, "steps": len(self.lrs),
                "plot": str(self.plot) if self.plot else None}


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, X: torch.Tensor, y: torch.Tensor,
                  *, batch_size: int = 32, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200,
                  beta: float = 0.9, diverge: float = 4.0, seed: int = 0) -> LRFindResult:
    """The range test on deep copies of ``model`` and ``optimizer`` (the originals are untouched)."""
    if not (0 < start_lr < end_lr):
        raise ValueError("lr_range_test needs 0 < start_lr < end_lr")
    steps = max(int(steps), 10)
    m, opt = copy.deepcopy((model, optimizer))      # one memo: the copied optimizer points at the copied params
    m.train()
    n = X.shape[0]
    b = min(batch_size, n)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    perm, pos = torch.randperm(n, generator=gen).to(X.device), 0
    factor = (end_lr / start_lr) ** (1.0 / (steps - 1))
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    for i in range(steps):
        lr = start_lr * factor ** i
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=gen).to(X.device), 0
        idx = perm[pos:pos + b]
        pos += b
        loss = loss_fn(m(X[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())             # one read per step: this is a test, not the training loop
        avg = beta * avg + (1 - beta) * value
        s = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        if not math.isfinite(s) or (i > 5 and s > diverge * best):
            stopped = True
            break
        best = min(best, s)
    _refuse_nan_from_the_start(losses, start_lr)
    return _suggest(lrs, losses, smoothed, stopped)


def _refuse_nan_from_the_start(losses: list[float], start_lr: float) -> None:
    """No lr to suggest when the loss is not finite already at the smallest lr: the cause is not the
    learning rate (inputs beyond float32 range, inf, a broken model) and any 'suggestion' would come from NaN."""
    finite = sum(math.isfinite(v) for v in losses)
    if finite < 3:
        raise UserError(f"The loss was NaN or inf from step {finite + 1} of the range test, at lr {start_lr:g} "
                        "already: too small an lr to be the cause, so no lr can be suggested. Check the inputs "
                        "(values beyond float32 range, inf) and the model (trainwell diagnose DATA --overfit-check).")


def _suggest(lrs: list[float], losses: list[float], smoothed: list[float], stopped: bool) -> LRFindResult:
    lr = np.asarray(lrs)
    sm = np.asarray(smoothed, dtype=float)
    finite = np.isfinite(sm)
    sm_f = np.where(finite, sm, np.inf)
    i_min = int(np.argmin(sm_f))
    # steepest descent of the smoothed loss vs log10(lr), up to the minimum (skip the warm-up of the EMA)
    lo = min(10, max(i_min - 1, 0))
    seg = slice(lo, i_min + 1)
    if i_min - lo >= 2:
        grads = np.gradient(sm[seg], np.log10(lr[seg]))
        i_steep = lo + int(np.argmin(grads))
    else:
        i_steep = i_min
    divergence = float(lr[-1]) if stopped else None
    half = divergence / 2 if divergence is not None else float(lr[i_min])
    steep = float(lr[i_steep])
    return LRFindResult(lrs=list(map(float, lr)), losses=list(map(float, losses)), smoothed=list(map(float, sm)),
                        steepest_lr=steep, divergence_lr=divergence, half_divergence_lr=half,
                        min_loss_lr=float(lr[i_min]), suggested_lr=min(steep, half), stopped_early=stopped)


def fit_commands(data: str, spec: Path | None, sets: list[str], result: LRFindResult) -> list[str]:
    """Two ``trainwell fit`` lines to copy: the suggested lr (with the default plateau schedule), and the
    1cycle policy (Smith & Topin 2019, arXiv:1708.07120; torch OneCycleLR) whose peak is half the lr at which
    the loss diverged: the largest lr the range test showed to still train, warmed up to and annealed from."""
    base = ["trainwell", "fit", data, *(["--spec", str(spec)] if spec else []), *[x for s in sets for x in ("--set", s)]]
    return [f"use it: {shlex.join([*base, '--set', f'optim.lr={result.suggested_lr:.3g}'])}",
            f"or 1cycle up to half the divergence lr: {shlex.join([*base, '--set', 'schedule.name=onecycle', '--set', f'schedule.max_lr={result.half_divergence_lr:.3g}'])}"]


def plot_lr_find(result: LRFindResult, path: str | Path) -> Path:
    from trainwell.core.figures import plt, save_figure   # lazy: matplotlib only for this plot
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.losses, color="#bbb", linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed loss (EMA, bias-corrected)")
    ax.set_xscale("log")
    ax.axvline(result.steepest_lr, color="C2", linestyle="--", label=f"steepest descent {result.steepest_lr:.2g}")
    if result.divergence_lr:
        ax.axvline(result.divergence_lr, color="C3", linestyle=":", label=f"diverged at {result.divergence_lr:.2g}")
    ax.axvline(result.half_divergence_lr, color="C1", linestyle="--",
               label=f"half the divergence lr {result.half_divergence_lr:.2g}")
    ax.plot([result.suggested_lr], [np.interp(np.log(result.suggested_lr), np.log(result.lrs), result.smoothed)],
            "o", color="k", label=f"suggested {result.suggested_lr:.2g}")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite[:max(len(finite) // 3, 1)])
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), max(finite[0], hi) * 1.5)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def lr_find(data: str | None = None, X: Any = None, y: Any = None, spec: Any = None, *,
            sets: list[str] | None = None, out: str | Path | None = None, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = 200, beta: float = 0.9, diverge: float = 4.0,
            verbose: bool = True, **overrides: Any) -> LRFindResult:
    """LR range test on the model and optimizer that ``trainwell.fit`` would build from the same arguments.

    Writes ``lr_find.png``, ``lr_find.csv`` and ``lr_find.json`` to ``out`` when given.
    Returns an :class:`LRFindResult`; ``result.suggested_lr`` is the lr to pass as ``optim.lr``.
    """
    check_range("steps", steps, 2, meaning="lr values tried between start_lr and end_lr")
    check_range("start_lr", start_lr, 0.0, meaning="a learning rate above 0")
    if not (0 < start_lr < end_lr):
        raise UserError(f"end_lr={end_lr:g} must be above start_lr={start_lr:g} > 0: the range test grows the lr "
                        "from one to the other.")
    check_range("beta", beta, 0.0, 0.999, meaning="the smoothing of the loss curve")
    built = assemble(spec_for(data, spec, sets, overrides), X, y, streaming=False)
    spec, state = built.spec, built.state
    result = lr_range_test(state.model, state.optimizer, state.head.loss_fn, state.data.X_train, state.data.y_train,
                           batch_size=state.batch_size, start_lr=start_lr, end_lr=end_lr, steps=steps, beta=beta,
                           diverge=diverge, seed=spec.train.seed)
    if out is not None:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        result.plot = plot_lr_find(result, d / "lr_find.png")
        atomic_write(d / "lr_find.csv", pd.DataFrame({"lr": result.lrs, "loss": result.losses,
                                                      "smoothed": result.smoothed}).to_csv(index=False))
        atomic_write(d / "lr_find.json", json.dumps({**result.to_json(), "optimizer": spec.optim.name}, indent=2))
    if verbose:
        c = Console(highlight=False)
        c.print(f"[dim]·[/dim] lr range test: {len(result.lrs)} steps of {spec.optim.name}, lr {start_lr:g} -> "
                f"{result.lrs[-1]:.3g}{' (stopped: loss > %gx best)' % diverge if result.stopped_early else ''}")
        c.print(f"[dim]·[/dim] steepest descent at lr {result.steepest_lr:.3g}; half the divergence lr "
                f"{result.half_divergence_lr:.3g}")
        c.print(f"[bold]suggested lr: {result.suggested_lr:.3g}[/bold] (the smaller of the two)"
                + (f"; plot: {result.plot}" if result.plot else ""))
    return result
