"""The benchmark suite: trainwell against the lean PyTorch loop and peer libraries, interleaved.

    python bench/run_all.py [--rounds 3] [--tasks mnist,digits] [--tools ...] [--threads 2]
    make bench            # the same, with the peers from bench/.venv (make bench-env)
    make bench QUICK=1    # --quick: one round of 2 digits epochs, results to a temp file (checks it runs)

Each measurement is one process (``bench/_tools.py TOOL``), so imports never interfere;
the tools run interleaved round by round (round r runs every tool on every task
before round r+1), so a noisy machine slows all of them alike. Prints a markdown
table per task and writes every record to ``bench/results/run_all.json``.

Peer libraries are not dependencies of trainwell: they are looked up in the
interpreter given by ``--python`` (default: bench/.venv/bin/python when present,
else this interpreter); a tool whose library is missing is skipped with the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = {"lightning": "lightning", "skorch": "skorch", "keras": "keras", "sklearn": "sklearn",
           "trainwell": "trainwell", "trainwell_fast": "trainwell", "lean": "torch", "dataloader": "torch"}
LABELS = {"trainwell": "trainwell (defaults: monitors on)", "trainwell_fast": "trainwell train.fast=true",
          "lean": "lean PyTorch loop", "dataloader": "PyTorch DataLoader loop", "lightning": "PyTorch Lightning",
          "skorch": "skorch", "keras": "Keras 3 (torch backend)", "sklearn": "scikit-learn MLPClassifier"}
ORDER = ["trainwell", "trainwell_fast", "lean", "dataloader", "skorch", "sklearn", "lightning", "keras"]


def available(python: str, module: str) -> str | None:
    r = subprocess.run([python, "-c", f"import importlib.util,sys; sys.exit(importlib.util.find_spec('{module}') is None)"],
                       capture_output=True)
    return None if r.returncode == 0 else f"{module} is not installed in {python} (run `make bench-env`)"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tasks", default="mnist,digits")
    p.add_argument("--tools", default=",".join(ORDER))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", default="", help="per task, e.g. mnist=3,digits=20 (default: the task's)")
    venv = HERE / ".venv" / "bin" / "python"
    p.add_argument("--python", default=str(venv) if venv.exists() else sys.executable)
    p.add_argument("--json", type=Path, default=HERE / "results" / "run_all.json")
    p.add_argument("--quick", action="store_true",
                   help="one round, digits, 2 epochs, results to a temp file: a check that the suite runs")
    a = p.parse_args(argv)
    if a.quick:   # never overwrite bench/results with a smoke run's numbers
        a.rounds, a.tasks, a.epochs = 1, "digits", "digits=2"
        a.json = a.json if "--json" in (argv or sys.argv) else Path(tempfile.mkdtemp()) / "run_all.json"
    tasks, tools = a.tasks.split(","), a.tools.split(",")
    epochs = dict(kv.split("=") for kv in a.epochs.split(",") if kv)
    skipped = {t: why for t in tools if (why := available(a.python, MODULES[t]))}
    for t, why in skipped.items():
        print(f"skip {t}: {why}", file=sys.stderr)
    records, loads, failures = [], [], []
    for r in range(a.rounds):
        for task in tasks:
            for tool in [t for t in tools if t not in skipped]:
                cmd = [a.python, str(HERE / "_tools.py"), tool, "--task", task, "--seed", str(r),
                       "--threads", str(a.threads)] + (["--epochs", epochs[task]] if task in epochs else [])
                t0 = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
                load = os.getloadavg()[0]
                loads.append(load)
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                if out.returncode != 0 or not line:
                    print(f"round {r} {task} {tool}: FAILED\n{out.stderr[-2000:]}", file=sys.stderr)
                    failures.append(f"{tool} on {task}, round {r}")
                    continue
                rec = json.loads(line[-1])
                rec.update(round=r, process_s=time.perf_counter() - t0, load1=load)
                records.append(rec)
                print(f"round {r} {task:6} {tool:15} {rec['median_s']:.4f} s/epoch acc {rec['test_acc']:.4f} "
                      f"load {load:.1f}", file=sys.stderr)
    summary = {"threads": a.threads, "rounds": a.rounds, "load1_median": statistics.median(loads) if loads else None,
               "load1_range": [min(loads), max(loads)] if loads else None, "skipped": skipped, "tasks": {}}
    for task in tasks:
        recs = [x for x in records if x["task"] == task]
        lean_by_round = {x["round"]: x["s_per_epoch_full"] for x in recs if x["tool"] == "lean"}
        rows = {}
        for tool in [t for t in tools if t not in skipped]:
            mine = [x for x in recs if x["tool"] == tool]
            if not mine:
                continue
            s = statistics.median(x["s_per_epoch_full"] for x in mine)
            paired = [x["s_per_epoch_full"] / lean_by_round[x["round"]] for x in mine if x["round"] in lean_by_round]
            rows[tool] = {"s_per_epoch": s, "samples_per_s": statistics.median(x["samples_per_s"] for x in mine),
                          "test_acc": statistics.median(x["test_acc"] for x in mine),
                          "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in mine),
                          "process_s": statistics.median(x["process_s"] for x in mine),
                          "ratio_to_lean_paired": statistics.median(paired) if paired else None, "runs": len(mine)}
        base = rows.get("lean", {}).get("s_per_epoch")
        for v in rows.values():
            v["ratio_to_lean"] = v["s_per_epoch"] / base if base else None
        summary["tasks"][task] = rows
        print(f"\n### {task} ({a.rounds} rounds, {a.threads} torch threads, load average "
              f"{summary['load1_median']:.1f} median)\n")
        print("| tool | s/epoch (median) | samples/s | x lean | x lean, paired by round | test acc | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for tool, v in rows.items():
            ratio = f"{v['ratio_to_lean']:.2f}" if v["ratio_to_lean"] else "-"
            paired = f"{v['ratio_to_lean_paired']:.2f}" if v["ratio_to_lean_paired"] else "-"
            print(f"| {LABELS[tool]} | {v['s_per_epoch']:.4f} | {v['samples_per_s']:,.0f} | {ratio} | {paired} | "
                  f"{v['test_acc']:.4f} | {v['peak_rss_mb']:.0f} |")
    for t, why in skipped.items():
        print(f"\nskipped {LABELS[t]}: {why}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"summary": summary, "records": records}, indent=2))
    if failures:   # a benchmark that silently drops a row would look like a result
        raise SystemExit(f"failed: {'; '.join(failures)} (their errors are printed above)")
    return summary


if __name__ == "__main__":
    main()
