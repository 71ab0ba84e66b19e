"""The piecewise-linear encoding (data/piecewise.py): the bins are the training split's quantiles, each value is
encoded by the formula of Gorishniy et al. 2022, the encoding travels with the model through save, predict and the
ONNX export, and the default path turns it on from 500 training rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.data.piecewise import PiecewiseLinear, resolve_bins
from trainwell.data.scaling import RobustScaler, scaler_from_json

QUIET = ["train.progress=false"]


def test_bins_are_training_quantiles_and_values_are_encoded_by_the_formula() -> None:
    rng = np.random.default_rng(0)
    train = np.column_stack([rng.lognormal(0, 1, size=400), rng.integers(0, 2, size=400), np.full(400, 7.0),
                             rng.integers(0, 3, size=400)])
    s = RobustScaler.fit(train, bins=4)
    edges = np.quantile(train[:, 0], [0, 0.25, 0.5, 0.75, 1.0])
    pw = s.piecewise
    # the 0/1 column and the constant one get no bins; three levels 0, 1, 2 get two (quantile edges merged)
    assert pw.column.tolist() == [0, 0, 0, 0, 3, 3]
    np.testing.assert_allclose(pw.lower[:4], edges[:-1])
    np.testing.assert_allclose(pw.width[:4], np.diff(edges))
    new = np.array([[edges[0] - 1.0, 1, 7, 0], [0.5 * (edges[1] + edges[2]), 0, 7, 1], [edges[4] + 5.0, 1, 7, 2]])
    out = s.transform(new)
    assert out.shape == (3, 4 + 6)
    by_hand = [[0, 0, 0, 0], [1, 0.5, 0, 0], [1, 1, 1, 1]]      # below all bins; halfway through bin 2; above all
    np.testing.assert_allclose(out[:, 4:8], by_hand, atol=1e-6)
    np.testing.assert_allclose(out[:, 8:], [[0, 0], [1, 0], [1, 1]], atol=1e-6)
    np.testing.assert_allclose(out[:, :4], RobustScaler.fit(train).transform(new))   # the scaled columns unchanged
    assert s.names_after(["a", "b", "c", "d"])[4:] == ["a (bin 1)", "a (bin 2)", "a (bin 3)", "a (bin 4)",
                                                       "d (bin 1)", "d (bin 2)"]


def test_the_encoding_is_saved_with_the_scaler_and_older_scalers_still_load() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 3)) * [1.0, 50.0, 0.01]
    s = RobustScaler.fit(train, linear_copy=True, bins=8)
    new = rng.normal(size=(20, 3)) * [3.0, 50.0, 0.01]
    again = scaler_from_json(json.loads(json.dumps(s.to_json())))
    np.testing.assert_array_equal(again.transform(new), s.transform(new))
    old = {k: v for k, v in s.to_json().items() if k != "piecewise"}      # saved before the encoding
    assert scaler_from_json(old).transform(new).shape == (20, 3 + s.n_linear)


def test_nothing_to_encode_gives_no_encoding() -> None:
    assert PiecewiseLinear.fit(np.array([[0.0, 5.0], [1.0, 5.0], [0.0, 5.0]]), np.array([True, True])) is None
    assert RobustScaler.fit(np.array([[0.0], [1.0], [1.0]]), bins=8).n_bins == 0


def test_auto_encodes_a_regression_from_500_training_rows() -> None:
    assert resolve_bins("auto", 500, "regression")[0] == 8 and resolve_bins("auto", 499, "regression")[0] == 0
    assert resolve_bins("auto", 60_000, "multiclass") == (0, "auto: for a regression of 500+ training rows; "
                                                               "this is a multiclass task")
    assert resolve_bins(0, 10_000, "regression")[0] == 0 and resolve_bins(16, 100, "binary")[0] == 16


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    """A threshold a tree would find: y jumps where age passes 28 days, plus a smooth part and noise."""
    rng = np.random.default_rng(seed)
    age = rng.choice([3, 7, 14, 28, 56, 90, 180], size=n)
    cement = rng.uniform(100, 500, size=n)
    water = rng.uniform(120, 250, size=n)
    df = pd.DataFrame({"age": age, "cement": cement, "water": water, "kind": rng.choice(["a", "b"], size=n)})
    df["strength"] = 20 * (age >= 28) + 0.05 * cement - 0.1 * water + rng.normal(0, 2, size=n)
    return df


def test_the_default_path_encodes_a_table_of_1000_rows_and_says_so(tmp_path, capsys) -> None:
    df = _table(1000)
    run = tw.fit(X=df.drop(columns="strength"), y=df["strength"], out=tmp_path / "run", sets=QUIET + ["train.epochs=3"])
    said = " ".join(capsys.readouterr().out.split())
    pw = run.pre.scaler.piecewise
    assert pw is not None and sorted(set(pw.column.tolist())) == [0, 1, 2]        # age, cement, water; not kind's 0/1
    assert "age (bin 1)" in run.pre.input_names and run.pre.input_names[-1] == "water (bin 8)"
    assert "piecewise-linear encoding: 3 input(s) also given through up to 8 quantile bins" in said
    assert "data.piecewise=0 turns it off" in said
    # the width rule counts the table's 5 inputs (age, cement, water, kind's two indicators), not the bins
    assert f"= 800/((5+1)*2)" in said
    new = _table(50, seed=1).drop(columns="strength")
    loaded = tw.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict(new), run.predict(new), rtol=1e-6)
    small = tw.fit(X=df.drop(columns="strength")[:400], y=df["strength"][:400], verbose=True, save=False,
                   sets=QUIET + ["train.epochs=2"])
    said = " ".join(capsys.readouterr().out.split())
    assert small.pre.scaler.piecewise is None
    assert ("piecewise-linear encoding: none (auto: for a regression of 500+ training rows; this one has 320; "
            "data.piecewise=8 turns it on)") in said
    strong = df["strength"] > df["strength"].median()          # the same rows as a classification: not encoded
    cls = tw.fit(X=df.drop(columns="strength"), y=strong, verbose=True, save=False, sets=QUIET + ["train.epochs=2"])
    assert cls.pre.scaler.piecewise is None and "this is a binary task" in " ".join(capsys.readouterr().out.split())
    off = tw.fit(X=df.drop(columns="strength"), y=df["strength"], verbose=False, save=False,
                 sets=QUIET + ["train.epochs=2", "data.piecewise=0"])
    assert off.pre.scaler.piecewise is None and len(off.pre.input_names) == len(run.pre.input_names) - pw.n_bins


def test_the_encoding_learns_a_threshold_the_plain_inputs_blur() -> None:
    """The default (encoded) against data.piecewise=0 on the same rows: the jump at 28 days costs the plain
    network more error on 2,000 new rows (the noise variance is 4), on average over three tables (on one of
    them the plain network found the jump too: 4.29 against 4.17; the mean was 4.32 against 4.64). Measured
    on real tables in docs/tabular.md#piecewise-linear-encoding."""
    error = {"encoded": [], "plain": []}
    for seed in (3, 5, 7):
        df, new = _table(1500, seed=seed), _table(2000, seed=seed + 1)
        X, y = df.drop(columns="strength"), df["strength"]
        for name, sets in (("encoded", QUIET), ("plain", QUIET + ["data.piecewise=0"])):
            run = tw.fit(X=X, y=y, verbose=False, save=False, sets=sets)
            error[name].append(float(((run.predict(new.drop(columns="strength")) - new["strength"]) ** 2).mean()))
    assert np.mean(error["encoded"]) < np.mean(error["plain"]), error


def test_the_onnx_export_encodes_as_predict_does(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from trainwell.export import Session

    df = _table(800, seed=4)
    df.to_csv(tmp_path / "t.csv", index=False)
    run = tw.fit({"source": str(tmp_path / "t.csv"), "target": "strength"}, out=tmp_path / "run", verbose=False,
                 sets=QUIET + ["train.epochs=3"])
    assert run.pre.scaler.n_bins > 0
    result = run.export(out=tmp_path / "model.onnx")
    assert result["largest_difference"] <= 1e-5
    new = _table(60, seed=5).drop(columns="strength")
    new.loc[0, "cement"] = 5_000.0                 # far beyond the top bin: every bin 1, as predict has it
    np.testing.assert_allclose(Session(tmp_path / "model.onnx").predict(new), run.predict(new), rtol=1e-5, atol=1e-5)


def test_bins_asked_for_without_robust_scaling_are_refused_with_what_to_do(tmp_path) -> None:
    from conftest import run_cli

    r = run_cli("fit", "diabetes", "--set", "data.piecewise=8", "--set", "data.scale=standard", "--set",
                "train.epochs=1", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    said = " ".join((r.stderr + r.stdout).split())
    assert "data.piecewise=8 encodes the inputs of robust scaling" in said and "data.scale=standard" in said
    assert "Use data.scale=robust" in said
