"""trainwell's epoch time against a lean hand-written PyTorch loop (same model, data, batch).

MNIST-shaped data (../shared/data/mnist when present, else synthetic of the same
shape), MLP 784-256-128-10, Adam lr 1e-3, batch 128. Both tools run interleaved,
round after round, so a noisy machine slows both alike; the table reports the
median seconds per epoch and the ratio to the lean loop.

    python bench/loop_overhead.py [--rounds 5] [--epochs 3] [--rows 60000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import trainwell as tw
from trainwell.data.sources import load_source

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def mnist_like(rows: int) -> tuple[np.ndarray, np.ndarray]:
    if MNIST.exists():
        t = load_source(str(MNIST))
        X, y = t.X.reshape(len(t.X), -1)[:rows], t.y[:rows]
    else:  # MNIST-shaped synthetic data
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (rows, 784)).astype(np.float32)
        y = rng.integers(0, 10, rows)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X.astype(np.float32), y.astype(np.int64)


def lean_epochs(X: np.ndarray, y: np.ndarray, epochs: int, batch: int, fused: bool = False) -> list[float]:
    """The lean loop: tensors in memory, index batching, nothing else (torch's default Adam,
    or with ``fused`` the single-kernel Adam that trainwell picks)."""
    torch.manual_seed(0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xt))
        for i in range(0, len(Xt), batch):
            idx = perm[i:i + batch]
            loss = loss_fn(model(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def trainwell_epochs(X: np.ndarray, y: np.ndarray, epochs: int, batch: int, monitor: bool) -> list[float]:
    """trainwell's default loop (metrics, early stopping bookkeeping, monitors when on)."""
    run = tw.fit(X=X, y=y, save=False, verbose=False, sets=[
        "model.hidden=[256, 128]", "model.init=he_uniform", "data.scale=none", f"train.batch_size={batch}",
        f"train.epochs={epochs}", "stop.enabled=false", f"train.monitor={str(monitor).lower()}",
        "data.split=[0.98, 0.01, 0.01]"])
    return list(run.history["seconds"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    X, y = mnist_like(args.rows)
    n_train = int(len(X) * 0.98)
    tools = {
        "lean loop": lambda: lean_epochs(X[:n_train], y[:n_train], args.epochs, args.batch),
        "lean loop, fused Adam": lambda: lean_epochs(X[:n_train], y[:n_train], args.epochs, args.batch, True),
        "trainwell (monitors on, default)": lambda: trainwell_epochs(X, y, args.epochs, args.batch, True),
        "trainwell (monitors off)": lambda: trainwell_epochs(X, y, args.epochs, args.batch, False),
    }
    samples: dict[str, list[float]] = {k: [] for k in tools}
    for r in range(args.rounds):
        for name, fn in tools.items():
            times = fn()
            samples[name].extend(times[1:])          # drop each run's first (warm-up) epoch
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["lean loop"]
    print(f"\nMNIST-shaped {n_train} training rows, 784-256-128-10, Adam, batch {args.batch}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    fused = med["lean loop, fused Adam"]
    print("| tool | s/epoch (median) | samples/s | ratio to lean | ratio to lean with fused Adam |")
    print("|---|---:|---:|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {n_train / v:,.0f} | {v / base:.3f} | {v / fused:.3f} |")
    result = {"rows": n_train, "batch": args.batch, "median_s_per_epoch": med,
              "ratio_to_lean": {k: v / base for k, v in med.items()}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
