"""The doctor finds the right problem on textbook scenarios and raises no false alarms.

The scenarios: docs/practices/gradients.md and docs/practices/bias_variance.md.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import trainwell as tw
from trainwell.diagnose import bias_variance, diagnose_parts
from trainwell.diagnose.overfit import overfit_check
from trainwell.core.errors import UserError

FAST = ["train.progress=false"]
PROBLEMS = {"vanishing_gradients", "exploding_gradients", "saturation", "dead_units", "lr_too_high",
            "lr_too_low", "overfitting"}


def ids(run_or_diag) -> set[str]:
    d = run_or_diag if isinstance(run_or_diag, dict) else run_or_diag.diagnosis
    return {f["id"] for f in d["findings"]}


# -- the bias/variance table (Ng 2018), as a pure function ------------------------
@pytest.mark.parametrize("train,val,bayes,verdict", [
    (0.01, 0.11, 0.005, "high variance"),   # A1
    (0.15, 0.16, 0.005, "high bias"),       # A2
    (0.15, 0.30, 0.005, "both"),            # A3
    (0.005, 0.01, 0.005, "neither"),        # A4
])
def test_bias_variance_matches_s3_table(train, val, bayes, verdict):
    bv = bias_variance(train, val, bayes)
    assert bv["verdict"] == verdict
    assert bv["bias"] == pytest.approx(train - bayes)
    assert bv["variance"] == pytest.approx(val - train)
    assert len(bv["next_steps"]) == {"neither": 0, "both": 2}.get(verdict, 1)


def test_bias_variance_findings_from_metrics():
    metrics = {"task": "multiclass", "train": {"accuracy": 0.85}, "val": {"accuracy": 0.70}}
    d = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), metrics, "", bayes_error=0.005)
    assert {"high_bias", "high_variance"} <= ids(d) and d["bias_variance"]["verdict"] == "both"


def _severity(d: dict, fid: str) -> str | None:
    return next((f["severity"] for f in d["findings"] if f["id"] == fid), None)


def _metrics(train_acc, val_acc, train_counts, val_rows):
    """Classification metrics with confusion matrices: the training one's row sums are the class counts."""
    k = len(train_counts)
    train_cm = np.diag(train_counts).tolist()
    val_cm = (np.eye(k) * val_rows / k).tolist()
    return {"task": "multiclass", "train": {"accuracy": train_acc, "confusion_matrix": train_cm},
            "val": {"accuracy": val_acc, "confusion_matrix": val_cm}}


def test_without_a_bayes_error_a_training_error_is_not_called_high_bias():
    """Real tables have label noise: counting bias from 0 % would warn on every run whose training error
    passes 5 %. Without an estimate it is an info; with one, a warning as before."""
    m = _metrics(0.88, 0.87, [500, 500], 1000)
    unknown = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), m, "", 0.0, bayes_given=False)
    assert _severity(unknown, "high_bias") == "info" and not unknown["bias_variance"]["bayes_error_given"]
    given = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), m, "", bayes_error=0.02)
    assert _severity(given, "high_bias") == "warning" and given["bias_variance"]["bayes_error_given"]


def test_no_better_than_the_most_frequent_class_is_high_bias_whatever_the_bayes_error():
    m = _metrics(0.70, 0.70, [700, 200, 100], 1000)           # 70 %: what "always class 0" scores
    d = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), m, "", 0.0, bayes_given=False)
    f = next(f for f in d["findings"] if f["id"] == "high_bias")
    assert f["severity"] == "warning" and f["evidence"]["majority_error"] == pytest.approx(0.30)
    m = _metrics(0.75, 0.74, [700, 200, 100], 1000)           # learned something: an info
    d = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), m, "", 0.0, bayes_given=False)
    assert _severity(d, "high_bias") == "info"


def test_a_variance_gap_within_the_validation_noise_is_an_info():
    """7.5 points on 30 validation rows is under 2 standard errors (13.6 points); on 1,000 rows it is not."""
    small = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), _metrics(0.9083, 0.8333, [60, 60], 30),
                           "", bayes_error=0.0)
    f = next(f for f in small["findings"] if f["id"] == "high_variance")
    assert f["severity"] == "info"
    assert f["evidence"]["two_standard_errors"] == pytest.approx(2 * np.sqrt(0.1667 * 0.8333 / 30), abs=1e-3)
    large = diagnose_parts(pd.DataFrame(), None, {"hidden": [8]}, tw.Spec(), _metrics(0.9083, 0.8333, [60, 60], 1000),
                           "", bayes_error=0.0)
    assert _severity(large, "high_variance") == "warning"


def test_a_default_fit_on_a_real_table_raises_no_bias_alarm(tmp_path):
    """SwissLabor (labour-force participation, about 30 % irreducible error): the default fit's doctor
    reports the training error as an info, not a high-bias warning."""
    from pathlib import Path
    table = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tabular" / "SwissLabor.csv"
    if not table.exists():
        table = Path("/work/shared/data/tabular/SwissLabor.csv")
    run = tw.fit(str(table), sets=["data.target=participation", "train.epochs=30", *FAST], save=False, verbose=False)
    assert _severity(run.diagnosis, "high_bias") in (None, "info")
    assert run.metrics["train"]["accuracy"] < 0.85          # the error is there; it is not called bias


# -- the textbook scenarios, each on digits in a few epochs ----------------------------
def test_vanishing_gradients_deep_tanh_uniform(tmp_path):
    run = tw.fit("digits", sets=[f"model.hidden={[8] * 20}", "model.activation=tanh", "model.init=uniform",
                                 "model.init_limit=0.5", "train.epochs=2", *FAST], out=tmp_path / "r", verbose=False)
    assert "vanishing_gradients" in ids(run)
    assert "depth_recipe" in ids(run)           # 20 tanh layers without residual + batch norm
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "vanishing_gradients")
    assert f["evidence"]["first_to_last_ratio"] < 1e-2 and f["remedy"]
    on_disk = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert "vanishing_gradients" in ids(on_disk)
    diag = pd.read_csv(tmp_path / "r" / "diagnostics.csv")
    assert {"grad_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "dead_frac",
            "saturated_frac"} <= set(diag.columns)
    assert sorted(diag["epoch"].unique()) == [0, 1, 2] and diag["layer"].nunique() == 21


def test_saturation_sigmoid_normal_init():
    run = tw.fit("digits", sets=["model.hidden=[64,64]", "model.activation=sigmoid", "model.init=normal",
                                 "model.init_std=1.0", "train.epochs=3", *FAST], save=False, verbose=False)
    assert "saturation" in ids(run)
    assert "dead_units" not in ids(run)


def test_dead_relus_large_negative_bias():
    run = tw.fit("digits", sets=["model.hidden=[64,64]", "model.activation=relu", "model.bias_init=-5",
                                 "train.epochs=3", *FAST], save=False, verbose=False)
    assert "dead_units" in ids(run)
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "dead_units")
    assert max(f["evidence"]["dead_share_by_layer"].values()) > 0.9


def test_exploding_sgd_lr_10_diagnosis_written_before_error(tmp_path):
    with pytest.raises(UserError, match="Exploding gradients"):
        # z-scored inputs: with the default robust scaling and smooth clipping (bounded inputs) lr 10 kills
        # every ReLU instead of overflowing, which the doctor reports as dead units
        # every ReLU instead of overflowing, which the doctor reports as dead units; batch 32: it overflows in epoch 1
        tw.fit("digits", sets=["optim.name=sgd", "optim.lr=10", "train.epochs=5", "data.scale=standard",
                               "train.batch_size=32", *FAST],
               out=tmp_path / "r", verbose=False)
    d = json.loads((tmp_path / "r" / "diagnosis.json").read_text())
    assert "exploding_gradients" in ids(d)
    f = next(f for f in d["findings"] if f["id"] == "exploding_gradients")
    assert f["severity"] == "error" and f["evidence"]["nan_epoch"] == 1 and "clip" in f["remedy"]


def _noisy_small_digits(n=120, flip=0.3, seed=0):
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))[:n]
    X, y = X[idx], y[idx].copy()
    noisy = rng.random(n) < flip
    y[noisy] = rng.integers(0, 10, noisy.sum())
    return X, y


@pytest.mark.slow
def test_overfitting_names_best_epoch():
    X, y = _noisy_small_digits()
    run = tw.fit(X=X, y=y, sets=["model.hidden=[256]", "train.epochs=300", "stop.enabled=false",
                                 "train.batch_size=full", "optim.lr=0.003", *FAST], save=False, verbose=False)
    assert "overfitting" in ids(run)
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "overfitting")
    best = int(run.history["val_loss"].idxmin()) + 1
    assert f["evidence"]["best_epoch"] == best < 300
    assert f"epoch {best}" in f["title"]


@pytest.mark.slow
def test_healthy_relu_he_no_false_alarms(tmp_path):
    run = tw.fit("digits", sets=["model.hidden=[64,64,64]", "model.activation=relu", "model.init=he_uniform",
                                 "train.epochs=100", "train.batch_size=64", *FAST], out=tmp_path / "r", verbose=False)
    assert run.metrics["stopped_because"] != "nan"
    assert not (ids(run) & PROBLEMS), run.diagnosis
    assert run.diagnosis["findings"] == []
    assert json.loads((tmp_path / "r" / "diagnosis.json").read_text())["findings"] == []


def test_monitor_off_and_every():
    run = tw.fit("digits", sets=["train.epochs=2", "train.monitor=false", *FAST], save=False, verbose=False)
    assert run.diagnostics is None
    run = tw.fit("digits", sets=["train.epochs=2", "train.monitor_every=5", "train.batch_size=64", *FAST],
                 save=False, verbose=False)
    d = run.diagnostics
    # the cross-fitted default pools 1,617 training and validation rows: / 64 = 26 steps per epoch, step 1 plus
    # every 5th step -> 6 samples in epoch 1
    assert d[d["epoch"] == 1]["samples"].iloc[0] == 6


def test_overfit_check_small_batch():
    r = overfit_check("digits", n=32, steps=200)
    assert r["passed"] and r["metric_after"] == 1.0
    assert r["metric_before"] < 0.5 and r["loss_after"] < r["loss_before"]


def test_tensorboard_missing_is_a_user_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    with pytest.raises(UserError, match="pip install tensorboard"):
        tw.fit("digits", sets=["train.epochs=1", f"train.tensorboard={tmp_path}", *FAST], save=False, verbose=False)


@pytest.mark.slow
def test_cli_diagnose(tmp_path, cli):
    tw.fit("digits", sets=["model.hidden=[64,64]", "model.bias_init=-5", "train.epochs=2", *FAST],
           out=tmp_path / "r", verbose=False)
    r = cli("diagnose", str(tmp_path / "r"), "--bayes-error", "0.01")
    assert r.returncode == 0, r.stderr
    assert "dead_units" in r.stdout and "remedy" in r.stdout and "bias / variance" in r.stdout
    r = cli("diagnose", "digits", "--overfit-check", "--steps", "150")
    assert r.returncode == 0, r.stderr
    assert "before training" in r.stdout and "PASSED" in r.stdout
    r = cli("diagnose", str(tmp_path / "nope"))
    assert r.returncode == 2 and "not a trainwell run directory" in r.stderr


def test_lr_too_low_fires_on_a_tiny_sgd_lr():
    """SGD at lr 1e-6 on digits: the training loss moves by far less than 5 % (the doctor's FLAT_DROP)."""
    run = tw.fit("digits", sets=["optim.name=sgd", "optim.lr=1e-6", "train.epochs=6", "stop.enabled=false",
                                 "schedule.name=none", "model.ensemble=1", *FAST], save=False, verbose=False)
    loss = run.history["train_loss"].to_numpy()
    assert (loss[0] - loss[-1]) / loss[0] < 0.05                    # the premise, from the history itself
    assert "lr_too_low" in ids(run)
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "lr_too_low")
    assert f["evidence"]["lr"] == 1e-6 and f["evidence"]["epochs"] == 6
    assert f["evidence"]["first_train_loss"] == pytest.approx(loss[0]) and \
        f["evidence"]["last_train_loss"] == pytest.approx(loss[-1])
    assert "raise the learning rate" in f["remedy"].lower()


def test_lr_too_high_fires_when_the_training_loss_climbs_back():
    """Momentum SGD at lr 2 on iris (one network, constant lr, no early stopping): the training loss falls,
    then climbs back well above its lowest epoch again and again; the doctor names the lr. The same
    run at lr 0.05 does not get the finding."""
    base = ["optim.name=momentum", "train.epochs=30", "stop.enabled=false", "schedule.name=none",
            "model.ensemble=1", "train.seed=0", *FAST]
    run = tw.fit("iris", sets=base + ["optim.lr=2.0"], save=False, verbose=False)
    loss = run.history["train_loss"].to_numpy()
    low = loss.min()
    assert (loss[int(loss.argmin()) + 1:] > low + 0.25 * (loss[0] - low)).sum() >= 2   # the premise: it climbs back
    assert "lr_too_high" in ids(run)
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "lr_too_high")
    assert f["evidence"]["lr"] == 2.0
    assert f["evidence"]["first_train_loss"] == pytest.approx(loss[0])
    assert f["evidence"]["lowest_train_loss"] == pytest.approx(low)
    assert f["evidence"]["last_train_loss"] == pytest.approx(loss[-1])
    assert "lower the learning rate" in f["remedy"].lower()
    calm = tw.fit("iris", sets=base + ["optim.lr=0.05"], save=False, verbose=False)
    assert "lr_too_high" not in ids(calm)


def test_underfitting_fires_when_the_budget_ends_while_validation_loss_falls():
    """Plain SGD stopped by a 12-epoch budget on digits: the validation loss still falls > 2 % over the last
    epochs, and the doctor says so (and says lr_too_low does not apply: the loss fell a lot)."""
    run = tw.fit("digits", sets=["optim.name=sgd", "optim.lr=0.01", "train.epochs=12", "schedule.name=none",
                                 "model.ensemble=1", *FAST], save=False, verbose=False)
    assert run.metrics["stopped_because"].startswith("reached the epoch budget")
    val = run.history["val_loss"].to_numpy()
    tail = max(2, len(val) // 5)
    drop = (val[-tail] - val[-1]) / val[-tail]
    assert drop > 0.02 and np.argmin(val) == len(val) - 1           # the premise, from the history itself
    assert "underfitting" in ids(run) and "lr_too_low" not in ids(run)
    f = next(f for f in run.diagnosis["findings"] if f["id"] == "underfitting")
    assert f["evidence"]["val_loss_drop_last_epochs"] == pytest.approx(drop) and f["evidence"]["last_epochs"] == tail
