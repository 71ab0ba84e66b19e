"""Task heads: each loss, output transform and epoch metric against numpy / scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, r2_score

from trainwell.core.errors import UserError
from trainwell.nn.heads import DEFAULT_LOSS, EPOCH_METRIC, make_head

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(12, 4)) * 2
LABELS = RNG.integers(0, 4, size=12)
Z = RNG.normal(size=12) * 2
BITS = (RNG.random(12) < 0.5).astype(float)
PRED = RNG.normal(size=(12, 1)) * 3
TARGET = PRED + RNG.normal(size=(12, 1)) * 2


def t(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_defaults():
    assert DEFAULT_LOSS == {"regression": "mse", "binary": "bce", "multilabel": "bce", "multiclass": "cross_entropy",
                            "reconstruction": "mse"}
    assert EPOCH_METRIC["regression"] == "r2" and EPOCH_METRIC["multiclass"] == "accuracy"
    h = make_head("multiclass")
    assert (h.loss, h.output_activation, h.members, h.metric) == ("cross_entropy", "none", 1, "accuracy")


def test_multiclass_loss_transform_metric():
    h = make_head("multiclass")
    assert h.loss_fn(t(LOGITS), t(LABELS, torch.long)).item() == pytest.approx(log_loss(LABELS, softmax(LOGITS),
                                                                                          labels=range(4)), rel=1e-9)
    np.testing.assert_allclose(h.transform(t(LOGITS)).numpy(), softmax(LOGITS), rtol=1e-12)
    terms = h.metric_terms(t(LOGITS), t(LABELS, torch.long)).numpy()
    assert list(terms) == [float((LOGITS.argmax(1) == LABELS).sum()), 12.0]
    assert h.metric_value(terms) == pytest.approx(accuracy_score(LABELS, LOGITS.argmax(1)))
    assert h.metric_value(np.array([0.0, 12.0])) == 0.0 and np.isnan(h.metric_value(np.array([0.0, 0.0])))


def test_binary_loss_transform_metric():
    h = make_head("binary")
    out = t(Z[:, None])
    assert h.loss_fn(out, t(BITS)).item() == pytest.approx(log_loss(BITS, sigmoid(Z)), rel=1e-9)
    np.testing.assert_allclose(h.transform(out).numpy(), sigmoid(Z), rtol=1e-12)
    terms = h.metric_terms(out, t(BITS)).numpy()
    assert h.metric_value(terms) == pytest.approx(accuracy_score(BITS, Z > 0)) and terms[1] == 12


def test_multilabel_counts_every_label():
    h = make_head("multilabel")
    y = (RNG.random((12, 4)) < 0.5).astype(float)
    want = -np.mean(y * np.log(sigmoid(LOGITS)) + (1 - y) * np.log(1 - sigmoid(LOGITS)))
    assert h.loss_fn(t(LOGITS), t(y)).item() == pytest.approx(want, rel=1e-9)
    np.testing.assert_allclose(h.transform(t(LOGITS)).numpy(), sigmoid(LOGITS), rtol=1e-12)
    terms = h.metric_terms(t(LOGITS), t(y)).numpy()
    assert list(terms) == [float(((LOGITS > 0) == (y > 0.5)).sum()), 48.0]


@pytest.mark.parametrize("loss,ref", [("mse", mean_squared_error), ("mae", mean_absolute_error),
                                      ("huber", None)])
def test_regression_losses(loss, ref):
    h = make_head("regression", loss=loss)
    got = h.loss_fn(t(PRED), t(TARGET)).item()
    if ref is None:    # Huber, delta 1: r^2/2 inside, |r| - 1/2 outside
        r = np.abs(PRED - TARGET)
        ref_value = np.mean(np.where(r < 1, 0.5 * r ** 2, r - 0.5))
    else:
        ref_value = ref(TARGET, PRED)
    assert got == pytest.approx(ref_value, rel=1e-9)


def test_regression_r2_over_an_epoch_of_batches_is_sklearns():
    h = make_head("regression")
    terms = sum(h.metric_terms(t(PRED[i:i + 5]), t(TARGET[i:i + 5])).numpy() for i in range(0, 12, 5))
    assert h.metric_value(terms) == pytest.approx(r2_score(TARGET, PRED), rel=1e-9)
    assert np.isnan(h.metric_value(np.array([3.0, 3.0, 1.0, 3.0])))     # constant target: R^2 undefined


@pytest.mark.parametrize("act,fn", [("relu", lambda x: np.maximum(x, 0)), ("softplus", lambda x: np.log1p(np.exp(x))),
                                    ("sigmoid", sigmoid), ("tanh", np.tanh), ("none", lambda x: x)])
def test_output_activation_applies_before_the_loss(act, fn):
    h = make_head("regression", output_activation=act)
    np.testing.assert_allclose(h.transform(t(PRED)).numpy(), fn(PRED), rtol=1e-12)
    assert h.loss_fn(t(PRED), t(TARGET)).item() == pytest.approx(mean_squared_error(TARGET, fn(PRED)), rel=1e-9)
    terms = h.metric_terms(t(PRED), t(TARGET)).numpy()
    assert h.metric_value(terms) == pytest.approx(r2_score(TARGET, fn(PRED)), rel=1e-9)


def test_invalid_combinations_are_user_errors():
    with pytest.raises(UserError, match="does not fit"):
        make_head("multiclass", loss="mse")
    with pytest.raises(UserError, match="regression only; binary heads use sigmoid"):
        make_head("binary", output_activation="relu")
    with pytest.raises(UserError, match="multiclass heads use softmax"):
        make_head("multiclass", output_activation="tanh")
    assert make_head("binary", loss="perceptron").loss == "perceptron"
    assert make_head("reconstruction", loss="mae").loss == "mae"


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_packed_members_get_their_own_gradient(task):
    """[batch, k, outputs]: the loss value is the members' mean, each member's gradient that of its own loss."""
    k = 3
    outs = torch.tensor(RNG.normal(size=(12, k, 4 if task == "multiclass" else 1)), requires_grad=True)
    y = {"multiclass": t(LABELS, torch.long), "binary": t(BITS), "regression": t(TARGET)}[task]
    alone = make_head(task)
    packed = make_head(task, members=k)
    loss = packed.loss_fn(outs, y)
    loss.backward()
    own = [alone.loss_fn(outs[:, i].detach().requires_grad_(), y) for i in range(k)]
    assert loss.item() == pytest.approx(sum(o.item() for o in own) / k, rel=1e-12)
    for i in range(k):
        leaf = outs[:, i].detach().requires_grad_()
        alone.loss_fn(leaf, y).backward()
        torch.testing.assert_close(outs.grad[:, i], leaf.grad, rtol=1e-12, atol=1e-15)


def test_packed_transform_averages_member_probabilities():
    k = 3
    outs = RNG.normal(size=(12, k, 4))
    got = make_head("multiclass", members=k).transform(t(outs)).numpy()
    np.testing.assert_allclose(got, softmax(outs).mean(1), rtol=1e-10)
    zb = RNG.normal(size=(12, k, 1))
    got_b = make_head("binary", members=k).transform(t(zb)).numpy()
    np.testing.assert_allclose(got_b, sigmoid(zb[..., 0]).mean(1), rtol=1e-10)
    terms = make_head("multiclass", members=k).metric_terms(t(outs), t(LABELS, torch.long)).numpy()
    assert terms[0] == float((softmax(outs).mean(1).argmax(1) == LABELS).sum())


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_class_weighted_loss_is_sklearns_sample_weighted_log_loss(task):
    """sum_i w[y_i] l_i / sum_i w[y_i] = scikit-learn's log_loss with sample_weight w[y_i]."""
    from trainwell.nn.heads import Head
    if task == "multiclass":
        w = (0.5, 2.0, 1.0, 3.0)
        got = Head(task, "cross_entropy", class_weight=w).loss_fn(t(LOGITS), t(LABELS, torch.long)).item()
        want = log_loss(LABELS, softmax(LOGITS), sample_weight=np.array(w)[LABELS], labels=range(4))
    else:
        w = (0.3, 2.5)
        got = Head(task, "bce", class_weight=w).loss_fn(t(Z[:, None]), t(BITS)).item()
        want = log_loss(BITS, sigmoid(Z), sample_weight=np.array(w)[BITS.astype(int)])
    assert got == pytest.approx(want, rel=1e-9)


def test_temperature_divides_classification_logits_only():
    from trainwell.nn.heads import Head
    h = Head("multiclass", "cross_entropy", temperature=2.5)
    np.testing.assert_allclose(h.transform(t(LOGITS)).numpy(), softmax(LOGITS / 2.5), rtol=1e-12)
    assert h.loss_fn(t(LOGITS), t(LABELS, torch.long)).item() == pytest.approx(
        log_loss(LABELS, softmax(LOGITS / 2.5), labels=range(4)), rel=1e-9)
    r = Head("regression", "mse", temperature=2.5)            # a regression value is never rescaled
    np.testing.assert_allclose(r.transform(t(PRED)).numpy(), PRED, rtol=0)
    assert r.loss_fn(t(PRED), t(TARGET)).item() == pytest.approx(mean_squared_error(TARGET, PRED), rel=1e-9)
    assert Head("binary", "bce").members == 1 and Head("binary", "bce").temperature == 1.0


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_class_weighted_accuracy_terms_are_sklearns_weighted_accuracy(task):
    from trainwell.nn.heads import Head
    if task == "multiclass":
        w, out, y, pred, truth = (0.5, 2.0, 1.0, 3.0), t(LOGITS), t(LABELS, torch.long), LOGITS.argmax(1), LABELS
        h = Head(task, "cross_entropy", class_weight=w)
    else:
        w, out, y, pred, truth = (0.3, 2.5), t(Z[:, None]), t(BITS), (Z > 0).astype(int), BITS.astype(int)
        h = Head(task, "bce", class_weight=w)
    terms = h.metric_terms(out, y).numpy()
    weights = np.array(w)[truth]
    assert terms[1] == pytest.approx(weights.sum())
    assert h.metric_value(terms) == pytest.approx(accuracy_score(truth, pred, sample_weight=weights))


def test_a_head_is_immutable():
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_head("binary").task = "multiclass"
