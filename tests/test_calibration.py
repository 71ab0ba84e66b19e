"""Temperature scaling (train/calibration.py): the fitted T against a grid search on an NLL written
in NumPy, the default run's decision and its effect on predictions, ECE against its formula, and
scikit-learn's CalibratedClassifierCV wrapped around trainwell's Classifier."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import trainwell as tw
from conftest import SHARED
from trainwell.train.calibration import calibrate_run, fit_temperature, reliability


def _nll_numpy(z: np.ndarray, y: np.ndarray, T: float, task: str) -> float:
    """Log-loss of logits z / T, written out (log-sum-exp by hand; log-sigmoid as -log1p(exp(-x)))."""
    s = z / T
    if task == "multiclass":
        m = s.max(axis=1, keepdims=True)
        logp = s - (m + np.log(np.exp(s - m).sum(axis=1, keepdims=True)))
        return float(-logp[np.arange(len(y)), y].mean())
    s = s.reshape(-1)
    return float(np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (1 - y)))


def _grid_minimum(z: np.ndarray, y: np.ndarray, task: str) -> float:
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 4001))   # steps of 0.15 % in T
    return float(grid[np.argmin([_nll_numpy(z, y, T, task) for T in grid])])


@pytest.mark.parametrize("task", ["multiclass", "binary"])
@pytest.mark.parametrize("sharpness", [0.3, 4.0])      # under- and over-confident logits
def test_temperature_is_the_nll_minimum_found_by_a_grid(task, sharpness):
    rng = np.random.default_rng(1)
    k = 4 if task == "multiclass" else 1
    truth = rng.normal(size=(500, k)) * 2.0            # the true logits; labels drawn from them
    if task == "multiclass":
        p = np.exp(truth) / np.exp(truth).sum(1, keepdims=True)
        y = (rng.uniform(size=(500, 1)) > p.cumsum(1)).sum(1)
    else:
        y = (rng.uniform(size=500) < 1 / (1 + np.exp(-truth[:, 0]))).astype(int)
    z = truth * sharpness + rng.normal(scale=0.2, size=truth.shape)
    T = fit_temperature(torch.tensor(z), torch.tensor(y, dtype=torch.float32 if task == "binary" else torch.int64), task)
    ref = _grid_minimum(z, y, task)
    assert T == pytest.approx(ref, rel=3e-3)
    assert (T < 1) == (sharpness < 1)        # under-confident logits are sharpened, over-confident ones softened


def test_ece_against_its_formula():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 0])
    r = reliability(p, y, "multiclass", bins=10)
    # bins by top probability: 0.9 (right), 0.8 (wrong), 0.7 (right), 0.55 (wrong)
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert r["ece"] == pytest.approx(want)
    assert r["hits"] == pytest.approx(0.5)


def test_default_fit_calibrates_when_it_helps_and_keeps_every_label(tmp_path):
    # the members share one validation split (model.crossfit=false), on which the auto rule is decided; the
    # cross-fitted default declines calibration (the next test)
    run = tw.fit("breast_cancer", out=tmp_path / "run", verbose=False, sets=["train.epochs=40", "model.crossfit=false"])
    cal = run.metrics["calibration"]
    assert cal["applied"] == (cal["val_log_loss_after"] < cal["val_log_loss_before"]
                              and cal["cross_validated_gain"] > 2 * cal["cross_validated_gain_se"])
    saved = json.loads((tmp_path / "run" / "model.json").read_text())["architecture"]
    T = cal["temperature"] if cal["applied"] else 1.0
    assert saved.get("calibration", {}).get("temperature", 1.0) == pytest.approx(T)
    loaded = tw.load(tmp_path / "run")
    from sklearn.datasets import load_breast_cancer
    X = load_breast_cancer().data.astype(np.float32)
    logits = loaded.model(torch.from_numpy(loaded.pre.transform_X(X))).detach().double().reshape(-1)
    want = torch.sigmoid(logits / T).numpy()
    np.testing.assert_allclose(loaded.predict_proba(X)[:, 1], want, atol=1e-6)
    assert (loaded.predict(X) == np.array(loaded.pre.coder.classes)[(logits.numpy() >= 0).astype(int)]).all()
    assert cal["test_accuracy_before"] == cal["test_accuracy_after"]
    # the recorded validation log-loss is the NLL of the stored temperature, recomputed by hand
    assert run.metrics["val"]["loss"] == pytest.approx(cal["val_log_loss_after" if cal["applied"] else
                                                           "val_log_loss_before"], rel=1e-4)


def test_the_cross_fitted_default_does_not_fit_one_members_temperature_to_the_ensemble(capsys):
    """With cross-fitted members (the default on small tables) each validation row is scored by one member,
    so ``auto`` declines and says why; ``temperature`` still fits T, on those out-of-fold logits."""
    run = tw.fit("breast_cancer", save=False, sets=["train.epochs=10", "train.progress=false"])
    assert run.arch["crossfit"] and "calibration" not in run.metrics and run.head.temperature == 1.0
    assert "cross-fitted members" in " ".join(capsys.readouterr().out.split())
    forced = tw.fit("breast_cancer", save=False, verbose=False, sets=["train.epochs=10", "train.calibrate=temperature"])
    assert forced.metrics["calibration"]["applied"] and forced.head.temperature == forced.metrics["calibration"]["temperature"]


def test_calibrate_none_and_regression_untouched(tmp_path):
    run = tw.fit("iris", save=False, verbose=False, sets=["train.epochs=5", "train.calibrate=none"])
    assert "calibration" not in run.metrics and run.head.temperature == 1.0
    reg = tw.fit("diabetes", save=False, verbose=False, sets=["train.epochs=3"])
    assert "calibration" not in reg.metrics


def test_temperature_always_applied_when_asked():
    run = tw.fit("iris", save=False, verbose=False, sets=["train.epochs=5", "train.calibrate=temperature"])
    assert run.metrics["calibration"]["applied"] and run.head.temperature == run.metrics["calibration"]["temperature"]


def test_calibrated_classifier_cv_wraps_the_estimator():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    clf = CalibratedClassifierCV(tw.Classifier(epochs=10, ensemble=1), method="sigmoid", cv=2).fit(X, y)
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 2) and np.allclose(p.sum(1), 1.0)
    assert clf.score(X, y) > 0.85
    assert calibrate_run  # the module's entry point used by fit


def test_held_out_gains_against_a_grid_by_hand():
    """The keep rule's evidence: per validation row, the log-loss gained by a T fitted on the four other
    fifths of the rows (checked here by a grid over T with numpy); kept only when the mean gain is more
    than twice its standard error."""
    from trainwell.train.calibration import FOLD_SEED, generalises, held_out_gains
    rng = np.random.default_rng(3)
    z = rng.normal(size=200) * 3.0
    y = (rng.random(200) < 1 / (1 + np.exp(-z / 3.0))).astype(np.float64)   # true temperature 3

    def nll(zz, yy):
        return np.logaddexp(0.0, zz) - yy * zz    # -log sigmoid per row, written stably

    order = torch.randperm(200, generator=torch.Generator().manual_seed(FOLD_SEED)).numpy()
    grid = np.exp(np.linspace(-3, 3, 6001))
    want = np.zeros(200)
    for k in range(5):
        held, kept = order[k::5], np.concatenate([order[j::5] for j in range(5) if j != k])
        T = grid[np.argmin([nll(z[kept] / t, y[kept]).mean() for t in grid])]
        want[held] = nll(z[held], y[held]) - nll(z[held] / T, y[held])
    got = held_out_gains(torch.from_numpy(z), torch.from_numpy(y), "binary")
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)
    assert generalises(got)                                      # over-confident logits: T helps
    # logits already calibrated: the held-out gain is noise, not kept
    z2 = rng.normal(size=200)
    y2 = (rng.random(200) < 1 / (1 + np.exp(-z2))).astype(np.float64)
    assert not generalises(held_out_gains(torch.from_numpy(z2), torch.from_numpy(y2), "binary"))
    assert not generalises(np.array([0.01, -0.02, 0.015, -0.001]))   # mean > 0 but within noise
    assert generalises(np.array([0.010, 0.011, 0.009, 0.010]))


TABULAR = SHARED / "data" / "tabular"


@pytest.mark.skipif(not TABULAR.exists(), reason="../shared/data/tabular is not checked out")
@pytest.mark.parametrize("seed", [3, 9])
def test_default_declines_a_temperature_whose_validation_gain_does_not_reach_the_test_split(seed):
    """The auto rule on a real table (SwissLabor, 87 validation rows): the temperature fitted on the validation
    split lowers its log-loss clearly, yet raises the test split's, so ``auto`` must not keep it, and the
    model's probabilities stay the uncalibrated ones. Seeds 3 and 9 are the two of seeds 0-15 where the
    default (stopping on the validation loss; income's linear copy since 2026-12-04) shows that case
    clearly (a temperature below 0.8 and a validation gain above 0.005 nats); on seed 0, which showed it
    before the copy, the temperature is now 0.83. bench/calibration.py measures this over 6 seeds and all 8 classification tables
    (docs/training.md); if a training default changes, re-run it there."""
    run = tw.fit({"source": str(TABULAR / "SwissLabor.csv"), "target": "participation"}, save=False,
                 verbose=False, sets=[f"train.seed={seed}", "model.crossfit=false"])   # one shared validation split
    cal = run.metrics["calibration"]
    assert cal["temperature"] < 0.8                                        # sharpened: looks under-confident on val
    assert cal["val_log_loss_before"] - cal["val_log_loss_after"] > 0.005  # in-sample, a clear gain ...
    assert cal["test_log_loss_after"] > cal["test_log_loss_before"]        # ... that does not reach unseen rows
    assert not cal["applied"] and run.head.temperature == 1.0
    assert cal["test_accuracy_before"] == cal["test_accuracy_after"]
    assert run.metrics["test"]["loss"] == pytest.approx(cal["test_log_loss_before"], rel=1e-4)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_the_temperatures_of_several_row_subsets_fitted_together_are_each_ones_own(task):
    """``fit_temperatures`` fits one T per row subset in one batched Newton iteration; each equals the T of
    its rows alone, and the NLL's derivative in 1/T is zero there (to what float64 resolves)."""
    from trainwell.train.calibration import _nll_derivatives, fit_temperatures
    gen = torch.Generator().manual_seed(3)
    n, k = 300, {"binary": 1, "multiclass": 5, "multilabel": 3}[task]
    z = torch.randn(n, k, generator=gen, dtype=torch.float64) * 3
    if task == "multiclass":
        y = torch.multinomial(torch.softmax(z / 2, -1), 1, generator=gen).squeeze(1)
    else:
        y = (torch.rand(n, k, generator=gen, dtype=torch.float64) < torch.sigmoid(z * 0.6)).double()
    if task == "binary":
        z, y = z[:, 0], y[:, 0]
    rows = torch.rand(4, n, generator=gen) < torch.tensor([[1.0], [0.8], [0.5], [0.2]])
    together = fit_temperatures(z, y, task, rows)
    for i in range(4):
        alone = fit_temperatures(z[rows[i]], y[rows[i]], task, torch.ones(1, int(rows[i].sum()), dtype=torch.bool))
        assert float(together[i]) == pytest.approx(float(alone[0]), rel=1e-9)
        weights = rows[i:i + 1].double() / rows[i].sum()
        grad, curvature = _nll_derivatives(z.double(), y, task, 1 / together[i:i + 1], weights)
        assert abs(float(grad[0])) <= 1e-9 * float(curvature[0])


def test_a_temperature_never_flattens_the_labels_into_ties():
    """Logits that point away from the labels (a network a few steps from its init can be worse than none):
    the NLL falls as T grows without end. T stops at the edge of its range, where float32 probabilities still
    order the classes as the logits do, so the predicted labels are unchanged (an unbounded T of 5e9 rounded
    them into exact ties, all predicted as the first class)."""
    from trainwell.train.calibration import S_RANGE
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(150, 3, generator=gen) * 2
    y = z.argmin(1)                                     # always wrong, confidently
    T = fit_temperature(z, y, "multiclass")
    assert T == pytest.approx(1 / S_RANGE[0])
    scaled = torch.softmax((z / T).float(), -1)
    assert torch.equal(scaled.argmax(1), z.argmax(1))
