"""TPE vs random search at the same budget on digits (PRACTICES §7: model-based search beats random).

For each seed, both samplers get the same budget, space, data split and training
seed; we compare the best *validation* accuracy found. Prints a table and writes
bench/results/tpe_vs_random.json.

    .venv/bin/python bench/tpe_vs_random.py            # 30 trials x 5 seeds (about 10-15 min on 2 CPU cores)
    .venv/bin/python bench/tpe_vs_random.py --trials 10 --seeds 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import trainwell as tw

SPACE = {
    "optim.lr": {"log": [1e-5, 1e-1]},
    "optim.beta1": {"one_minus_log": [1e-3, 1e-1]},
    "train.batch_size": {"choice": [32, 64, 128, 256]},
    "model.units": {"int": [8, 64], "log": True},
    "model.layers": {"int": [1, 2]},
}
SETS = ["train.epochs=15", "stop.patience=5"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tpe_vs_random.json"))
    args = ap.parse_args()
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for sampler in ("random", "tpe"):
                t0 = time.perf_counter()
                res = tw.tune(args.data, space=SPACE, sampler=sampler, trials=args.trials, seed=seed, sets=SETS,
                              out=Path(tmp) / f"{sampler}-{seed}", threads=1, verbose=False)
                row = {"seed": seed, "sampler": sampler, "best_val_accuracy": res.best_value,
                       "test_accuracy_of_best": res.test.get("accuracy"), "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"seed {seed} {sampler:>6}: best val accuracy {row['best_val_accuracy']:.4f} "
                      f"(test {row['test_accuracy_of_best']:.4f}) in {row['seconds']:.0f} s", flush=True)
    summary = {}
    for sampler in ("random", "tpe"):
        vals = [r["best_val_accuracy"] for r in rows if r["sampler"] == sampler]
        summary[sampler] = {"median_best_val_accuracy": statistics.median(vals), "mean": statistics.mean(vals),
                            "per_seed": vals}
    wins = sum(t >= r for t, r in zip(summary["tpe"]["per_seed"], summary["random"]["per_seed"]))
    total = time.perf_counter() - t_start
    print(f"\n{'sampler':>8} | median best val acc | mean   | per seed")
    for s, v in summary.items():
        print(f"{s:>8} | {v['median_best_val_accuracy']:.4f}              | {v['mean']:.4f} | "
              + " ".join(f"{x:.4f}" for x in v["per_seed"]))
    print(f"TPE >= random on {wins}/{args.seeds} seeds; {args.trials} trials each; total {total:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": args.data, "trials": args.trials, "seeds": args.seeds, "space": SPACE,
                               "sets": SETS, "rows": rows, "summary": summary, "tpe_at_least_random_seeds": wins,
                               "seconds": total}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
