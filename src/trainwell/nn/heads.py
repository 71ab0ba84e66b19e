"""Task heads: what the output layer, the loss and the metrics are for each task.

docs/practices/heads.md. The network always emits raw scores (logits); losses use torch's
fused, numerically stable forms (log-sum-exp inside cross-entropy, BCE with
logits), and the output activation is applied only when predicting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainwell.core.errors import UserError
from trainwell.nn.ensemble import combine_members
from trainwell.nn.perceptron import perceptron_criterion

LOSSES = {
    "mse": "mean squared error (regression)",
    "mae": "mean absolute error (regression with outliers)",
    "huber": "Huber loss (regression, robust to outliers)",
    "bce": "binary cross-entropy on logits (binary, multilabel)",
    "cross_entropy": "categorical cross-entropy on logits (multiclass)",
    "perceptron": "perceptron criterion sum (H(z) - y) z; SGD on it is the perceptron rule (model.type=perceptron)",
}
DEFAULT_LOSS = {"regression": "mse", "binary": "bce", "multilabel": "bce", "multiclass": "cross_entropy",
                "reconstruction": "mse"}
EPOCH_METRIC = {"regression": "r2", "binary": "accuracy", "multilabel": "accuracy", "multiclass": "accuracy",
                "reconstruction": "r2"}   # reconstruction: autoencoders, target = input


@dataclass(frozen=True)
class Head:
    """How one task turns logits into a loss, predictions and an epoch metric."""

    task: str
    loss: str
    output_activation: str = "none"   # regression only: none / relu / softplus / sigmoid / tanh
    members: int = 1                  # a packed ensemble (nn/ensemble.py) trains on [batch, members, outputs]
    temperature: float = 1.0          # classification logits divided by it (train/calibration.py)
    class_weight: tuple[float, ...] | None = None   # per-class loss weights (data/weights.py)

    @property
    def metric(self) -> str:
        return EPOCH_METRIC[self.task]

    def loss_fn(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch loss. For a packed ensemble's ``[batch, k, outputs]`` training output: the mean of the
        members' own losses as the value, with the gradient of their *sum*, so each member gets exactly the
        gradient it would get alone (plain SGD included, not 1/k of it)."""
        if self._per_member(out):
            k = out.shape[1]
            mean = self.loss_fn(out.reshape(-1, out.shape[-1]), y.repeat_interleave(k, dim=0))
            return mean * k - (mean * (k - 1)).detach()
        if self.loss == "perceptron":
            return perceptron_criterion(self.task, out, y)
        if self.temperature != 1.0 and self.task in ("multiclass", "binary", "multilabel"):
            out = out / self.temperature           # the calibrated log-loss (train/calibration.py)
        if self.class_weight is not None and self.task in ("multiclass", "binary"):
            return self._class_weighted(out, y)
        if self.task == "multiclass":
            return F.cross_entropy(out, y)
        if self.task == "binary":
            return F.binary_cross_entropy_with_logits(out.squeeze(-1), y)
        if self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(out, y)
        pred = self.transform(out)
        if self.loss == "mae":
            return F.l1_loss(pred, y)
        if self.loss == "huber":
            return F.huber_loss(pred, y)
        return F.mse_loss(pred, y)

    def _class_weighted(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sum_i w[y_i] l_i / sum_i w[y_i]: torch's weighted cross-entropy reduction, the same for binary."""
        w = torch.tensor(self.class_weight, dtype=out.dtype, device=out.device)
        if self.task == "multiclass":
            return F.cross_entropy(out, y, weight=w)
        rows = w[(y > 0.5).long()]
        per_row = F.binary_cross_entropy_with_logits(out.squeeze(-1), y, reduction="none")
        return (rows * per_row).sum() / rows.sum()

    def transform(self, out: torch.Tensor) -> torch.Tensor:
        """Logits -> the quantity a user reads (probabilities or regression values)."""
        if self._per_member(out):
            out = combine_members(out, self.task)
        if self.temperature != 1.0 and self.task in ("multiclass", "binary", "multilabel"):
            out = out / self.temperature           # temperature scaling (train/calibration.py)
        if self.task == "multiclass":
            return torch.softmax(out, dim=-1)
        if self.task == "binary":
            return torch.sigmoid(out.squeeze(-1))
        if self.task == "multilabel":
            return torch.sigmoid(out)
        act = self.output_activation
        if act == "relu":
            return F.relu(out)
        if act == "softplus":
            return F.softplus(out)
        if act == "sigmoid":
            return torch.sigmoid(out)
        if act == "tanh":
            return torch.tanh(out)
        return out

    def metric_terms(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sufficient statistics of the epoch metric for one batch, kept on the device.

        Classification: [correct, count]. Regression: [sum y, sum y^2, sum err^2, count]
        so that R^2 = 1 - SSE / (sum y^2 - (sum y)^2 / n) over the whole epoch.
        A packed ensemble's training output is scored as the ensemble (its members averaged).
        With class weights: [sum w[y] correct, sum w[y]], the accuracy early stopping should select on when
        the loss is weighted (else it restores an epoch before the weights took effect).
        """
        if self._per_member(out):
            out = combine_members(out, self.task)
        if self.class_weight is not None and self.task in ("multiclass", "binary"):
            w = torch.tensor(self.class_weight, dtype=out.dtype, device=out.device)
            pred, truth = (out.argmax(-1), y) if self.task == "multiclass" else \
                ((out.squeeze(-1) > 0).long(), (y > 0.5).long())
            rows = w[truth.long()]
            return torch.stack([(rows * (pred == truth)).sum(), rows.sum()])
        if self.task == "multiclass":
            correct = (out.argmax(-1) == y).sum()
            return torch.stack([correct.to(out.dtype), out.new_tensor(float(y.shape[0]))])
        if self.task == "binary":
            correct = ((out.squeeze(-1) > 0) == (y > 0.5)).sum()
            return torch.stack([correct.to(out.dtype), out.new_tensor(float(y.shape[0]))])
        if self.task == "multilabel":
            correct = ((out > 0) == (y > 0.5)).sum()
            return torch.stack([correct.to(out.dtype), out.new_tensor(float(y.numel()))])
        pred = self.transform(out).detach()
        return torch.stack([y.sum(), (y * y).sum(), ((pred - y) ** 2).sum(), out.new_tensor(float(y.numel()))])

    def _per_member(self, out: torch.Tensor) -> bool:
        return self.members > 1 and out.dim() == 3

    def metric_value(self, terms: np.ndarray) -> float:
        if self.task in ("regression", "reconstruction"):
            s, s2, sse, n = (float(t) for t in terms)
            sst = s2 - s * s / max(n, 1.0)
            return 1.0 - sse / sst if sst > 0 else float("nan")
        return float(terms[0] / terms[1]) if terms[1] > 0 else float("nan")   # class weights: sum of w[y]


def make_head(task: str, loss: str = "auto", output_activation: str = "auto", members: int = 1,
              temperature: float = 1.0, class_weight: list[float] | None = None) -> Head:
    """The head for ``task``; ``loss='auto'`` picks the table's default; ``members``: a packed ensemble's size;
    ``temperature``: the calibration of a classifier's probabilities (train/calibration.py); ``class_weight``:
    per-class loss weights (data/weights.py)."""
    loss = DEFAULT_LOSS[task] if loss == "auto" else loss
    allowed = {"regression": ("mse", "mae", "huber"), "reconstruction": ("mse", "mae", "huber")}.get(task, (DEFAULT_LOSS[task], "perceptron"))
    if loss not in allowed:
        raise UserError(
            f'Loss "{loss}" does not fit a {task} task. Use one of: {", ".join(allowed[:3])} '
            f"(set model.loss=auto to pick the standard one)."
        )
    act = "none" if output_activation == "auto" else output_activation
    if task not in ("regression", "reconstruction") and act != "none":
        raise UserError(
            f"model.output_activation={act} applies to regression only; {task} heads use "
            f"{'softmax' if task == 'multiclass' else 'sigmoid'} by construction. Remove the setting."
        )
    weights = tuple(float(w) for w in class_weight) if class_weight is not None else None
    return Head(task=task, loss=loss, output_activation=act, members=int(members), temperature=float(temperature),
                class_weight=weights)
