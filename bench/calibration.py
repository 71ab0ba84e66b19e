"""Temperature scaling on the suite's classification tables (issue 18): log-loss, ECE and accuracy
before and after, on the validation split (where T is fitted) and the test split (never seen).

    python bench/calibration.py [--tables OJ,HMDA] [--set model.ensemble=1 ...] [--out bench/results/calibration.json]

Every table trains with trainwell's defaults (``trainwell.fit(path, target=...)``, the 80/10/10 split
of seed 0); the numbers are what ``fit`` records in ``metrics.json["calibration"]``
(train/calibration.py): both sides come from the same network, so the difference is the calibration
alone. Prints a markdown table and writes the records to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tabular import DATA, load_suite, table_name  # noqa: E402  (the same suite as bench/tabular.py)

import trainwell as tw  # noqa: E402

KEYS = ("temperature", "applied", "val_log_loss_before", "val_log_loss_after", "test_log_loss_before",
        "test_log_loss_after", "val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after",
        "test_accuracy_before", "test_accuracy_after")


def measure(entry: dict, sets: list[str]) -> dict:
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    run = tw.fit({"source": str(DATA / entry["file"]), "target": entry["target"]}, save=False, verbose=False,
                 sets=sets)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cal = run.metrics.get("calibration") or {}
    return {"table": table_name(entry), **{k: cal.get(k) for k in KEYS},
            "cpu_seconds": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}


def markdown(rows: list[dict]) -> str:
    lines = ["| table | T | kept | val log-loss | test log-loss | test ECE | test accuracy |",
             "|---|---:|:-:|---:|---:|---:|---:|"]
    for r in rows:
        same = "=" if r["test_accuracy_before"] == r["test_accuracy_after"] else "CHANGED"
        lines.append(f"| {r['table']} | {r['temperature']:.3f} | {'yes' if r['applied'] else 'no'} "
                     f"| {r['val_log_loss_before']:.4f} -> {r['val_log_loss_after']:.4f} "
                     f"| {r['test_log_loss_before']:.4f} -> {r['test_log_loss_after']:.4f} "
                     f"| {r['test_ece_before']:.4f} -> {r['test_ece_after']:.4f} "
                     f"| {r['test_accuracy_before']:.4f} {same} |")
    both = sum(1 for r in rows if r["val_log_loss_after"] < r["val_log_loss_before"]
               and r["test_log_loss_after"] < r["test_log_loss_before"])
    lines.append(f"\nvalidation and test log-loss both lower on {both} of {len(rows)} tables")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="", help="comma-separated table names (default: every classification table)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="spec override (section.key=value)")
    ap.add_argument("--out", default=str(HERE / "results" / "calibration.json"))
    args = ap.parse_args()
    names = [t for t in args.tables.split(",") if t] or None
    entries = [e for e in load_suite(names) if e["task"] == "classification"]
    rows = []
    for e in entries:
        rows.append({**measure(e, args.sets), "sets": args.sets})
        print(json.dumps(rows[-1]), flush=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
