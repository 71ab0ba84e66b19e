"""Recipe variants side by side on bench/tabular.py's outer splits, trained in-process through the public API.

    .venv/bin/python bench/recipe_variants.py --tables SwissLabor,OJ --splits 10 \\
        --variant default= --variant b128="train.batch_size=128 optim.lr=0.002" [--data bench/unseen] [--out F.json]

Each ``--variant NAME=SETS`` is a name and the ``--set`` keys it adds to the defaults (space-separated;
empty: the defaults themselves). Every variant trains on the same outer training rows
(``tw.fit(X=..., y=...)``, as ``trainwell fit train.csv`` does: the defaults' own 80/10/10 split of them)
and is scored on the same held-out 20 %, so the differences between variants are paired. Besides the
test score it records the run's best validation loss (with cross-fitted members: the out-of-fold loss)
and the CPU seconds of the fit. Prints one JSON line per table and split, then per table the mean score
of each variant and each other variant's mean change against the first, ± its standard error, with the
ratio of CPU time. bench/tabular.py remains the benchmark of record (the CLI, one process per tool, the
peers); this script is for choosing between recipes, as docs/tabular.md describes.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tabular as bench  # noqa: E402  (bench/tabular.py: the suite, the outer splits, the scores)

import trainwell as tw  # noqa: E402

QUIET = ["train.progress=false"]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=SETS`` -> (name, the --set keys)."""
    name, _, sets = text.partition("=")
    if not name:
        raise SystemExit(f"--variant {text!r}: give NAME=SETS, e.g. b128='train.batch_size=128 optim.lr=0.002'")
    return name, shlex.split(sets)


def test_score(entry: dict, run, test: pd.DataFrame) -> float:
    """Accuracy or R² on the held-out rows, as bench/tabular.py scores a tool's predictions."""
    truth = test[entry["target"]]
    pred = np.asarray(run.predict(test.drop(columns=[entry["target"]])))
    if entry["task"] == "regression":
        return float(r2_score(truth.to_numpy(dtype=float), pred.astype(float).ravel()))
    return float(bench.same_labels(truth.reset_index(drop=True), pd.Series(pred.ravel())).mean())


def measure(entry: dict, train: pd.DataFrame, test: pd.DataFrame, variants: dict[str, list[str]]) -> dict:
    """Every variant on one outer split: its test score, best validation loss and CPU seconds."""
    out: dict = {"table": bench.table_name(entry)}
    X, y = train.drop(columns=[entry["target"]]), train[entry["target"]]
    for name, sets in variants.items():
        start = time.process_time()
        run = tw.fit(X=X, y=y, sets=[*QUIET, *sets], save=False, verbose=False)
        out[name] = test_score(entry, run, test)
        out[f"{name}_val_loss"] = float(run.history["val_loss"].min())
        out[f"{name}_cpu_s"] = time.process_time() - start
    return out


def paired_summary(rows: list[dict], names: list[str]) -> str:
    """Per table: the first variant's mean score, and each other's mean change ± standard error (CPU ratio)."""
    lines, base = [], names[0]
    for table in dict.fromkeys(r["table"] for r in rows):
        mine = [r for r in rows if r["table"] == table]
        line = f"{table:22s} n={len(mine):2d}  {base} {statistics.mean(r[base] for r in mine):.4f}"
        for name in names[1:]:
            change = [r[name] - r[base] for r in mine]
            se = statistics.stdev(change) / len(change) ** 0.5 if len(change) > 1 else 0.0
            cpu = sum(r[f"{name}_cpu_s"] for r in mine) / sum(r[f"{base}_cpu_s"] for r in mine)
            line += f"  {name} {statistics.mean(change):+.4f} ± {se:.4f} (cpu x{cpu:.2f})"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", required=True, help="comma-separated table names (file stems)")
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--variant", action="append", required=True, metavar="NAME=SETS")
    p.add_argument("--data", type=Path, default=bench.DATA,
                   help="a folder with suite.json and its CSVs (default: ../shared/data/tabular)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    bench.set_data(args.data)
    variants = dict(parse_variant(v) for v in args.variant)
    rows = bench.each_split(args, lambda entry, train, test: measure(entry, train, test, variants))
    print(paired_summary(rows, list(variants)))


if __name__ == "__main__":
    main()
