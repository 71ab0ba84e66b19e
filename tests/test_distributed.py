"""Data-parallel training (issue 7): `trainwell fit --nproc 2` on CPU (gloo) through torchrun."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.train.distributed import strip_nproc

# batch 67 does not divide the 2,400 training rows: the last global batch splits 28/27 over the ranks
SETS = ["train.epochs=4", "train.batch_size=67", "model.hidden=[16]", "model.ensemble=1", "train.progress=false",
        "train.monitor=false", "stop.enabled=false"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    df["target"] = (X[:, 0] - X[:, 1] + 0.5 * X[:, 2] > 0).astype(int)
    p = tmp_path_factory.mktemp("ddp") / "table.parquet"
    df.to_parquet(p, row_group_size=500)
    return p


@pytest.fixture(scope="module")
def single(table: Path):
    return tw.fit(str(table), sets=SETS, save=False, verbose=False)


def _fit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "trainwell", "fit", *args]
    for s in SETS:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_strip_nproc():
    assert strip_nproc(["fit", "d.csv", "--nproc", "2", "--set", "a=1"]) == ["fit", "d.csv", "--set", "a=1"]
    assert strip_nproc(["fit", "--nproc=4", "d.csv"]) == ["fit", "d.csv"]


@pytest.fixture(scope="module")
def ddp(table: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """An uninterrupted two-rank run (the reference for the resumed one)."""
    out = tmp_path_factory.mktemp("ddp_ref")
    return out, _fit(str(table), "--nproc", "2", "--out", str(out / "ddp"))


def test_two_processes_match_the_single_process_loss_curve(ddp, single):
    tmp_path, r = ddp
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]                  # one run directory (rank 0)
    hist = pd.read_csv(tmp_path / "ddp" / "history.csv")
    rel = np.abs(hist["train_loss"].to_numpy() / single.history["train_loss"].to_numpy() - 1)
    print(f"\nper-epoch relative train-loss difference, 2 ranks vs 1 process: {rel.max():.2e}")
    assert rel.max() < 1e-4
    np.testing.assert_allclose(hist["val_loss"], single.history["val_loss"], rtol=1e-4)
    assert (tmp_path / "ddp" / "model.safetensors").exists() and (tmp_path / "ddp" / "checkpoints" / "last").exists()
    assert r.stdout.count("run directory:") == 1                             # only rank 0 prints


def test_killing_both_ranks_and_resuming_finishes_the_run(table: Path, ddp, tmp_path: Path):
    run_dir = tmp_path / "killed"
    # checkpoints go to disk on a time budget and at the end; a checkpoint every epoch for this test
    r = _fit(str(table), "--nproc", "2", "--out", str(run_dir), "--set", "checkpoint.every=1",
             env={"TRAINWELL_FAULT": "kill@step=100"})
    assert r.returncode != 0                                                # both ranks SIGKILLed at step 100
    assert not (run_dir / "history.csv").exists() and (run_dir / "checkpoints" / "last").exists()
    r = subprocess.run([sys.executable, "-m", "trainwell", "fit", "--resume", str(run_dir), "--nproc", "2"],
                       capture_output=True, text=True, timeout=400, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from checkpoints/last" in r.stdout
    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3, 4]
    ref_dir = ddp[0] / "ddp"                                                # the same two ranks, never killed
    ref = pd.read_csv(ref_dir / "history.csv")
    for col in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(hist[col], ref[col], rtol=1e-6, err_msg=col)
    a, b = tw.load(run_dir), tw.load(ref_dir)
    for k, v in a.model.state_dict().items():
        np.testing.assert_allclose(v.numpy(), b.model.state_dict()[k].numpy(), rtol=0, atol=1e-6, err_msg=k)
    assert a.metrics["test"]["accuracy"] == b.metrics["test"]["accuracy"]     # the same predictions, row for row


def test_streaming_with_two_processes(table: Path, single, tmp_path: Path):
    """Each rank streams its hash shard; the run finishes and learns like the single process."""
    r = _fit(str(table), "--nproc", "2", "--out", str(tmp_path / "s"), "--set", "data.streaming=true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data-parallel: training rows per rank" in r.stdout
    hist = pd.read_csv(tmp_path / "s" / "history.csv")
    assert len(hist) == 4 and hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    acc = tw.load(tmp_path / "s").metrics["test"]["accuracy"]
    assert abs(acc - single.metrics["test"]["accuracy"]) < 0.08
