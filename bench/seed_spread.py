"""trainwell's defaults and scikit-learn's MLP over several initialisation seeds per outer split.

    bench/.venv/bin/python bench/seed_spread.py --tables SwissLabor --splits 10 --seeds 5 [--data FOLDER] [--out F.json]

bench/tabular.py runs each tool once per outer split, with one seed each (scikit-learn's
``random_state`` is the split's seed, trainwell's ``train.seed`` is 0). On a small table a network's
initialisation moves its test score by about as much as the gap being judged, so this script asks
whether a gap is the seed's luck: on the same outer splits it trains scikit-learn's MLP (the benchmark's
pipeline, ``bench/_tabular_peer.py``) with ``random_state`` = split seed + 100·k and trainwell's defaults
with ``train.seed=k``, for k = 0 … seeds − 1, in-process. Prints one JSON line per table and split, then
per table each tool's mean over seeds and splits, each seed's mean, and the mean paired difference
(trainwell − scikit-learn, both averaged over seeds within a split) ± its standard error over the splits.
Needs the benchmark's environment (scikit-learn beside trainwell): ``make bench-env``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tabular_peer as peer  # noqa: E402  (the peers' pipelines, as bench/tabular.py runs them)
import tabular as bench  # noqa: E402  (the suite, the outer splits, the scores)

import trainwell as tw  # noqa: E402

QUIET = ["train.progress=false"]


def score(entry: dict, truth: pd.Series, pred) -> float:
    """Accuracy or R², as bench/tabular.py scores a tool's predictions."""
    pred = pd.Series(np.asarray(pred).ravel())
    if entry["task"] == "regression":
        from sklearn.metrics import r2_score
        return float(r2_score(truth.to_numpy(dtype=float), pred.to_numpy(dtype=float)))
    return float(bench.same_labels(truth.reset_index(drop=True), pred).mean())


def measure(entry: dict, train: pd.DataFrame, test: pd.DataFrame, split_seed: int, seeds: int) -> dict:
    """Both tools on one outer split, once per seed."""
    target, task = entry["target"], entry["task"]
    X, y = train.drop(columns=[target]), train[target]
    X_test, truth = test.drop(columns=[target]), test[target]
    out: dict = {"table": bench.table_name(entry)}
    for k in range(seeds):
        out[f"sklearn_mlp_{k}"] = score(entry, truth, peer.sklearn_mlp(task, X, y, X_test, split_seed + 100 * k))
        run = tw.fit(X=X, y=y, sets=[*QUIET, f"train.seed={k}"], save=False, verbose=False)
        out[f"trainwell_{k}"] = score(entry, truth, run.predict(X_test))
    return out


def summary(rows: list[dict], seeds: int) -> str:
    """Per table: each tool's mean (and per seed), and the paired difference ± its standard error."""
    lines = []
    for table in dict.fromkeys(r["table"] for r in rows):
        mine = [r for r in rows if r["table"] == table]
        mean_of = lambda r, tool: statistics.mean(r[f"{tool}_{k}"] for k in range(seeds))  # noqa: E731
        for tool in ("sklearn_mlp", "trainwell"):
            per_seed = " ".join(f"{statistics.mean(r[f'{tool}_{k}'] for r in mine):.4f}" for k in range(seeds))
            lines.append(f"{table:20s} {tool:12s} {statistics.mean(mean_of(r, tool) for r in mine):.4f}"
                         f"  (seeds: {per_seed})")
        diff = [mean_of(r, "trainwell") - mean_of(r, "sklearn_mlp") for r in mine]
        se = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
        lines.append(f"{table:20s} trainwell - sklearn_mlp {statistics.mean(diff):+.4f} ± {se:.4f} "
                     f"({len(diff)} splits, {seeds} seeds each)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", required=True, help="comma-separated table names (file stems)")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--data", type=Path, default=bench.DATA,
                   help="a folder with suite.json and its CSVs (default: ../shared/data/tabular)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    bench.set_data(args.data)
    done: dict[str, int] = {}        # each_split visits a table's splits in order; split s is seeded s

    def one_split(entry: dict, train: pd.DataFrame, test: pd.DataFrame) -> dict:
        split = done[entry["file"]] = done.get(entry["file"], -1) + 1
        return measure(entry, train, test, split, args.seeds)

    rows = bench.each_split(args, one_split)
    print(summary(rows, args.seeds))


if __name__ == "__main__":
    main()
