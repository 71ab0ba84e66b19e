"""Each optimizer's update equals its formula, computed by hand in numpy (float64)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from trainwell.core.errors import UserError
from trainwell.core.unread import KeysRead
from trainwell.optim.optimizers import OPTIMIZERS, EMAMomentum, MemberHyper, make_optimizer, warn_unread_optim
from trainwell.core.spec import OptimSpec

W0 = np.array([0.5, -1.2, 2.0, 0.03])
GRADS = np.random.default_rng(0).normal(size=(5, 4)) * np.array([1.0, 0.1, 3.0, 0.01])


def run_torch(spec: OptimSpec, steps: int, *, grads=GRADS, w0=W0) -> np.ndarray:
    """Apply the fixed gradient sequence through make_optimizer; return the weights."""
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = make_optimizer([p], spec)
    for t in range(steps):
        p.grad = torch.tensor(grads[t], dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


# ---- the formulas, written out ------------------------------------------------------
def sgd(s, steps, wd=0.0):
    w = W0.copy()
    for g in GRADS[:steps]:
        w = w - s.lr * (g + wd * w)
    return w


def momentum_classic(s, steps):          # v = beta v - eta g; w <- w + v   (Polyak 1964)
    w, v = W0.copy(), np.zeros(4)
    for g in GRADS[:steps]:
        v = s.momentum * v - s.lr * g
        w = w + v
    return w


def momentum_ema(s, steps):              # V = beta V + (1-beta) dW; w <- w - alpha V, V0 = 0   (Ng's form)
    w, V = W0.copy(), np.zeros(4)
    for g in GRADS[:steps]:
        V = s.momentum * V + (1 - s.momentum) * g
        w = w - s.lr * V
    return w


def nesterov(s, steps):                  # torch docs form: b = mu b + g; w <- w - lr (g + mu b)
    w, b = W0.copy(), np.zeros(4)
    for g in GRADS[:steps]:
        b = s.momentum * b + g
        w = w - s.lr * (g + s.momentum * b)
    return w


def adagrad(s, steps):                   # G += g^2; w <- w - lr g / (sqrt(G) + eps)
    w, G = W0.copy(), np.zeros(4)
    for g in GRADS[:steps]:
        G = G + g * g
        w = w - s.lr * g / (np.sqrt(G) + s.eps)
    return w


def rmsprop(s, steps):                   # S = rho S + (1-rho) g^2; w <- w - lr g / (sqrt(S) + eps)
    w, S = W0.copy(), np.zeros(4)
    for g in GRADS[:steps]:
        S = s.rho * S + (1 - s.rho) * g * g
        w = w - s.lr * g / (np.sqrt(S) + s.eps)
    return w


def adam(s, steps, wd=0.0, decoupled=False):
    w, V, S = W0.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(GRADS[:steps], start=1):
        if decoupled:
            w = w - s.lr * wd * w        # AdamW: decay outside the adaptive step
        else:
            g = g + wd * w               # coupled: L2 gradient inside
        V = s.beta1 * V + (1 - s.beta1) * g
        S = s.beta2 * S + (1 - s.beta2) * g * g
        Vh, Sh = V / (1 - s.beta1 ** t), S / (1 - s.beta2 ** t)
        w = w - s.lr * Vh / (np.sqrt(Sh) + s.eps)
    return w


def nadam(s, steps):                     # Dozat 2016 with torch's schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))
    psi = 4e-3
    mu = lambda t: s.beta1 * (1 - 0.5 * 0.96 ** (t * psi))  # noqa: E731
    w, m, v, prod = W0.copy(), np.zeros(4), np.zeros(4), 1.0
    for t, g in enumerate(GRADS[:steps], start=1):
        prod_t = prod * mu(t)
        prod_next = prod_t * mu(t + 1)
        m = s.beta1 * m + (1 - s.beta1) * g
        v = s.beta2 * v + (1 - s.beta2) * g * g
        vh = v / (1 - s.beta2 ** t)
        step = mu(t + 1) * m / (1 - prod_next) + (1 - mu(t)) * g / (1 - prod_t)
        w = w - s.lr * step / (np.sqrt(vh) + s.eps)
        prod = prod_t
    return w


def adamax(s, steps):                    # m = b1 m + (1-b1) g; u = max(b2 u, |g| + eps); w -= lr/(1-b1^t) m/u
    w, m, u = W0.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(GRADS[:steps], start=1):
        m = s.beta1 * m + (1 - s.beta1) * g
        u = np.maximum(s.beta2 * u, np.abs(g) + s.eps)
        w = w - s.lr / (1 - s.beta1 ** t) * m / u
    return w


def radam(s, steps, grads=GRADS):
    """Liu et al. 2020, Algorithm 2, with torch's threshold rho_t > 5 (the paper's is 4) and coupled decay."""
    rho_inf = 2 / (1 - s.beta2) - 1
    w, m, v = W0.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(grads[:steps], start=1):
        g = g + s.weight_decay * w
        m = s.beta1 * m + (1 - s.beta1) * g
        v = s.beta2 * v + (1 - s.beta2) * g * g
        m_hat = m / (1 - s.beta1 ** t)
        rho_t = rho_inf - 2 * t * s.beta2 ** t / (1 - s.beta2 ** t)
        if rho_t > 5:
            l_t = np.sqrt(1 - s.beta2 ** t) / (np.sqrt(v) + s.eps)
            r_t = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            w = w - s.lr * m_hat * r_t * l_t
        else:
            w = w - s.lr * m_hat
    return w


FORMULAS = {
    "sgd": sgd, "momentum": momentum_classic, "momentum_ema": momentum_ema, "nesterov": nesterov,
    "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam, "nadam": nadam, "adamax": adamax,
    "adamw": lambda s, n: adam(s, n, wd=s.weight_decay, decoupled=True), "radam": radam,
}


def test_every_registered_optimizer_has_a_formula_test():
    assert set(FORMULAS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize("steps", [1, 5])
def test_update_matches_formula(name, steps):
    spec = OptimSpec(name=name, lr=0.05, momentum=0.8, beta1=0.85, beta2=0.99, rho=0.7, eps=1e-6)
    got = run_torch(spec, steps)
    want = FORMULAS[name](spec, steps)
    assert not np.allclose(got, W0)  # it moved
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


def test_default_adam_hyperparameters_are_the_notes():
    s = OptimSpec()
    assert (s.name, s.lr, s.beta1, s.beta2, s.eps) == ("adam", 1e-3, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(run_torch(s, 5), adam(s, 5), rtol=1e-5)


def test_momentum_ema_differs_from_torch_dampening():
    """torch SGD(dampening=1-beta) starts its buffer at the raw gradient, not at (1-beta) g."""
    s = OptimSpec(name="momentum_ema", lr=0.1, momentum=0.9)
    p = torch.nn.Parameter(torch.tensor(W0))
    damp = torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1)
    p.grad = torch.tensor(GRADS[0])
    damp.step()
    assert not np.allclose(p.detach().numpy(), momentum_ema(s, 1))
    np.testing.assert_allclose(run_torch(s, 1), momentum_ema(s, 1), rtol=1e-12)


def test_momentum_ema_foreach_and_loop_agree_with_weight_decay():
    out = []
    for foreach in (True, False):
        p = torch.nn.Parameter(torch.tensor(W0))
        opt = EMAMomentum([p], lr=0.1, momentum=0.9, weight_decay=0.01, foreach=foreach)
        for g in GRADS:
            p.grad = torch.tensor(g)
            opt.step()
        out.append(p.detach().numpy())
    w, V = W0.copy(), np.zeros(4)
    for g in GRADS:
        V = 0.9 * V + 0.1 * (g + 0.01 * w)
        w = w - 0.1 * V
    np.testing.assert_allclose(out[0], w, rtol=1e-10)
    np.testing.assert_allclose(out[1], w, rtol=1e-10)


def test_nesterov_evaluates_the_gradient_ahead():
    """On f = w^T A w / 2, Sutskever's look-ahead form v = mu v - lr grad(w + mu v); w += v
    is torch's Nesterov with its parameters tracking the look-ahead point w + mu v."""
    A = np.diag([3.0, 0.5, 1.0, 2.0])
    mu, lr = 0.9, 0.05
    p = torch.nn.Parameter(torch.tensor(W0))
    opt = make_optimizer([p], OptimSpec(name="nesterov", lr=lr, momentum=mu))
    w, v = W0.copy(), np.zeros(4)
    for _ in range(10):
        p.grad = torch.tensor(A) @ p.detach()
        opt.step()
        v = mu * v - lr * A @ (w + mu * v)
        w = w + v
    np.testing.assert_allclose(p.detach().numpy(), w + mu * v, rtol=1e-10)


def test_weight_decay_coupled_vs_decoupled():
    coupled = OptimSpec(name="adam", lr=0.05, weight_decay=0.1)
    decoupled = OptimSpec(name="adamw", lr=0.05, weight_decay=0.1)
    np.testing.assert_allclose(run_torch(coupled, 5), adam(coupled, 5, wd=0.1), rtol=1e-5)
    np.testing.assert_allclose(run_torch(decoupled, 5), adam(decoupled, 5, wd=0.1, decoupled=True), rtol=1e-5)
    assert not np.allclose(run_torch(coupled, 5), run_torch(decoupled, 5))
    sgd_wd = OptimSpec(name="sgd", lr=0.05, weight_decay=0.1)
    np.testing.assert_allclose(run_torch(sgd_wd, 5), sgd(sgd_wd, 5, wd=0.1), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_float32_matches_float64_formula(name):
    spec = OptimSpec(name=name, lr=0.01)
    p = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float32))
    opt = make_optimizer([p], spec)
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), FORMULAS[name](spec, 5), rtol=1e-5, atol=1e-7)


def test_unknown_optimizer_suggests():
    with pytest.raises(UserError, match='Did you mean "rmsprop"'):
        make_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimSpec(name="rmsprob"))


def test_ema_momentum_defaults_and_validation():
    p = torch.nn.Parameter(torch.zeros(2))
    assert EMAMomentum([p]).defaults == {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0, "foreach": True}
    for bad in (dict(lr=0.0), dict(lr=-1.0), dict(momentum=1.0), dict(momentum=-0.1), dict(weight_decay=-1e-3)):
        with pytest.raises(ValueError):
            EMAMomentum([p], **bad)
    EMAMomentum([p], lr=1e-9, momentum=0.0, weight_decay=0.0)             # the boundaries that are allowed


@pytest.mark.parametrize("name", [n for n, o in OPTIMIZERS.items() if o.stacked])
def test_stacked_update_matches_torch_step_by_step(name):
    """A population's update of P members at once, each with its own hyperparameters, follows each member's own
    torch optimizer at every step (float32, as populations train)."""
    members = [dict(lr=0.01, weight_decay=0.0, momentum=0.9, beta1=0.9, beta2=0.9, eps=1e-8),
               dict(lr=0.003, weight_decay=1e-2, momentum=0.5, beta1=0.8, beta2=0.999, eps=1e-6),
               dict(lr=0.02, weight_decay=0.0, momentum=0.7, beta1=0.85, beta2=0.6, eps=1e-7)]
    hp = {k: torch.tensor([m[k] for m in members], dtype=torch.float64) for k in members[0]}
    h, state = MemberHyper.of(hp, torch.device("cpu")), []
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(len(members), 6, generator=gen)
    lone = [torch.nn.Parameter(flat[i].clone()) for i in range(len(members))]
    opts = [make_optimizer([w], OptimSpec(name=name, **m)) for w, m in zip(lone, members)]
    for t in range(1, 21):
        g = torch.randn(flat.shape, generator=gen)
        OPTIMIZERS[name].stacked(flat, g.clone(), state, h, t)
        for i, (w, opt) in enumerate(zip(lone, opts)):
            w.grad = g[i].clone()
            opt.step()
            torch.testing.assert_close(flat[i], w.detach(), rtol=1e-5, atol=1e-6, msg=f"{name} member {i} step {t}")


def test_cpu_build_uses_the_fused_kernel_where_torch_has_one_and_foreach_elsewhere():
    """The README's "fused optimizers": each registry entry built for CPU asks torch for its fused kernel
    exactly when the entry lists CPU among ``fused_on`` (Adam, AdamW, SGD family, Adagrad), else foreach."""
    from trainwell.optim.optimizers import OPTIMIZERS
    from trainwell.core.spec import OptimSpec
    assert "cpu" in OPTIMIZERS["adam"].fused_on
    for name, entry in OPTIMIZERS.items():
        opt = entry.build([torch.nn.Parameter(torch.zeros(3))], OptimSpec(name=name), "cpu")
        if "cpu" in entry.fused_on:
            assert opt.defaults.get("fused") is True, name
        else:
            assert opt.defaults.get("fused") in (None, False) and opt.defaults.get("foreach") in (True, None), name


def test_default_search_draws_the_lr_from_the_documented_ranges():
    """tune/space.py's default space: plain SGD and momentum search lr over [1e-5, 1] (large steps are fine), the
    adaptive optimizers over [1e-5, 1e-1]; a grid search uses three decades."""
    from trainwell.core.spec import Spec
    from trainwell.tune.space import default_space
    for name, hi in (("sgd", 1.0), ("momentum", 1.0), ("nesterov", 1.0), ("adam", 1e-1), ("rmsprop", 1e-1)):
        tree = default_space(Spec.build(None, sets=[f"optim.name={name}"]))
        assert tree["optim.lr"] == {"log": [1e-5, hi]}, name
    assert default_space(Spec.build(None), grid=True)["optim.lr"] == [1e-4, 1e-3, 1e-2]


CHANGED_OPTIM = {"momentum": 0.5, "beta1": 0.8, "beta2": 0.99, "rho": 0.7, "eps": 1e-6, "weight_decay": 0.01}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_key_an_optimizer_does_not_read_changes_nothing_and_is_named(name):
    """What ``warn_unread_optim`` calls unread is unread: the optimizer built with that key changed takes the
    very same steps (weights after eight steps equal, bit for bit), and it is named in a warning; a key it
    does read changes the steps and is not named."""
    def steps(**changed):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5))
        keys = KeysRead(OptimSpec(name=name, lr=0.05, **changed))
        opt = make_optimizer([w], keys)
        for t in range(8):              # RAdam reads beta2 once its rectification starts (step 6)
            opt.zero_grad()
            ((w - t) ** 2).sum().backward()
            opt.step()
        return w.detach().clone(), keys

    plain, keys = steps()
    for key, value in CHANGED_OPTIM.items():
        changed, changed_keys = steps(**{key: value})
        if key in keys.read:
            assert not torch.equal(changed, plain), (name, key)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                warn_unread_optim(changed_keys)
        else:
            assert torch.equal(changed, plain), (name, key)
            with pytest.warns(UserWarning, match=rf"optim\.{key}={value:g} is not read by optim\.name={name} .*"
                                                 rf"no effect.* reads {key}"):
                warn_unread_optim(changed_keys)


def test_momentum_set_for_adam_points_at_beta1(cli, tmp_path):
    """The common slip: ``optim.momentum`` with the default Adam. The CLI names it in one line, with the
    optimizers that read it and the key that is Adam's momentum."""
    res = cli("fit", "iris", "--set", "optim.momentum=0.95", "--set", "train.epochs=2", "--out", str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr
    assert [ln for ln in res.stderr.splitlines() if "not read" in ln] == [
        "warning: optim.momentum=0.95 is not read by optim.name=adam and has no effect on this run: only "
        "optim.name=momentum, momentum_ema or nesterov reads momentum (the momentum of optim.name=adam is "
        "optim.beta1). Set optim.name to the one meant, or remove the setting (`trainwell list` describes the "
        "choices; docs/spec.md)."], res.stderr
