"""The scikit-learn estimators take raw tables: text, booleans, dates, missing values, weights."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trainwell as tw


def _table(n=500, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "city": rng.choice(["Oslo", "Lima", "Pune", None], n),
        "member": rng.choice(["yes", "no"], n),
        "income": [f"${v:,.0f}" for v in rng.lognormal(10, 0.5, n)],
        "age": rng.integers(18, 80, n).astype(float),
        "since": (pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")).strftime("%Y-%m-%d"),
    })
    df.loc[rng.choice(n, 40, replace=False), "age"] = np.nan
    score = (df["city"].isin(["Oslo", "Pune"]).to_numpy() * 1.5 + (df["member"] == "yes").to_numpy()
             + 0.03 * (df["age"].fillna(50).to_numpy() - 50))
    return df, (score > 1.0).astype(int), score


def test_classifier_on_a_dataframe_with_text_and_nan():
    df, y, _ = _table()
    clf = tw.Classifier(epochs=60, patience=20).fit(df.iloc[:400], y[:400])
    assert list(clf.feature_names_in_) == list(df.columns) and clf.n_features_in_ == 5
    assert clf.score(df.iloc[400:], y[400:]) > 0.85
    pre = clf.run_.pre
    assert "city=(missing)" in pre.feature_names and "since (year)" in pre.feature_names
    assert [n for n, _ in pre.indicators] == ["age (missing)"]
    shuffled = df.iloc[400:, ::-1]       # the Run reads columns by name (the estimator keeps sklearn's order check)
    np.testing.assert_array_equal(clf.run_.predict_proba(shuffled)[:, 1], clf.predict_proba(df.iloc[400:])[:, 1])
    assert clf.predict_proba(df.iloc[:3]).shape == (3, 2)


def test_regressor_on_a_dataframe_with_text_and_nan():
    df, _, score = _table()
    target = 100 + 20 * score
    reg = tw.Regressor(epochs=60, patience=20).fit(df.iloc[:400], target[:400])
    assert reg.score(df.iloc[400:], target[400:]) > 0.6
    assert np.asarray(reg.predict(df.iloc[400:])).dtype == np.float64


def test_sample_weight_is_accepted_and_used():
    df, y, _ = _table()
    w = np.where(y == 1, 3.0, 1.0)
    from trainwell.data.loading import load_table
    from trainwell.data.pipeline import prepare
    from trainwell.nn.topologies import topology
    from trainwell.core.spec import Spec
    spec = Spec.build(None, sets=["data.weight=w", "task=binary"])
    table = load_table(spec, df.assign(w=w), y)
    assert not any(n.startswith("w") for n in table.feature_names)      # the weight column is not an input
    prep = prepare(table, spec, topology(spec.model.type).inputs)
    assert any(n.startswith("weights: training and validation rows resampled") for n in prep.notes)
    p = y.mean()
    assert abs(prep.y_train.mean() - 3 * p / (3 * p + 1 - p)) < 0.03   # positives count three times
    assert abs(len(prep.y_train) - 400) <= 2                            # about as many rows as before
    clf = tw.Classifier(epochs=5).fit(df, y, sample_weight=w)
    assert clf.predict(df.head(5)).shape == (5,)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    yy = (X[:, 0] > 0).astype(int)
    only_pos = np.where(yy == 1, 1.0, 0.0)           # zero weight on every negative row: they are never seen
    p = tw.Classifier(epochs=15).fit(X, yy, sample_weight=only_pos).predict(X)
    assert (p == 1).mean() > 0.95
    with pytest.raises(ValueError, match="weight.*zero|zero.*weight|non-zero"):
        tw.Classifier(epochs=2).fit(X, yy, sample_weight=np.zeros(300))
    with pytest.raises(ValueError):
        tw.Classifier(epochs=2).fit(X, yy, sample_weight=np.ones(10))


def test_numeric_arrays_with_nan_are_imputed():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan
    clf = tw.Classifier(epochs=40).fit(X, y)
    assert clf.score(X, y) > 0.8 and len(clf.run_.pre.indicators) == 4
    X[0, 0] = np.inf
    with pytest.raises(ValueError):
        clf.predict(X)
