"""Optional TensorBoard logging (``train.tensorboard: DIR``): scalars per epoch, weight histograms.

Uses ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package.
"""
from __future__ import annotations

import math

from trainwell.core.errors import UserError


def _writer_class():
    try:
        import tensorboard  # noqa: F401  # lazy: optional dependency (pip install tensorboard)
        from torch.utils.tensorboard import SummaryWriter   # lazy: needs the optional tensorboard package
    except ImportError:
        raise UserError("train.tensorboard is set but the tensorboard package is not installed. "
                        "Run `pip install tensorboard`, or leave train.tensorboard unset.") from None
    return SummaryWriter


class TensorBoardLogger:
    """Callback: history scalars, per-layer monitor statistics and weight histograms each epoch."""

    def __init__(self, log_dir: str, monitor=None):
        self.writer = _writer_class()(log_dir=str(log_dir))
        self.monitor = monitor
        self._seen = 0

    def on_epoch_end(self, state) -> None:
        row = state.history[-1]
        e = int(row["epoch"])
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, e)
        if self.monitor is not None:
            for r in self.monitor.rows[self._seen:]:
                for stat in ("grad_norm", "update_ratio", "act_mean", "act_std", "dead_frac", "saturated_frac"):
                    v = r.get(stat)
                    if isinstance(v, float) and math.isfinite(v):
                        self.writer.add_scalar(f"{stat}/{r['layer']}", v, r["epoch"])
            self._seen = len(self.monitor.rows)
        for name, p in state.model.named_parameters():
            if p.dim() > 1 and bool(p.detach().isfinite().all()):
                self.writer.add_histogram(f"weights/{name}", p.detach().cpu(), e)

    def on_train_end(self, state) -> None:
        self.writer.flush()
        self.writer.close()
