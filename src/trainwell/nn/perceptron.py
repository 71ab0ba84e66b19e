"""The classic perceptron (Rosenblatt 1958): one layer of Heaviside step units and the perceptron rule.

``y_hat = H(w . x + b)`` with ``H(z) = 1 if z > 0 else 0``. The step has a zero
derivative almost everywhere, so backpropagation through it cannot learn; the
perceptron is trained by Rosenblatt's rule instead::

    w <- w + lr (y - y_hat) x,      b <- b + lr (y - y_hat)

trainwell runs that rule through its normal loop: the loss is the *perceptron
criterion* ``L = sum_k (y_hat_k - y_k) z_k`` (``y_hat`` held constant), whose
gradient is ``dL/dw = (y_hat - y) x``, and plain SGD (no momentum, no decay)
steps ``w <- w - lr dL/dw = w + lr (y - y_hat) x`` — the rule itself. With
``train.batch_size=1`` it is the online rule sample by sample; with a batch
of B the update averages the B per-sample corrections (the batch perceptron).
Multiclass and multilabel targets get one step unit per class/label, each
trained by the same rule (one-vs-rest); a multiclass prediction is the unit
with the largest net input.

The module outputs the net input ``z`` (a logit) so that trainwell's heads,
metrics and saved runs work unchanged: ``z > 0`` <=> the step fires <=>
sigmoid(z) > 0.5. ``predict_proba`` of a perceptron is sigmoid(z), a score,
not a calibrated probability.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.core.errors import UserError
from trainwell.nn.activations import Heaviside


class Perceptron(nn.Module):
    """One linear layer of step units; ``forward`` gives the net input z, ``fire`` gives H(z)."""

    def __init__(self, n_inputs: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)
        self.step = Heaviside()
        self.record_activity = False
        self.activity: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        return self.linear(x)

    def fire(self, x: torch.Tensor) -> torch.Tensor:
        """The perceptron's output H(w . x + b) in {0, 1}."""
        return self.step(self.forward(x))


def targets_01(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Targets as 0/1 per output unit: binary [N] -> [N, 1], multiclass labels -> one-hot."""
    if task == "multiclass":
        return F.one_hot(y.long(), out.shape[-1]).to(out.dtype)
    if task == "binary":
        return y.reshape(-1, 1).to(out.dtype)
    return y.to(out.dtype)


def perceptron_criterion(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum_k (H(z_k) - y_k) z_k; its gradient is the perceptron rule.

    Zero for a correctly classified sample, |z| per misclassified unit otherwise.
    """
    if out.dim() == 1:
        out = out.unsqueeze(-1)
    t = targets_01(task, out, y)
    fired = (out.detach() > 0).to(out.dtype)
    return ((fired - t) * out).sum(-1).mean()


@torch.no_grad()
def perceptron_rule(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference update for one sample, written as Rosenblatt (1958) writes it.

    ``weight`` [K, D], ``bias`` [K], ``x`` [D], ``y`` [K] in {0, 1}:
    y_hat = H(W x + b); W <- W + lr (y - y_hat) x^T; b <- b + lr (y - y_hat).
    """
    y_hat = (weight @ x + bias > 0).to(weight.dtype)
    err = y.to(weight.dtype) - y_hat
    return weight + lr * torch.outer(err, x), bias + lr * err


def perceptron_spec_changes(spec: Any) -> tuple[dict[str, dict], list[str]]:
    """What ``model.type=perceptron`` fixes in the spec, and a note for each change.

    Raises UserError for settings the perceptron cannot honour (regression,
    hidden layers, dropout, batch norm, residual blocks).
    """
    m = spec.model
    if spec.task == "regression":
        raise UserError("model.type=perceptron classifies (step units output 0/1); it cannot do regression. "
                        "Use model.type=mlp for a regression task.")
    bad = []
    if m.hidden not in ("auto", []):
        bad.append(f"model.hidden={m.hidden} (a perceptron has no hidden layer)")
    if m.dropout:
        bad.append(f"model.dropout={m.dropout}")
    if m.batchnorm:
        bad.append(f"model.batchnorm={m.batchnorm}")
    if m.residual:
        bad.append("model.residual=true")
    if m.loss not in ("auto", "perceptron"):
        bad.append(f"model.loss={m.loss} (the perceptron rule is its own loss)")
    if bad:
        raise UserError("model.type=perceptron is a single layer of step units trained by the perceptron rule; "
                        f"remove {', '.join(bad)} or use model.type=mlp.")
    changes: dict[str, dict] = {}
    notes = ["perceptron: step units H(w.x+b), trained by the perceptron rule w <- w + lr (y - y_hat) x "
             "(plain SGD on the perceptron criterion; batch_size 1 = the online rule)"]
    o = spec.optim
    if o.name != "sgd" or o.weight_decay:
        changes["optim"] = {"name": "sgd", "weight_decay": 0.0}
        notes.append(f"perceptron: optim.name={o.name} -> sgd (the rule is a plain step, no momentum or decay)")
    if spec.stop.monitor == "auto":      # auto's loss rule (small validation splits) is for probabilities
        changes["stop"] = {"monitor": "val_accuracy"}
    elif spec.stop.monitor in ("val_loss", "train_loss"):
        changes["stop"] = {"monitor": spec.stop.monitor.replace("loss", "accuracy")}
        notes.append("perceptron: early stopping watches accuracy (the criterion grows with |w|); the best "
                     "weights are kept, as in the pocket algorithm")
    return changes, notes
