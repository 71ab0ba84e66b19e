"""Smearing (Duan 1983): predictions of a logged regression target estimate its mean, not its median."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

import trainwell as tw
from trainwell.data.split import split_indices
from trainwell.train.calibration import FOLD_SEED, FOLDS
from trainwell.train.smearing import held_out_gains, smearing_shift


class Keep:
    """A fit callback keeping the final training state."""

    def on_train_end(self, state) -> None:
        self.state = state


def test_the_shift_is_the_log_of_the_mean_of_exp_residuals():
    rng = np.random.default_rng(0)
    true, predicted = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    by_hand = np.log(np.exp(true - predicted).mean(axis=0))
    np.testing.assert_allclose(smearing_shift(true, predicted), by_hand, rtol=1e-12)
    # a residual whose exp overflows float64 still gives a finite shift: log(mean) = 1000 - log(2)
    assert smearing_shift(np.array([[1000.0], [0.0]]), np.zeros((2, 1)))[0] == pytest.approx(1000 - np.log(2))


def test_the_keep_rule_scores_each_fold_with_a_shift_fitted_on_the_others():
    rng = np.random.default_rng(2)
    predicted = rng.normal(2.0, 0.5, size=(50, 1))
    true = predicted + rng.normal(0.0, 0.8, size=(50, 1))
    gains = held_out_gains(true, predicted)
    order = np.random.default_rng(FOLD_SEED).permutation(50)
    for k in range(FOLDS):
        held = order[k::FOLDS]
        rest = np.setdiff1d(np.arange(50), held)
        s = np.log(np.mean(np.exp(true[rest] - predicted[rest])))
        y, plain, smeared = np.expm1(true[held]), np.expm1(predicted[held]), np.expm1(predicted[held] + s)
        np.testing.assert_allclose(gains[held], ((y - plain) ** 2 - (y - smeared) ** 2)[:, 0], rtol=1e-10)
    assert len(held_out_gains(true[:9], predicted[:9])) == 0          # fewer than 2 rows per fold


def _noisy_lognormal(tmp_path, n=1500, seed=0):
    """log(y) = log(100) + 2 + 0.8 a - 0.5 b + noise of sd 0.7 (and log(1 + y) within 0.002 of it): the mean
    of y given the inputs is exp(0.7^2 / 2), about 1.28 times, its median."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.exp(2.0 + 0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.7 * rng.normal(size=n)) * 100
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=y)
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_a_logged_target_is_smeared_with_the_validation_rows_residuals(tmp_path):
    path, frame = _noisy_lognormal(tmp_path)
    sets = ["data.target=price", "train.epochs=30", "train.progress=false"]
    keep = Keep()
    on = tw.fit(str(path), out=tmp_path / "on", verbose=False, sets=sets, callbacks=[keep])
    off = tw.fit(str(path), save=False, verbose=False, sets=sets + ["data.smearing=false"])
    assert on.pre.target.log == [True] and off.pre.target.shift is None
    X = frame[["a", "b", "c"]]
    # the validation rows are the cross-fitted pool (nn/crossfit.py): each row's log-scale prediction is the
    # one of the member that held it out, computed here from the members' own outputs
    assert on.arch["crossfit"]
    pool = keep.state.data
    fold = pool.X_val[:, -1].long()
    model = keep.state.model.eval()
    with torch.no_grad():
        members = model.member_outputs(pool.X_val[:, :-1])                  # [rows, members, 1]
    held_out = members[torch.arange(len(fold)), fold].numpy()
    scaler = on.pre.target_scaler
    expected = np.log(np.mean(np.exp(scaler.inverse(pool.y_val.numpy()) - scaler.inverse(held_out))))
    assert on.pre.target.shift[0] == pytest.approx(expected, rel=1e-4)
    _, _, test, _ = split_indices(len(frame), None, "auto", 0)
    assert 0.1 < on.pre.target.shift[0] < 0.5                     # about 0.7^2 / 2 = 0.245
    # every prediction is exp(v + shift) - 1, within the clip range
    low, high = on.pre.target.low[0], on.pre.target.high[0]
    smeared = np.clip(np.expm1(np.log1p(off.predict(X).astype(np.float64)) + on.pre.target.shift[0]), low, high)
    np.testing.assert_allclose(on.predict(X), smeared, rtol=1e-4)
    # on the test rows, the mean prediction is near the mean target only with smearing
    truth = frame["price"].to_numpy()[test]
    ratio_on, ratio_off = on.predict(X.iloc[test]).mean() / truth.mean(), off.predict(X.iloc[test]).mean() / truth.mean()
    assert abs(ratio_on - 1) < abs(ratio_off - 1) and ratio_off < 0.9
    # stored in model.json and applied by a loaded model
    meta = json.loads((tmp_path / "on" / "model.json").read_text())["preprocessing"]["target"]
    assert meta["shift"] == pytest.approx(on.pre.target.shift)
    np.testing.assert_allclose(tw.load(tmp_path / "on").predict(X), on.predict(X), rtol=1e-6)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):   # and by export
        from trainwell.export import Session
        on.export(out=tmp_path / "on.onnx")
        np.testing.assert_allclose(Session(tmp_path / "on.onnx").predict(X), on.predict(X), rtol=1e-5, atol=1e-5)


def test_a_target_that_is_not_logged_has_no_shift(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"]).assign(y=lambda f: f.a + rng.normal(size=300))
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = tw.fit(str(tmp_path / "t.csv"), save=False, verbose=False, sets=["data.target=y", "train.epochs=3"])
    assert run.pre.target.log == [False] and run.pre.target.shift is None
