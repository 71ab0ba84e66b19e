"""Training curves (S0's three panels): loss, log-scale loss, metric — train vs validation."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


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
        if best_epoch and best_epoch > 0:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1, label=f"best epoch {best_epoch}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
