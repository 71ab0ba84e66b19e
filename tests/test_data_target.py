"""Regression targets (log for skewed ones, inverted exactly, predictions clipped) and robust /
quantile scaling of table inputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.data.loading import load_table
from trainwell.data.pipeline import Preprocessor, prepare
from trainwell.nn.topologies import topology
from trainwell.data.scaling import QuantileScaler, RobustScaler, scaler_from_json
from trainwell.data.split import split_indices
from trainwell.data.target import SKEW, TargetPlan, skewness
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec


def _skewed(tmp_path, n=500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.exp(1.0 + 0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=n)) * 1000   # lognormal: skewness > 2
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=y)
    path = tmp_path / "skewed.csv"
    df.to_csv(path, index=False)
    return path, df


def test_skewness_matches_the_textbook_formula():
    y = np.array([1.0, 2.0, 3.0, 10.0])
    d = y - y.mean()
    assert skewness(y)[0] == pytest.approx((d ** 3).mean() / (d ** 2).mean() ** 1.5)
    assert skewness(np.ones(5))[0] == 0.0


def test_log_is_chosen_on_the_training_split_and_inverted_exactly(tmp_path):
    path, df = _skewed(tmp_path)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=price"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    tr, _, _, _ = split_indices(len(df), None, "auto", 0)
    y_tr = df["price"].to_numpy()[tr]
    assert skewness(y_tr)[0] > SKEW and prep.pre.target.log == [True]
    assert any(n.startswith("target: log1p for price (training values > 0, skewness") for n in prep.notes)
    # the network's targets are z-scores of log1p(y), with the training split's statistics
    z = (np.log1p(y_tr) - np.log1p(y_tr).mean()) / np.log1p(y_tr).std()
    np.testing.assert_allclose(prep.y_train[:, 0], z, rtol=1e-4, atol=1e-5)
    # inverted exactly: original units back (float32 round trip)
    y = df["price"].to_numpy()
    back = prep.pre.decode_regression(prep.pre.encode_y(y), prediction=False)
    np.testing.assert_allclose(back[:, 0], y, rtol=2e-5)
    # the clip range: the training range widened by 5 % (not below 0: every target is >= 0)
    lo, hi = y_tr.min(), y_tr.max()
    assert prep.pre.target.low[0] == pytest.approx(max(0.0, lo - 0.05 * (hi - lo)))
    assert prep.pre.target.high[0] == pytest.approx(hi + 0.05 * (hi - lo))
    huge = prep.pre.target_scaler.transform(np.array([[50.0]]))      # far beyond anything seen
    assert prep.pre.decode_regression(huge)[0, 0] == pytest.approx(prep.pre.target.high[0], rel=1e-6)
    assert prep.pre.decode_regression(huge, prediction=False)[0, 0] > 1e10


def test_a_fitted_run_predicts_in_original_units_and_round_trips(tmp_path):
    path, df = _skewed(tmp_path)
    run = tw.fit(str(path), out=tmp_path / "run", verbose=False, sets=["data.target=price", "train.epochs=40"])
    assert run.pre.target.log == [True]
    pred = run.predict(df[["a", "b", "c"]])
    assert run.metrics["test"]["r2"] > 0.5
    assert 0.3 < np.median(pred) / np.median(df["price"]) < 3       # original units, not log or z-scores
    assert pred.min() >= run.pre.target.low[0] and pred.max() <= run.pre.target.high[0]
    back = tw.load(tmp_path / "run")
    assert back.pre.target == run.pre.target
    np.testing.assert_allclose(back.predict(df[["a", "b", "c"]]), pred, rtol=1e-6)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())["preprocessing"]
    assert meta["target"]["log"] == [True] and meta["scaler"]["kind"] == "robust"


def test_no_log_for_symmetric_or_negative_targets_and_the_keys():
    rng = np.random.default_rng(0)
    normal = rng.normal(10, 1, size=(300, 1))
    plan, notes = TargetPlan.fit(normal, "auto", True)
    assert plan.log == [False] and "no log" in notes[0]
    skewed_neg = np.exp(rng.normal(size=(300, 1))) - 2.0               # skewed but with negative values
    assert skewness(skewed_neg)[0] > SKEW
    assert TargetPlan.fit(skewed_neg, "auto", True)[0].log == [False]
    with pytest.raises(UserError, match="target_transform=log needs targets >= 0"):
        TargetPlan.fit(skewed_neg, "log", True)
    skewed = np.exp(rng.normal(size=(300, 1)) * 1.5)
    assert TargetPlan.fit(skewed, "none", True)[0].log == [False]
    plan, _ = TargetPlan.fit(skewed, "log", False)
    assert plan.log == [True] and plan.low is None                  # data.clip_predictions=false
    np.testing.assert_allclose(plan.inverse(plan.forward(skewed)), skewed, rtol=1e-12)


def test_robust_scaling_with_smooth_clipping_leaves_0_1_columns_alone():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.lognormal(0, 2, 1000),                   # heavy tail
                         rng.integers(0, 2, 1000),                    # a 0/1 flag
                         np.r_[np.zeros(900), rng.normal(size=100)],  # IQR 0: half the range instead
                         np.full(1000, 7.0)])                         # constant: becomes 0
    s = RobustScaler.fit(X)
    med, q25, q75 = np.median(X[:, 0]), np.quantile(X[:, 0], 0.25), np.quantile(X[:, 0], 0.75)
    z = (X[:, 0] - med) / (q75 - q25)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, 0], z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-5, atol=1e-6)
    assert np.abs(Z[:, 0]).max() < 3 and np.abs(z).max() > 100
    np.testing.assert_array_equal(Z[:, 1], X[:, 1])
    assert s.keep.tolist() == [False, True, False, False]
    assert s.factor[2] == pytest.approx(2.0 / (X[:, 2].max() - X[:, 2].min()))
    assert (Z[:, 3] == 0).all()
    back = scaler_from_json(json.loads(json.dumps(s.to_json())))
    np.testing.assert_array_equal(back.transform(X), Z)


def test_quantile_transform_is_normal_monotone_and_compact():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.exponential(size=2000), rng.integers(0, 4, 2000).astype(float), rng.integers(0, 2, 2000)])
    s = QuantileScaler.fit(X)
    Z = s.transform(X)
    assert abs(np.median(Z[:, 0])) < 0.01 and abs(Z[:, 0].std() - 1) < 0.02
    order = np.argsort(X[:, 0])
    assert (np.diff(Z[order, 0]) >= 0).all()
    from sklearn.preprocessing import QuantileTransformer
    ref = QuantileTransformer(n_quantiles=1000, output_distribution="normal", subsample=None).fit(X[:, :1])
    np.testing.assert_allclose(Z[:, :1], ref.transform(X[:, :1]), atol=1e-4)
    # a discrete column: each value at the middle of its probability step (scikit-learn sends the
    # lowest value to -5.2 instead), so 0..3 map to increasing, distinct values
    steps = np.cumsum(np.bincount(X[:, 1].astype(int))) / len(X)
    from scipy.special import ndtri
    mids = ndtri((np.r_[0, steps[:-1]] + steps) / 2)
    np.testing.assert_allclose([Z[X[:, 1] == k, 1][0] for k in range(4)], mids, atol=0.01)
    assert len(s.quantiles[1]) <= 12       # 4 values: the ends of 4 flat runs and a point between runs (not 1,000)
    np.testing.assert_array_equal(Z[:, 2], X[:, 2])                   # 0/1 column untouched
    back = scaler_from_json(json.loads(json.dumps(s.to_json())))
    np.testing.assert_array_equal(back.transform(X), Z)


def test_scale_keys_and_old_standard_models(tmp_path):
    path, _ = _skewed(tmp_path)
    for scale, kind in (("auto", RobustScaler), ("quantile", QuantileScaler)):
        spec = Spec.build(None, sets=[f"data.source={path}", "data.target=price", f"data.scale={scale}"])
        assert isinstance(prepare(load_table(spec), spec, topology(spec.model.type).inputs).pre.scaler, kind)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=price", "data.scale=standard"])
    pre = prepare(load_table(spec), spec, topology(spec.model.type).inputs).pre
    assert "kind" not in pre.to_json()["scaler"]                     # the format older runs wrote
    again = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    X = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(again.transform_X(X), pre.transform_X(X))


def test_a_price_target_written_with_its_currency_sign_is_a_regression_target(tmp_path):
    """"$1,234.50" in every row is a number: the target is read as one (and the task is regression),
    as a feature column of prices is; class labels and data.parse without numbers keep the text."""
    from trainwell.data.labels import detect_task
    from trainwell.data.sources import load_source
    path, df = _skewed(tmp_path, n=300)
    money = df.assign(price=[f"${v:,.2f}" for v in df["price"]], grade=np.where(df["a"] > 0, "good", "bad"))
    money.to_csv(tmp_path / "money.csv", index=False)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'money.csv'}", "data.target=price"])
    table = load_source(str(tmp_path / "money.csv"), "price", data=spec.data)
    np.testing.assert_allclose(table.y, df["price"].round(2).to_numpy(), rtol=0, atol=1e-9)
    assert detect_task(table.y) == "regression"
    assert any("price read as numbers from text" in n for n in table.notes)
    labels = load_source(str(tmp_path / "money.csv"), "grade", data=spec.data)
    assert set(labels.y.tolist()) == {"good", "bad"} and not any("read as numbers" in n for n in labels.notes)
    kept = Spec.build(None, sets=["data.parse=[booleans,dates]"])
    as_text = load_source(str(tmp_path / "money.csv"), "price", data=kept.data)
    assert as_text.y.dtype == object and as_text.y[0].startswith("$")
    run = tw.fit(str(tmp_path / "money.csv"), sets=["data.target=price", "train.epochs=2", "train.progress=false"],
                 save=False, verbose=False)
    assert run.pre.task == "regression" and "r2" in run.metrics["test"]


def test_a_target_written_with_spaces_around_it_in_the_header_is_found(tmp_path, cli):
    """A header cell `` price `` (spaces around the name): ``--target " price "`` reaches the reader as
    ``price`` (the --set value is YAML, which trims it), and the one column equal to it once stripped is the
    target; two such columns stay an error naming both."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), " price ": rng.normal(size=120)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = cli("fit", str(tmp_path / "t.csv"), "--target", " price ", "--set", "train.epochs=1", "--out",
              str(tmp_path / "r"))
    assert res.returncode == 0 and "task: regression" in res.stdout, res.stderr
    assert json.loads((tmp_path / "r" / "model.json").read_text())["architecture"]["n_inputs"] == 1
    frame.assign(**{"price  ": frame["x"]}).to_csv(tmp_path / "two.csv", index=False)
    res = cli("fit", str(tmp_path / "two.csv"), "--target", "price", "--out", str(tmp_path / "r2"))
    assert res.returncode == 2 and 'Target column "price" is not in' in res.stderr, res.stderr


def test_a_skewed_count_with_zeros_is_not_logged_but_a_positive_one_is():
    rng = np.random.default_rng(0)
    visits = rng.poisson(rng.gamma(0.3, 5.0, size=(2000, 1))).astype(float)   # overdispersed counts, many zeros
    assert skewness(visits)[0] > SKEW and (visits == 0).mean() > 0.3
    plan, notes = TargetPlan.fit(visits, "auto", True)
    assert plan.log == [False]
    line = next(n for n in notes if "count" in n)
    assert f"{(visits == 0).mean():.0%} of its training values are 0" in line and "data.target_transform=log" in line
    assert TargetPlan.fit(visits + 1.0, "auto", True)[0].log == [True]      # the same shape, every value > 0
    assert TargetPlan.fit(visits, "log", True)[0].log == [True]             # still there when asked for
