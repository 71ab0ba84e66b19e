"""train.batch_size: auto grows with the table, and the lr grows with it by the published rules."""
from __future__ import annotations

import math

import pytest

import trainwell as tw
from trainwell.core.spec import Spec
from trainwell.train.batch_size import auto_batch_size, first_batch, resolve_batch, scaled_lr


@pytest.mark.parametrize("rows,batch", [(150, 32), (4_096, 32), (4_097, 64), (15_000, 128), (54_000, 512),
                                        (1_000_000, 512)])
def test_auto_batch_keeps_an_epoch_near_128_steps(rows, batch):
    assert auto_batch_size(rows) == batch == auto_batch_size(rows, 32)
    assert batch == 512 or math.ceil(rows / batch) <= 128


def test_a_crossfitted_classifier_starts_at_128():
    assert first_batch("binary", True) == first_batch("multiclass", True) == 128
    assert first_batch("binary", False) == first_batch("regression", True) == first_batch("regression", False) == 32


@pytest.mark.parametrize("rows,batch", [(150, 128), (16_384, 128), (16_385, 256), (54_000, 512)])
def test_a_start_of_128_doubles_the_same_way(rows, batch):
    assert auto_batch_size(rows, 128) == batch
    spec, note = resolve_batch(Spec.build(None), rows, 128)
    assert spec.train.batch_size == batch and spec.optim.lr == pytest.approx(1e-3 * math.sqrt(batch / 32))
    assert "128 for a cross-fitted classifier" in note


def test_lr_scales_by_sqrt_for_adam_and_linearly_for_sgd():
    assert scaled_lr(1e-3, 512, "adam") == pytest.approx(1e-3 * 4.0)        # sqrt(512 / 32) = 4
    assert scaled_lr(0.01, 128, "sgd") == pytest.approx(0.04)               # 128 / 32 = 4


def test_default_lr_is_scaled_but_a_users_lr_is_kept():
    spec, note = resolve_batch(Spec.build(None), 54_000)
    assert spec.train.batch_size == 512 and spec.optim.lr == pytest.approx(4e-3) and "sqrt" in note
    spec, _ = resolve_batch(Spec.build(None, sets=["optim.lr=0.01"]), 54_000)
    assert spec.train.batch_size == 512 and spec.optim.lr == 0.01
    spec, note = resolve_batch(Spec.build(None, sets=["train.batch_size=64"]), 54_000)
    assert spec.train.batch_size == 64 and note is None


def test_the_resolved_batch_and_lr_are_what_the_run_records(tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6_000, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    run = tw.fit(X=X, y=y, out=tmp_path / "r", verbose=False, sets=["train.epochs=1", "train.progress=false"])
    assert not run.arch["crossfit"]                               # 600 validation rows: one validation split
    assert run.spec.train.batch_size == 64                        # 32, doubled: 4,800 training rows
    assert run.spec.optim.lr == pytest.approx(1e-3 * math.sqrt(2))
    saved = Spec.from_yaml(tmp_path / "r" / "spec.yaml")
    assert saved.train.batch_size == 64 and saved.optim.lr == pytest.approx(run.spec.optim.lr)
    quiet = dict(save=False, verbose=False, sets=["train.epochs=1", "train.progress=false"])
    small = tw.fit(X=X[:3_000], y=y[:3_000], **quiet)             # 300 validation rows: cross-fitted members
    assert small.arch["crossfit"] and small.spec.train.batch_size == 128
    assert small.spec.optim.lr == pytest.approx(1e-3 * math.sqrt(4))
    regressor = tw.fit(X=X[:3_000], y=X[:3_000, 0] * 2.0, **quiet)
    assert regressor.arch["crossfit"] and regressor.spec.train.batch_size == 32 and regressor.spec.optim.lr == 1e-3
