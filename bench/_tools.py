"""One benchmark measurement per process: ``python bench/_tools.py TOOL --task T --seed S``.

Prints one JSON line: per-epoch seconds, held-out accuracy, peak RSS. Each tool
trains the same MLP (ReLU, softmax cross-entropy, Adam lr 1e-3) on the same
arrays: MNIST (784-256-128-10, batch 128; pixels / 255, official 60k/10k) or
digits (64-64-10, batch 32; pixels / 16, stratified 80/20 split, random_state 0).
Imports of each tool happen inside its function, so a process pays only for its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = Path(os.environ.get("TRAINWELL_MNIST", ROOT.parent / "shared" / "data" / "mnist"))
TASKS = {"mnist": dict(hidden=(256, 128), batch=128, epochs=5),
         "digits": dict(hidden=(64,), batch=32, epochs=30)}


def _idx(path: Path) -> np.ndarray:
    import gzip
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(task: str):
    if task == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split((X / 16).astype(np.float32), y.astype(np.int64), test_size=0.2,
                                              stratify=y, random_state=0)
        return Xtr, ytr, Xte, yte
    files = {f.name.split(".")[0]: f for f in MNIST.iterdir()}
    get = lambda key: _idx(next(f for k, f in files.items() if k.startswith(key)))  # noqa: E731
    Xtr = get("train-images").reshape(-1, 784).astype(np.float32) / 255
    Xte = get("t10k-images").reshape(-1, 784).astype(np.float32) / 255
    return Xtr, get("train-labels").astype(np.int64), Xte, get("t10k-labels").astype(np.int64)


def _torch_mlp(hidden, n_in, n_out):
    from torch import nn
    layers, w = [], n_in
    for h in hidden:
        layers += [nn.Linear(w, h), nn.ReLU()]
        w = h
    return nn.Sequential(*layers, nn.Linear(w, n_out))


def _acc_torch(model, X, y):
    import torch
    with torch.no_grad():
        return float((model(torch.from_numpy(X)).argmax(1).numpy() == y).mean())


def lean(d, cfg, seed, epochs):
    import torch
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = d
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    model = _torch_mlp(cfg["hidden"], X.shape[1], 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    times, b = [], cfg["batch"]
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(X))
        total = torch.zeros(())
        for i in range(0, len(X), b):
            idx = perm[i:i + b]
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)
        times.append(time.perf_counter() - t0)
    return times, _acc_torch(model, Xte, yte), len(X)


def dataloader(d, cfg, seed, epochs):
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = d
    loader = DataLoader(TensorDataset(torch.from_numpy(Xtr), torch.from_numpy(ytr)), batch_size=cfg["batch"],
                        shuffle=True)
    model = _torch_mlp(cfg["hidden"], Xtr.shape[1], 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
        times.append(time.perf_counter() - t0)
    return times, _acc_torch(model, Xte, yte), len(Xtr)


def _trainwell(d, cfg, seed, epochs, extra):
    import trainwell as tw
    Xtr, ytr, Xte, yte = d
    run = tw.fit(X=Xtr, y=ytr, save=False, verbose=False, sets=[
        f"model.hidden={list(cfg['hidden'])}", "data.scale=none", f"train.batch_size={cfg['batch']}",
        f"train.epochs={epochs}", "stop.enabled=false", f"train.seed={seed}", "train.device=cpu",
        "data.split=[0.98, 0.02, 0.0]", *extra])
    acc = float((run.predict(Xte) == yte).mean())
    return list(run.history["seconds"]), acc, int(round(len(Xtr) * 0.98))


def trainwell(d, cfg, seed, epochs):
    return _trainwell(d, cfg, seed, epochs, [])


def trainwell_fast(d, cfg, seed, epochs):
    return _trainwell(d, cfg, seed, epochs, ["train.fast=true"])


def lightning(d, cfg, seed, epochs):
    import warnings
    warnings.filterwarnings("ignore")
    import logging
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = d
    loader = DataLoader(TensorDataset(torch.from_numpy(Xtr), torch.from_numpy(ytr)), batch_size=cfg["batch"],
                        shuffle=True)
    net = _torch_mlp(cfg["hidden"], Xtr.shape[1], 10)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    times = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, *a):
            times.append(time.perf_counter() - self.t0)

    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Timer()])
    trainer.fit(Module(), loader)
    return times, _acc_torch(net.eval(), Xte, yte), len(Xtr)


def skorch(d, cfg, seed, epochs):
    import torch
    from skorch import NeuralNetClassifier
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = d
    net = NeuralNetClassifier(_torch_mlp(cfg["hidden"], Xtr.shape[1], 10), criterion=torch.nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-3, batch_size=cfg["batch"], max_epochs=epochs,
                              train_split=None, verbose=0, iterator_train__shuffle=True)
    net.fit(Xtr, ytr)
    return list(net.history[:, "dur"]), float((net.predict(Xte) == yte).mean()), len(Xtr)


def keras(d, cfg, seed, epochs):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras as K
    K.utils.set_random_seed(seed)
    Xtr, ytr, Xte, yte = d
    model = K.Sequential([K.Input((Xtr.shape[1],)), *[K.layers.Dense(h, activation="relu") for h in cfg["hidden"]],
                          K.layers.Dense(10)])
    model.compile(K.optimizers.Adam(1e-3), K.losses.SparseCategoricalCrossentropy(from_logits=True))
    times = []

    class Timer(K.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(Xtr, ytr, batch_size=cfg["batch"], epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
    acc = float((model.predict(Xte, verbose=0, batch_size=4096).argmax(1) == yte).mean())
    return times, acc, len(Xtr)


def sklearn(d, cfg, seed, epochs):
    from sklearn.neural_network import MLPClassifier
    Xtr, ytr, Xte, yte = d
    times = []

    class Timed(MLPClassifier):
        def _update_no_improvement_count(self, *a, **k):
            times.append(time.perf_counter())
            return super()._update_no_improvement_count(*a, **k)

    clf = Timed(hidden_layer_sizes=cfg["hidden"], solver="adam", batch_size=cfg["batch"], learning_rate_init=1e-3,
                max_iter=epochs, tol=0, n_iter_no_change=10_000, random_state=seed)
    import warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    clf.fit(Xtr, ytr)
    stamps = [t0, *times]
    return [b - a for a, b in zip(stamps, stamps[1:])], float(clf.score(Xte, yte)), len(Xtr)


TOOLS = {"trainwell": trainwell, "trainwell_fast": trainwell_fast, "lean": lean, "dataloader": dataloader,
         "lightning": lightning, "skorch": skorch, "keras": keras, "sklearn": sklearn}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("tool", choices=sorted(TOOLS))
    p.add_argument("--task", default="digits", choices=sorted(TASKS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    cfg = TASKS[a.task]
    d = load(a.task)
    if a.tool != "sklearn":
        import torch
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    times, acc, n = TOOLS[a.tool](d, cfg, a.seed, a.epochs or cfg["epochs"])
    import statistics
    steady = times[1:] if len(times) > 1 else times
    med = statistics.median(steady)
    print(json.dumps({"tool": a.tool, "task": a.task, "seed": a.seed, "epoch_s": times, "median_s": med,
                      "n_train": n, "samples_per_s": n / med, "s_per_epoch_full": med * len(d[0]) / n,
                      "test_acc": acc, "fit_s": time.perf_counter() - t0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    sys.exit(main())
