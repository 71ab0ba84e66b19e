"""model.type=autoencoder: a denoising autoencoder on real MNIST digits (subset) cleans held-out noisy
digits, its codes separate the classes under a linear probe, and encode / report / load work."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import trainwell as tw

from conftest import MNIST

SIGMA = 0.3          # noise in pixel units ([0, 1] after data.scale=pixels, the autoencoder's auto choice)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    from trainwell.data.sources import load_source
    t = load_source(str(MNIST))
    rng = np.random.default_rng(1)
    i = rng.choice(len(t.X), 4000, replace=False)
    path = tmp_path_factory.mktemp("ae") / "mnist4k.npz"
    np.savez(path, X=t.X[i].astype(np.uint8), y=t.y[i], X_test=t.X_test[:1000].astype(np.uint8),
             y_test=t.y_test[:1000])
    return path


@pytest.fixture(scope="module")
def dae(digits_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae") / "run"
    run = tw.fit(str(digits_npz), model={"type": "autoencoder", "bottleneck": 32, "denoise": SIGMA},
                 train={"epochs": 20, "batch_size": 64}, out=out, verbose=False)
    return run, out


def test_denoises_held_out_digits(dae, digits_npz):
    run, _ = dae
    z = np.load(digits_npz)
    clean = torch.from_numpy(run.pre.transform_X(z["X_test"]))
    assert 0 <= float(clean.min()) and float(clean.max()) <= 1           # pixels scaled to [0, 1]
    torch.manual_seed(0)
    noisy = clean + SIGMA * torch.randn_like(clean)
    run.model.eval()
    with torch.no_grad():
        recon = run.model(noisy)
    err_noisy = float(((noisy - clean) ** 2).mean())
    err_recon = float(((recon - clean) ** 2).mean())
    assert err_recon / err_noisy < 0.5, (err_recon, err_noisy)
    assert run.metrics["task"] == "reconstruction" and run.metrics["test"]["r2"] > 0.3


def test_codes_separate_classes_linear_probe(dae, digits_npz):
    run, _ = dae
    z = np.load(digits_npz)
    codes_tr, codes_te = run.encode(z["X"]), run.encode(z["X_test"])
    assert codes_tr.shape == (4000, 32)
    probe = LogisticRegression(max_iter=2000).fit(codes_tr, z["y"])
    acc = probe.score(codes_te, z["y_test"])
    assert acc > 0.7, acc                                                 # chance: 0.1


def test_run_directory_encode_cli_and_load(dae, digits_npz, cli, tmp_path):
    run, out = dae
    assert (out / "reconstructions.png").stat().st_size > 1000
    assert "Reconstructions" in (out / "report.html").read_text()
    res = cli("encode", str(out), str(digits_npz), "--out", str(tmp_path / "codes.csv"))
    assert res.returncode == 0, res.stderr[-2000:]
    codes = pd.read_csv(tmp_path / "codes.csv")
    assert codes.shape == (4000, 32)
    back = tw.load(out)
    X = np.load(digits_npz)["X_test"][:20]
    assert np.allclose(back.predict(X), run.predict(X), atol=1e-5)
    assert back.predict(X).shape == (20, 28, 28) and back.predict(X).max() > 100      # original pixel units


def test_conv_autoencoder_small(tmp_path):
    """A 4x4 square at a random place in 12x12 (two numbers describe each image): the conv autoencoder's
    reconstruction of held-out images explains most of their variance (measured: test R^2 0.54 after 30 epochs;
    the mean image scores 0)."""
    rng = np.random.default_rng(0)
    X = np.zeros((400, 12, 12), np.float32)
    for img, r, c in zip(X, rng.integers(0, 9, 400), rng.integers(0, 9, 400)):
        img[r:r + 4, c:c + 4] = 1.0
    np.savez(tmp_path / "squares.npz", X=X)
    run = tw.fit(str(tmp_path / "squares.npz"), model={"type": "autoencoder", "encoder": "conv", "channels": [8, 16],
                                                       "bottleneck": 8}, train={"epochs": 30}, save=False, verbose=False)
    assert run.metrics["test"]["r2"] > 0.35
    rec = run.predict(X[:40])
    assert rec.shape == (40, 12, 12) and run.encode(X[:3]).shape == (3, 8)
    assert ((rec - X[:40]) ** 2).mean() < 0.7 * ((X.mean(0) - X[:40]) ** 2).mean()    # beats the mean image
