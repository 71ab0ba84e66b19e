"""Trials per minute: a 32-configuration random search on digits, population vs one trial at a time.

    python bench/search_throughput.py [--trials 32] [--epochs 20] [--repeats 2] [--threads 2] [--quick]

* optuna + lean loop: optuna's RandomSampler, each trial the lean hand-written
  PyTorch loop (64-64-10, Adam, batch 32, tensors in memory), one after another;
* trainwell tune --population 32: ``tw.tune(..., sampler="random", population=32)``,
  the 32 trials trained as one batched computation (and each trial's run directory,
  the study and the reports written, as a user gets them), with the default SQLite
  study and with ``storage="memory"`` (optuna's in-memory storage, like the lean search).

The clock starts after the imports in both (a process pays them once): for trainwell
these include sqlalchemy (the SQLite study) and optuna.importance (study.html).

Same space (lr log-uniform 1e-4..1e-1, weight decay log-uniform 1e-6..1e-2), same
epochs, no early stopping. Each measurement runs in its own process, interleaved.
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


def lean_search(trials: int, epochs: int, seed: int, device: str = "cpu") -> dict:
    import numpy as np
    import optuna
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    X, y = load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split((X / 16).astype(np.float32), y, test_size=0.2, stratify=y, random_state=0)
    Xtr, Xva, ytr, yva = (torch.from_numpy(a).to(device) for a in (Xtr, Xva, ytr, yva))
    t0 = time.perf_counter()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        torch.manual_seed(trial.number)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
        for _ in range(epochs):
            perm = torch.randperm(len(Xtr), device=device)
            for i in range(0, len(Xtr), 32):
                idx = perm[i:i + 32]
                loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            return float((model(Xva).argmax(1) == yva).float().mean())

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return {"search_s": time.perf_counter() - t0, "best": study.best_value}


def population_search(trials: int, epochs: int, seed: int, storage: str | None = None, device: str = "cpu") -> dict:
    import optuna  # noqa: F401  (imports before the clock starts, as for the lean search)

    import optuna.importance  # noqa: F401  (study.html's parameter importances)
    import optuna.storages._rdb.models  # noqa: F401  (sqlalchemy and alembic, for the SQLite study)

    import trainwell as tw
    import trainwell.tune.population  # noqa: F401
    import trainwell.tune.report  # noqa: F401  (matplotlib, for study.html)
    import trainwell.tune.search  # noqa: F401
    space = {"optim.lr": {"log": [1e-4, 1e-1]}, "optim.weight_decay": {"log": [1e-6, 1e-2]}}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = tw.tune("digits", space=space, sampler="random", trials=trials, population=trials, seed=seed,
                      out=Path(d) / "study", verbose=False, storage=storage,
                      sets=["model.hidden=[64]", "train.batch_size=32", f"train.epochs={epochs}",
                            "stop.enabled=false", f"train.device={device}"])
        return {"search_s": time.perf_counter() - t0, "best": res.best_value}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", choices=["lean", "population", "population_memory"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (both searches train on it)")
    p.add_argument("--json", type=Path, default=HERE / "results" / "search_throughput.json")
    p.add_argument("--quick", action="store_true", help="4 trials, 2 epochs, once, results to a temp file")
    a = p.parse_args(argv)
    if a.quick:   # a check that the benchmark runs; never overwrites bench/results
        a.trials, a.epochs, a.repeats = 4, 2, 1
        a.json = a.json if "--json" in (argv or sys.argv) else Path(tempfile.mkdtemp()) / "search_throughput.json"
    if a.one:
        import torch
        torch.set_num_threads(a.threads)
        if a.one == "lean":
            print(json.dumps(lean_search(a.trials, a.epochs, a.seed, a.device)))
        else:
            storage = "memory" if a.one == "population_memory" else None
            print(json.dumps(population_search(a.trials, a.epochs, a.seed, storage, a.device)))
        return {}
    res: dict[str, list] = {"lean": [], "population": [], "population_memory": []}
    loads = []
    for r in range(a.repeats):
        for kind in res:
            out = subprocess.run([sys.executable, __file__, "--one", kind, "--trials", str(a.trials), "--epochs",
                                  str(a.epochs), "--threads", str(a.threads), "--seed", str(r), "--device", a.device],
                                 capture_output=True, text=True)
            loads.append(os.getloadavg()[0])
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if not line:
                print(out.stderr[-2000:], file=sys.stderr)
                continue
            rec = json.loads(line[-1])
            res[kind].append(rec)
            print(f"repeat {r} {kind}: {rec['search_s']:.1f} s, best val acc {rec['best']:.4f}", file=sys.stderr)
    summary = {k: {"search_s": statistics.median(x["search_s"] for x in v),
                   "trials_per_min": a.trials * 60 / statistics.median(x["search_s"] for x in v),
                   "best_val_acc": statistics.median(x["best"] for x in v)} for k, v in res.items() if v}
    summary["load1_median"] = statistics.median(loads)
    print(f"\n{a.trials}-configuration random search on digits, 64-64-10, {a.epochs} epochs, batch 32, "
          f"{a.threads} torch threads, load average {summary['load1_median']:.1f}\n")
    print("| search | wall s (median) | trials/min | best val acc |")
    print("|---|---:|---:|---:|")
    names = {"lean": "optuna (in-memory study) + lean loop, one trial at a time",
             "population": f"trainwell tune --population {a.trials} (SQLite study, default)",
             "population_memory": f"trainwell tune --population {a.trials} --storage memory"}
    for k in names:
        if k in summary:
            v = summary[k]
            print(f"| {names[k]} | {v['search_s']:.1f} | {v['trials_per_min']:.0f} | {v['best_val_acc']:.4f} |")
    for k in ("population", "population_memory"):
        if "lean" in summary and k in summary:
            summary[f"speedup_{k}"] = summary[k]["trials_per_min"] / summary["lean"]["trials_per_min"]
            print(f"\n{names[k]}: {summary[f'speedup_{k}']:.1f}x the trials per minute of the lean search")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"summary": summary, "runs": res}, indent=2))
    failed = [k for k, v in res.items() if len(v) < a.repeats]
    if failed:   # a benchmark that silently drops a row would look like a result
        raise SystemExit(f"failed: {', '.join(failed)} (their errors are printed above)")
    return summary


if __name__ == "__main__":
    main()
