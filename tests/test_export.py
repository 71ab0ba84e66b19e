"""ONNX export (trainwell/export): for each topology, raw rows from a file go through the exported graph in
onnxruntime and come out as the same decoded labels, probabilities (1e-5) and values in original units
(1e-5 relative) as trainwell's own predict — the default packed ensemble, a folded batch-norm MLP with a
log-transformed target, a CNN, a GRU and an autoencoder's encoder."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import trainwell as tw  # noqa: E402
from trainwell.core.errors import UserError  # noqa: E402
from trainwell.export import Session  # noqa: E402

from conftest import run_cli  # noqa: E402


def _raw_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Every kind of column the defaults type: numbers with gaps, text numbers, yes/no, a date, a category."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame({
        "x": np.where(rng.uniform(size=n) < 0.1, np.nan, x),
        "income": [f"${v:,.0f}" for v in rng.lognormal(10, 1, size=n)],
        "member": rng.choice(["yes", "no"], size=n),
        "day": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "color": rng.choice(["red", "green", "blue", None], size=n, p=[0.4, 0.3, 0.2, 0.1]),
    })
    return df


def _check(run, path, frame, proba: bool = True):
    """The ONNX file on raw rows against trainwell's predict (and predict_proba) on the same rows."""
    session = Session(path)
    got, want = session.predict(frame), run.predict(frame)
    if run.pre.task == "regression":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    else:
        assert (np.asarray(got).astype(str) == np.asarray(want).astype(str)).all()
    if proba:
        np.testing.assert_allclose(session.predict_proba(frame), run.predict_proba(frame), atol=1e-5)


def test_default_classifier_from_a_raw_csv(tmp_path):
    df = _raw_table(300)
    df["label"] = np.where(df["x"].fillna(0) + (df["color"] == "red") > 0.3, "good", "bad")
    df.to_csv(tmp_path / "t.csv", index=False)
    run = tw.fit({"source": str(tmp_path / "t.csv"), "target": "label"}, out=tmp_path / "run", verbose=False,
                 sets=["train.epochs=3", "train.calibrate=temperature"])
    assert run.arch["members"] == 8 and run.head.temperature != 1.0     # the default ensemble, calibrated
    assert run.pre.scaler.linear[run.pre.input_names.index("income")]   # a lognormal income: its linear copy too
    result = run.export(out=tmp_path / "model.onnx")
    assert result["largest_difference"] <= 1e-5 and result["rows"] == 30   # the run's 10 % test rows
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["codes"] == ["color"] and "(missing)" in meta["categories"]["color"]
    new = _raw_table(40, seed=1)
    new.loc[0, "color"] = "purple"                 # unseen category: all indicators 0, as in predict
    new.loc[1, "x"] = np.nan
    new.to_csv(tmp_path / "new.csv", index=False)
    with pytest.warns(UserWarning):
        _check(run, tmp_path / "model.onnx", pd.read_csv(tmp_path / "new.csv"))
    # the CLI: predict --onnx from the CSV file, the same labels as trainwell predict on the run
    r = run_cli("predict", "--onnx", str(tmp_path / "model.onnx"), str(tmp_path / "new.csv"), "--out",
                str(tmp_path / "p.csv"), "--proba")
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and "'purple'" in r.stderr      # as trainwell's own predict warns
    with pytest.warns(UserWarning, match="purple"):
        Session(tmp_path / "model.onnx").predict(new)
    with pytest.warns(UserWarning):
        assert (pd.read_csv(tmp_path / "p.csv")["prediction"] == run.predict(pd.read_csv(tmp_path / "new.csv"))).all()


def test_regressor_with_batchnorm_and_log_target(tmp_path):
    df = _raw_table(300, seed=2)
    df["price"] = np.exp(1.5 * df["x"].fillna(0) + (df["member"] == "yes")) * 1000.0   # skewed: log1p
    df.to_csv(tmp_path / "t.csv", index=False)
    run = tw.fit({"source": str(tmp_path / "t.csv"), "target": "price"}, out=tmp_path / "run", verbose=False,
                 sets=["train.epochs=3", "model.batchnorm=true", "model.hidden=[16]"])
    assert run.pre.target.log == [True] and run.pre.target.low is not None
    r = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "reg.onnx"))
    assert r.returncode == 0, r.stderr
    assert "largest difference" in " ".join(r.stdout.split())
    loaded = tw.load(tmp_path / "run")
    _check(loaded, tmp_path / "reg.onnx", _raw_table(50, seed=3), proba=False)


def test_cnn_gru_and_encoder(tmp_path):
    cnn = tw.fit("digits", out=tmp_path / "cnn", verbose=False,
                 sets=["model.type=cnn", "model.channels=[4]", "train.epochs=1"])
    cnn.export(out=tmp_path / "cnn.onnx")
    from sklearn.datasets import load_digits
    X = load_digits().data[:64].astype(np.float32)
    _check(cnn, tmp_path / "cnn.onnx", X)

    rng = np.random.default_rng(0)
    seq = rng.normal(size=(240, 12, 2)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", X=seq, y=(seq[:, :, 0].sum(1) > 0).astype(np.int64))
    gru = tw.fit(str(tmp_path / "seq.npz"), out=tmp_path / "gru", verbose=False,
                 sets=["model.type=rnn", "model.cell=gru", "model.hidden_size=8", "train.epochs=2"])
    gru.export(out=tmp_path / "gru.onnx")
    _check(gru, tmp_path / "gru.onnx", seq[:50])

    ae = tw.fit("digits", out=tmp_path / "ae", verbose=False,
                sets=["model.type=autoencoder", "model.bottleneck=4", "train.epochs=1"])
    result = ae.export(out=tmp_path / "enc.onnx")
    assert result["rows"] > 0
    np.testing.assert_allclose(Session(tmp_path / "enc.onnx").predict(X), ae.encode(X), atol=1e-5)


def test_a_mismatch_is_refused_with_the_largest_difference(tmp_path, monkeypatch):
    run = tw.fit("iris", out=tmp_path / "run", verbose=False, sets=["train.epochs=2"])
    verify = sys.modules["trainwell.export.verify"]      # the module (the package re-exports its function)
    real = verify.run_exported
    monkeypatch.setattr(verify, "run_exported", lambda *a: {k: (v + 1e-3 if k == "probabilities" else v)
                                                             for k, v in real(*a).items()})
    with pytest.raises(UserError, match=r"largest difference is 0\.001"):
        run.export(out=tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()          # nothing half-checked is left behind


def test_torch_export_archive_and_what_cannot_be_exported(tmp_path):
    run = tw.fit("iris", out=tmp_path / "run", verbose=False, sets=["train.epochs=2"])
    result = run.export("torch-export", out=tmp_path / "m.pt2")
    assert result["largest_difference"] <= 1e-5 and (tmp_path / "m.pt2.json").exists()
    quantile = tw.fit("iris", save=False, verbose=False, sets=["train.epochs=1", "data.scale=quantile"])
    with pytest.raises(UserError, match="quantile transform"):
        quantile.export(out=tmp_path / "q.onnx", data=np.zeros((3, 4), np.float32))
    with pytest.raises(UserError, match="--format onnx is|is not available"):
        run.export("tflite", out=tmp_path / "x")
