"""Streaming data (issue 7): larger-than-memory Parquet/CSV, hash split, streamed statistics, resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import trainwell as tw
from trainwell.data.streaming import (StreamData, assign_split, prepare_streaming, row_hash, splitmix64,
                                      wants_streaming)
from trainwell.core.spec import Spec

QUIET = ["train.progress=false", "train.monitor=false"]


def _table(n: int = 3000, f: int = 6, seed: int = 0, regression: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32) * np.arange(1, f + 1) + np.arange(f)   # unequal scales
    z = (X[:, 0] - 1.0) / 1.0 - (X[:, 1] - 1.0) / 2.0 + (X[:, 2] - 2.0) / 3.0
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(f)])
    df["target"] = (3 * z + 0.1 * rng.normal(size=n)) if regression else (z > 0).astype(np.int64)
    df["rid"] = rng.permutation(10 * n)[:n]
    return df


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small.parquet"
    _table().to_parquet(p, row_group_size=400)
    return p


def _spec(path: Path, *sets: str) -> Spec:
    return Spec.build(None, sets=[f"data.source={path}", *sets])


def test_splitmix_reference_values():
    # splitmix64 of 0 and 1 (reference: the C implementation's finaliser with the golden-gamma increment)
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    assert int(splitmix64(np.array([1], dtype=np.uint64))[0]) == 0x910A2DEC89025CC1
    h = row_hash(np.arange(200_000), seed=3)
    parts = assign_split(h, (0.8, 0.1, 0.1))
    assert abs((parts == 0).mean() - 0.8) < 0.01 and abs((parts == 2).mean() - 0.1) < 0.01


def test_split_is_stable_across_runs_and_reading_orders(small: Path):
    """Same rows in each split in two runs, whatever the shuffle buffer, epoch or row_id column."""
    def rows_of(prep, split, epoch_rng):
        data = StreamData(prep, torch.device("cpu"))
        X = np.concatenate([x for x, _ in data.rows(split, epoch_rng)])
        return X[np.lexsort(X.T[::-1])]

    a = prepare_streaming(_spec(small, "data.shuffle_buffer=10"))
    b = prepare_streaming(_spec(small, "data.shuffle_buffer=5000"))
    assert a.counts == b.counts and sum(a.counts) == 3000
    for split in (0, 1, 2):
        ra = rows_of(a, split, np.random.default_rng(1))
        rb = rows_of(b, split, np.random.default_rng(2))       # another file/row-group order
        assert np.array_equal(ra, rb)
    np.testing.assert_array_equal(a.cached["val"][0], b.cached["val"][0])
    # a row_id column decides the split by its values: reordering the file keeps every row's split
    df = pd.read_parquet(small)
    shuffled = small.with_name("shuffled.parquet")
    df.sample(frac=1.0, random_state=5).to_parquet(shuffled, row_group_size=333, index=False)
    c = prepare_streaming(_spec(small, "data.row_id=rid"))
    d = prepare_streaming(_spec(shuffled, "data.row_id=rid"))
    assert c.counts == d.counts
    for split in (0, 1, 2):
        assert np.array_equal(rows_of(c, split, None), rows_of(d, split, None))


def test_epochs_reshuffle_and_cover_every_training_row_once(small: Path):
    prep = prepare_streaming(_spec(small, "data.shuffle_buffer=256"))
    data = StreamData(prep, torch.device("cpu"))
    seen = []
    for epoch in (0, 1):
        batches = list(data.train_batches(epoch, 64))
        assert len(batches) == data.steps(64)
        sizes = [b[1].shape[0] for b in batches]
        assert sum(sizes) == prep.counts[0] and max(sizes) - min(sizes) <= 1
        seen.append(torch.cat([b[1] for b in batches]).numpy())
    assert not np.array_equal(seen[0], seen[1])                         # a new order each epoch
    key = lambda X: X[np.lexsort(X.T[::-1])]                            # noqa: E731
    assert np.array_equal(key(seen[0]), key(seen[1]))                   # the same rows
    again = torch.cat([b[1] for b in data.train_batches(0, 64)]).numpy()
    assert np.array_equal(again, seen[0])                               # (seed, epoch) decides the order


def test_streamed_statistics_equal_in_memory_ones(tmp_path: Path):
    """Welford/Chan merge in float64 over a folder of CSV files = numpy on the same training rows."""
    df = _table(2500, regression=True, seed=4)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate((0, 900, 1700)):
        df.iloc[start:start + (900 if i < 2 else 800)].to_csv(folder / f"part-{i}.csv", index=False)
    prep = prepare_streaming(_spec(folder, "data.target=target"))
    assert prep.pre.task == "regression"
    data = StreamData(prep, torch.device("cpu"))
    X = np.concatenate([x for x, _ in data.rows(0)])
    y = np.concatenate([t for _, t in data.rows(0)])
    assert len(X) == prep.counts[0]
    np.testing.assert_allclose(prep.pre.scaler.mean, X.astype(np.float64).mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(prep.pre.scaler.std, X.astype(np.float64).std(0), rtol=1e-10)
    np.testing.assert_allclose(prep.pre.target_scaler.mean, [y.mean()], rtol=1e-10)
    np.testing.assert_allclose(prep.pre.target_scaler.std, [y.std()], rtol=1e-10)


def test_streaming_and_in_memory_reach_comparable_accuracy(small: Path, tmp_path: Path):
    sets = ["train.epochs=6", "train.batch_size=64", "model.hidden=[32]", *QUIET]
    streamed = tw.fit(str(small), sets=["data.streaming=true", *sets], out=tmp_path / "s", verbose=False)
    # the same network in memory: streamed data trains one network (the packed, cross-fitted ensemble of the
    # in-memory default is compared with scikit-learn's MLP in docs/tabular.md, not here)
    memory = tw.fit(str(small), sets=["data.streaming=false", "model.ensemble=1", *sets], save=False, verbose=False)
    acc_s, acc_m = streamed.metrics["test"]["accuracy"], memory.metrics["test"]["accuracy"]
    print(f"\ntest accuracy: streaming {acc_s:.4f}, in memory {acc_m:.4f}")
    assert acc_s > 0.88 and acc_m > 0.88
    assert abs(acc_s - acc_m) < 0.04
    # the two validation splits hold different rows (a streamed split is drawn by row hash, data/streaming/):
    # each is checked against the same floor, not against the other (300 rows: 0.91 and 0.96 for one network)
    assert streamed.metrics["val"]["accuracy"] > 0.88 and memory.metrics["val"]["accuracy"] > 0.88
    # an ordinary run directory: load + predict work unchanged, with the streamed scaler
    run = tw.load(tmp_path / "s")
    df = pd.read_parquet(small)
    pred = run.predict(df.drop(columns=["target"]).to_numpy())
    assert (pred == df["target"].to_numpy()).mean() > 0.88
    model_json = json.loads((tmp_path / "s" / "model.json").read_text())
    assert "scaler" in json.dumps(model_json)
    assert len(streamed.history) == 6 and not streamed.history["val_loss"].isna().any()
    # a second run gives the same split (data.json counts, same test labels in the same order)
    again = tw.fit(str(small), sets=["data.streaming=true", *sets], save=False, verbose=False)
    assert again.data_summary["n_train"] == streamed.data_summary["n_train"]
    assert again.metrics["test"]["confusion_matrix"] == streamed.metrics["test"]["confusion_matrix"]


def test_early_stopping_and_streamed_validation(small: Path):
    """Validation not held in memory (tiny cache) is scored by streaming; early stopping still works."""
    import trainwell.data.streaming.prepare as st
    old = st.CACHE_BYTES
    st.CACHE_BYTES = 0
    try:
        # min_delta 0.05 is a step of the validation loss, so the loss is the monitored value here
        run = tw.fit(str(small), sets=["data.streaming=true", "train.epochs=60", "train.batch_size=256", "stop.patience=2",
                                       "stop.min_delta=0.05", "stop.monitor=val_loss", *QUIET], save=False, verbose=False)
    finally:
        st.CACHE_BYTES = old
    assert run.metrics["epochs_run"] < 60 and "val_loss no better" in run.metrics["stopped_because"]
    assert run.metrics["val"]["accuracy"] > 0.9


def test_auto_streams_above_the_threshold(small: Path, monkeypatch):
    spec = _spec(small)
    assert wants_streaming(spec)[0] is False
    monkeypatch.setenv("TRAINWELL_STREAMING_BYTES", "1000")
    on, why = wants_streaming(spec)
    assert on and "quarter of the available memory" in why
    assert wants_streaming(_spec(small, "data.streaming=false"))[0] is False
    assert wants_streaming(Spec.build(None, sets=["data.source=iris"]))[0] is False


def test_bad_streamed_data_is_a_user_error(tmp_path: Path, cli):
    df = _table(200)
    df["f1"] = df["f1"].astype(str)
    df.loc[5, "f1"] = "oops"
    p = tmp_path / "bad.parquet"
    df.to_parquet(p)
    r = cli("fit", str(p), "--set", "data.streaming=true", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "not numeric" in r.stderr and "Traceback" not in r.stderr


class _StopAt:
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            state.stop, state.stopped_because = True, "interrupted"


def test_mid_epoch_resume_is_exact(small: Path, tmp_path: Path):
    sets = ["data.streaming=true", "train.epochs=3", "train.batch_size=100", "model.hidden=[16]",
            "checkpoint.every_steps=7", *QUIET]
    full = tw.fit(str(small), sets=sets, out=tmp_path / "full", verbose=False)
    tw.fit(str(small), sets=sets, out=tmp_path / "cut", verbose=False, callbacks=[_StopAt(38)])  # epoch 2, batch 14
    resumed = tw.fit(resume=tmp_path / "cut", verbose=False)
    assert len(resumed.history) == 3
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_allclose(full.history["train_loss"], resumed.history["train_loss"], rtol=1e-6)


# --------------------------------------------------------------------------- larger than memory
HEADROOM = 256 << 20          # memory the run may use above the imported-libraries baseline
COLS = 32

CHILD = textwrap.dedent("""
    import json, sys
    import numpy, pandas, pyarrow, pyarrow.parquet, torch, trainwell, trainwell.api, trainwell.data.streaming
    import sklearn.metrics, matplotlib.pyplot
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    torch.set_num_threads(1)
    base = status("VmRSS:")
    print(json.dumps({"baseline": base}), flush=True)
    run = trainwell.fit(sys.argv[1], sets=["data.streaming=true", "train.epochs=1", "train.batch_size=4096",
                        "model.hidden=[16]", "optim.lr=0.01", "train.progress=false", "train.monitor=false"],
                        out=sys.argv[2], verbose=False)
    print(json.dumps({"baseline": base, "peak": status("VmHWM:"), "test": run.metrics["test"],
                      "val": run.metrics["val"], "n_train": run.data_summary["n_train"],
                      "seconds": run.metrics["seconds"]}), flush=True)
""")


def _write_big_parquet(path: Path, nbytes: int) -> int:
    """Float32 columns in row groups of 64k rows, written without holding the table in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows_per_group = 65536
    groups = -(-nbytes // (rows_per_group * COLS * 4))
    rng = np.random.default_rng(0)
    schema = pa.schema([*(pa.field(f"f{i}", pa.float32()) for i in range(COLS)), pa.field("label", pa.int8())])
    with pq.ParquetWriter(path, schema, compression="none") as w:
        for _ in range(groups):
            X = rng.standard_normal((rows_per_group, COLS), dtype=np.float32)
            y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + 0.25 * X[:, 3] > 0).astype(np.int8)  # a linear rule
            arrays = [pa.array(X[:, i]) for i in range(COLS)] + [pa.array(y)]
            w.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=rows_per_group)
    return groups * rows_per_group


@pytest.mark.slow
def test_dataset_three_times_the_memory_limit_trains_with_bounded_memory(tmp_path: Path):
    data = tmp_path / "big.parquet"
    rows = _write_big_parquet(data, 3 * HEADROOM)
    size = data.stat().st_size
    assert size >= 3 * HEADROOM
    r = subprocess.run([sys.executable, "-c", CHILD, str(data), str(tmp_path / "run")], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    limit = out["baseline"] + HEADROOM
    print(f"\nfile {size / 2**20:.0f} MB ({rows:,} rows), baseline RSS {out['baseline'] / 2**20:.0f} MB, "
          f"peak RSS {out['peak'] / 2**20:.0f} MB, limit {limit / 2**20:.0f} MB, "
          f"test accuracy {out['test']['accuracy']:.4f}, {out['seconds']:.0f} s training")
    assert out["peak"] < limit, f"peak RSS {out['peak'] / 2**20:.0f} MB over the {limit / 2**20:.0f} MB limit"
    assert out["n_train"] == rows - 2000 or abs(out["n_train"] - (rows - 2000)) < 500   # split rule, by hash
    assert out["test"]["accuracy"] > 0.9 and out["val"]["accuracy"] > 0.9              # chance is 0.5
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_one_evaluation_for_streamed_and_in_memory_rows(small: Path, monkeypatch):
    """The loop's one evaluate over a split read from disk (float64 sums) equals evaluate_tensors over the
    same rows held in memory; both sources answer the same BatchSource questions."""
    import trainwell.data.streaming.prepare as st
    from trainwell.data.batches import Tensors
    from trainwell.nn.heads import make_head
    from trainwell.train.loop import evaluate_batches, evaluate_tensors
    monkeypatch.setattr(st, "CACHE_BYTES", 0)                 # nothing held: validation is read from disk
    prep = prepare_streaming(_spec(small))
    data = StreamData(prep, torch.device("cpu"))
    assert data.streamed("val") and not data.in_memory and prep.cached == {}
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(prep.row_shape[0], 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    head = make_head("binary", "auto", "none")
    X = torch.cat([x for x, _ in data.eval_batches("val")])
    y = torch.cat([t for _, t in data.eval_batches("val")])
    assert X.shape[0] == prep.counts[1] > 0
    streamed = evaluate_batches(model, head, data.eval_batches("val"), torch.device("cpu"), wide=True)
    held = evaluate_tensors(model, head, X, y)
    np.testing.assert_allclose(streamed, held, rtol=1e-5)
    memory = Tensors(X, y, X, y, X[:0], y[:0])
    assert not memory.streamed("val") and memory.in_memory
    assert evaluate_batches(model, head, memory.eval_batches("val"), torch.device("cpu")) == held
