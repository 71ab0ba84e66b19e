"""Topologies benchmark: the default CNN on MNIST and Fashion-MNIST, and CNN vs MLP vs GRU on MNIST-1D.

    python bench/topologies.py                   # everything
    python bench/topologies.py mnist fashion     # just those
    python bench/topologies.py --epochs 10       # epoch budget of the image runs (default 10)

Every run is ``trainwell.fit`` with the defaults of its ``model.type`` (the
image runs are exactly ``trainwell fit DATA --set model.type=cnn`` with the
epoch budget capped and early-stopping patience 3, so the bench ends in minutes
on a CPU). Prints test accuracy, epochs and seconds per epoch; writes
bench/topologies-<which>.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def mnist1d_npz(path: Path) -> Path:
    """MNIST-1D generated offline (mnist1d's make_dataset; never its download function)."""
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset
        d = make_dataset(get_dataset_args())
        np.savez(path, X=d["x"].astype(np.float32), y=d["y"], X_test=d["x_test"].astype(np.float32),
                 y_test=d["y_test"])
    return path


def one(name: str, source: str, sets: list[str]) -> dict:
    import trainwell as tw
    t0 = time.perf_counter()
    run = tw.fit(source, sets=sets, save=False, verbose=False)
    secs = time.perf_counter() - t0
    h = run.history
    row = {"name": name, "data": source, "sets": sets, "test_accuracy": run.metrics["test"]["accuracy"],
           "best_epoch": run.metrics["best_epoch"], "epochs": int(len(h)),
           "s_per_epoch": float(h["seconds"].mean()), "total_s": secs}
    print(f"{name:<22} test acc {row['test_accuracy']:.4f}  epochs {row['epochs']:>3} (best {row['best_epoch']})"
          f"  {row['s_per_epoch']:.1f} s/epoch  total {secs:.0f} s", flush=True)
    return row


def main(argv: list[str]) -> None:
    epochs = 10
    if "--epochs" in argv:
        epochs = int(argv[argv.index("--epochs") + 1])
    which = [a for a in argv if not a.startswith("--") and not a.isdigit()] or ["mnist", "fashion", "mnist1d"]
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    image = ["model.type=cnn", f"train.epochs={epochs}", "stop.patience=3"]
    rows = []
    if "mnist" in which:
        rows.append(one("mnist cnn", str(DATA / "mnist"), image))
    if "fashion" in which:
        rows.append(one("fashion-mnist cnn", str(DATA / "fashion-mnist"), image))
    if "mnist1d" in which:
        src = str(mnist1d_npz(Path("/tmp/mnist1d.npz")))
        rows.append(one("mnist1d mlp", src, ["model.type=mlp", "train.epochs=60"]))
        rows.append(one("mnist1d cnn", src, ["model.type=cnn", "model.kernel_size=5", "train.epochs=60"]))
        rows.append(one("mnist1d gru", src, ["model.type=rnn", "model.cell=gru", "optim.lr=0.003", "train.epochs=40"]))
    out = ROOT / "bench" / f"topologies-{'-'.join(which)}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
