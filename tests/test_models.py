"""Architecture practices checked against their rules (docs/practices/normalization.md): dropout, batch norm,
BN folding, MC dropout, residual blocks, the self-normalizing preset, the perceptron rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import trainwell
from trainwell.catalogue import catalogue
from trainwell.core.errors import UserError
from trainwell.nn.fold import count_batchnorm, fold_batchnorm
from trainwell.nn.models import BN_MOMENTUM, MLP, DenseBlock, initialize
from trainwell.nn.topologies import build_model
from trainwell.nn.perceptron import Perceptron, perceptron_criterion, perceptron_rule

FAST = {"progress": False, "monitor": False}


def _arch(**kw):
    base = {"type": "mlp", "n_inputs": 6, "hidden": [8, 8], "n_outputs": 3, "activation": "relu",
            "init": "he_uniform", "dropout": 0.0, "batchnorm": False, "residual": False}
    return {**base, **kw}


# -- dropout ------------------------------------------------------------------
def test_dropout_scales_survivors_by_one_over_keep_and_only_in_training():
    p = 0.25
    block = DenseBlock(5, 5, "linear", p, False)
    nn.init.eye_(block.linear.weight)
    nn.init.zeros_(block.linear.bias)
    x = torch.arange(1.0, 401.0).reshape(80, 5)
    block.train()
    torch.manual_seed(0)
    y = block(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)   # survivors scaled by 1/(1-p)
    assert 0.6 < kept.float().mean() < 0.9                   # about 1-p of the units kept
    torch.manual_seed(0)                                    # the same mask as torch draws it
    mask = torch.empty_like(x).bernoulli_(1 - p)
    assert torch.equal(kept, mask.bool())
    block.eval()
    assert torch.equal(block(x), x)                          # identity at inference


def test_no_dropout_on_the_output_layer():
    model = MLP(_arch(dropout=0.5))
    assert isinstance(model.out, nn.Linear)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2   # one per hidden block


# -- batch normalization --------------------------------------------------------
def test_batchnorm_batch_statistics_in_training_running_in_eval():
    torch.manual_seed(0)
    block = DenseBlock(4, 3, "linear", 0.0, "before")
    bn = block.bn_before
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_mean.copy_(torch.tensor([0.4, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    mu0, var0 = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(16, 4) * 3 + 1
    h = block.linear(x).detach()
    mu_b, var_b = h.mean(0), h.var(0, unbiased=False)
    block.train()
    z = block(x).detach()
    expected = bn.weight * (h - mu_b) / torch.sqrt(var_b + bn.eps) + bn.bias
    assert torch.allclose(z, expected, atol=1e-5)            # x^ = (x - mu_B)/sqrt(var_B + eps); gamma x^ + beta
    # Keras: mu <- mu * momentum + mu_B * (1 - momentum), momentum = 0.9 (torch's 0.1)
    assert BN_MOMENTUM == 0.9 and bn.momentum == pytest.approx(0.1)
    assert torch.allclose(bn.running_mean, mu0 * 0.9 + mu_b * 0.1, atol=1e-6)
    n = h.shape[0]   # torch keeps the unbiased batch variance in the running estimate
    assert torch.allclose(bn.running_var, var0 * 0.9 + var_b * n / (n - 1) * 0.1, atol=1e-5)
    block.eval()
    z_eval = block(x).detach()
    expected_eval = bn.weight * (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) + bn.bias
    assert torch.allclose(z_eval, expected_eval, atol=1e-5)
    mean_before = bn.running_mean.clone()
    block(x)
    assert torch.equal(bn.running_mean, mean_before)         # evaluation does not update the statistics


def test_batchnorm_after_the_activation():
    block = DenseBlock(4, 3, "relu", 0.0, "after")
    assert block.bn_before is None and isinstance(block.bn_after, nn.BatchNorm1d)
    block.train()
    out = block(torch.randn(32, 4))
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-5)   # normalized after the ReLU


# -- BN folding -------------------------------------------------------------------
def _trained_bn_model(batchnorm, residual=False, hidden=(8, 8, 8)):
    torch.manual_seed(1)
    model = MLP(_arch(hidden=list(hidden), batchnorm=batchnorm, residual=residual, activation="tanh",
                      init="glorot_uniform"))
    for m in model.modules():                                # non-trivial gamma, beta
        if isinstance(m, nn.BatchNorm1d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    model.train()
    for _ in range(20):                                      # running statistics far from 0 / 1
        model(torch.randn(64, 6) * 2 + 0.7)
    return model.eval()


@pytest.mark.parametrize("batchnorm", ["before", "after"])
def test_fold_batchnorm_same_outputs(batchnorm):
    model = _trained_bn_model(batchnorm)
    folded = fold_batchnorm(model).eval()
    assert count_batchnorm(model) == 3 and count_batchnorm(folded) == 0
    x = torch.randn(50, 6) * 2 + 0.7
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)
    assert count_batchnorm(model) == 3                       # the original is untouched


def test_fold_keeps_bn_that_a_residual_path_reads():
    model = _trained_bn_model("after", residual=True)
    folded = fold_batchnorm(model).eval()
    assert count_batchnorm(folded) == 3                      # x + BN(g(.)) cannot fold into a Linear
    model_b = _trained_bn_model("before", residual=True)
    folded_b = fold_batchnorm(model_b).eval()
    assert count_batchnorm(folded_b) == 0
    x = torch.randn(20, 6)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)
        assert torch.allclose(model_b(x), folded_b(x), atol=1e-5)


def test_run_fold_saves_and_loads(tmp_path):
    run = trainwell.fit("iris", model={"hidden": [16, 16], "batchnorm": True}, train={"epochs": 3, **FAST},
                        save=False, verbose=False)
    folded = run.fold()
    assert count_batchnorm(folded.model) == 0 and count_batchnorm(run.model) == 2
    X = np.random.default_rng(0).normal(5, 2, size=(30, 4))
    np.testing.assert_allclose(folded.predict_proba(X), run.predict_proba(X), atol=1e-5)
    folded.save(tmp_path / "folded")
    again = trainwell.load(tmp_path / "folded")
    assert count_batchnorm(again.model) == 0
    np.testing.assert_allclose(again.predict_proba(X), run.predict_proba(X), atol=1e-5)


# -- MC dropout ---------------------------------------------------------------------
def test_mc_dropout_mean_and_std_over_passes():
    """MC dropout on the default model (a packed ensemble): T passes with dropout on give the mean and std of the
    outputs. Checked against the closed form, not against trainwell's own passes: with a linear output after one
    dropout layer, out = b2 + sum_j w_j h_j m_j / q (m_j ~ Bernoulli(q), q = 1 - p) has mean b2 + w.h (the
    deterministic prediction) and variance p / q * sum_j w_j^2 h_j^2, and the ensemble averages k independent
    members (variance / k^2 summed)."""
    p, T = 0.3, 2000
    run = trainwell.fit("diabetes", model={"hidden": [32], "dropout": p}, train={"epochs": 3, **FAST},
                        save=False, verbose=False)
    X = np.random.default_rng(0).normal(0, 0.05, size=(6, 10))
    state = {k: v.double().numpy() for k, v in run.model.state_dict().items()}
    W1, b1, W2 = state["blocks.0.linear.weight"], state["blocks.0.linear.bias"], state["out.weight"]   # [k, ...]
    k = W1.shape[0]
    assert k == 8                                                      # the default ensemble on a small table
    h = np.maximum(np.einsum("kji,ni->knj", W1, run.pre.transform_X(X).astype(np.float64)) + b1[:, None], 0)
    var = p / (1 - p) * np.einsum("knj,kj->n", h ** 2, W2[:, 0] ** 2) / k ** 2
    scale = run.pre.target_scaler.std if run.pre.target_scaler is not None else 1.0
    torch.manual_seed(0)
    mean, std = run.predict(X, mc_samples=T)
    mean, std = mean.reshape(-1), std.reshape(-1)
    np.testing.assert_allclose(std / scale, np.sqrt(var), rtol=0.07)   # a std's error over T passes: 1/sqrt(2T) = 1.6 %
    np.testing.assert_allclose(mean, run.predict(X).reshape(-1), rtol=0, atol=4 * float(np.max(std)) / np.sqrt(T))
    assert not run.model.training                             # dropout switched back off
    np.testing.assert_array_equal(run.predict(X), run.predict(X))     # ordinary predictions stay deterministic
    no_drop = trainwell.fit("iris", model={"hidden": [32]}, train={"epochs": 2, **FAST}, save=False, verbose=False)
    mean0, std0 = no_drop.predict(np.ones((3, 4)), mc_samples=5)
    assert np.all(std0 == 0) and mean0.shape == (3, 3)


# -- residual blocks -----------------------------------------------------------------
def test_residual_block_computes_a_plus_f_of_a():
    torch.manual_seed(0)
    res = DenseBlock(6, 6, "tanh", 0.0, False, residual=True)
    plain = DenseBlock(6, 6, "tanh", 0.0, False, residual=False)
    plain.load_state_dict(res.state_dict())
    a = torch.randn(5, 6)
    assert torch.allclose(res(a), a + plain(a))
    assert res.proj is None


def test_residual_projection_where_widths_differ():
    torch.manual_seed(0)
    res = DenseBlock(6, 4, "relu", 0.0, "before", residual=True)
    assert isinstance(res.proj, nn.Linear) and res.proj.bias is None
    plain = DenseBlock(6, 4, "relu", 0.0, "before", residual=False)
    plain.load_state_dict({k: v for k, v in res.state_dict().items() if not k.startswith("proj")})
    res.eval(), plain.eval()
    a = torch.randn(5, 6)
    assert torch.allclose(res(a), res.proj(a) + plain(a))
    model = MLP(_arch(hidden=[16, 16, 8], residual=True))
    assert [b.proj is not None for b in model.blocks] == [True, False, True]


def _first_layer_grad(arch, seed=0):
    model = build_model(arch)
    initialize(model, arch, seed)
    model.train()
    torch.manual_seed(seed)
    x, y = torch.randn(128, arch["n_inputs"]), torch.randint(0, arch["n_outputs"], (128,))
    nn.functional.cross_entropy(model(x), y).backward()
    return float(model.blocks[0].linear.weight.grad.norm())


def test_deep_residual_stack_keeps_the_gradient():
    """20 tanh layers with U(-0.5, 0.5) lose the gradient; residual + batch norm keep it.

    (U(-0.5, 0.5) has variance 1/12, so the signal shrinks per layer when fan_in < 12:
    width 8 here. Wider layers with that init explode instead: see docs/practices/depth.md.)
    """
    deep = dict(n_inputs=64, hidden=[8] * 20, n_outputs=10, activation="tanh", init="uniform", init_limit=0.5)
    shallow = _first_layer_grad(_arch(**{**deep, "hidden": [8]}))
    plain = _first_layer_grad(_arch(**deep))
    resbn = _first_layer_grad(_arch(**deep, residual=True, batchnorm=True))
    assert plain < shallow / 20                               # vanished with depth
    assert resbn > 20 * plain and resbn > shallow / 3         # kept by a + F(a) and BN


# -- self-normalizing preset ---------------------------------------------------------------
def test_self_normalizing_preset():
    run = trainwell.fit("iris", model={"preset": "self_normalizing", "hidden": [16, 16], "dropout": 0.1},
                        train={"epochs": 1, **FAST}, save=False, verbose=False)
    assert run.arch["activation"] == "selu" and run.arch["init"] == "lecun_normal"
    kinds = {type(m) for m in run.model.modules()}
    assert nn.SELU in kinds and nn.AlphaDropout in kinds and nn.Dropout not in kinds
    assert not any(isinstance(m, nn.BatchNorm1d) for m in run.model.modules())
    with pytest.raises(UserError, match="batchnorm"):
        trainwell.fit("iris", model={"preset": "self_normalizing", "batchnorm": True},
                      train={"epochs": 1, **FAST}, save=False, verbose=False)
    with pytest.raises(UserError, match="standardized"):
        trainwell.fit({"source": "iris", "scale": "none"}, model={"preset": "self_normalizing"},
                      train={"epochs": 1, **FAST}, save=False, verbose=False)


def test_lecun_normal_selu_keeps_unit_variance():
    """The self-normalizing property: 20 SELU layers with LeCun normal init keep mean ~0, var ~1."""
    arch = _arch(n_inputs=64, hidden=[256] * 20, activation="selu", init="lecun_normal")
    model = build_model(arch)
    initialize(model, arch, 0)
    model.record_activity = True
    torch.manual_seed(0)
    with torch.no_grad():
        model(torch.randn(2000, 64))
    last = model.activity[-1]
    assert abs(float(last.mean())) < 0.15 and 0.7 < float(last.var()) < 1.3


# -- the perceptron --------------------------------------------------------------------------
def test_perceptron_rule_by_hand():
    torch.manual_seed(0)
    p = Perceptron(3, 1)
    with torch.no_grad():
        p.linear.weight.copy_(torch.tensor([[0.5, -1.0, 0.25]]))
        p.linear.bias.fill_(0.1)
    x = torch.tensor([1.0, 2.0, -1.0])            # z = 0.5 - 2 - 0.25 + 0.1 = -1.65 -> y_hat = 0
    lr = 0.3
    # by hand: y = 1, y_hat = 0: w <- w + lr (1 - 0) x, b <- b + lr
    w_hand = torch.tensor([[0.5 + 0.3, -1.0 + 0.6, 0.25 - 0.3]])
    w_ref, b_ref = perceptron_rule(p.linear.weight, p.linear.bias, x, torch.tensor([1.0]), lr)
    assert torch.allclose(w_ref, w_hand) and torch.allclose(b_ref, torch.tensor([0.4]))
    opt = torch.optim.SGD(p.parameters(), lr=lr)   # what trainwell runs: plain SGD on the criterion
    loss = perceptron_criterion("binary", p(x[None]), torch.tensor([1.0]))
    assert loss.item() == pytest.approx(1.65)       # |z| for the misclassified sample
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.allclose(p.linear.weight, w_hand) and torch.allclose(p.linear.bias, torch.tensor([0.4]))
    assert p.fire(x[None]).item() == 1.0            # now it fires: z = 0.8 - 0.8 + 0.05 + 0.4 > 0
    # a correct sample changes nothing
    before = p.linear.weight.clone()
    opt.zero_grad()
    perceptron_criterion("binary", p(x[None]), torch.tensor([1.0])).backward()
    opt.step()
    assert torch.equal(p.linear.weight, before)


def test_perceptron_batch_and_one_vs_rest():
    torch.manual_seed(0)
    p = Perceptron(4, 3)
    X, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    W, b = p.linear.weight.detach().clone(), p.linear.bias.detach().clone()
    # one-vs-rest: unit k learns "class k or not" with the same rule; a batch averages the corrections
    dW, db = torch.zeros_like(W), torch.zeros_like(b)
    for xi, yi in zip(X, y):
        w1, b1 = perceptron_rule(W, b, xi, nn.functional.one_hot(yi, 3).float(), 1.0)
        dW += (w1 - W) / len(X)
        db += (b1 - b) / len(X)
    opt = torch.optim.SGD(p.parameters(), lr=0.5)
    perceptron_criterion("multiclass", p(X), y).backward()
    opt.step()
    assert torch.allclose(p.linear.weight, W + 0.5 * dW, atol=1e-6)
    assert torch.allclose(p.linear.bias, b + 0.5 * db, atol=1e-6)


def test_perceptron_fit_breast_cancer():
    run = trainwell.fit("breast_cancer", model={"type": "perceptron"}, train={"epochs": 40, **FAST},
                        save=False, verbose=False)
    assert isinstance(run.model, Perceptron)
    assert run.spec.optim.name == "sgd" and run.spec.stop.monitor == "val_accuracy"
    assert run.arch["loss"] == "perceptron" and run.arch["hidden"] == []
    assert run.metrics["test"]["accuracy"] >= 0.9


def test_perceptron_circles_with_squared_features():
    """The circle boundary is linear in (x1^2, x2^2, x1, x2)."""
    run = trainwell.fit({"source": "circles", "features": ["squares"]}, model={"type": "perceptron"},
                        train={"epochs": 30, **FAST}, save=False, verbose=False)
    assert run.metrics["test"]["accuracy"] >= 0.9


def test_perceptron_refuses_regression_and_hidden_layers():
    with pytest.raises(UserError, match="regression"):
        trainwell.fit("diabetes", model={"type": "perceptron"}, train={"epochs": 1, **FAST},
                      save=False, verbose=False)
    with pytest.raises(UserError, match="hidden"):
        trainwell.fit("iris", model={"type": "perceptron", "hidden": [8]}, train={"epochs": 1, **FAST},
                      save=False, verbose=False)


def test_catalogue_lists_model_types_and_presets():
    cat = catalogue()
    assert {"mlp", "perceptron"} <= set(cat["model types"])
    assert "self_normalizing" in cat["model presets"]
