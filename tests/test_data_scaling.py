"""Standardizer and engineered features."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainwell.data.scaling import Standardizer, add_features, feature_names_after
from trainwell.core.errors import UserError


def test_fit_on_train_gives_zero_mean_unit_std() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[5.0, -300.0, 0.01], scale=[2.0, 50.0, 0.001], size=(400, 3)).astype(np.float32)
    train, other = X[:300], X[300:]
    s = Standardizer.fit(train)
    Z = s.transform(train)
    assert Z.dtype == np.float32
    assert np.abs(Z.mean(axis=0)).max() < 1e-5 and np.abs(Z.std(axis=0) - 1).max() < 1e-4
    assert np.abs(s.transform(other).mean(axis=0)).max() > 1e-4  # stats come from train only
    assert np.allclose(s.inverse(Z), train, rtol=1e-5, atol=1e-3)


def test_constant_column_is_safe() -> None:
    X = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    s = Standardizer.fit(X)
    Z = s.transform(X)
    assert np.isfinite(Z).all() and s.std[1] == 1.0 and np.all(Z[:, 1] == 0)


def test_images_per_pixel_and_per_channel() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 255, size=(50, 4, 4))
    X[:, 0, 0] = 0.0
    s = Standardizer.fit(X)
    assert s.mean.shape == (4, 4)
    Z = s.transform(X)
    assert Z.shape == X.shape and np.abs(Z.mean(axis=0)).max() < 1e-4
    g = Standardizer.fit(X, per_channel=True)
    assert g.mean.size == 1 and abs(float(g.transform(X).mean())) < 1e-4
    with pytest.raises(UserError, match=r"per-row shape \(3, 3\).*fitted on \(4, 4\)"):
        s.transform(np.zeros((2, 3, 3)))


def test_json_round_trip() -> None:
    X = np.random.default_rng(2).normal(size=(20, 3))
    s = Standardizer.fit(X)
    t = Standardizer.from_json(json.loads(json.dumps(s.to_json())))
    assert np.array_equal(s.mean, t.mean) and np.array_equal(s.std, t.std)
    assert np.array_equal(s.transform(X), t.transform(X))


def test_squares() -> None:
    X = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    out = add_features(X, ["squares"])
    assert out.shape == (2, 4) and out.dtype == np.float32
    assert out[:, 2:].tolist() == [[1.0, 4.0], [0.25, 9.0]] and np.array_equal(out[:, :2], X)
    assert feature_names_after(["a", "b"], ["squares"]) == ["a", "b", "a^2", "b^2"]
    assert add_features(X, []) is X
    with pytest.raises(UserError, match=r'"square".*Did you mean "squares"'):
        add_features(X, ["square"])
    with pytest.raises(UserError, match="needs a table"):
        add_features(np.zeros((2, 3, 3)), ["squares"])


def test_heavy_tailed_columns_are_also_given_as_plain_z_scores() -> None:
    """HMDA's payment-to-income ratios reach far past the clip's knee (|z| > 6 after robust scaling, twice the
    knee); they are appended again as (x - mean) / std of the training rows, the columns that stay within
    |z| <= 6 are not, nor those of fewer than 20 distinct values (the unemployment rate's 10 levels)."""
    import pandas as pd
    from conftest import SHARED
    from trainwell.data.scaling import RobustScaler, scaler_from_json

    frame = pd.read_csv(SHARED / "data" / "tabular" / "HMDA.csv").drop(columns=["deny"])
    frame = frame.replace({"yes": 1.0, "no": 0.0}).astype(float)
    names, X = list(frame.columns), frame.to_numpy(dtype=np.float64)
    train, new = X[:1800], X[1800:]
    s = RobustScaler.fit(train, linear_copy=True)
    median, iqr = np.median(train, axis=0), np.quantile(train, .75, axis=0) - np.quantile(train, .25, axis=0)
    half = (train.max(axis=0) - train.min(axis=0)) / 2
    reach = np.abs((train - median) / np.where(iqr > 0, iqr, half)).max(axis=0)
    levels = np.array([len(np.unique(c)) for c in train.T])
    np.testing.assert_array_equal(s.linear, (reach > 6) & (levels >= 20))
    assert not s.linear[np.isin(train, (0, 1)).all(axis=0)].any()
    copied = [n for n, c in zip(names, s.linear) if c]
    assert {"pirat", "hirat"} <= set(copied) and "lvrat" not in copied and "selfemp" not in copied
    assert "unemp" not in copied and reach[names.index("unemp")] > 6     # 10 levels, though it reaches |z| 9
    out = s.transform(new)
    assert out.shape == (len(new), X.shape[1] + s.n_linear)
    t = train[:, s.linear]
    far = new[:1].copy()
    far[0, s.linear] = t.max(axis=0) * 10                                   # beyond every training value
    np.testing.assert_allclose(s.transform(far)[0, X.shape[1]:], (t.max(axis=0) - t.mean(axis=0)) / t.std(axis=0),
                               rtol=1e-5)                                   # the copy stops at the training maximum
    by_hand = np.clip(new[:, s.linear], t.min(axis=0), t.max(axis=0))      # held in the training range
    by_hand = (by_hand - t.mean(axis=0)) / t.std(axis=0)
    np.testing.assert_allclose(out[:, X.shape[1]:], by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[:, :X.shape[1]], RobustScaler.fit(train).transform(new))   # clipped as before
    assert s.names_after(names)[X.shape[1]:] == [f"{n} (linear)" for n in copied]
    again = scaler_from_json(json.loads(json.dumps(s.to_json())))
    np.testing.assert_array_equal(again.transform(new), out)
    old = {k: v for k, v in s.to_json().items() if k not in ("linear", "mean", "std")}   # saved before copies
    assert scaler_from_json(old).transform(new).shape == (len(new), X.shape[1])


def test_fit_says_which_inputs_get_a_linear_copy_and_the_key_turns_it_off(capsys) -> None:
    import pandas as pd
    import torch
    import trainwell as tw
    from conftest import SHARED

    frame = pd.read_csv(SHARED / "data" / "tabular" / "HMDA.csv")
    X, y = frame.drop(columns=["deny"]), frame["deny"]
    quiet = ["train.progress=false", "train.epochs=2"]
    run = tw.fit(X=X, y=y, verbose=True, save=False, sets=quiet)
    said = " ".join(capsys.readouterr().out.split())
    names = run.pre.input_names
    assert "pirat (linear)" in names and "hirat (linear)" in names and "lvrat (linear)" not in names
    assert run.model(torch.zeros(1, len(names))).shape[-1] >= 1          # the network reads every input
    assert "heavy-tailed input(s) also given as a plain z-score (pirat" in said and "data.linear_copy=false" in said
    plain = tw.fit(X=X, y=y, verbose=False, save=False, sets=quiet + ["data.linear_copy=false"])
    assert not any(n.endswith("(linear)") for n in plain.pre.input_names)
    assert len(names) - len(plain.pre.input_names) == run.pre.scaler.n_linear
