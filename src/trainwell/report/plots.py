"""The report's figures: training curves (loss, log-scale loss, metric — train vs validation) and the
doctor's figures (learning rate, gradient flow, activation statistics, confusion matrix, predictions)."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from trainwell.core.io import atomic_write  # noqa: E402


def plot_curves(history: pd.DataFrame, metric: str, path: str | Path, best_epoch: int | None = None) -> Path:
    """Write the three-panel figure to ``path`` (PNG) and return the path."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    epochs = history["epoch"]
    for ax, title, log in ((axes[0], "loss", False), (axes[1], "loss (log scale)", True)):
        ax.plot(epochs, history["train_loss"], label="train")
        ax.plot(epochs, history["val_loss"], label="validation")
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    ax = axes[2]
    ax.plot(epochs, history[f"train_{metric}"], label="train")
    ax.plot(epochs, history[f"val_{metric}"], label="validation")
    ax.set_title(metric)
    ax.set_xlabel("epoch")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch and best_epoch > 0:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1, label=f"best epoch {best_epoch}")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


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
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(history["epoch"], history["lr"], marker="." if len(history) < 40 else None)
    lr = history["lr"][history["lr"] > 0]
    if len(lr) and lr.max() / lr.min() > 10:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate over time")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _layer_colours(fig, ax, n: int):
    """One colour per layer from viridis; beyond a readable legend (12 layers) a colour bar names them."""
    cmap = plt.get_cmap("viridis")
    colour = [cmap(k / max(n - 1, 1)) for k in range(n)]
    if n > 12:
        sm = ScalarMappable(norm=Normalize(0.5, n + 0.5), cmap=cmap)
        bar = fig.colorbar(sm, ax=ax, pad=0.01)
        bar.set_label("layer (1 = input side)")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return colour


def plot_gradient_flow(diag: pd.DataFrame, path: str | Path) -> Path:
    """Left: per-layer weight-gradient norm over the epochs. Right: back-propagated gradient by layer."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    layers = diag.drop_duplicates("index").sort_values("index")
    names = [layer_label(str(n)) for n in layers["layer"]]
    colours = _layer_colours(fig, ax, len(layers))
    for k, idx in enumerate(layers["index"]):
        d = diag[diag["index"] == idx].sort_values("epoch")
        ax.plot(d["epoch"], d["grad_norm"].clip(lower=1e-30), color=colours[k], label=names[k])
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0 = first step)")
    ax.set_ylabel("weight-gradient L2 norm")
    ax.set_title("gradient flow: per-layer gradient norm over epochs")
    ax.grid(alpha=0.3)
    if len(layers) <= 12:
        ax.legend(fontsize=7)
    ax = axes[1]
    stat = "out_grad_rms" if "out_grad_rms" in diag and diag["out_grad_rms"].notna().any() else "grad_norm"
    epochs = sorted(diag["epoch"].unique())
    pos = {idx: k + 1 for k, idx in enumerate(layers["index"])}
    for e, style in ((epochs[0], "o-"), (epochs[-1], "s--")):
        d = diag[diag["epoch"] == e].sort_values("index")
        ax.plot(d["index"].map(pos), np.maximum(d[stat].to_numpy(dtype=float), 1e-30), style, label=f"epoch {e}")
    ax.set_yscale("log")
    _layer_axis(ax, names)
    ax.set_ylabel("RMS of dLoss/d(layer output)" if stat == "out_grad_rms" else stat)
    ax.set_title("back-propagated gradient by layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _layer_axis(ax, names: list[str]) -> None:
    """Layers as categories at 1..L: named when few enough to read, else integer positions."""
    n = len(names)
    ax.set_xlim(0.5, n + 0.5)
    if n <= 12:
        ax.set_xticks(range(1, n + 1), names, rotation=30 if n > 6 else 0)
        ax.set_xlabel("layer (input side on the left)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (1 = input side)")


def nothing_dead(diag: pd.DataFrame) -> bool:
    """No layer ever had a dead ReLU unit or a saturated sigmoid/tanh output at any sampled step."""
    cols = [c for c in ("dead_frac", "saturated_frac") if c in diag]
    return all(float(diag[c].fillna(0).max() or 0) == 0 for c in cols)


def plot_activation_stats(diag: pd.DataFrame, path: str | Path) -> Path:
    """Activation mean +- std by layer (first and last epoch); dead and saturated shares over epochs
    (that panel is left out when no unit was ever dead or saturated: the report says so in a sentence)."""
    d = diag.dropna(subset=["act_mean"])
    show_dead = not nothing_dead(d)
    fig, axes = plt.subplots(1, 2 if show_dead else 1, figsize=(13 if show_dead else 6.5, 4.2), squeeze=False)
    ax = axes[0][0]
    epochs = sorted(d["epoch"].unique()) if not d.empty else []
    order = sorted(d["index"].unique())
    names = [layer_label(str(d[d["index"] == i]["layer"].iloc[0])) for i in order]
    pos = {idx: k + 1 for k, idx in enumerate(order)}
    for e, off in ((epochs[0], -0.1), (epochs[-1], 0.1)) if epochs else ():
        x = d[d["epoch"] == e].sort_values("index")
        ax.errorbar(x["index"].map(pos) + off, x["act_mean"], yerr=x["act_std"], fmt="o", capsize=3,
                    label=f"epoch {e}")
    _layer_axis(ax, names)
    ax.set_ylabel("activation mean +- std")
    ax.set_title("activation statistics by layer")
    ax.grid(alpha=0.3)
    if epochs:
        ax.legend(fontsize=8)
    if show_dead:
        _dead_panel(axes[0][1], d, order, names)
    return save_figure(fig, path)


def _dead_panel(ax, d: pd.DataFrame, order: list, names: list[str]) -> None:
    for idx, name in zip(order, names):
        x = d[d["index"] == idx].sort_values("epoch")
        if x["dead_frac"].max() > 0:
            ax.plot(x["epoch"], x["dead_frac"], label=f"dead {name}")
        if x["saturated_frac"].max() > 0:
            ax.plot(x["epoch"], x["saturated_frac"], linestyle="--", label=f"saturated {name}")
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0 = first step)")
    ax.set_ylabel("share of units")
    ax.set_title("dead ReLU units / saturated sigmoid-tanh outputs")
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if 0 < len(handles) <= 12:
        ax.legend(fontsize=7)


def plot_confusion(preds: pd.DataFrame, classes: list[str] | None, path: str | Path) -> Path:
    """Confusion matrix of the test split (rows: true class, columns: predicted)."""
    k = int(max(preds["true"].max(), preds["pred"].max())) + 1
    k = max(k, len(classes or []))
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (preds["true"].to_numpy(int), preds["pred"].to_numpy(int)), 1)
    fig, ax = plt.subplots(figsize=(min(max(3 + 0.55 * k, 4.5), 9), min(max(2.5 + 0.5 * k, 3.8), 8)))
    ax.imshow(cm, cmap="Blues")
    labels = classes if classes and len(classes) == k else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45 if k > 6 else 0)
    ax.set_yticks(range(k), labels)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test split)")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write the PNG, free the figure (matplotlib keeps figures alive until closed)."""
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))   # a run's files: core/io.py
    plt.close(fig)
    return path
