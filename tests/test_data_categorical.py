"""Text feature columns are one-hot encoded, and the vocabulary travels with the model."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.data.loading import load_table
from trainwell.data.categorical import OneHot, is_text
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.data.sources import load_source
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec


def _frame(n=600, seed=0):
    """y depends on the colour (a text column) and on x; colour has a missing value."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    x = rng.normal(size=n)
    y = np.where(colour == "red", x > -0.5, np.where(colour == "green", x > 0.5, x > 1.5)).astype(int)
    colour[3] = None
    return pd.DataFrame({"colour": colour, "x": x, "size": rng.integers(1, 4, n), "y": y})


def test_text_columns_become_indicators(tmp_path):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    table = load_source(str(path), target="y")
    assert table.feature_names == ["colour=(missing)", "colour=blue", "colour=green", "colour=red", "x", "size"]
    assert table.X.shape == (600, 6)
    df = pd.read_csv(path)
    np.testing.assert_array_equal(table.X[:, 3], (df["colour"] == "red").to_numpy(dtype=np.float32))
    assert table.X[3, 0] == 1.0 and table.X[:, :4].sum(1).tolist() == [1.0] * 600   # exactly one indicator per row


def test_what_counts_as_text():
    assert is_text(pd.Series(["a", "b", None]))
    assert not is_text(pd.Series([1.0, 2.0, None]))
    assert not is_text(pd.Series(["1", "2", "three"]))         # mostly numbers: a typo, refused elsewhere
    assert not is_text(pd.Series([True, False]))


def test_fit_predict_evaluate_with_a_text_column(tmp_path, cli):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    run = tw.fit(str(path), out=tmp_path / "run", verbose=False,
                 sets=["data.target=y", "train.epochs=60", "stop.patience=15"])
    assert run.metrics["test"]["accuracy"] > 0.9          # x alone cannot do it: the threshold depends on colour
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert json.dumps(meta).count("colour") > 0
    back = tw.load(tmp_path / "run")
    new = _frame(50, seed=1).drop(columns="y")
    new.loc[0, "colour"] = "purple"                          # never seen in training
    with pytest.warns(UserWarning, match=r'"colour".*not seen in training.*purple'):
        p_frame = back.predict(new)
    assert p_frame.shape == (50,)
    np.testing.assert_array_equal(back.predict(new.iloc[1:]), run.predict(new.iloc[1:]))
    new.iloc[1:].to_csv(tmp_path / "new.csv", index=False)
    r = cli("predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy(), p_frame[1:])
    _frame(200, seed=2).to_csv(tmp_path / "labelled.csv", index=False)
    r = cli("evaluate", str(tmp_path / "run"), str(tmp_path / "labelled.csv"))
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout


def test_fit_on_a_dataframe_with_text(tmp_path):
    df = _frame()
    run = tw.fit(X=df.drop(columns="y"), y=df["y"], save=False, verbose=False,
                 sets=["train.epochs=60", "stop.patience=15"])
    assert run.pre.onehot is not None and run.metrics["test"]["accuracy"] > 0.9
    assert run.predict(df.drop(columns="y").iloc[:5]).shape == (5,)


def test_identifier_columns_are_dropped_with_a_note(tmp_path):
    """An identifier (one distinct text per row) is dropped and named, not an error (data/columns.py)."""
    df = _frame()
    df["id"] = [f"user-{i}" for i in range(len(df))]
    df.to_csv(tmp_path / "ids.csv", index=False)
    table = load_source(str(tmp_path / "ids.csv"), target="y")
    assert not any(n.startswith("id") for n in table.feature_names) and table.X.shape == (600, 6)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'ids.csv'}", "data.target=y"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    assert any(n.startswith("dropped: id (identifier: 600 distinct values in 600 rows)") for n in prep.notes)
    kept = Spec.build(spec, sets=["data.drop_columns=[]"])          # the key that turns the drop off
    prep = prepare(load_table(kept), kept, topology(kept.model.type).inputs)
    assert "id=(other)" in prep.pre.feature_names and not any(n.startswith("dropped") for n in prep.notes)


def test_encoding_round_trips_through_json():
    enc = OneHot(["a", "b"], {"a": ["x", "y"]})
    assert OneHot.from_json(json.loads(json.dumps(enc.to_json()))) == enc
    assert enc.names() == ["a=x", "a=y", "b"]


def test_dataframes_are_read_by_column_name():
    """Columns in another order are matched by name; unnamed training arrays take a frame's columns in order."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    df = pd.DataFrame(X, columns=["p", "q", "r"])
    named = tw.fit(X=df, y=y, save=False, verbose=False, sets=["train.epochs=3"])
    np.testing.assert_array_equal(named.predict_proba(df[["r", "q", "p"]].head(20)), named.predict_proba(df.head(20)))
    with pytest.raises(UserError, match=r"2 columns \(p, q\) but the model was trained on 3: p, q, r"):
        named.predict(df[["p", "q"]])
    unnamed = tw.fit(X=X, y=y, save=False, verbose=False, sets=["train.epochs=3"])
    np.testing.assert_array_equal(unnamed.predict(pd.DataFrame(X[:20], columns=["a", "b", "c"])),
                                  unnamed.predict(X[:20]))
