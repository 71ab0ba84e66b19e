"""data.impute: missing feature values filled with statistics of the training split only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.api import load_table
from trainwell.data.pipeline import prepare
from trainwell.data.sources import load_source
from trainwell.errors import UserError
from trainwell.spec import Spec


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
    prep = prepare(load_table(spec), spec)
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
