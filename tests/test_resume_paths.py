"""Exact resume on the other training paths: autograd (train.backward=autograd), streamed data and
population training (fit(ensemble=P)).

Each run is SIGKILLed (or signalled) at moments chosen by events, never by time: after a given optimizer
step, at a phase of a checkpoint write, or from outside as soon as a checkpoint appears (tests/ckpt_driver.py),
then resumed until it finishes; the final weights, the last checkpoint, the history and the scores must be
torch.equal / exactly equal to an uninterrupted run's. The default path (the hand-written step of the packed
ensemble) is tested the same way in tests/test_checkpoint.py.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from test_checkpoint import SETS, drive, same_weights


def test_autograd_path_sigkill_at_many_moments_resumes_exactly(tmp_path):
    """train.backward=autograd (torch's backward, the fused-Adam call): kills mid-epoch, at three phases
    of a checkpoint write, from outside when a checkpoint appears, a SIGTERM and a SIGINT."""
    sets = [*SETS, "train.backward=autograd", "checkpoint.every_steps=5", "checkpoint.every=1", "checkpoint.keep=2"]
    attempts = [
        {"fault": "kill@step=12"},               # mid-epoch 1 (13 steps an epoch), step-10 on disk
        {"fault": "kill@data=1"},                # the next checkpoint's tensors half written
        {"fault": "sigterm@step=47"},            # graceful, mid-epoch 4
        {"kill_when": "checkpoints/step-70"},    # from outside, as soon as step-70 is published
        {"fault": "kill@swap=1"},                # the next epoch's `last`: old copy aside, new one not in place
        {"fault": "sigint@step=118"},            # graceful, mid-epoch 10
        {"fault": "kill@done=1"},                # published, not yet pruned
        {},
    ]
    result = drive(tmp_path, sets, attempts)
    assert result["reference"] == "exit:0"
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9", "signal:9", "exit:143", "signal:9", "signal:9", "exit:130", "signal:9", "exit:0"], \
        (ended, result["stderr"])
    assert result["attempts"][3]["seen"]
    same_weights(tmp_path / "ref", tmp_path / "run")


def _stream_table(path, n: int = 1500, f: int = 6, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32) * np.arange(1, f + 1)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(f)])
    df["target"] = (X[:, 0] - X[:, 1] / 2 + X[:, 2] / 3 > 0).astype(np.int64)
    df.to_parquet(path, row_group_size=250)


def test_streaming_path_sigkill_at_many_moments_resumes_exactly(tmp_path):
    """Streamed Parquet (data.streaming=true: hash split, shuffle buffer, streamed statistics): kills
    mid-epoch (the stream's position is part of the checkpoint), during a write, from outside, and a SIGTERM."""
    data = tmp_path / "table.parquet"
    _stream_table(data)
    sets = ["data.streaming=true", "train.epochs=3", "train.batch_size=100", "model.hidden=[16]",
            "model.dropout=0.1", "train.progress=false", "checkpoint.every_steps=4", "checkpoint.every=1"]
    attempts = [
        {"fault": "kill@step=6"},                # mid-epoch 1, step-4 on disk
        {"fault": "kill@tmp=1"},                 # step-8's tmp dir complete, never renamed
        {"kill_when": "checkpoints/step-16"},    # from outside
        {"fault": "sigterm@step=22"},            # graceful, mid-epoch 2
        {"fault": "kill@swap=1"},                # an epoch's `last` being swapped
        {},
    ]
    result = drive(tmp_path, sets, attempts, data=str(data))
    assert result["reference"] == "exit:0", result["stderr"]
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9", "signal:9", "signal:9", "exit:143", "signal:9", "exit:0"], (ended, result["stderr"])
    assert result["attempts"][2]["seen"]
    same_weights(tmp_path / "ref", tmp_path / "run")


def test_population_sigkill_at_many_moments_resumes_exactly(tmp_path):
    """fit(ensemble=4) trains 4 networks as one population (train/population.py, with dropout drawn from
    per-member generators and a member stopping early): kills mid-epoch, during writes, from outside."""
    # on accuracy (15 validation rows: it plateaus), so that patience 1 stops a member within 6 epochs
    sets = ["train.epochs=6", "model.hidden=[16]", "model.dropout=0.1", "train.batch_size=16",
            "stop.patience=1", "stop.monitor=val_accuracy", "train.progress=false"]
    attempts = [
        {"fault": "kill@step=3"},                 # before any checkpoint: starts over
        {"fault": "kill@step=12"},                # mid-epoch 2 (8 steps an epoch), epoch-1 on disk
        {"fault": "kill@data=1"},                 # a checkpoint's tensors half written
        {"kill_when": "checkpoints/epoch-4"},     # from outside, as soon as epoch-4 is published
        {"fault": "kill@swap=1"},                 # `last` moved aside, the new one not in place
        {},
    ]
    result = drive(tmp_path, sets, attempts, data="iris", ensemble=4)
    assert result["reference"] == "exit:0", result["stderr"]
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9"] * 5 + ["exit:0"], (ended, result["stderr"])
    ref, run = tmp_path / "ref", tmp_path / "run"
    members = sorted(p.name for p in (ref / "members").iterdir())
    assert members == ["00", "01", "02", "03"]
    for f in [f"members/{m}/model.safetensors" for m in members] + ["checkpoints/last/state.safetensors"]:
        x, y = load_file(str(ref / f)), load_file(str(run / f))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f
    ha, hb = (pd.read_csv(d / "history.csv").drop(columns="seconds") for d in (ref, run))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, run))
    assert {k: v for k, v in ma.items() if k != "seconds"} == {k: v for k, v in mb.items() if k != "seconds"}
    runs = sorted(m["epochs_run"] for m in ma["members"])
    assert runs[0] < 6 == runs[-1], runs        # one member stopped early: the population shrank mid-run
