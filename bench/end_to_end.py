"""From the command to the answer: whole-process wall time, CPU time and peak memory (issue 16).

Each measurement is one fresh process, as a user runs it: ``trainwell fit DATA`` (defaults, a run
directory with its report) against a scikit-learn script (import, scale, early-stopped
MLPClassifier, score) and LightGBM's defaults on the same rows and the same held-out test rows
(bench/_e2e_job.py); then the same through ``tw.Classifier`` in ``cross_val_score`` and
``GridSearchCV`` over docs/sklearn.md's grid. Jobs are interleaved (every job once, then again) and
the median of the repeats is kept; CPU time is the child's user + system time (wait4), which other
processes on shared cores inflate less than wall time; peak memory is the child's max RSS. The
machine's load average is recorded before and after. A second part times ``trainwell fit`` and the
peers on 1,000 to 1,000,000 synthetic rows (20 columns) once each: how the cost grows with the rows.

Run:  bench/.venv/bin/python bench/end_to_end.py [--quick] [--repeats 3] [--max-rows 1000000]
      (from a git worktree without .venv: TW_VENV=MAIN/.venv PYTHONPATH=$PWD/src, same command)
Writes bench/results/end_to_end.json and docs/images/end_to_end_scaling.png; prints ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# the product, in its own environment: ROOT/.venv, or TW_VENV (a git worktree without its own venv:
# TW_VENV=/path/to/main/.venv PYTHONPATH=$PWD/src, which the child processes inherit)
TW_VENV = Path(os.environ.get("TW_VENV", ROOT / ".venv")).absolute()   # the jobs run in a scratch folder
TW_BIN = TW_VENV / "bin" / "trainwell"
TW_PY = TW_VENV / "bin" / "python"
PEER_PY = Path(sys.executable)                         # bench/.venv: scikit-learn, LightGBM
JOB = ROOT / "bench" / "_e2e_job.py"
OUT = ROOT / "bench" / "results" / "end_to_end.json"
PLOT = ROOT / "docs" / "images" / "end_to_end_scaling.png"
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"   # GNU time: CPU and max RSS of a child
# OpenMP's default active wait spins a core while a thread waits at a barrier; on shared, busy cores
# that inflated the CPU seconds of torch and LightGBM alike (bench/tabular.py measured 6-25x on
# LightGBM). Passive waiting makes CPU seconds measure work, for every tool; it changes no model.
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


def synthetic(rows: int, folder: Path, cols: int = 20, seed: int = 0) -> Path:
    """A binary table with a non-linear boundary (a tanh ridge plus an interaction) and 10 % label noise."""
    path = folder / f"synth_{rows}.parquet"
    if path.exists():
        return path
    import pandas as pd
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, cols), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal(cols).astype(np.float32)
    score = np.tanh(X) @ w + 0.8 * X[:, 0] * X[:, 1]
    y = (score > np.median(score)).astype(np.int64)
    flip = rng.random(rows) < 0.1
    y[flip] = 1 - y[flip]
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(cols)])
    frame["y"] = y
    frame.to_parquet(path, index=False)
    return path


def measure(cmd: list[str], cwd: Path, timeout: float) -> dict:
    """Wall, CPU (user + system) and peak RSS of one child process (GNU time), and its last JSON line."""
    stats = cwd / "time.txt"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([TIME, "-f", "%U %S %M", "-o", str(stats), *cmd], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": ((proc.stderr or proc.stdout).strip().splitlines() or ["failed"])[-1]}
    user, system, peak_kb = stats.read_text().split()[-3:]
    row = {"wall_s": wall, "cpu_s": float(user) + float(system), "peak_mb": float(peak_kb) / 1024}
    lines = [x for x in proc.stdout.strip().splitlines() if x.startswith("{")]
    if lines:
        row.update(json.loads(lines[-1]))
    return row


def trainwell_fit(data: str, folder: Path) -> list[str]:
    out = folder / f"run-{time.monotonic_ns()}"
    target = ["--target", "y"] if data.endswith(".parquet") else []
    return [str(TW_BIN), "fit", data, *target, "--out", str(out)]


def fit_accuracy(row: dict, cmd: list[str]) -> None:
    """trainwell fit prints a table; the run directory's metrics.json holds the test accuracy."""
    run = Path(cmd[cmd.index("--out") + 1])
    metrics = run / "metrics.json"
    if metrics.exists():
        row["accuracy"] = json.loads(metrics.read_text())["test"]["accuracy"]
    shutil.rmtree(run, ignore_errors=True)


def jobs(datasets: list[str], grid: bool) -> list[tuple[str, str, str]]:
    """(group, tool, data) for every measurement of the first part."""
    out = []
    for data in datasets:
        out += [("fit", "trainwell", data), ("fit", "sklearn-mlp", data), ("fit", "lightgbm", data)]
    for data in datasets[:3]:
        out += [("cv", "trainwell", data), ("cv", "sklearn-mlp", data), ("cv", "lightgbm", data)]
    if grid:
        out += [("grid", "trainwell", "breast_cancer"), ("grid", "sklearn-mlp", "breast_cancer")]
    return out


def command(group: str, tool: str, data: str, folder: Path) -> list[str]:
    if group == "fit" and tool == "trainwell":
        return trainwell_fit(data, folder)
    kind = {"fit": {"sklearn-mlp": "mlp", "lightgbm": "lgbm"},
            "cv": {"trainwell": "cv-tw", "sklearn-mlp": "cv-mlp", "lightgbm": "cv-lgbm"},
            "grid": {"trainwell": "grid-tw", "sklearn-mlp": "grid-mlp"}}[group][tool]
    return [str(TW_PY if tool == "trainwell" else PEER_PY), str(JOB), kind, data]


def compile_bytecode() -> None:
    """Compile trainwell's modules as a wheel install does (pip's default), so that every tool is timed with
    its bytecode on disk: the peers in bench/.venv were installed from wheels, trainwell in editable mode,
    whose bytecode is written on first import unless PYTHONDONTWRITEBYTECODE is set, and then never (about
    0.12 s of compiling 125 modules in each ``trainwell fit``, measured on the 2-core machine)."""
    import trainwell
    subprocess.run([str(TW_PY), "-m", "compileall", "-q", str(Path(trainwell.__file__).parent)], check=True)


def start_up(repeats: int, folder: Path) -> dict:
    """``import trainwell`` and ``trainwell --help``, fresh processes, the median of ``repeats``."""
    cmds = {"import trainwell": [str(TW_PY), "-c", "import trainwell"], "trainwell --help": [str(TW_BIN), "--help"],
            "import torch": [str(TW_PY), "-c", "import torch"], "import sklearn": [str(PEER_PY), "-c", "import sklearn"]}
    out = {}
    for name, cmd in cmds.items():
        rows = [measure(cmd, folder, 120) for _ in range(repeats)]
        out[name] = summarise(rows)
        print(f"  start-up {name:18s} wall {out[name].get('wall_s', float('nan')):.3f} s  "
              f"cpu {out[name].get('cpu_s', float('nan')):.3f} s", flush=True)
    return out


def run_jobs(todo: list[tuple[str, str, str]], repeats: int, folder: Path, timeout: float) -> dict:
    """Every job once per round, rounds repeated; the median of each job's rounds."""
    raw: dict[str, list[dict]] = {}
    for r in range(repeats):
        for group, tool, data in todo:
            cmd = command(group, tool, data, folder)
            row = measure(cmd, folder, timeout)
            if group == "fit" and tool == "trainwell":
                fit_accuracy(row, cmd)
            key = f"{group}|{tool}|{Path(data).stem}"
            raw.setdefault(key, []).append(row)
            print(f"  round {r + 1} {key:40s} " + "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                          for k, v in row.items()), flush=True)
    return {key: summarise(rows) for key, rows in raw.items()}


def summarise(rows: list[dict]) -> dict:
    good = [r for r in rows if "error" not in r]
    if not good:
        return {"error": rows[-1].get("error"), "runs": len(rows)}
    out = {k: statistics.median(r[k] for r in good if k in r)
           for k in ("wall_s", "cpu_s", "peak_mb", "accuracy", "mean_cv") if any(k in r for r in good)}
    out["runs"] = len(good)
    return out


def scaling(rows_list: list[int], folder: Path, timeout: float) -> dict:
    """trainwell fit and the peers on growing synthetic tables, once each."""
    out: dict[str, dict] = {}
    for rows in rows_list:
        data = str(synthetic(rows, folder))
        for tool in ("trainwell", "sklearn-mlp", "lightgbm"):
            cmd = command("fit", tool, data, folder)
            row = measure(cmd, folder, timeout)
            if tool == "trainwell":
                fit_accuracy(row, cmd)
            out.setdefault(tool, {})[str(rows)] = row
            print(f"  scaling {tool:12s} {rows:>9,} rows  " + "  ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return out


def ratios(results: dict) -> list[str]:
    """trainwell's wall and CPU time over each peer's, per group and data set."""
    lines = []
    for key, row in results.items():
        group, tool, data = key.split("|")
        if tool != "trainwell" or "wall_s" not in row:
            continue
        for peer in ("sklearn-mlp", "lightgbm"):
            other = results.get(f"{group}|{peer}|{data}", {})
            if "wall_s" in other:
                lines.append(f"{group:5s} {data:16s} trainwell/{peer:12s} wall {row['wall_s'] / other['wall_s']:5.2f}x "
                             f"cpu {row['cpu_s'] / other['cpu_s']:5.2f}x   accuracy {row.get('accuracy', float('nan')):.4f}"
                             f" vs {other.get('accuracy', float('nan')):.4f}")
    return lines


def markdown(report: dict) -> str:
    """The docs/performance.md tables: one row per (group, data), the tools side by side."""
    tools = ("trainwell", "sklearn-mlp", "lightgbm")
    lines = ["| job | data | " + " | ".join(f"{t} wall / CPU s (acc.)" for t in tools) + " | trainwell / MLP wall |",
             "|---|---|" + "---:|" * (len(tools) + 1)]
    keys = sorted({tuple(k.split("|")[::2]) for k in report["results"]}, key=lambda k: ("fit cv grid".index(k[0]), k[1]))
    for group, data in keys:
        cells = []
        for t in tools:
            r = report["results"].get(f"{group}|{t}|{data}", {})
            mean_cv = f"; mean of grid {r['mean_cv']:.3f}" if "mean_cv" in r else ""
            cells.append(f"{r['wall_s']:.2f} / {r['cpu_s']:.2f} ({r.get('accuracy', float('nan')):.3f}{mean_cv})"
                         if "wall_s" in r else "-")
        tw, mlp = (report["results"].get(f"{group}|{t}|{data}", {}) for t in tools[:2])
        ratio = f"{tw['wall_s'] / mlp['wall_s']:.2f}x" if "wall_s" in tw and "wall_s" in mlp else "-"
        lines.append(f"| {group} | {data} | " + " | ".join(cells) + f" | {ratio} |")
    if report.get("start_up"):
        lines += ["", "| start-up (median of 5) | wall s | CPU s |", "|---|---:|---:|"]
        lines += [f"| `{name}` | {r.get('wall_s', float('nan')):.3f} | {r.get('cpu_s', float('nan')):.3f} |"
                  for name, r in report["start_up"].items()]
    if report.get("scaling"):
        rows = sorted({int(r) for per in report["scaling"].values() for r in per})
        lines += ["", "| rows | " + " | ".join(f"{t} wall / CPU s (acc.)" for t in tools) + " |",
                  "|---:|" + "---:|" * len(tools)]
        for n in rows:
            cells = []
            for t in tools:
                r = report["scaling"].get(t, {}).get(str(n), {})
                cells.append(f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} ({r.get('accuracy', float('nan')):.3f})"
                             if "wall_s" in r else r.get("error", "-") if r else "-")
            lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(scale: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for tool, per in scale.items():
        pts = sorted((int(r), v["wall_s"]) for r, v in per.items() if "wall_s" in v)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows (20 columns)")
    ax.set_ylabel("whole-process wall time (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="iris, digits and 10,000 rows; 1 round; scaling to 10,000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=None, help="largest table of the scaling part "
                    "(default 1,000,000; with --quick 10,000)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the tables of an earlier run's JSON and exit")
    ap.add_argument("--out", type=Path, default=OUT, help="the JSON to write (or, with --markdown, to read)")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return
    folder = Path(tempfile.mkdtemp(prefix="tw-e2e-"))
    load_before = os.getloadavg()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    datasets = ["iris", "digits", *(str(synthetic(n, folder)) for n in sizes)]
    repeats = 1 if args.quick else args.repeats
    print(f"load average {load_before[0]:.2f}; {repeats} round(s); folder {folder}", flush=True)
    compile_bytecode()
    startup = start_up(5, folder)
    results = run_jobs(jobs(datasets, grid=True), repeats, folder, args.timeout)
    max_rows = args.max_rows or (10_000 if args.quick else 1_000_000)
    rows = [r for r in (1_000, 10_000, 100_000, 1_000_000) if r <= max_rows]
    scale = {} if args.no_scaling else scaling(rows, folder, args.timeout)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cores": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "repeats": repeats, "quick": args.quick, "start_up": startup, "results": results, "scaling": scale}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if scale:
        plot(scale)
    print("\n".join(ratios(results)))
    print(markdown(report))
    print(f"load average {report['load_average_after'][0]:.2f} after; wrote {args.out}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
