"""A deep ensemble packed into one module: k independent MLPs computed as batched matmuls.

Averaging the predictions of several independently initialised networks is the
most reliable way known to make a network's predictions better and better
calibrated (Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017). TabM (Gorishniy et al., ICLR
2025) showed that on tables the members can be trained *at once*, each on its own
loss, for little more than the cost of one network: with small layers a step's
cost is per-operation overhead, and one ``baddbmm`` over k members costs about
what one ``addmm`` does.

``PackedMLP`` holds member ``i``'s layer weights in slice ``[i]`` of a
``[k, out, in]`` tensor (``PackedLinear``), so the members share nothing but the
kernels that compute them. In training mode ``forward`` returns every member's
output, ``[batch, k, outputs]``, and the head (nn/heads.py) averages the members'
own losses, so each member gets exactly the gradient it would get alone. In
evaluation mode it returns one output per row whose softmax / sigmoid is the mean
of the members' probabilities (regression: the mean of their outputs), so
prediction, metrics, early stopping and export see an ordinary network.

``Ensemble`` averages separately trained networks the same way at prediction time.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainwell.nn.activations import make_activation
from trainwell.nn.crossfit import fold_groups, split_fold_column, trains_on
from trainwell.nn.softmax import log_softmax_classes


class PackedLinear(nn.Module):
    """k independent linear layers: ``x[i] @ weight[i].T + bias[i]`` for member i.

    ``in_widths`` / ``out_widths``: member i uses only the first ``in_widths[i]`` inputs and
    ``out_widths[i]`` outputs of the layer (members of two widths, nn/member_widths.py); the rest of its
    slice is zero from initialisation on."""

    def __init__(self, members: int, n_in: int, n_out: int, *, in_widths: list[int] | None = None,
                 out_widths: list[int] | None = None):
        super().__init__()
        self.members, self.in_features, self.out_features = members, n_in, n_out
        self.in_widths = list(in_widths) if in_widths else [n_in] * members
        self.out_widths = list(out_widths) if out_widths else [n_out] * members
        self.weight = nn.Parameter(torch.empty(members, n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(members, n_out))
        bound = 1 / math.sqrt(n_in)          # nn.Linear's own default, per member, until initialised
        nn.init.uniform_(self.weight, -bound, bound)
        if self.narrowed:
            with torch.no_grad():
                self.weight.mul_(self.weight_mask())

    @property
    def narrowed(self) -> bool:
        """Whether some member uses fewer inputs or outputs than the layer has."""
        return min(self.in_widths) < self.in_features or min(self.out_widths) < self.out_features

    def member_views(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each member's ``(weight [out, in], bias [out])`` over the inputs and outputs it uses: what an
        initializer fills like an nn.Linear of that member's width."""
        return [(self.weight[i, :o, :n], self.bias[i, :o])
                for i, (n, o) in enumerate(zip(self.in_widths, self.out_widths))]

    def unit_mask(self) -> torch.Tensor:
        """``[members, out]``: True for the outputs a member uses."""
        return torch.arange(self.out_features).unsqueeze(0) < torch.tensor(self.out_widths).unsqueeze(1)

    def weight_mask(self) -> torch.Tensor:
        """``[members, out, in]``: True for the weights a member uses; the others are held at zero."""
        used_in = torch.arange(self.in_features).unsqueeze(0) < torch.tensor(self.in_widths).unsqueeze(1)
        return self.unit_mask().unsqueeze(2) & used_in.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}"


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x``: ``[k, batch, in]`` (or ``[batch, in]``, shared by all members) -> ``[k, batch, out]``, member i
    through ``weight[i]`` (``[out, in]``) and ``bias[i]``: one batched matmul for all members."""
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class PackedBlock(nn.Module):
    """PackedLinear -> activation -> dropout, for all members at once."""

    def __init__(self, members: int, n_in: int, n_out: int, activation: str, dropout: float,
                 out_widths: list[int] | None = None):
        super().__init__()
        self.linear = PackedLinear(members, n_in, n_out, out_widths=out_widths)
        self.act = make_activation(activation)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.linear(x))
        return h if self.drop is None else self.drop(h)


class PackedMLP(nn.Module):
    """``arch["members"]`` MLPs of the same shape trained together (see the module docstring)."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        k = int(arch["members"])
        self.members = k
        self.task = arch["task"]
        self.n_inputs = int(arch["n_inputs"])
        self.crossfit = bool(arch.get("crossfit", False))   # members hold out a fold each (nn/crossfit.py)
        member_widths = arch.get("member_widths")        # members of two widths (nn/member_widths.py)
        if member_widths and (len(arch["hidden"]) != 1 or len(member_widths) != k):
            raise ValueError("member_widths needs one hidden layer and one width per member")
        hidden = [max(member_widths)] if member_widths else list(arch["hidden"])
        widths = [arch["n_inputs"], *hidden]
        self.blocks = nn.ModuleList(
            PackedBlock(k, widths[i], widths[i + 1], arch["activation"], arch.get("dropout", 0.0),
                        out_widths=member_widths)
            for i in range(len(widths) - 1))
        self.out = PackedLinear(k, widths[-1], arch["n_outputs"], in_widths=member_widths)
        # Hidden outputs for the activity penalties (optim/regularizers.py), as MLP records them: each layer's
        # ``[k * batch, units]``, so a penalty divided by its rows is the mean of the members' own.
        self.record_activity = False
        self.activity: list[torch.Tensor] = []

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's raw output, ``[batch, k, outputs]``."""
        h = x.flatten(1) if x.dim() > 2 else x
        if self.record_activity:
            self.activity = []
        for block in self.blocks:
            h = block(h)
            if self.record_activity:
                self.activity.append(h.reshape(-1, h.shape[-1]))
        return self.out(h).transpose(0, 1)

    def held_out_outputs(self, x: torch.Tensor, fold: torch.Tensor) -> torch.Tensor:
        """``[rows, outputs]``: each row scored by the one member that held it out (its fold's), the rows of
        each fold through their member only, so an out-of-fold evaluation costs what one member's does."""
        index, valid = fold_groups(fold, self.members)
        h = x[index]                                     # [k, m, inputs]: fold j's rows for member j
        for block in self.blocks:
            h = block(h)
        out = self.out(h)                                # [k, m, outputs]
        scored = out.new_empty(x.shape[0], out.shape[-1])
        scored[index[valid]] = out[valid]
        return scored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fold = None
        if self.crossfit:          # cross-fitted training rows carry their fold as a last column
            x, fold = split_fold_column(x, self.n_inputs)
        if fold is not None and not self.training:       # evaluation: each row from the member that held it out
            return self.held_out_outputs(x, fold)
        out = self.member_outputs(x)
        if fold is not None:
            # training: a member's loss on the rows it holds out is kept as a value but carries no gradient
            return torch.where(trains_on(fold, self.members).transpose(0, 1), out, out.detach())
        return out if self.training else combine_members(out, self.task)


def combine_members(out: torch.Tensor, task: str) -> torch.Tensor:
    """``[batch, k, outputs]`` member outputs -> ``[batch, outputs]`` ensemble logits.

    The returned logits are chosen so that the head's usual output transform gives
    the mean of the members' probabilities: ``log mean softmax`` for multiclass, the
    log-odds of the mean sigmoid for binary and multilabel (computed from
    log-sigmoids, which stay finite), the plain mean for regression.
    """
    log_k = math.log(out.shape[1])
    if task == "multiclass":
        return torch.logsumexp(log_softmax_classes(out), dim=1) - log_k
    if task in ("binary", "multilabel"):
        log_p = torch.logsumexp(nn.functional.logsigmoid(out), dim=1) - log_k
        log_q = torch.logsumexp(nn.functional.logsigmoid(-out), dim=1) - log_k
        return log_p - log_q
    return out.mean(dim=1)


def ensemble_size(setting: int | str, rows: int, params_per_member: int) -> tuple[int, str]:
    """How many members ``model.ensemble`` asks for, and why.

    ``auto``: 8 members when one member's epoch is cheap (rows x parameters at most
    ``CHEAP``: all 8 then cost at most about a second an epoch on two CPU cores), else
    1. Small tables are where an ensemble pays most (the variance of one network is
    largest) and costs least; for MNIST-sized data one network already takes most of
    the time.
    """
    if setting != "auto":
        k = int(setting)
        return k, (f"ensemble: {k} members trained at once, predictions averaged (model.ensemble={k})"
                   if k > 1 else "ensemble: off (model.ensemble=1)")
    work = rows * params_per_member
    if work <= CHEAP:
        return AUTO_MEMBERS, (f"ensemble: {AUTO_MEMBERS} members trained at once as one packed network, their "
                              f"predictions averaged (a classifier's probabilities; TabM, Gorishniy et al. 2025; "
                              f"deep ensembles, Lakshminarayanan et al. 2017): {rows:,} rows x "
                              f"{params_per_member:,} parameters is small; model.ensemble=1 turns it off")
    return 1, (f"ensemble: off ({rows:,} rows x {params_per_member:,} parameters per member is large; "
               f"set model.ensemble=8 to train 8 at once)")


AUTO_MEMBERS = 8
CHEAP = 200_000_000       # rows x parameters of one member: 10,000 rows of a 20k-parameter net


class Ensemble(nn.Module):
    """Separately trained networks as one: the average of their probabilities, returned as logits of it.

    The model of ``fit(ensemble=P)`` (trainwell/deep_ensemble.py), whose members are trained as one population.

    ``Run.predict``/``predict_proba`` apply the head's softmax / sigmoid to the output,
    which gives back exactly the mean of the members' probabilities; regression
    returns the mean of the members' outputs.
    """

    def __init__(self, members: list[nn.Module], task: str):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x).float() for m in self.members])
        if self.task == "multiclass":
            return torch.log(torch.softmax(outs, -1).mean(0).clamp_min(1e-30))
        if self.task in ("binary", "multilabel"):
            return torch.logit(torch.sigmoid(outs).mean(0), eps=1e-7)
        return outs.mean(0)
