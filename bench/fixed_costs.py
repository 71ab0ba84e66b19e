"""Per-epoch fixed costs of a default `fit` on a small table: checkpoints, monitors, progress bar.

Issue 13 (scope 4): on a 300-row table the fixed cost per epoch dominated (a fsynced checkpoint
write per improving epoch). This trains `trainwell fit TABLE --target COL` with the defaults
(a run directory, the monitors, the progress bar) for a fixed number of epochs and accounts:

* checkpoint: wall time inside the Checkpointer (its fsyncs wait on the disk) / training wall time;
* monitors: CPU time of the training thread inside the monitor callbacks, plus what the sampled
  steps cost over a plain step (they run with hooks, so they take autograd) / training CPU time;
* progress: CPU time inside the progress bar / training CPU time.

CPU time is used where it can be, because other processes on shared cores inflate wall time.
Run:  .venv/bin/python bench/fixed_costs.py [TABLE.csv TARGET] [--epochs 200] [--repeats 3] [--set k=v ...]
(default table: ../shared/data/tabular/Carseats.csv, target Sales: 400 rows, 320 for training).
"""
from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import trainwell
from trainwell.diagnose import monitors as M
from trainwell.train import checkpoint as C
from trainwell.train import fast as F
from trainwell.train import progress as P

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("table", nargs="?", default=str(ROOT.parent / "shared/data/tabular/Carseats.csv"))
    ap.add_argument("target", nargs="?", default="Sales")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def wrap(owner, name: str, key: str, clock, into: dict) -> None:
        f = getattr(owner, name)

        def timed(*a, **k):
            t = clock()
            try:
                return f(*a, **k)
            finally:
                into[key] = into.get(key, 0.0) + clock() - t
        setattr(owner, name, timed)

    for hook in ("on_train_begin", "on_step_end", "on_epoch_end", "on_train_end"):
        wrap(C.Checkpointer, hook, "checkpoint", time.perf_counter, wall)
        wrap(M.Monitor, hook, "monitor", time.thread_time, cpu)
    for bar in (P.LiveBar, P.PlainLog):            # train/progress.py: a live bar on a terminal, lines in a pipe
        wrap(bar, "__call__", "progress", time.thread_time, cpu)
    wrap(C.Checkpointer, "train", "train", time.perf_counter, wall)
    wrap(C.Checkpointer, "train", "train", time.thread_time, cpu)
    analytic = F.analytic_step

    def counted(state, fallback, with_metric=True):   # sampled steps fall back to autograd
        def slow(*a):
            t = time.thread_time()
            out = fallback(*a)
            cpu["sampled"] = cpu.get("sampled", 0.0) + time.thread_time() - t
            cpu["n_sampled"] = cpu.get("n_sampled", 0) + 1
            return out
        step = analytic(state, slow, with_metric)
        if step is None:
            return None

        def every(*a):
            t = time.thread_time()
            out = step(*a)
            cpu["steps"] = cpu.get("steps", 0.0) + time.thread_time() - t
            cpu["n_steps"] = cpu.get("n_steps", 0) + 1
            return out
        return every
    F.analytic_step = counted
    real_console = P.Console                  # the live bar, as on a terminal, drawn into a sink
    sink = io.StringIO()
    P.Console = lambda **k: real_console(file=sink, force_terminal=True, width=120,
                                         **{kk: v for kk, v in k.items() if kk != "file"})
    rows = []
    for _ in range(args.repeats):
        wall.clear()
        cpu.clear()
        out = Path(tempfile.mkdtemp(prefix="fixed-costs-"))
        try:
            run = trainwell.fit({"source": args.table, "target": args.target},
                                sets=[f"train.epochs={args.epochs}", "stop.patience=100000", *args.sets],
                                out=out / "run", verbose=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        epochs = run.metrics["epochs_run"]
        n_plain = cpu.get("n_steps", 0) - cpu.get("n_sampled", 0)
        plain = (cpu.get("steps", 0.0) - cpu.get("sampled", 0.0)) / n_plain if n_plain else 0.0
        monitors = cpu.get("monitor", 0.0) + cpu.get("sampled", 0.0) - cpu.get("n_sampled", 0) * plain
        row = {"wall ms/epoch": wall["train"] / epochs * 1e3, "cpu ms/epoch": cpu["train"] / epochs * 1e3,
               "checkpoint %": wall.get("checkpoint", 0.0) / wall["train"] * 100,
               "monitors %": monitors / cpu["train"] * 100, "progress %": cpu.get("progress", 0.0) / cpu["train"] * 100,
               "sampled steps": cpu.get("n_sampled", 0)}
        row["fixed costs %"] = row["checkpoint %"] + row["monitors %"] + row["progress %"]
        rows.append(row)
        print({k: round(v, 2) for k, v in row.items()}, flush=True)
    print("median:", {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]})


if __name__ == "__main__":
    main()
