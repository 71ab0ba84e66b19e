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
