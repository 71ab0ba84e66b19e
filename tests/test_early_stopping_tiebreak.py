"""stop.monitor: auto stops classification on validation accuracy, with the validation loss breaking ties."""
from __future__ import annotations

import math

from trainwell.train.early_stopping import EarlyStopping, loss_tiebreak, resolve_monitor


def test_auto_monitor_is_accuracy_for_classification_and_loss_for_regression():
    assert resolve_monitor("auto", "multiclass", "accuracy") == "val_accuracy"
    assert resolve_monitor("auto", "binary", "accuracy") == "val_accuracy"
    assert resolve_monitor("auto", "regression", "r2") == "val_loss"
    assert resolve_monitor("val_loss", "binary", "accuracy") == "val_loss"
    assert loss_tiebreak("val_accuracy") == "val_loss" and loss_tiebreak("val_loss") == ""


def test_auto_monitor_is_the_loss_on_a_small_validation_split():
    """Below 1,000 validation rows accuracy moves in steps of a row and a lucky early epoch wins: the loss."""
    assert resolve_monitor("auto", "binary", "accuracy", val_rows=70) == "val_loss"
    assert resolve_monitor("auto", "multiclass", "accuracy", val_rows=999) == "val_loss"
    assert resolve_monitor("auto", "multiclass", "accuracy", val_rows=1_000) == "val_accuracy"
    assert resolve_monitor("auto", "multiclass", "accuracy", val_rows=6_000) == "val_accuracy"   # MNIST
    assert resolve_monitor("val_accuracy", "binary", "accuracy", val_rows=70) == "val_accuracy"  # asked for
    assert resolve_monitor("auto", "regression", "r2", val_rows=70) == "val_loss"
    assert resolve_monitor("auto", "binary", "accuracy", val_rows=70, target=0.9) == "val_accuracy"  # a metric value


def test_a_small_table_stops_on_its_validation_loss_and_says_why(capsys):
    import trainwell as tw
    run = tw.fit("breast_cancer", train={"epochs": 3, "progress": False}, save=False)
    assert run.spec.stop.monitor == "val_loss"
    assert "stop on val_loss (stop.monitor=auto: 57 validation rows" in capsys.readouterr().out


def test_equal_accuracy_with_a_lower_loss_counts_as_progress():
    stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, tiebreak="val_loss")
    history = [(0.90, 0.50), (0.95, 0.40), (0.95, 0.30), (0.95, 0.25), (0.95, 0.26), (0.95, 0.27), (0.95, 0.28)]
    stopped = [stop.update(epoch, acc, loss) for epoch, (acc, loss) in enumerate(history, start=1)]
    assert stop.best_epoch == 4                      # the same accuracy as epochs 2-3, at the lowest loss
    assert stopped == [False, False, False, False, False, False, True]   # 3 epochs without progress > patience 2


def test_without_a_tiebreak_equal_values_are_no_progress():
    stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=1)
    assert [stop.update(e, v) for e, v in enumerate([0.9, 0.9, 0.9], start=1)] == [False, False, True]
    assert stop.best_epoch == 1 and math.isnan(stop.best_tiebreak)


def test_auto_patience_waits_at_least_1000_steps():
    from trainwell.train.early_stopping import resolve_patience
    assert resolve_patience("auto", 116) == 10            # MNIST at batch 512: 10 epochs = 1,160 steps
    assert resolve_patience("auto", 18) == 56             # 560 training rows at batch 32: ceil(1000 / 18)
    assert resolve_patience(3, 18) == 3                   # a user's patience is kept


def test_a_small_table_run_records_its_resolved_patience(tmp_path):
    import trainwell as tw
    run = tw.fit("iris", verbose=False, save=False, sets=["train.epochs=2", "train.progress=false"])
    # iris: 120 training + 15 validation rows, cross-fitted: an epoch steps through the 135 pooled rows,
    # 2 steps at a classifier's batch of 128 -> 500 epochs of patience (1,000 steps); 15 validation rows
    # -> the loss is monitored
    assert run.arch["crossfit"] and run.spec.train.batch_size == 128
    assert run.spec.stop.patience == 500 and run.spec.stop.monitor == "val_loss"


def test_min_delta_also_applies_to_the_tiebreak_loss():
    # accuracy level at 0.95 while the loss falls 0.004 an epoch: with min_delta 0.01 a single epoch's
    # fall is no progress, but the cumulative fall against the best (0.40 -> 0.388 after 3 epochs) is
    stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, tiebreak="val_loss", min_delta=0.01)
    history = [(0.95, 0.400), (0.95, 0.396), (0.95, 0.392), (0.95, 0.388), (0.95, 0.384), (0.95, 0.380)]
    stopped = [stop.update(epoch, acc, loss) for epoch, (acc, loss) in enumerate(history, start=1)]
    assert stop.best_epoch == 4 and stop.best_tiebreak == 0.388   # 0.388 < 0.400 - 0.01; 0.392 is not
    assert stopped == [False] * 6                                 # epochs 5-6: wait 2, not more than patience
    assert stop.update(7, 0.95, 0.380) is True                    # third epoch less than 0.01 under 0.388


def test_a_regression_waits_30_epochs_on_the_default_path(capsys):
    import math
    import numpy as np
    import trainwell as tw
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2500, 4))
    y = X[:, 0] + rng.normal(size=2500)                        # a noisy target: R^2 about 0.5
    run = tw.fit(X=X, y=y, save=False, sets=["train.epochs=2", "train.progress=false"])
    pooled = run.data_summary["n_train"] + run.data_summary["n_val"] + run.data_summary["n_test"]   # cross-fitted
    steps = math.ceil(pooled / run.spec.train.batch_size)
    assert steps > 34 and run.spec.stop.patience == 30          # 30 epochs are more than 1,000 steps here
    notes = " ".join(capsys.readouterr().out.split())
    assert "patience 30 epochs (stop.patience=auto: 30 epochs for a regression" in notes
    small = tw.fit("diabetes", verbose=False, save=False, sets=["train.epochs=2", "train.progress=false"])
    pooled = small.data_summary["n_train"] + small.data_summary["n_val"] + small.data_summary["n_test"]
    steps = math.ceil(pooled / small.spec.train.batch_size)
    assert small.spec.stop.patience == math.ceil(1000 / steps) > 30   # short epochs: 1,000 steps, as a classifier
