"""Cost of the babysitting monitors: epoch time with train.monitor on (default sampling) vs off.

Two measures: the A/B difference of epoch times (monitor on vs off; noisy on shared cores) and the
time accounted inside the monitor itself (its callbacks and hooks, stopwatched) as a share of the rest.
Prints a table and writes bench/results/monitor_overhead.json. Each configuration is timed
on the same data and seed; the fastest epoch time (epochs 2..N, runs interleaved; noise only adds time) is compared.
Run: .venv/bin/python bench/monitor_overhead.py
"""
from __future__ import annotations

import json
import time
import sys
from pathlib import Path

import torch

import trainwell as tw
from trainwell.diagnose.monitors import Monitor

CASES = [
    ("digits 64-64-64 relu, batch 32", ["model.hidden=[64,64,64]"]),
    ("digits 20 x 32 tanh, batch 32", [f"model.hidden={[32] * 20}", "model.activation=tanh"]),
    ("digits 256-256 relu, batch 128", ["model.hidden=[256,256]", "train.batch_size=128"]),
]
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 12
REPEATS = 5


def epoch_times(sets: list[str], monitor: bool, seed: int) -> list[float]:
    run = tw.fit("digits", sets=[*sets, f"train.epochs={EPOCHS}", "stop.enabled=false", "train.progress=false",
                                 f"train.monitor={str(monitor).lower()}", f"train.seed={seed}"],
                 save=False, verbose=False)
    return list(run.history["seconds"].iloc[1:])


class TimedMonitor(Monitor):
    """The monitor with a stopwatch around every piece of it (callbacks and hooks)."""

    spent = 0.0

    def _timed(self, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                TimedMonitor.spent += time.perf_counter() - t
        return wrapper

    def on_step_end(self, state):
        return self._timed(super().on_step_end)(state)

    def on_epoch_end(self, state):
        return self._timed(super().on_epoch_end)(state)

    def _hook(self, i, kind):
        return self._timed(super()._hook(i, kind))

    def _out_hook(self, i):
        return self._timed(super()._out_hook(i))


def accounted(sets: list[str]) -> float:
    """Share of the training time spent inside the monitor (with train.monitor=false plus a TimedMonitor)."""
    TimedMonitor.spent = 0.0
    t = time.perf_counter()
    run = tw.fit("digits", sets=[*sets, f"train.epochs={EPOCHS}", "stop.enabled=false", "train.progress=false",
                                 "train.monitor=false"], save=False, verbose=False, callbacks=[TimedMonitor()])
    total = float(run.history["seconds"].sum())
    del t
    return 100 * TimedMonitor.spent / (total - TimedMonitor.spent)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for name, sets in CASES:
        epoch_times(sets, False, 0)                   # warm-up
        t_off, t_on = [], []
        for r in range(REPEATS):                      # interleaved, so that machine load hits both alike
            t_off += epoch_times(sets, False, r)
            t_on += epoch_times(sets, True, r)
        # fastest epoch: the least disturbed by other processes on shared cores (noise only ever adds time)
        off, on = min(t_off), min(t_on)
        acc = min(accounted(sets) for _ in range(3))
        rows.append({"case": name, "epoch_s_off": off, "epoch_s_on": on, "overhead_pct": 100 * (on / off - 1),
                     "accounted_pct": acc})
    print(f"{'case':<34} {'off (s/epoch)':>14} {'on (s/epoch)':>13} {'A/B overhead':>13} {'time in monitor':>16}")
    for r in rows:
        print(f"{r['case']:<34} {r['epoch_s_off']:>14.4f} {r['epoch_s_on']:>13.4f} {r['overhead_pct']:>12.1f}%"
              f" {r['accounted_pct']:>15.1f}%")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "monitor_overhead.json").write_text(json.dumps({"epochs": EPOCHS, "repeats": REPEATS, "rows": rows},
                                                          indent=2))


if __name__ == "__main__":
    main()
