"""Columns read as categories on request (``data.categorical``), and the note that suggests it for an integer
column numbered like a code (data/column_types.py ``integer_code``)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec
from trainwell.data.column_types import Options, integer_code
from trainwell.data.columns import ColumnEncoder
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology


def _panel(groups=60, per=6, seed=0) -> pd.DataFrame:
    """Repeated measurements: each subject has its own level (a fixed effect) and a shared slope in x."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(1, groups + 1), per)
    rng.shuffle(subject)
    level = rng.normal(scale=2.0, size=groups + 1)
    x = rng.normal(size=len(subject))
    return pd.DataFrame({"subject": subject, "x": x, "age": rng.integers(18, 70, len(subject)),
                         "y": level[subject] + 0.5 * x + rng.normal(scale=0.3, size=len(subject))})


def test_a_subject_number_looks_like_a_code_and_ages_counts_and_row_numbers_do_not():
    df = _panel()
    assert integer_code(df["subject"], 32) == "60 values, 1 to 60, 6.0 rows each"
    assert integer_code(df["subject"] - 1, 32).startswith("60 values, 0 to 59")
    assert integer_code(df["age"], 32) == ""                                  # starts at 18
    assert integer_code(pd.Series(np.arange(1, 361)), 32) == ""              # one row per value: a row number
    assert integer_code(pd.Series(np.repeat(np.arange(1, 21), 5)), 32) == ""  # 20 values: few
    assert integer_code(df["subject"].where(df["subject"] != 30, 61), 32) == ""   # 30 missing from 1..61
    assert integer_code(df["x"], 32) == ""                                    # not integers
    assert integer_code(df["subject"].astype(float).where(df.index % 7 > 0), 32) != ""   # NaN ignored
    assert integer_code(df["subject"].astype(str), 32) == ""                  # text: a category already


def test_a_named_numeric_column_is_a_category_learned_from_the_training_rows():
    df = _panel(groups=40, per=8)
    enc = ColumnEncoder.infer(df, ["subject", "x"], Options(categorical=("subject",)))
    assert [(c.name, c.kind, c.numbers) for c in enc.columns] == [("subject", "category", True),
                                                                  ("x", "numeric", False)]
    rows = np.arange(200)
    fitted = enc.fit(enc.parse(df), rows)
    code = fitted.columns[0]
    counts = df["subject"].iloc[rows].value_counts()
    assert code.categories == sorted(str(v) for v in counts.index[counts >= 5]) and code.other
    # a float column (a missing value makes pandas read 12 as 12.0) and text "12" name the same category
    new = pd.DataFrame({"subject": [code.categories[0], 999, None, 2.5], "x": [0.0, 0.0, 0.0, 0.0]})
    X = fitted.transform(new)
    names = fitted.names()
    assert X[0, names.index(f"subject={code.categories[0]}")] == 1
    assert X[1, names.index("subject=(other)")] == 1            # a subject never seen: (other)
    assert X[3, names.index("subject=(other)")] == 1            # not a whole number: no value of its own
    assert X[2].sum() == 1                                      # missing: (missing) or (other), one input
    again = ColumnEncoder.from_json(json.loads(json.dumps(fitted.to_json())))
    assert again.options.categorical == ("subject",)
    np.testing.assert_array_equal(again.transform(new), X)
    floats = df.assign(subject=df["subject"].astype(float))
    np.testing.assert_array_equal(fitted.transform(floats.head(20)), fitted.transform(df.head(20)))


def test_an_unknown_categorical_name_is_refused_with_the_columns():
    with pytest.raises(UserError, match=r"data.categorical names 'subjct'.*Did you mean \"subject\""):
        ColumnEncoder.infer(_panel(), ["subject", "x"], Options(categorical=("subjct",)))


def test_fit_notes_the_code_and_reads_it_as_a_category_when_asked(tmp_path):
    df = _panel(groups=50, per=8, seed=1)
    path = tmp_path / "panel.csv"
    df.to_csv(path, index=False)
    sets = [f"data.source={path}", "data.target=y", "train.progress=false"]
    spec = Spec.build(None, sets=sets)
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    hint = [n for n in prep.notes if n.startswith("integer codes: subject (50 values, 1 to 50, 8.0 rows each)")]
    assert hint and "--set data.categorical=[subject]" in hint[0]
    assert "subject" in prep.pre.feature_names                  # the default: still a number
    plain = tw.fit(verbose=False, save=False, sets=sets)
    run = tw.fit(verbose=False, save=False, sets=[*sets, "data.categorical=subject"])
    assert "subject=(other)" in run.pre.feature_names and "subject" not in run.pre.feature_names
    # each subject's own level is what a number cannot carry: as a category it is most of the variance
    assert run.metrics["test"]["r2"] > plain.metrics["test"]["r2"] + 0.2
    pred = run.predict(df.drop(columns=["y"]).head(5))
    np.testing.assert_allclose(pred, run.predict(df.drop(columns=["y"]).head(5).astype({"subject": float})))


def test_the_cli_prints_the_hint_with_its_brackets(tmp_path):
    from typer.testing import CliRunner
    from trainwell.cli import app

    path = tmp_path / "panel.csv"
    _panel(groups=40, per=6).to_csv(path, index=False)
    out = CliRunner().invoke(app, ["fit", str(path), "--target", "y", "--out", str(tmp_path / "run"),
                                   "--set", "train.epochs=2", "--set", "train.progress=false"])
    assert out.exit_code == 0, out.output
    assert "--set data.categorical=[subject] reads them as categories" in out.output   # not eaten as markup


def test_a_pandas_category_column_is_read_as_categories_by_the_estimators():
    df = _panel(groups=40, per=8, seed=2)
    X, y = df[["subject", "x"]].astype({"subject": "category"}), df["y"]
    enc = ColumnEncoder.infer(X, ["subject", "x"], Options())
    assert [(c.kind, c.numbers) for c in enc.columns] == [("category", True), ("numeric", False)]
    fitted = enc.fit(enc.parse(X))
    # new rows may come as plain integers or as a category column: the same inputs
    np.testing.assert_array_equal(fitted.transform(X.head(30)), fitted.transform(df[["subject", "x"]].head(30)))
    est = tw.Regressor(random_state=0).fit(X.iloc[:280], y.iloc[:280])
    plain = tw.Regressor(random_state=0).fit(df[["subject", "x"]].iloc[:280], y.iloc[:280])
    held = df[["subject", "x"]].iloc[280:]
    assert est.score(held, y.iloc[280:]) > plain.score(held, y.iloc[280:]) + 0.2
