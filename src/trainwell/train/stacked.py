"""P MLPs of one architecture as one batched computation: the stacked network and its optimizer.

All P members' parameters live in one ``[P, N]`` tensor (member-major): member
p's layer-l weight is ``flat[p, off:off + in*out].view(in, out)``, so every
layer runs for all members as one ``torch.baddbmm`` on strided views, and the
optimizer updates every parameter of every member with one kernel per formula
term (per-member hyperparameters broadcast as ``[P, 1]``). A member leaving the
population is one row selection.

The step's backward is written out (as ``trainwell/train/fast.py`` does for one
network) for the activations and heads it covers; anything else takes the
gradient of the flat tensor by autograd. Both give the same gradients to float
tolerance (tests/test_population.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.activations import make_activation
from trainwell.nn.heads import Head
from trainwell.nn.softmax import log_softmax_classes
from trainwell.optim.optimizers import MemberHyper, optimizer
from trainwell.train.fast import activation_backward, has_written_backward, no_mask, forward_keeping



def member_losses(head: Head, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The head's mean loss for each member: out [P, B, K], y [P, B, ...] -> [P]."""
    P = out.shape[0]
    if head.task == "multiclass":
        return F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none").view(P, -1).mean(1)
    if head.task == "binary":
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y, reduction="none").mean(1)
    if head.task == "multilabel":
        return F.binary_cross_entropy_with_logits(out, y, reduction="none").flatten(1).mean(1)
    pred = head.transform(out)
    fn = {"mae": F.l1_loss, "huber": F.huber_loss}.get(head.loss, F.mse_loss)
    return fn(pred, y, reduction="none").flatten(1).mean(1)


def member_terms(head: Head, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's metric sufficient statistics (as Head.metric_terms): [P, k]."""
    P = out.shape[0]
    if head.task == "multiclass":
        correct = (out.argmax(-1) == y).sum(1).to(out.dtype)
        return torch.stack([correct, out.new_full((P,), float(y.shape[1]))], 1)
    if head.task == "binary":
        correct = ((out.squeeze(-1) > 0) == (y > 0.5)).sum(1).to(out.dtype)
        return torch.stack([correct, out.new_full((P,), float(y.shape[1]))], 1)
    if head.task == "multilabel":
        correct = ((out > 0) == (y > 0.5)).flatten(1).sum(1).to(out.dtype)
        return torch.stack([correct, out.new_full((P,), float(y[0].numel()))], 1)
    pred = head.transform(out)
    return torch.stack([y.flatten(1).sum(1), (y * y).flatten(1).sum(1), ((pred - y) ** 2).flatten(1).sum(1),
                        out.new_full((P,), float(y[0].numel()))], 1)


class StackedMLP:
    """P MLPs in one ``[P, N]`` parameter tensor; layers run as batched matmuls on views of it."""

    def __init__(self, models: list[nn.Module], arch: dict, dropout: torch.Tensor):
        self.arch = arch
        linears = [[*[blk.linear for blk in m.blocks], m.out] for m in models]
        self.residual = [bool(blk.residual) for blk in models[0].blocks]
        self.shapes: list[tuple[int, int]] = []        # per parameter, in order w0, b0, w1, b1, ...
        columns = []
        for li in range(len(linears[0])):
            lin = [layers[li] for layers in linears]
            w = torch.stack([x.weight.detach().t() for x in lin])          # [P, in, out]
            b = torch.stack([x.bias.detach().unsqueeze(0) for x in lin])   # [P, 1, out]
            self.shapes += [tuple(w.shape[1:]), tuple(b.shape[1:])]
            columns += [w.flatten(1), b.flatten(1)]
        self.flat = torch.cat(columns, 1).contiguous()
        self.offsets = [0]
        for r, c in self.shapes:
            self.offsets.append(self.offsets[-1] + r * c)
        self.n_layers = len(linears[0])
        self.act = make_activation(arch["activation"])
        self.dropout = dropout                          # [P]
        self.has_dropout = bool((dropout > 0).any())
        self.generators: list[torch.Generator] = []
        self.backward = None if (self.residual and any(self.residual)) or not has_written_backward(self.act) \
            else activation_backward(self.act)

    def to(self, device: torch.device) -> "StackedMLP":
        self.flat = self.flat.to(device)
        self.dropout = self.dropout.to(device)
        return self

    def views(self, flat: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[P, *shape] views of ``flat`` (default: the parameters), in the order w0, b0, w1, b1, ..."""
        flat = self.flat if flat is None else flat
        return [flat[:, a:b].view(-1, *shape) for a, b, shape in zip(self.offsets, self.offsets[1:], self.shapes)]

    def forward(self, x: torch.Tensor, train: bool, flat: torch.Tensor | None = None) -> torch.Tensor:
        v = self.views(flat)
        h = x
        last = self.n_layers - 1
        for li in range(last):
            a = self.act(torch.baddbmm(v[2 * li + 1], h, v[2 * li]))
            if train and self.has_dropout:
                a = a * self._mask(a)
            h = h + a if self.residual[li] else a
        return torch.baddbmm(v[2 * last + 1], h, v[2 * last])

    def _mask(self, a: torch.Tensor) -> torch.Tensor:
        keep = (1.0 - self.dropout).view(-1, 1, 1)
        u = torch.stack([torch.rand(a.shape[1:], generator=g, device=a.device) for g in self.generators])
        return (u < keep).to(a.dtype) / keep

    def manual(self, head: Head) -> bool:
        """Whether :meth:`gradients` has the backward written out for this activation and head."""
        if self.backward is None:
            return False
        if head.loss != {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}.get(head.task):
            return False
        return head.task != "regression" or head.output_activation == "none"

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, y: torch.Tensor, head: Head, grad: torch.Tensor):
        """Forward and backward by hand; writes d(sum of member losses)/d(flat) into ``grad`` [P, N].

        Returns (per-member mean losses [P], output [P, B, K]). The same ATen backward
        kernels autograd calls (see trainwell/train/fast.py); only for :meth:`manual` cases.
        """
        v, gv = self.views(), self.views(grad)
        last = self.n_layers - 1
        inputs, zs, outs, masks = forward_keeping(x, [
            (lambda h, li=li: torch.baddbmm(v[2 * li + 1], h, v[2 * li]), self.act,
             self._mask if self.has_dropout else no_mask) for li in range(last)])
        out = torch.baddbmm(v[2 * last + 1], inputs[-1], v[2 * last])
        P, B = out.shape[0], out.shape[1]
        if head.task == "multiclass":
            logp = log_softmax_classes(out)
            losses = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(1)
            g = logp.exp_()
            g.scatter_add_(-1, y.unsqueeze(-1), g.new_full((1, 1, 1), -1.0).expand(P, B, 1))
            g.div_(B)
        elif head.task == "binary":
            z = out.squeeze(-1)
            losses = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(1)
            g = ((torch.sigmoid(z) - y) / B).unsqueeze(-1)
        else:
            diff = out - y.view_as(out)
            losses = diff.square().flatten(1).mean(1)
            g = diff.mul_(2.0 / (B * out.shape[2]))
        for li in range(last, -1, -1):
            gv[2 * li].copy_(torch.bmm(inputs[li].transpose(1, 2), g))   # bmm's out= into a strided view is 4x slower
            gv[2 * li + 1].copy_(g.sum(1, keepdim=True))
            if li == 0:
                break
            g = torch.bmm(g, v[2 * li].transpose(1, 2))
            if masks[li - 1] is not None:
                g = g * masks[li - 1]
            g = self.backward(g, zs[li - 1], outs[li - 1])
        return losses, out

    def select(self, keep: torch.Tensor) -> None:
        self.flat = self.flat[keep]
        self.dropout = self.dropout[keep]
        self.has_dropout = bool((self.dropout > 0).any())

    def member_state(self, i: int, template: nn.Module) -> dict[str, torch.Tensor]:
        """Member i's weights under ``template``'s state_dict names."""
        names = [*[f"blocks.{k}.linear" for k in range(self.n_layers - 1)], "out"]
        v = self.views()
        state = {}
        for li, name in enumerate(names):
            state[f"{name}.weight"] = v[2 * li][i].t().clone()
            state[f"{name}.bias"] = v[2 * li + 1][i, 0].clone()
        return state


class StackedOptimizer:
    """An optimizer's update on a [P, N] tensor, hyperparameters per member.

    The update itself is the registry entry's ``stacked`` function (optim/optimizers.py):
    one kernel per term of the update for all members and parameters at once, with the
    per-member scalars derived in float64 and applied in float32, as torch's fused CPU
    kernels do, so each member follows its lone run to float tolerance.
    """

    def __init__(self, name: str, hp: dict[str, torch.Tensor], device: torch.device):
        self.name, self.device = name, device
        self.update = optimizer(name).stacked
        if self.update is None:
            raise ValueError(f"{name} has no stacked update (population.unsupported refuses it first)")
        self.hp = {k: v.to(device=device, dtype=torch.float64) for k, v in hp.items()}   # [P], on the device: no copies per step
        self.steps = 0
        self.state: list[torch.Tensor] = []
        self._views()

    def _views(self) -> None:
        self.h = MemberHyper.of(self.hp, self.device)

    def load(self, hp: dict[str, torch.Tensor], state: list[torch.Tensor], steps: int) -> None:
        """Put back a checkpoint's per-member hyperparameters, moments and step count (an exact resume)."""
        self.hp = {k: v.to(device=self.device, dtype=torch.float64) for k, v in hp.items()}
        self.state = [s.to(self.device) for s in state]
        self.steps = steps
        self._views()

    def select(self, keep: torch.Tensor) -> None:
        self.hp = {k: v[keep] for k, v in self.hp.items()}
        self.state = [s[keep] for s in self.state]
        self._views()

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        self.steps += 1
        self.update(p, g, self.state, self.h, self.steps)
