"""The report's figures as SVG (report/svg.py): training curves (loss, log-scale loss, metric — train vs
validation) and the doctor's figures (learning rate, gradient flow, activation statistics, confusion matrix).

Each ``plot_*`` writes one ``.svg`` file and returns its path; report/html.py embeds it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.core.io import atomic_write
from trainwell.report.svg import GREY, PALETTE, Panel, Series, figure, heatmap, viridis

MAX_LEGEND = 12          # more layers than this: a colour bar names them instead of a legend


def plot_curves(history: pd.DataFrame, metric: str, path: str | Path, best_epoch: int | None = None) -> Path:
    """Write the three-panel figure to ``path`` (SVG) and return the path."""
    epochs = history["epoch"]
    panels = []
    for title, log, key in (("loss", False, "loss"), ("loss (log scale)", True, "loss"), (metric, False, metric)):
        p = Panel(title, xlabel="epoch", ylog=log, integer_x=True,    # losses fall, accuracy and R^2 rise
                  legend_at="upper right" if key == "loss" else "lower right")
        p.add("line", epochs, history[f"train_{key}"], label="train", colour=PALETTE[0])
        p.add("line", epochs, history[f"val_{key}"], label="validation", colour=PALETTE[1])
        if best_epoch and best_epoch > 0:
            p.add("vline", [best_epoch], [0], label=f"best epoch {best_epoch}", colour=GREY)
        panels.append(p)
    return save_svg(figure(panels), path, sync=True)       # curves.svg is sealed in model.json


# -- the doctor's figures (report.html) ------------------------------------------
def layer_label(name: str) -> str:
    """A reader's name for a monitored layer: ``blocks.0.linear`` -> ``hidden 1``, ``out`` -> ``output``."""
    m = re.fullmatch(r"blocks\.(\d+)(\.linear)?", name)
    if m:
        return f"hidden {int(m.group(1)) + 1}"
    return "output" if name == "out" else name


def lr_is_constant(history: pd.DataFrame) -> bool:
    """True when every epoch used the same learning rate (a plot of it would be one flat line)."""
    lr = history["lr"].dropna() if "lr" in history else pd.Series(dtype=float)
    return len(lr) > 0 and float(lr.max() - lr.min()) <= 1e-12 * max(abs(float(lr.max())), 1e-300)


def plot_lr(history: pd.DataFrame, path: str | Path) -> Path:
    """Learning rate over the epochs (log scale when it spans more than a factor 10)."""
    lr = history["lr"][history["lr"] > 0]
    p = Panel("learning rate over time", xlabel="epoch", ylabel="learning rate", integer_x=True, legend=False,
              ylog=bool(len(lr) and lr.max() / lr.min() > 10))
    p.add("line", history["epoch"], history["lr"], marker=len(history) < 40)
    return save_svg(figure([p]), path)


def plot_gradient_flow(diag: pd.DataFrame, path: str | Path) -> Path:
    """Left: per-layer weight-gradient norm over the epochs. Right: back-propagated gradient by layer."""
    layers = diag.drop_duplicates("index").sort_values("index")
    names = [layer_label(str(n)) for n in layers["layer"]]
    n = len(layers)
    left = Panel("gradient flow: per-layer gradient norm over epochs", xlabel="epoch (0 = first step)",
                 ylabel="weight-gradient L2 norm", ylog=True, integer_x=True, legend=n <= MAX_LEGEND,
                 colourbar=(n, "layer (1 = input side)") if n > MAX_LEGEND else None)
    for k, idx in enumerate(layers["index"]):
        d = diag[diag["index"] == idx].sort_values("epoch")
        left.add("line", d["epoch"], d["grad_norm"].clip(lower=1e-30), label=names[k], colour=viridis(k / max(n - 1, 1)))
    stat = "out_grad_rms" if "out_grad_rms" in diag and diag["out_grad_rms"].notna().any() else "grad_norm"
    right = _layer_panel("back-propagated gradient by layer", names,
                         "RMS of dLoss/d(layer output)" if stat == "out_grad_rms" else stat, ylog=True)
    epochs = sorted(diag["epoch"].unique())
    pos = {idx: k + 1 for k, idx in enumerate(layers["index"])}
    for e, colour, dash in ((epochs[0], PALETTE[0], False), (epochs[-1], PALETTE[1], True)):
        d = diag[diag["epoch"] == e].sort_values("index")
        right.add("line", d["index"].map(pos), np.maximum(d[stat].to_numpy(dtype=float), 1e-30), label=f"epoch {e}",
                  colour=colour, dash=dash, marker=True)
    return save_svg(figure([left, right]), path)


def _layer_panel(title: str, names: list[str], ylabel: str, ylog: bool = False) -> Panel:
    """Layers as categories at 1..L: named when few enough to read, else integer positions."""
    if len(names) <= MAX_LEGEND:
        return Panel(title, xlabel="layer (input side on the left)", ylabel=ylabel, ylog=ylog, xcats=names)
    return Panel(title, xlabel="layer (1 = input side)", ylabel=ylabel, ylog=ylog, integer_x=True,
                 xlim=(0.5, len(names) + 0.5))


def nothing_dead(diag: pd.DataFrame) -> bool:
    """No layer ever had a dead ReLU unit or a saturated sigmoid/tanh output at any sampled step."""
    cols = [c for c in ("dead_frac", "saturated_frac") if c in diag]
    return all(float(diag[c].fillna(0).max() or 0) == 0 for c in cols)


def plot_activation_stats(diag: pd.DataFrame, path: str | Path) -> Path:
    """Activation mean +- std by layer (first and last epoch); dead and saturated shares over epochs
    (that panel is left out when no unit was ever dead or saturated: the report says so in a sentence)."""
    d = diag.dropna(subset=["act_mean"])
    epochs = sorted(d["epoch"].unique()) if not d.empty else []
    order = sorted(d["index"].unique())
    names = [layer_label(str(d[d["index"] == i]["layer"].iloc[0])) for i in order]
    pos = {idx: k + 1 for k, idx in enumerate(order)}
    p = _layer_panel("activation statistics by layer", names, "activation mean +- std")
    p.legend = bool(epochs)
    for (e, off), colour in zip(((epochs[0], -0.1), (epochs[-1], 0.1)) if epochs else (), PALETTE):
        x = d[d["epoch"] == e].sort_values("index")
        p.series.append(_errorbar(x["index"].map(pos) + off, x["act_mean"], x["act_std"], f"epoch {e}", colour))
    panels = [p] + ([_dead_panel(d, order, names)] if not nothing_dead(d) else [])
    return save_svg(figure(panels), path)


def _errorbar(x, y, err, label: str, colour: str) -> Series:
    return Series("errorbar", [float(v) for v in x], [float(v) for v in y], label=label, colour=colour,
                  err=[float(v) for v in err])


def _dead_panel(d: pd.DataFrame, order: list, names: list[str]) -> Panel:
    p = Panel("dead ReLU units / saturated sigmoid-tanh outputs", xlabel="epoch (0 = first step)",
              ylabel="share of units", ylim=(-0.02, 1.02), integer_x=True)
    for k, (idx, name) in enumerate(zip(order, names)):
        x = d[d["index"] == idx].sort_values("epoch")
        colour = PALETTE[k % len(PALETTE)]
        if x["dead_frac"].max() > 0:
            p.add("line", x["epoch"], x["dead_frac"], label=f"dead {name}", colour=colour)
        if x["saturated_frac"].max() > 0:
            p.add("line", x["epoch"], x["saturated_frac"], label=f"saturated {name}", colour=colour, dash=True)
    p.legend = 0 < sum(1 for s in p.series if s.label) <= MAX_LEGEND
    return p


def plot_confusion(preds: pd.DataFrame, classes: list[str] | None, path: str | Path) -> Path:
    """Confusion matrix of the test split (rows: true class, columns: predicted)."""
    k = int(max(preds["true"].max(), preds["pred"].max())) + 1
    k = max(k, len(classes or []))
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (preds["true"].to_numpy(int), preds["pred"].to_numpy(int)), 1)
    labels = classes if classes and len(classes) == k else [str(i) for i in range(k)]
    return save_svg(heatmap(cm.tolist(), labels, "confusion matrix (test split)", "predicted", "true"), path)


def save_svg(text: str, path: str | Path, sync: bool = False) -> Path:
    """Write one figure; no fsync unless asked (a report figure is regenerated from the sealed files)."""
    return atomic_write(Path(path), text, sync=sync)
