"""The epoch budget ``train.epochs: auto``: 200 epochs, or 10,000 steps when an epoch is short."""
import numpy as np
import pytest
from sklearn.metrics import r2_score

import trainwell as tw
from trainwell.core.errors import UserError
from trainwell.train.epoch_budget import resolve_epochs


def test_auto_is_200_epochs_or_10000_steps_whichever_is_more():
    assert resolve_epochs("auto", 3) == 3334          # 80 rows at batch 32: ceil(10,000 / 3)
    assert resolve_epochs("auto", 49) == 205
    assert resolve_epochs("auto", 50) == 200          # from 50 steps an epoch, 200 epochs are 10,000 steps
    assert resolve_epochs("auto", 400) == 200
    assert resolve_epochs(30, 3) == 30                # a number is the user's budget, kept as given
    assert tw.Spec.build().train.epochs == "auto"
    with pytest.raises(UserError, match="epochs must be >= 1 or 'auto'"):
        tw.Spec.build(sets=["train.epochs=0"])


def _residual_table(n: int = 100):
    """A stevedata-like table (fakeTSD): the target is the noise term of a line through the other columns,
    so a network recovers it exactly only by cancelling a 500-unit level to a fraction of a unit."""
    rng = np.random.default_rng(0)
    t, x1, x2, e = np.arange(n, dtype=float), rng.normal(5, 2, n), rng.integers(0, 2, n).astype(float), rng.normal(0, 1, n)
    y = 500 + 0.2 * t + x1 + 2 * x2 + e
    return np.c_[t, y, x1, x2], e


def test_a_tiny_table_trains_past_200_epochs_on_the_default_path_and_fits_its_line():
    X, e = _residual_table()
    run = tw.fit(X=X[:80], y=e[:80], verbose=False, save=False)
    assert run.spec.train.epochs == 3334              # resolved, and what spec.yaml records
    assert run.metrics["epochs_run"] > 200
    assert r2_score(e[80:], run.predict(X[80:])) > 0.7
    old = tw.fit(X=X[:80], y=e[:80], sets=["train.epochs=200"], verbose=False, save=False)
    assert old.metrics["stopped_because"] == "reached the epoch budget (200)"
    assert r2_score(e[80:], old.predict(X[80:])) < 0.3   # the budget in epochs ended it still improving


def test_a_larger_table_keeps_200_epochs():
    X, y = np.random.default_rng(1).normal(size=(2500, 4)), np.random.default_rng(2).normal(size=2500)
    run = tw.fit(X=X, y=y, sets=["stop.patience=1"], verbose=False, save=False)   # 2,000 rows: 63 steps an epoch
    assert run.spec.train.epochs == 200
