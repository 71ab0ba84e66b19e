"""Tabular benchmark (issue 13): trainwell's defaults next to what a practitioner would use instead.

    python bench/tabular.py [--tables Carseats,Housing] [--tools trainwell,sklearn_mlp,lightgbm,realmlp,linear]
                            [--splits 3] [--seed 0] [--out bench/results/tabular.json] [--reuse]
                            [--tw-set section.key=value ...] [--tw-python PATH] [--timeout 1800]
                            [--data FOLDER]

Tables: ``../shared/data/tabular/suite.json`` (file, target, task). For each table and outer split s
(random_state seed+s) rows whose target is missing are dropped for every tool alike (and counted), an
80/20 split (stratified for classification) is written as train.csv and test.csv (without the target),
and each tool runs as ONE separate process per step, timed for CPU seconds (user+sys, its waited-for
children included) and wall seconds:

- trainwell exactly as a user runs it: ``trainwell fit train.csv --target COL --out DIR`` then
  ``trainwell predict DIR test.csv --out pred.csv``; both processes count. ``--tw-set`` forwards
  ``--set`` for experiments (recorded with the scores); ``--tw-python`` picks the interpreter.
- the peers (``bench/_tabular_peer.py``, run by bench/.venv/bin/python: ``make bench-env``):
  scikit-learn's MLP and a linear model behind the standard one-hot/impute/scale pipeline,
  LightGBM and RealMLP-TD (pytabkit), all with their defaults.

Scores: accuracy (classification) or R² (regression) on the test rows. A tool that fails gets score
None and the last line of its error; the benchmark goes on. Prints a markdown table (tables × tools,
mean over splits; then mean score, mean rank, failures, CPU and wall seconds) and writes every
per-split record to ``--out`` after each measurement, so a long run can be watched and is never lost.

``--reuse`` keeps the records of the tools *not* asked for from an existing ``--out`` (same seed and
splits): ``--tools trainwell --reuse`` re-measures trainwell after a change without rerunning the peers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "tabular"
PEERS = ("sklearn_mlp", "lightgbm", "realmlp", "linear")
TOOLS = ("trainwell",) + PEERS
GAP = 0.005          # trainwell must be within this of scikit-learn's MLP on every table (issue 13)
# Every tool's processes get this environment. OpenMP's default active wait spins on a core while a
# thread waits at a barrier; on a shared 2-core machine whose other processes hold the cores, that
# spinning inflated LightGBM's CPU seconds 6-25x on a 320-row table (torch's threads spin the same way).
# Passive waiting makes CPU seconds measure work, for every tool alike; it changes no model.
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


def set_data(folder: Path) -> None:
    """Benchmark the suite in ``folder`` (its suite.json and CSVs) instead of the shared one."""
    global DATA
    DATA = Path(folder)


def table_name(entry: dict) -> str:
    return Path(entry["file"]).stem


def load_suite(names: list[str] | None) -> list[dict]:
    """The suite's entries, in suite order, restricted to ``names`` (an unknown name is an error,
    not a silently shorter benchmark)."""
    suite = json.loads((DATA / "suite.json").read_text())
    unknown = set(names or []) - {table_name(e) for e in suite}
    if unknown:
        raise SystemExit(f"unknown table(s) {sorted(unknown)}; the suite has {[table_name(e) for e in suite]}")
    return [e for e in suite if not names or table_name(e) in names]


def outer_splits(entry: dict, seed: int, n: int):
    """Yield (split index, split seed, train, test, rows dropped) for ``n`` repeated 80/20 splits.
    Rows without a target are dropped here, once, so every tool sees the same rows."""
    frame = pd.read_csv(DATA / entry["file"])
    target = entry["target"]
    kept = frame.dropna(subset=[target])
    stratify = kept[target] if entry["task"] == "classification" else None
    for s in range(n):
        train, test = _split(kept, stratify, seed + s)
        yield s, seed + s, train, test, len(frame) - len(kept)


def each_split(args, measure) -> list[dict]:
    """``measure(entry, train, test)`` on every outer split of ``args.tables`` (comma-separated) for
    ``args.splits`` splits: one JSON line printed per split, all rows rewritten to ``args.out`` after
    each, so a long in-process experiment (bench/tabular_crossfit.py, bench/stopping_rules.py) can be
    watched and is never lost."""
    from trainwell.core.errors import UserError

    rows: list[dict] = []
    for entry in load_suite([t for t in args.tables.split(",") if t]):
        for s, _, train, test, _ in outer_splits(entry, 0, args.splits):
            try:
                rows.append(dict(split=s, **measure(entry, train, test)))
            except UserError as refused:    # a random target trainwell refuses (bench/sweep.py): skip the table
                print(f"{table_name(entry)}: refused, skipped ({str(refused)[:200]})", flush=True)
                break
            print(json.dumps(rows[-1]), flush=True)
            if args.out:
                args.out.write_text(json.dumps(dict(args=vars(args), rows=rows), indent=1, default=str))
    return rows


def _split(frame: pd.DataFrame, stratify, seed: int):
    """80/20, stratified by class when stratifying can be done: every class has two rows, and the 20 % holds
    a row of each (bench/sweep.py's random targets can have classes of one row, or 9 classes in 40 rows);
    the suites' tables all can, so their splits are unchanged."""
    from sklearn.model_selection import train_test_split
    if stratify is not None:
        counts = stratify.value_counts()
        if counts.min() < 2 or math.ceil(0.2 * len(frame)) < len(counts):
            stratify = None
    return train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)


def trainwell_cli(python: str) -> list[str]:
    """The ``trainwell`` command a user types (the script beside the interpreter), else ``python -m``."""
    script = Path(python).parent / "trainwell"
    return [str(script)] if script.exists() else [python, "-m", "trainwell"]


def commands(tool: str, work: Path, entry: dict, split_seed: int, args) -> list[list[str]]:
    """The process(es) one tool runs on one split; each writes ``work/TOOL.csv`` in the end."""
    train, test, pred = work / "train.csv", work / "test.csv", work / f"{tool}.csv"
    if tool == "trainwell":
        cli, run = trainwell_cli(args.tw_python), work / "trainwell-run"
        sets = [arg for kv in args.tw_set for arg in ("--set", kv)]
        return [[*cli, "fit", str(train), "--target", entry["target"], "--out", str(run), *sets],
                [*cli, "predict", str(run), str(test), "--out", str(pred)]]
    return [[args.peer_python, str(HERE / "_tabular_peer.py"), tool, str(train), str(test), entry["target"],
             entry["task"], str(pred), "--seed", str(split_seed)]]


def timed(cmd: list[str], log: Path, timeout: float) -> tuple[int | None, float, float]:
    """Run ``cmd`` (stdout to ``log.out``, stderr to ``log.err``) in its own process group.
    Returns exit code (None on timeout: the whole group is killed), CPU seconds from the
    RUSAGE_CHILDREN delta (this script runs one child at a time, so the delta is that child's),
    and wall seconds."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with log.with_suffix(".out").open("w") as out, log.with_suffix(".err").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=log.parent, env=ENV,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rc, cpu, time.perf_counter() - t0


def last_line(log: Path) -> str:
    """The error a user would read: the last non-empty stderr line (stdout's if stderr is empty)."""
    for suffix in (".err", ".out"):
        lines = [ln.strip() for ln in log.with_suffix(suffix).read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return ""


def same_labels(truth: pd.Series, pred: pd.Series) -> np.ndarray:
    """Labels compared as numbers when both sides are numbers (1 == 1.0), else as text: the truth
    and a tool's CSV can come back with different dtypes for the same labels."""
    t, p = pd.to_numeric(truth, errors="coerce"), pd.to_numeric(pred, errors="coerce")
    if t.notna().all() and p.notna().all():
        return t.to_numpy(dtype=float) == p.to_numpy(dtype=float)
    return truth.astype(str).to_numpy() == pred.astype(str).to_numpy()


def score(task: str, truth: pd.Series, pred_file: Path) -> float:
    """Accuracy (classification) or R² (regression) of the ``prediction`` column on the test rows."""
    from sklearn.metrics import r2_score
    pred = pd.read_csv(pred_file)["prediction"]
    if len(pred) != len(truth):
        raise ValueError(f"{len(pred)} predictions for {len(truth)} test rows")
    if task == "regression":
        return float(r2_score(truth.to_numpy(dtype=float), pred.to_numpy(dtype=float)))
    return float(same_labels(truth.reset_index(drop=True), pred).mean())


def run_tool(tool: str, work: Path, entry: dict, split_seed: int, truth: pd.Series, args) -> dict:
    """One tool on one split: its processes in turn, their CPU and wall seconds summed; the score,
    or None and the failing step's last error line."""
    cpu = wall = 0.0
    for step, cmd in enumerate(commands(tool, work, entry, split_seed, args)):
        rc, c, w = timed(cmd, work / f"{tool}-{step}", args.timeout)
        cpu, wall = cpu + c, wall + w
        if rc != 0:
            error = f"timed out after {args.timeout:.0f} s" if rc is None else last_line(work / f"{tool}-{step}")
            return dict(score=None, error=error or f"exit code {rc}", cpu_s=cpu, wall_s=wall)
    pred = work / f"{tool}.csv"
    try:
        value, error = score(entry["task"], truth, pred), None
    except Exception as exc:  # noqa: BLE001 - a tool's unreadable output is its failure, not the bench's
        value, error = None, f"{type(exc).__name__}: {exc}"
    info = pred.with_suffix(".json")
    extra = json.loads(info.read_text()) if info.exists() else {}
    return dict(score=value, error=error, cpu_s=cpu, wall_s=wall, **extra)


def write_split(work: Path, train: pd.DataFrame, test: pd.DataFrame, target: str) -> pd.Series:
    """train.csv with the target, test.csv without it (as a user's new data); returns the test truth."""
    train.to_csv(work / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(work / "test.csv", index=False)
    return test[target]


def git_commit() -> str:
    """HEAD, marked ``+dirty`` when src/ has uncommitted changes: trainwell's scores belong to a code state."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True).stdout
    return head.strip() + ("+dirty" if dirty.strip() else "")


def reused_records(path: Path, seed: int, splits: int, rerun: set[tuple[str, str]]) -> list[dict]:
    """Records from an earlier run kept by ``--reuse``: all but the (table, tool) pairs rerun now.
    Only a file with the same seed and number of splits qualifies: other splits are other test rows."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    if (old.get("seed"), old.get("splits")) != (seed, splits):
        raise SystemExit(f"--reuse: {path} has seed {old.get('seed')} and {old.get('splits')} splits, "
                         f"not {seed} and {splits}")
    return [r for r in old["records"] if (r["table"], r["tool"]) not in rerun]


def save(path: Path, args, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = dict(seed=args.seed, splits=args.splits, cpus=os.cpu_count(), updated=time.strftime("%Y-%m-%d %H:%M:%S"),
               records=records)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def measure(entries: list[dict], tools: list[str], args, records: list[dict]) -> list[dict]:
    """Every tool on every table and split, in that nesting (a table's splits are written once and
    shared by all tools); ``records`` grows and is saved after each measurement."""
    commit = git_commit()
    for entry in entries:
        for s, split_seed, train, test, dropped in outer_splits(entry, args.seed, args.splits):
            with tempfile.TemporaryDirectory(prefix="tabular-") as tmp:
                work = Path(tmp)
                truth = write_split(work, train, test, entry["target"])
                for tool in tools:
                    result = run_tool(tool, work, entry, split_seed, truth, args)
                    records.append(dict(table=table_name(entry), task=entry["task"], tool=tool, split=s,
                                        split_seed=split_seed, n_train=len(train), n_test=len(test),
                                        dropped_target_rows=dropped, commit=commit,
                                        **({"tw_set": args.tw_set} if tool == "trainwell" else {}), **result))
                    print(_progress(records[-1]), file=sys.stderr, flush=True)
                    save(args.out, args, records)
    return records


def _progress(r: dict) -> str:
    shown = f"{r['score']:.3f}" if r["score"] is not None else f"FAILED: {r['error']}"
    return f"{r['table']:<22} split {r['split']} {r['tool']:<12} {shown}  ({r['cpu_s']:.1f} CPU s, {r['wall_s']:.1f} s)"


# ---------------------------------------------------------------- summary


def cell_means(frame: pd.DataFrame, tables: list[str], tools: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table × tool mean score over splits (NaN where any split failed: a tool that fails on one split
    has not handled that table) and whether the pair was measured at all."""
    pairs = frame.groupby(["table", "tool"]).score
    means = pairs.apply(lambda s: s.mean() if s.notna().all() else np.nan).unstack()
    measured = pairs.size().unstack().reindex(index=tables, columns=tools).notna()
    return means.reindex(index=tables, columns=tools).astype(float), measured


def suite_rows(frame: pd.DataFrame, means: pd.DataFrame, measured: pd.DataFrame) -> dict[str, list[str]]:
    """Mean score over the tables every tool scored (so means compare the same tables); mean rank
    over the tables every tool ran on, a failure ranking last; failures; CPU and wall seconds."""
    scored = means.dropna()
    ranks = means[measured.all(axis=1)].rank(axis=1, ascending=False, na_option="bottom").mean()
    totals = frame.groupby("tool")[["cpu_s", "wall_s"]].sum().reindex(means.columns)
    return {f"mean score ({len(scored)} tables all scored)": [_fmt(v) for v in scored.mean()],
            "mean rank (fail = last)": [_fmt(v, 2) for v in ranks],
            "tables failed": [str(int(v)) for v in (measured & means.isna()).sum()],
            "CPU s total": [_fmt(v, 0) for v in totals.cpu_s],
            "wall s total": [_fmt(v, 0) for v in totals.wall_s]}


def _fmt(value: float, digits: int = 3) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def summary(records: list[dict], entries: list[dict]) -> str:
    """The markdown report: scores per table and tool, then the suite rows and the notes."""
    tables = [table_name(e) for e in entries]
    metric = {table_name(e): "acc" if e["task"] == "classification" else "R²" for e in entries}
    frame = pd.DataFrame(records)
    if frame.empty or not frame.table.isin(tables).any():
        return "no records for these tables"
    frame = frame[frame.table.isin(tables)]
    tools = [t for t in TOOLS if t in set(frame.tool)]
    means, measured = cell_means(frame, tables, tools)
    cell = lambda t, tool: "fail" if measured.loc[t, tool] and np.isnan(means.loc[t, tool]) else _fmt(  # noqa: E731
        means.loc[t, tool])
    lines = ["| table | metric | " + " | ".join(tools) + " |", "|---|---|" + "---:|" * len(tools)]
    lines += [f"| {t} | {metric[t]} | " + " | ".join(cell(t, tool) for tool in tools) + " |" for t in tables]
    lines += [f"| **{name}** | | " + " | ".join(vals) + " |" for name, vals in suite_rows(frame, means, measured).items()]
    return "\n".join(lines + notes(frame, means, measured))


def notes(frame: pd.DataFrame, means: pd.DataFrame, measured: pd.DataFrame) -> list[str]:
    """Where trainwell trails scikit-learn's MLP by more than GAP (or fails), every failure's error,
    and the rows dropped for a missing target."""
    out = []
    if {"trainwell", "sklearn_mlp"} <= set(means.columns):
        both = measured.trainwell & means.sklearn_mlp.notna()
        for t in means.index[both & ~(means.trainwell >= means.sklearn_mlp - GAP)]:
            tw, mlp = means.loc[t, "trainwell"], means.loc[t, "sklearn_mlp"]
            gap = "trainwell failed" if np.isnan(tw) else f"{tw:.3f} vs {mlp:.3f} ({tw - mlp:+.3f})"
            out.append(f"- trainwell more than {GAP} below sklearn_mlp on {t}: {gap}")
    for r in frame[frame.score.isna()].itertuples():
        out.append(f"- {r.table} split {r.split} {r.tool} failed: {r.error}")
    for t, n in frame.groupby("table").dropped_target_rows.first().items():
        if n:
            out.append(f"- {t}: {n} rows without a target dropped (for every tool)")
    return [""] + out if out else []


def parse(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="", help="comma-separated table names (file stems); default: all")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "tabular.json")
    p.add_argument("--reuse", action="store_true", help="keep the other tools' records from --out")
    p.add_argument("--tw-set", action="append", default=[], metavar="KEY=VALUE",
                   help="forwarded to trainwell fit as --set (repeatable; for experiments)")
    p.add_argument("--tw-python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--peer-python", default=str(HERE / ".venv" / "bin" / "python"))
    p.add_argument("--timeout", type=float, default=1800, help="seconds per process before it is killed")
    p.add_argument("--data", type=Path, default=DATA,
                   help="a folder with suite.json and its CSVs (default: the shared suite); "
                        "bench/rdatasets_suite.py writes one of tables the defaults were never chosen on")
    args = p.parse_args(argv)
    set_data(args.data)
    args.tools = [t for t in args.tools.split(",") if t]
    if set(args.tools) - set(TOOLS):
        p.error(f"unknown tool(s) {sorted(set(args.tools) - set(TOOLS))}; known: {list(TOOLS)}")
    if set(args.tools) & set(PEERS) and not Path(args.peer_python).exists():
        p.error(f"{args.peer_python} is missing: run `make bench-env` for the peers")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    entries = load_suite([t for t in args.tables.split(",") if t])
    rerun = {(table_name(e), tool) for e in entries for tool in args.tools}
    records = reused_records(args.out, args.seed, args.splits, rerun) if args.reuse else []
    records = measure(entries, args.tools, args, records)
    print(summary(records, entries))


if __name__ == "__main__":
    main()
