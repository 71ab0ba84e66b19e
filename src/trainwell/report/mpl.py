"""matplotlib, for the figures that stay raster (the lr finder's plot): the Agg backend and one figure writer.

The run report draws its charts as SVG text (report/svg.py) and never imports this module; importing
matplotlib costs about half a second, so only a command that needs it pays for it.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainwell.core.io import atomic_write  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write the PNG, free the figure (matplotlib keeps figures alive until closed)."""
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))   # a run's files: core/io.py
    plt.close(fig)
    return path
