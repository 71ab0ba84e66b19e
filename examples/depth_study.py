"""S1's depth experiment on digits: why deep nets stop learning, and what fixes it.

    python examples/depth_study.py                 # width 32, 20 epochs, plain SGD lr 0.01
    python examples/depth_study.py --width 8       # narrow layers: the vanishing regime

Each row trains the same digits task through ``trainwell.fit`` (seed 0, batch 32,
no early stopping, so every net gets the same number of epochs) and reports

* the final validation accuracy (last epoch, not the best one),
* the norm of the first hidden layer's weight gradient ||dL/dW_1||: at
  initialisation (one batch of 256 training rows, training mode) and averaged over
  the optimizer steps of the first epoch.

Plain SGD is used on purpose (Keras' ``optimizer='sgd'``, lr 0.01, as in S1):
adaptive optimizers such as Adam rescale each gradient and hide its size.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

import trainwell

CONFIGS = [  # (label, model section)
    ("1 hidden layer, tanh, U(-0.5, 0.5)", dict(depth=1, activation="tanh", init="uniform")),
    ("10 hidden layers, tanh, U(-0.5, 0.5)", dict(depth=10, activation="tanh", init="uniform")),
    ("20 hidden layers, tanh, U(-0.5, 0.5)", dict(depth=20, activation="tanh", init="uniform")),
    ("20 hidden layers, ReLU, he_uniform", dict(depth=20, activation="relu", init="he_uniform")),
    ("20 hidden layers, tanh, U(-0.5, 0.5) + batch norm",
     dict(depth=20, activation="tanh", init="uniform", batchnorm=True)),
    ("20 hidden layers, tanh, U(-0.5, 0.5) + residual + batch norm",
     dict(depth=20, activation="tanh", init="uniform", batchnorm=True, residual=True)),
    ("20 hidden layers, ReLU, he_uniform + residual + batch norm",
     dict(depth=20, activation="relu", init="he_uniform", batchnorm=True, residual=True)),
]


class FirstLayerGradient:
    """Callback: ||dL/dW_1|| at initialisation and averaged over the first epoch's steps."""

    def __init__(self):
        self.at_init = float("nan")
        self.first_epoch: list[float] = []

    def on_train_begin(self, state) -> None:
        model = copy.deepcopy(state.model).train()          # a copy: BN statistics stay untouched
        X, y = state.data.X_train[:256], state.data.y_train[:256]
        state.head.loss_fn(model(X), y).backward()
        self.at_init = float(model.blocks[0].linear.weight.grad.norm())

    def on_step_end(self, state) -> None:
        if state.epoch == 0:                                 # epochs completed so far: 0 = the first one
            self.first_epoch.append(float(state.model.blocks[0].linear.weight.grad.norm()))


def study(width: int, epochs: int, optim: str, lr: float, seed: int) -> list[dict]:
    rows = []
    for label, cfg in CONFIGS:
        cfg = dict(cfg)
        depth = cfg.pop("depth")
        grad = FirstLayerGradient()
        t0 = time.perf_counter()
        run = trainwell.fit(
            "digits", model={"hidden": [width] * depth, "init_limit": 0.5, **cfg},
            optim={"name": optim, "lr": lr}, stop={"enabled": False, "restore_best": False},
            train={"epochs": epochs, "batch_size": 32, "seed": seed, "progress": False, "monitor": False},
            save=False, verbose=False, callbacks=[grad])
        rows.append({"net": label, "val_accuracy": run.history["val_accuracy"].iloc[-1],
                     "grad_init": grad.at_init,
                     "grad_epoch1": sum(grad.first_epoch) / max(len(grad.first_epoch), 1),
                     "seconds": time.perf_counter() - t0})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| network | final val accuracy | ‖dL/dW₁‖ at init | ‖dL/dW₁‖ mean over epoch 1 |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['val_accuracy']:.3f} | {r['grad_init']:.2e} | {r['grad_epoch1']:.2e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--optim", default="sgd")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = study(args.width, args.epochs, args.optim, args.lr, args.seed)
    print(f"digits, width {args.width}, {args.epochs} epochs, {args.optim} lr {args.lr:g}, batch 32, "
          f"seed {args.seed} ({time.perf_counter() - t0:.0f} s)\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
