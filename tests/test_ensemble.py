"""The packed deep ensemble (nn/ensemble.py): members are independent networks, trained on their own
losses, and the ensemble predicts the mean of their probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainwell as tw
from trainwell.nn.ensemble import PackedMLP, combine_members, ensemble_size
from trainwell.nn.heads import make_head

QUIET = ["train.progress=false"]


def _arch(task: str, k: int = 4, n_out: int = 3) -> dict:
    return {"members": k, "task": task, "n_inputs": 5, "hidden": [7, 6], "n_outputs": n_out, "activation": "relu"}


def _member(model: PackedMLP, i: int) -> nn.Sequential:
    """Member i of a packed model as an ordinary torch network with copies of its weights."""
    layers: list[nn.Module] = []
    for lin in [b.linear for b in model.blocks] + [model.out]:
        dense = nn.Linear(lin.in_features, lin.out_features)
        with torch.no_grad():
            dense.weight.copy_(lin.weight[i])
            dense.bias.copy_(lin.bias[i])
        layers += [dense, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("task,n_out", [("multiclass", 3), ("binary", 1), ("regression", 2)])
def test_members_compute_independent_networks_and_eval_averages_probabilities(task, n_out):
    torch.manual_seed(0)
    model = PackedMLP(_arch(task, k=4, n_out=n_out))
    x = torch.randn(9, 5)
    model.train()
    per_member = model(x)                                          # [batch, k, outputs]
    alone = torch.stack([_member(model, i)(x) for i in range(4)], 1)
    torch.testing.assert_close(per_member, alone, atol=1e-6, rtol=1e-6)
    model.eval()
    head = make_head(task, members=4)
    got = head.transform(model(x))
    if task == "multiclass":
        expected = torch.softmax(alone, -1).mean(1)
    elif task == "binary":
        expected = torch.sigmoid(alone.squeeze(-1)).mean(1)
    else:
        expected = alone.mean(1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_binary_combination_stays_finite_for_confident_members():
    out = torch.tensor([[[80.0], [-80.0]], [[200.0], [150.0]]])       # two rows, two members
    p = torch.sigmoid(combine_members(out, "binary"))
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p[0], torch.tensor([0.5]))
    torch.testing.assert_close(p[1], torch.tensor([1.0]))


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_training_loss_is_the_mean_of_the_members_losses_with_each_members_own_gradient(task):
    torch.manual_seed(1)
    n_out = {"multiclass": 3, "binary": 1, "regression": 2}[task]
    model = PackedMLP(_arch(task, k=3, n_out=n_out)).train()
    x = torch.randn(8, 5)
    y = {"multiclass": torch.randint(0, 3, (8,)), "binary": torch.randint(0, 2, (8,)).float(),
         "regression": torch.randn(8, 2)}[task]
    loss = make_head(task, members=3).loss_fn(model(x), y)
    loss.backward()
    losses = []
    for i in range(3):
        member = _member(model, i)
        o = member(x)
        own = {"multiclass": lambda: F.cross_entropy(o, y),
               "binary": lambda: F.binary_cross_entropy_with_logits(o.squeeze(-1), y),
               "regression": lambda: F.mse_loss(o, y)}[task]()
        own.backward()
        losses.append(own.detach())
        # member i's gradient is the one its own loss gives it alone: not 1/k of it
        torch.testing.assert_close(model.blocks[0].linear.weight.grad[i], member[0].weight.grad)
        torch.testing.assert_close(model.out.bias.grad[i], member[-1].bias.grad)
    torch.testing.assert_close(loss, torch.stack(losses).mean())


@pytest.mark.parametrize("data,extra", [("digits", []), ("breast_cancer", []), ("diabetes", []),
                                        ("digits", ["model.dropout=0.2"]),
                                        ("breast_cancer", ["regularize.l2=0.01", "regularize.l1=0.001",
                                                           "regularize.bias_l2=0.01", "regularize.bias_l1=0.001"])])
def test_hand_written_packed_step_equals_autograd(data, extra):
    """The default CPU step of the packed ensemble (train/fast.py) against torch autograd."""
    base = [*QUIET, "train.epochs=4", "stop.enabled=false", "model.ensemble=4", "train.monitor=false", *extra]
    fast = tw.fit(data, save=False, verbose=False, sets=base)
    slow = tw.fit(data, save=False, verbose=False, sets=base + ["train.backward=autograd"])
    assert type(fast.model).__name__ == "PackedMLP"
    for p, q in zip(fast.model.parameters(), slow.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    np.testing.assert_allclose(fast.history.train_loss, slow.history.train_loss, rtol=1e-5)


def test_members_start_from_different_weights_each_matched_to_relu():
    from trainwell.nn.models import initialize
    from trainwell.nn.topologies import build_model
    arch = {**_arch("multiclass", k=5), "n_inputs": 4, "hidden": [256], "init": "he_uniform"}
    model = build_model(arch)
    initialize(model, arch, seed=0)
    w = model.blocks[0].linear.weight.detach()                     # [5, 256, 4]
    assert not torch.equal(w[0], w[1])
    bound = (6 / 4) ** 0.5                                         # He uniform: sqrt(6 / fan_in), fan_in = 4
    assert w.abs().max() <= bound
    assert w.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
    assert torch.count_nonzero(model.blocks[0].linear.bias) == 0


def test_auto_size_packs_small_tables_only():
    assert ensemble_size("auto", 1_000, 5_000)[0] == 8
    assert ensemble_size("auto", 58_000, 235_146)[0] == 1          # MNIST-sized: one network
    assert ensemble_size(3, 58_000, 235_146)[0] == 3


def test_ensemble_run_round_trips_and_beats_its_average_member(tmp_path):
    run = tw.fit("digits", out=tmp_path / "run", verbose=False, sets=[*QUIET, "model.ensemble=6"])
    loaded = tw.load(tmp_path / "run")
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    np.testing.assert_allclose(loaded.predict_proba(X[:50]), run.predict_proba(X[:50]), atol=1e-6)
    assert type(loaded.model).__name__ == "PackedMLP"
    # each member alone, on the run's own test split
    d = torch.from_numpy(run.pre.transform_X(X))
    run.model.train()
    with torch.no_grad():
        members = run.model.member_outputs(d).argmax(-1).numpy()         # [rows, k]
    run.model.eval()
    alone = (members == y[:, None]).mean(0)
    together = (run.predict(X) == y).mean()
    assert together >= alone.mean()


def test_penalties_on_a_packed_ensemble_are_the_mean_of_each_members_own():
    """The default model is a packed ensemble: regularize.l1/l2 and the activity penalties must reach it
    (they once skipped its layers silently), each member penalised as it would be alone, scaled like the
    loss (the mean over members)."""
    from trainwell.core.spec import RegularizeSpec
    from trainwell.optim.regularizers import activity_penalty, weight_penalty
    torch.manual_seed(0)
    model = PackedMLP(_arch("multiclass", k=3)).train()
    spec = RegularizeSpec(l1=0.01, l2=0.02, bias_l1=0.03, bias_l2=0.04, activity_l1=0.05, activity_l2=0.06)
    members = [_member(model, i) for i in range(3)]
    alone = [weight_penalty(m, spec).item() for m in members]
    assert weight_penalty(model, spec).item() == pytest.approx(np.mean(alone), rel=1e-6)

    x = torch.randn(8, 5)
    model.record_activity = True
    model(x)
    hidden = [[m[:2](x), m[:4](x)] for m in members]        # each member's two hidden outputs
    want = np.mean([activity_penalty(h, spec).item() for h in hidden])
    assert activity_penalty(model.activity, spec).item() == pytest.approx(want, rel=1e-5)


def test_l2_reaches_the_default_ensemble_and_shrinks_its_weights():
    X, y = np.random.default_rng(0).normal(size=(200, 4)), np.arange(200) % 2
    norms = {}
    for l2 in (0.0, 1.0):
        run = tw.fit(X=X, y=y, sets=QUIET + [f"regularize.l2={l2}", "optim.lr=0.01", "train.epochs=30",
                                          "stop.enabled=false", "stop.restore_best=false"],
                     save=False, verbose=False)
        assert type(run.model).__name__ == "PackedMLP"
        norms[l2] = sum(float(b.linear.weight.square().sum()) for b in run.model.blocks)
    assert norms[1.0] < 0.5 * norms[0.0]


def test_data_augment_on_a_dense_net_is_refused_with_its_dense_equivalent():
    """The MLP applies no data.augment; training without it while the spec says otherwise would be a lie."""
    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    with pytest.raises(tw.UserError, match=r"regularize\.noise=0\.5"):
        tw.fit(X=X, y=y, sets=QUIET + ["data.augment.noise=0.5"], save=False, verbose=False)


def test_a_network_the_ensemble_cannot_pack_says_why_the_default_ensemble_is_off(capsys):
    X, y = np.random.default_rng(0).normal(size=(120, 3)), np.arange(120) % 2
    run = tw.fit(X=X, y=y, sets=QUIET + ["model.batchnorm=true", "train.epochs=2"], save=False, verbose=True)
    assert type(run.model).__name__ == "MLP"
    assert "ensemble: off (batch norm (model.batchnorm)" in capsys.readouterr().out
