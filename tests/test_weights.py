"""Class weights, sample weights and a user-supplied validation set: the weighted loss and the weighted
accuracy against hand computation (numpy), scikit-learn's balanced formula, and the CLI / Python / estimator
routes to them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.utils.class_weight import compute_class_weight

import trainwell as tw
from trainwell.data.weights import resolve_class_weight, weighted_accuracy
from trainwell.core.errors import UserError
from trainwell.nn.heads import make_head

FAST = ["train.epochs=3", "train.progress=false"]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_class_weighted_losses_by_hand():
    """Multiclass: sum_i w[y_i] (-log softmax(z_i)[y_i]) / sum_i w[y_i]; binary the same with the BCE of each row."""
    rng = np.random.default_rng(0)
    z, y, w = rng.normal(size=(50, 3)), rng.integers(0, 3, 50), [0.5, 2.0, 3.0]
    head = make_head("multiclass", class_weight=w)
    got = float(head.loss_fn(torch.tensor(z), torch.tensor(y)))
    per_row = -_log_softmax(z)[np.arange(50), y]
    rows = np.asarray(w)[y]
    assert got == pytest.approx((rows * per_row).sum() / rows.sum(), rel=1e-12)
    assert got != pytest.approx(per_row.mean(), rel=1e-3)                     # the weights changed it
    z1, y1, w1 = rng.normal(size=(40, 1)), rng.integers(0, 2, 40).astype(float), [1.0, 4.0]
    got = float(make_head("binary", class_weight=w1).loss_fn(torch.tensor(z1), torch.tensor(y1)))
    p = 1 / (1 + np.exp(-z1[:, 0]))
    bce = -(y1 * np.log(p) + (1 - y1) * np.log(1 - p))
    rows = np.asarray(w1)[y1.astype(int)]
    assert got == pytest.approx((rows * bce).sum() / rows.sum(), rel=1e-10)
    unweighted = float(make_head("binary").loss_fn(torch.tensor(z1), torch.tensor(y1)))
    assert unweighted == pytest.approx(bce.mean(), rel=1e-10)


def test_balanced_weights_equal_sklearn_and_a_mapping_is_checked():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    got, note = resolve_class_weight("balanced", y, ["a", "b", "c"], "multiclass")
    np.testing.assert_allclose(got, compute_class_weight("balanced", classes=np.arange(3), y=y))
    assert "balanced" in note
    assert resolve_class_weight({"c": 5}, y, ["a", "b", "c"], "multiclass")[0] == [1.0, 1.0, 5.0]
    with pytest.raises(UserError, match='not a class of this data. Did you mean "setosa"'):
        resolve_class_weight({"Setosa": 2}, y, ["setosa", "versicolor", "virginica"], "multiclass")
    with pytest.raises(UserError, match="binary and multiclass"):
        resolve_class_weight("balanced", y, [], "regression")


def test_weighted_accuracy_by_hand():
    y = np.array([0, 0, 0, 1, 2, 2])
    proba = np.eye(3)[[0, 1, 0, 1, 0, 2]]                     # rows 1 and 4 wrong
    w = [1.0, 3.0, 2.0]
    assert weighted_accuracy("multiclass", y, proba, w) == pytest.approx((1 + 1 + 3 + 2) / (1 + 1 + 1 + 3 + 2 + 2))
    yb, pb = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.2, 0.9, 0.4, 0.7])   # rows 2 and 3 wrong
    assert weighted_accuracy("binary", yb, pb, [1.0, 5.0]) == pytest.approx((1 + 5) / (1 + 5 + 5 + 1))


def test_fit_with_balanced_class_weight_default_model(tmp_path):
    """The default configuration with class_weight="balanced": the weights are saved with the model (a loaded
    run's head computes the same loss), the test split's weighted accuracy equals the hand computation
    from test_predictions.csv, and the per-epoch accuracy early stopping selects on is the weighted one."""
    X, y = load_breast_cancer(return_X_y=True)
    run = tw.fit(X, y, class_weight="balanced", sets=FAST, out=tmp_path / "r", verbose=False)
    train_y = y                                                  # the split is stratified: same class shares
    expected = compute_class_weight("balanced", classes=np.arange(2), y=train_y)
    np.testing.assert_allclose(run.arch["class_weight"], expected, rtol=0.02)
    preds = pd.read_csv(tmp_path / "r" / "test_predictions.csv")
    w = np.asarray(run.arch["class_weight"])[preds["true"]]
    by_hand = float((w * (preds["true"] == preds["pred"])).sum() / w.sum())
    assert run.metrics["test"]["weighted_accuracy"] == pytest.approx(by_hand, abs=1e-9)
    best = run.history[run.history["epoch"] == run.metrics["best_epoch"]]      # the epoch metric is weighted too,
    assert float(best["val_accuracy"].iloc[0]) == pytest.approx(run.metrics["val"]["weighted_accuracy"], abs=1e-5)
    loaded = tw.load(tmp_path / "r")
    assert loaded.head.class_weight == pytest.approx(tuple(run.arch["class_weight"]))


def test_class_weighted_loss_of_a_run_by_hand(tmp_path):
    """One network (no ensemble, no calibration): the test loss in metrics.json is the class-weighted
    log-loss of the predicted probabilities."""
    X, y = load_iris(return_X_y=True)
    run = tw.fit(X, y, class_weight={0: 1.0, 1: 2.0, 2: 4.0}, out=tmp_path / "r", verbose=False,
                 sets=[*FAST, "model.ensemble=1", "train.calibrate=none"])
    preds = pd.read_csv(tmp_path / "r" / "test_predictions.csv")
    p = preds[["proba_0", "proba_1", "proba_2"]].to_numpy()[np.arange(len(preds)), preds["true"]]
    w = np.array([1.0, 2.0, 4.0])[preds["true"]]
    assert run.metrics["test"]["loss"] == pytest.approx(float((w * -np.log(p)).sum() / w.sum()), rel=1e-4)


def test_class_weight_through_the_cli(cli, tmp_path):
    r = cli("fit", "iris", "--set", "data.class_weight=balanced", "--set", "train.epochs=2", "--out",
            str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert "class weights (balanced" in r.stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "weighted_accuracy" in metrics["test"]
    r = cli("fit", "iris", "--set", "data.class_weight={Setosa: 3}", "--set", "train.epochs=2", "--out",
            str(tmp_path / "bad"))
    assert r.returncode == 2 and "not a class of this data" in r.stderr and "Traceback" not in r.stderr


def test_sample_weight_in_fit_drops_zero_weight_rows():
    """sample_weight=0 on every row of one class: the network never trains on that class, so it (almost) never
    predicts it, while the same fit without weights does."""
    X, y = load_iris(return_X_y=True)
    w = np.ones(len(y))
    w[y == 2] = 0.0
    sets = ["train.epochs=30", "train.progress=false"]
    run = tw.fit(X, y, sample_weight=w, sets=sets, save=False, verbose=False)
    note = next(n for n in run.data_summary["notes"] if n.startswith("weights:"))
    assert "resampled" in note
    assert (run.predict(X) == 2).mean() < 0.05
    plain = tw.fit(X, y, sets=sets, save=False, verbose=False)
    assert (plain.predict(X) == 2).mean() > 0.2


def test_validation_data_is_the_validation_split():
    """validation_data=(X_val, y_val): exactly those rows are scored as "val" (accuracy by hand from predict)."""
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, ytr, Xva, yva = X[:450], y[:450], X[450:], y[450:]
    run = tw.fit(Xtr, ytr, validation_data=(Xva, yva), sets=FAST, save=False, verbose=False)
    assert run.data_summary["n_val"] == len(yva)
    assert run.metrics["val"]["accuracy"] == pytest.approx(float((run.predict(Xva) == yva).mean()), abs=1e-9)
    assert run.data_summary["n_train"] + run.data_summary["n_test"] == 450
    frame = pd.DataFrame(Xva, columns=[f"f{i}" for i in range(30)]).assign(label=yva)
    run2 = tw.fit(pd.DataFrame(Xtr, columns=frame.columns[:-1]), ytr, validation_data=frame,
                  sets=[*FAST, "data.target=label"], save=False, verbose=False)
    assert run2.data_summary["n_val"] == len(yva)
    with pytest.raises(UserError, match="validation inputs have shape"):
        tw.fit(Xtr, ytr, validation_data=(Xva[:, :5], yva), sets=FAST, save=False, verbose=False)
