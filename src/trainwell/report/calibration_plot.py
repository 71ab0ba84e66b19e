"""The report's calibration panel: a reliability diagram and the expected calibration error (ECE).

A classifier is calibrated when, of the rows it gives probability 0.8, about 80 % are right. The
diagram bins the held-out rows by the probability of the predicted class (15 equal-width bins) and
draws each bin's accuracy against its mean confidence: bars below the diagonal are over-confidence.
ECE is the row-weighted mean gap (Guo et al., "On Calibration of Modern Neural Networks", ICML
2017, https://arxiv.org/abs/1706.04599). Read from ``test_predictions.csv`` (report/outputs.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainwell.report.plots import save_svg
from trainwell.report.svg import Panel, Series, figure
from trainwell.train.calibration import reliability

PROBA = "proba_"


def plot_reliability(bins: dict, path: Path, title: str) -> Path:
    edges = np.asarray(bins["edges"])
    count, acc, conf = (np.asarray(bins[k]) for k in ("count", "accuracy", "confidence"))
    used = count > 0
    p = Panel(title, "confidence (probability of the predicted class)", "accuracy", xlim=(0, 1), ylim=(0, 1),
              legend_at="upper left")
    p.series.append(Series("bar", edges[:-1][used].tolist(), acc[used].tolist(), label="accuracy in bin",
                           colour="#4c72b0", width=np.diff(edges)[used].tolist()))
    p.add("line", [0, 1], [0, 1], label="perfect calibration", colour="#999999", dash=True)   # over the bars
    p.add("points", conf[used], acc[used], label="bin (mean confidence, accuracy)", colour="#dd8452")
    return save_svg(figure([p]), path)


def calibration_sections(run, run_dir: Path, embed) -> list[tuple[str, str]]:
    """[("Calibration", html)] for a binary or multiclass run with held-out predictions, else [];
    ``embed``: report/html.py's figure embedding (passed in: html.py imports this module)."""
    path = Path(run_dir) / "test_predictions.csv"
    if run.pre.task not in ("binary", "multiclass") or not path.exists():
        return []
    preds = pd.read_csv(path)
    cols = [c for c in preds.columns if c.startswith(PROBA)]
    if len(preds) == 0 or len(cols) < 2 or "true" not in preds:
        return []
    bins = reliability(preds[cols].to_numpy(dtype=float), preds["true"].to_numpy(), "multiclass")
    cal = run.metrics.get("calibration") or {}
    png = plot_reliability(bins, Path(run_dir) / "reliability.svg", f"test split, ECE {bins['ece']:.4f}")
    if cal.get("applied"):
        how = (f"Temperature scaling T = {cal['temperature']:.3f}, fitted on the validation split: validation "
               f"log-loss {cal['val_log_loss_before']:.4f} &rarr; {cal['val_log_loss_after']:.4f}"
               + (f", test log-loss {cal['test_log_loss_before']:.4f} &rarr; {cal['test_log_loss_after']:.4f}"
                  if "test_log_loss_after" in cal else "") + " (train.calibrate=none turns it off).")
    elif cal:
        how = (f"Not calibrated: temperature scaling (T = {cal['temperature']:.3f}) did not lower the validation "
               f"log-loss ({cal['val_log_loss_before']:.4f} &rarr; {cal['val_log_loss_after']:.4f}).")
    else:
        how = "Not calibrated (train.calibrate=none, or no validation split)."
    text = (f"<p>Expected calibration error on the test split: <b>{bins['ece']:.4f}</b> ({len(preds)} rows, "
            f"15 bins). {how}</p>")
    return [("Calibration", text + embed(png))]

