"""model.type=cnn: shapes inferred from the data, per-channel / pixel scaling, augmentation, save/load, accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import trainwell as tw
from trainwell.core.inputs import conv_layout
from trainwell.data.layout import channel_axes, choose_scaler
from trainwell.nn.cnn import Augment, random_shift
from trainwell.nn.topologies import TOPOLOGIES

from conftest import MNIST

CNN_INPUTS = TOPOLOGIES["cnn"].inputs      # how a CNN reads its rows (core/inputs.py)


@pytest.fixture(scope="module")
def mnist_small(tmp_path_factory):
    """5,000 training images and 2,000 test images of the real MNIST, as an npz of [N, 28, 28] uint8."""
    from trainwell.data.sources import load_source
    t = load_source(str(MNIST))
    rng = np.random.default_rng(0)
    i = rng.choice(len(t.X), 5000, replace=False)
    path = tmp_path_factory.mktemp("mnist") / "mnist5k.npz"
    np.savez(path, X=t.X[i].astype(np.uint8), y=t.y[i], X_test=t.X_test[:2000].astype(np.uint8),
             y_test=t.y_test[:2000])
    return path


@pytest.mark.parametrize("shape, dims, cshape", [
    ([28, 28], 2, [1, 28, 28]), ([3, 32, 32], 2, [3, 32, 32]), ([40], 1, [1, 40]), ([1, 40], 1, [1, 40]),
    ([2, 100], 1, [2, 100]),
])
def test_layout_inferred_from_shape(shape, dims, cshape):
    d, c, _ = conv_layout(shape)
    assert (d, c) == (dims, cshape)


def test_per_channel_and_pixel_scaling():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(50, 3, 8, 8)).astype(np.float32)
    X[:, 1] *= 0.1
    s, note = choose_scaler(X, "channel", CNN_INPUTS)
    Z = s.transform(X)
    assert s.mean.shape == (3, 1, 1) and "per channel (3" in note
    assert np.allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-4) and np.allclose(Z.std(axis=(0, 2, 3)), 1, atol=1e-3)
    s, note = choose_scaler(X, "pixels", CNN_INPUTS)
    assert 0 <= s.transform(X).min() and s.transform(X).max() <= 1 and "255" in note
    assert channel_axes([28, 28], CNN_INPUTS.axes) == (0, 1)          # grayscale: one scalar pair
    s, _ = choose_scaler(X[:, 0], "auto", CNN_INPUTS)
    assert s.mean.size == 1


def test_augment_only_in_training_and_shift_moves_pixels():
    x = torch.zeros(4, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    torch.manual_seed(0)
    y = random_shift(x, 2, 2)
    assert y.shape == x.shape and torch.allclose(y.sum((1, 2, 3)), torch.ones(4))   # moved, not lost
    pos = y[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 9, pos % 9
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()
    aug = Augment(shift=2, noise=0.1)
    aug.eval()
    assert torch.equal(aug(x), x)                        # never at evaluation / predict time
    aug.train()
    assert not torch.equal(aug(x), x)


def test_cnn_on_1d_signals_and_save_load(tmp_path):
    rng = np.random.default_rng(0)
    n, T = 400, 32
    y = rng.integers(0, 2, n)
    t = np.arange(T)
    X = np.where(y[:, None] == 1, np.sin(t / 2.0), np.sin(t / 5.0))[:, None, :] + 0.3 * rng.normal(size=(n, 1, T))
    np.savez(tmp_path / "sig.npz", X=X.astype(np.float32), y=y)
    run = tw.fit(str(tmp_path / "sig.npz"), model={"type": "cnn", "channels": [8]}, train={"epochs": 8},
                 out=tmp_path / "run", verbose=False)
    assert run.arch["conv_dims"] == 1 and run.metrics["test"]["accuracy"] > 0.9
    back = tw.load(tmp_path / "run")
    assert np.array_equal(back.predict(X[:50]), run.predict(X[:50]))
    assert (tmp_path / "run" / "report.html").exists() and (tmp_path / "run" / "diagnosis.json").exists()
    assert not run.diagnostics.empty and any("conv" in str(v) for v in run.diagnostics["layer"].unique())


@pytest.mark.slow
def test_cnn_mnist_subset_95(mnist_small, tmp_path):
    run = tw.fit(str(mnist_small), model={"type": "cnn"}, train={"epochs": 5, "batch_size": 64}, save=False,
                 verbose=False)
    assert run.metrics["test"]["accuracy"] >= 0.95, run.metrics["test"]


def test_cnn_with_augmentation_resumes_exactly_after_kills(tmp_path):
    """Augmentation draws from the checkpointed torch RNG: killed twice, the run ends bit-identical."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_checkpoint import drive, same_weights
    sets = ["model.type=cnn", "model.channels=[4]", "model.hidden=[16]", "data.augment.shift=1",
            "data.augment.noise=0.05", "train.epochs=3", "train.progress=false", "checkpoint.every_steps=4"]
    result = drive(tmp_path, sets, [{"fault": "kill@step=6"}, {"fault": "kill@step=25"}, {}])
    assert result["reference"] == "exit:0"
    assert [a["ended"] for a in result["attempts"]] == ["signal:9", "signal:9", "exit:0"]
    same_weights(tmp_path / "ref", tmp_path / "run")


def test_tune_and_lr_find_start_from_the_topology_defaults(tmp_path):
    """tune, lr-find and the overfit check build their spec with spec_for, as fit does: a CNN gets batch 128
    and head dropout 0.25 there too (the tune trial's saved spec shows it)."""
    import yaml

    from trainwell.build import spec_for
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 1, 16)).astype(np.float32)
    y = (X[:, 0, :8].sum(1) > 0).astype(int)
    np.savez(tmp_path / "sig.npz", X=X, y=y)
    notes: list[str] = []
    spec = spec_for(str(tmp_path / "sig.npz"), None, ["model.type=cnn"], {}, notes=notes)
    assert spec.train.batch_size == 128 and spec.model.dropout == 0.25 and len(notes) == 2
    kept = spec_for(str(tmp_path / "sig.npz"), None, ["model.type=cnn", "train.batch_size=16"], {})
    assert kept.train.batch_size == 16                                    # what the user set stays
    res = tw.tune(str(tmp_path / "sig.npz"), space={"optim.lr": [1e-3]}, sampler="grid", trials=1,
                  out=tmp_path / "study", verbose=False,
                  sets=["model.type=cnn", "model.channels=[4]", "train.epochs=1"])
    trial = yaml.safe_load((res.best_run_dir / "spec.yaml").read_text())
    assert trial["train"]["batch_size"] == 128 and trial["model"]["dropout"] == 0.25
