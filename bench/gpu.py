"""GPU figures for issue 9, ready for a lent device: ``python bench/gpu.py [--device cuda]``.

1. MNIST MLP (784-256-128-10, Adam lr 1e-3, batch 128) s/epoch, median of epochs 2..E:
   the lean loop with fused Adam, the lean loop with the whole step in a CUDA graph
   (the issue's 0.12 s anchor), trainwell defaults, trainwell ``train.fast=true``
   (bf16 autocast + the step as a CUDA graph, trainwell/train/graphs.py).
2. Time to accuracy: ``trainwell fit`` on MNIST with the seeds' 784-256-128-10 + dropout
   0.2, ``train.fast``, 1cycle, for a few (batch, lr, epochs): summed epoch seconds and
   test accuracy (targets: 98.2 % within 0.5 s, 98.5 % within 1 s on an H100).

Prints markdown tables and writes bench/results/gpu.json. ``--device cpu`` runs the
same code without graphs (a smoke test; the figures mean nothing there).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _tools import _torch_mlp, load  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def lean(data, device: str, epochs: int, graph: bool) -> list[float]:
    Xtr, ytr, _, _ = (torch.from_numpy(a).to(device) for a in data)
    torch.manual_seed(0)
    model = _torch_mlp((256, 128), 784, 10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=graph)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, b = len(Xtr), 128
    idx_static = torch.zeros(b, dtype=torch.long, device=device)

    def step(idx):
        loss = loss_fn(model(Xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        return loss.detach()

    g = None
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                step(torch.randperm(n, device=device)[:b])
        torch.cuda.current_stream().wait_stream(side)
        opt.zero_grad(set_to_none=True)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_loss = step(idx_static)
    times = []
    for _ in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        total = torch.zeros((), device=device)
        for s in range(0, n - b + 1, b):
            if g is not None:
                idx_static.copy_(perm[s:s + b])
                g.replay()
                total += static_loss
            else:
                opt.zero_grad(set_to_none=True)
                total += step(perm[s:s + b])
        float(total)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def trainwell_epochs(data, device: str, epochs: int, fast: bool) -> list[float]:
    import trainwell as tw
    Xtr, ytr, _, _ = data
    run = tw.fit(X=Xtr, y=ytr, save=False, verbose=False, sets=[
        "model.hidden=[256, 128]", "data.scale=none", "train.batch_size=128", f"train.epochs={epochs}",
        "stop.enabled=false", f"train.device={device}", "data.split=[0.98, 0.02, 0.0]", f"train.fast={str(fast).lower()}"])
    return list(run.history["seconds"])


def time_to_accuracy(data, device: str, batch: int, lr: float, epochs: int) -> dict:
    import trainwell as tw
    Xtr, ytr, Xte, yte = data
    run = tw.fit(X=Xtr, y=ytr, save=False, verbose=False, sets=[
        "model.hidden=[256, 128]", "model.dropout=0.2", "data.scale=none", f"train.batch_size={batch}",
        f"train.epochs={epochs}", "stop.enabled=false", f"train.device={device}", "train.fast=true",
        "train.monitor=false", "schedule.name=onecycle", f"schedule.max_lr={lr}", f"optim.lr={lr / 10}",
        "data.split=[0.98, 0.02, 0.0]"])
    acc = float((run.predict(Xte) == yte).mean())
    return {"batch": batch, "max_lr": lr, "epochs": epochs, "train_s": float(run.history["seconds"].sum()),
            "test_acc": acc}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--json", type=Path, default=HERE / "results" / "gpu.json")
    a = p.parse_args(argv)
    data = load("mnist")
    out: dict = {"device": a.device, "name": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
                 "epoch_s": {}, "time_to_accuracy": []}
    tools = {"lean loop, fused Adam": lambda: lean(data, a.device, a.epochs, False),
             "trainwell (defaults)": lambda: trainwell_epochs(data, a.device, a.epochs, False),
             "trainwell train.fast=true": lambda: trainwell_epochs(data, a.device, a.epochs, True)}
    if a.device == "cuda":
        tools["lean loop, step in a CUDA graph"] = lambda: lean(data, a.device, a.epochs, True)
    for name, fn in tools.items():
        times = fn()
        out["epoch_s"][name] = {"median": statistics.median(times[1:] or times), "all": times}
    print(f"\nMNIST 784-256-128-10, batch 128, {a.device} ({out['name']}), median s/epoch after the first\n")
    print("| tool | s/epoch |\n|---|---:|")
    for name, v in out["epoch_s"].items():
        print(f"| {name} | {v['median']:.4f} |")
    for batch, lr, epochs in ((512, 4e-3, 12), (256, 4e-3, 12), (512, 4e-3, 8)):
        out["time_to_accuracy"].append(time_to_accuracy(data, a.device, batch, lr, epochs))
    print("\nTime to accuracy: trainwell fit, + dropout 0.2, train.fast, 1cycle\n")
    print("| batch | max lr | epochs | training s | test acc |\n|---:|---:|---:|---:|---:|")
    for r in out["time_to_accuracy"]:
        print(f"| {r['batch']} | {r['max_lr']} | {r['epochs']} | {r['train_s']:.2f} | {r['test_acc']:.4f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=2, default=lambda x: float(np.asarray(x))))
    return out


if __name__ == "__main__":
    main()
