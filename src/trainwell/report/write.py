"""A finished run's directory, written in full: the run itself (model, spec, history, metrics), the curves,
the doctor's files, the reconstructions of an autoencoder, the checksums (model.json), then report.html,
which reads them. ``trainwell.fit`` and ``tune --trial-reports`` write a run here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwell.diagnose.session import write_files
from trainwell.nn.autoencoder import plot_reconstructions
from trainwell.report.html import write_report
from trainwell.report.plots import plot_curves


def write_run_directory(run: Any, run_dir: Path, best_epoch: int) -> None:
    """Every file of ``run_dir`` for a trained ``run`` (a trainwell Run), report.html last."""
    run.save(run_dir)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if not run.history.empty:
        plot_curves(run.history, run.head.metric, run_dir / "curves.svg", best_epoch)
    write_files(run, run_dir)                         # diagnostics.csv, diagnosis.json, data.json
    if run.arch.get("type") == "autoencoder" and getattr(run, "sample_inputs", None) is not None:
        plot_reconstructions(run, run.sample_inputs, run_dir / "reconstructions.png")   # inputs / noisy / outputs
    run.seal(run_dir)                                 # model.json: checksums of every file written above
    write_report(run, run_dir)
