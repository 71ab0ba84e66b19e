"""matplotlib, for the figures that stay raster (the lr finder's plot, an autoencoder's reconstructions, a
study's page): the Agg backend (files only, no display) and the one figure writer.

The run report draws its charts as SVG text (report/svg.py) and never imports this module; importing
matplotlib costs about half a second, so only a command that needs it pays for it. It sits in core/ so that
diagnose/ and nn/ can draw without importing report/, which is above them (docs/architecture.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainwell.core.io import atomic_write  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, write the PNG atomically, free the figure (matplotlib keeps figures alive until closed)."""
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)
    return path
