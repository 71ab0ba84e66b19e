"""data.impute: missing feature values filled with statistics of the training split only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.data.sources import load_source
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec


def _csv(tmp_path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(5, 2, size=n), "c": rng.normal(size=n)})
    df["y"] = (df["a"] + 0.5 * (df["b"] - 5) > 0).astype(int)
    df.loc[rng.choice(n, 40, replace=False), "b"] = np.nan
    df.loc[[0, 1], "c"] = np.nan
    path = tmp_path / "m.csv"
    df.to_csv(path, index=False)
    return path, df


def test_missing_values_are_refused_by_default_with_the_option_named(tmp_path):
    path, _ = _csv(tmp_path)
    with pytest.raises(UserError, match=r'column "b" has 40 of them.*data\.impute=median'):
        load_source(str(path), target="y")


def test_median_of_the_training_split_only(tmp_path):
    path, df = _csv(tmp_path)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y", "data.impute=median", "data.scale=none"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    assert not np.isnan(prep.X_train).any() and not np.isnan(prep.X_val).any() and not np.isnan(prep.X_test).any()
    from trainwell.data.split import split_indices
    tr, _, _, _ = split_indices(len(df), df["y"].to_numpy(), spec.data.split, spec.train.seed, has_test=False)
    expected = np.nanmedian(df[["a", "b", "c"]].to_numpy()[tr], axis=0)
    np.testing.assert_allclose(prep.pre.impute, expected, rtol=1e-6)            # the train rows' median, not all rows'
    assert abs(np.nanmedian(df["b"]) - expected[1]) > 0                          # (which would differ)
    assert any("impute: 42 missing value(s) in 2 column(s)" in n for n in prep.notes)


def test_fit_and_predict_fill_missing_values_the_same_way(tmp_path, cli):
    path, df = _csv(tmp_path)
    run = tw.fit(str(path), out=tmp_path / "run", verbose=False,
                 sets=["data.target=y", "data.impute=median", "train.epochs=40"])
    assert run.metrics["test"]["accuracy"] > 0.85
    back = tw.load(tmp_path / "run")
    X = df[["a", "b", "c"]].to_numpy(dtype=np.float32)[:30]
    filled = np.where(np.isnan(X), np.asarray(back.pre.impute, dtype=np.float32), X)
    np.testing.assert_array_equal(back.predict(X), back.predict(filled))
    df.drop(columns="y").head(30).to_csv(tmp_path / "new.csv", index=False)
    r = cli("predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy(), back.predict(filled))


def test_inf_is_never_imputed(tmp_path):
    path, df = _csv(tmp_path)
    df.loc[5, "a"] = np.inf
    df.to_csv(path, index=False)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y", "data.impute=mean"])
    with pytest.raises(UserError, match="infinite values cannot be imputed"):
        load_table(spec)


# --------------------------------------------------------------------------- data.impute=auto (the default)

def _split_train(df):
    from trainwell.data.split import split_indices
    return split_indices(len(df), df["y"].to_numpy(), "auto", 0)[0]


def test_auto_fills_with_training_medians_and_adds_indicators(tmp_path):
    path, df = _csv(tmp_path)
    df.loc[[10, 20, 30], "a"] = np.nan                    # a third column with missing values
    df.to_csv(path, index=False)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y", "data.scale=none"])
    assert spec.data.impute == "auto"
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    tr = _split_train(df)
    X = df[["a", "b", "c"]].to_numpy()
    np.testing.assert_allclose(prep.pre.impute, np.nanmedian(X[tr], axis=0), rtol=1e-6)   # training rows only
    with_nan = [c for j, c in enumerate("abc") if np.isnan(X[tr, j]).any()]
    assert [n for n, _ in prep.pre.indicators] == [f"{c} (missing)" for c in with_nan]
    assert prep.X_train.shape[1] == 3 + len(with_nan)
    for k, c in enumerate(with_nan):                      # each indicator is 1 exactly where the value was missing
        np.testing.assert_array_equal(prep.X_train[:, 3 + k], np.isnan(X[tr, "abc".index(c)]).astype(np.float32))
    filled = np.where(np.isnan(X[tr]), np.asarray(prep.pre.impute), X[tr])
    np.testing.assert_allclose(prep.X_train[:, :3], filled, rtol=1e-6)
    assert any(n.startswith("impute: ") and "missing-indicator input(s) (a (missing)" in n for n in prep.notes)
    assert prep.pre.input_names[3:] == [f"{c} (missing)" for c in with_nan]


def test_median_and_mean_add_no_indicators(tmp_path):
    path, df = _csv(tmp_path)
    for how in ("median", "mean"):
        spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y", f"data.impute={how}", "data.scale=none"])
        prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
        assert prep.pre.indicators == [] and prep.X_train.shape[1] == 3
        stat = np.nanmedian if how == "median" else np.nanmean
        np.testing.assert_allclose(prep.pre.impute, stat(df[["a", "b", "c"]].to_numpy()[_split_train(df)], axis=0),
                                   rtol=1e-6)


def test_predict_fills_new_rows_and_sets_the_indicators(tmp_path):
    path, df = _csv(tmp_path)
    run = tw.fit(str(path), save=False, verbose=False, sets=["data.target=y", "train.epochs=5"])
    new = df[["a", "b", "c"]].head(6).copy()
    new.loc[[0, 1], "b"] = np.nan
    net = run.pre.transform_X(new)
    manual = new.to_numpy(dtype=np.float32)
    manual = np.where(np.isnan(manual), np.asarray(run.pre.impute, dtype=np.float32), manual)
    flags = [np.isnan(new.to_numpy(dtype=np.float32)[:, cols]).any(axis=1) for _, cols in run.pre.indicators]
    expected = run.pre.scaler.transform(np.column_stack([manual, *flags]).astype(np.float32))
    np.testing.assert_allclose(net, expected, rtol=1e-6)
    assert np.isfinite(run.predict(new).astype(float)).all()
    inf = new.copy()
    inf.loc[2, "a"] = np.inf
    with pytest.raises(UserError, match="NaN or inf"):
        run.predict(inf)


def test_missing_targets_are_dropped_and_counted(tmp_path):
    path, df = _csv(tmp_path)
    df["y"] = df["y"].astype(float)
    df.loc[[4, 9, 15, 99, 300, 301, 399], "y"] = np.nan
    df.to_csv(path, index=False)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y"])
    table = load_table(spec)
    assert len(table.y) == 393 and not np.isnan(table.y.astype(float)).any()
    prep = prepare(table, spec, topology(spec.model.type).inputs)
    assert len(prep.X_train) + len(prep.X_val) + len(prep.X_test) == 393
    assert "target: 7 of 400 row(s) without a value in y dropped" in prep.notes[0]
    strict = Spec.build(spec, sets=["data.drop_missing_target=false"])
    with pytest.raises(UserError, match=r'Target column "y" .* has 7 missing value\(s\), the first in row 5'):
        load_table(strict)
    X, y = df[["a", "b", "c"]], df["y"].to_numpy()                  # arrays and DataFrames alike
    for data in (X, X.to_numpy()):
        t = load_table(Spec.build(None), data, y)
        assert len(t.y) == 393 and t.X.shape[0] == 393 and "7 of 400" in t.notes[0]


def test_impute_none_keeps_the_strict_refusal(tmp_path):
    path, _ = _csv(tmp_path)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y", "data.impute=none"])
    with pytest.raises(UserError, match=r'column "b" has 40 of them.*data\.impute=auto'):
        load_table(spec)
