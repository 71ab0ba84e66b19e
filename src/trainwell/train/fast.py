"""The CPU step of a plain MLP with its backward pass written out: no autograd graph.

For a small network on CPU the cost of a step is per-operation dispatch, and
building and walking the autograd graph costs more than the arithmetic
(/work/shared/research/cpu-small-model-notes.md: 14.1 ms/epoch with autograd and
fused Adam against 5.5 ms with the backward by hand on digits). This step computes
the same gradients with the same ATen backward kernels autograd would call
(``threshold_backward``, ``tanh_backward``, ``sigmoid_backward``, the matmuls of
``addmm``'s backward), assigns them to ``p.grad`` and steps the run's own
optimizer, so optimizer state, schedules, checkpoints and resume are untouched.
Weights match the autograd step to float tolerance (tests/test_fast_step.py).

It is the default CPU step (``train.backward: auto``) for plain MLPs (dense
blocks: linear -> relu / leaky_relu / tanh / sigmoid / gelu / silu / elu / linear -> optional dropout;
no batch norm, no residual) with the default loss of a multiclass, binary or
regression (mse) head; of the ``regularize`` options it takes the L1/L2 weight penalties, whose gradients
it adds (optim/regularizers.py ``penalty_gradient``). Anything else, and any step
on which a forward hook is armed (the babysitting monitors sample one step per
epoch through hooks), runs the ordinary autograd step. ``train.backward:
autograd`` turns it off.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import optimizer as torch_optimizer

from trainwell.nn.crossfit import split_fold_column, trains_on
from trainwell.nn.ensemble import packed_linear
from trainwell.nn.softmax import log_softmax_classes
from trainwell.optim.eager import torch_class
from trainwell.optim.optimizers import for_torch_class
from trainwell.optim.regularizers import penalty_gradient

# Per activation module: its forward as a plain function (the same kernel the module calls, without
# nn.Module's call machinery) and d(act)/dz applied to g from the saved z (pre-activation) and a (output),
# both read from the module so its own parameters (a slope, an alpha, GELU's approximation) are kept.
_ACTIVATIONS: dict[type, tuple[Callable, Callable]] = {
    nn.ReLU: (lambda m: torch.relu,
              lambda m: lambda g, z, a: torch.ops.aten.threshold_backward(g, a, 0)),
    nn.LeakyReLU: (lambda m: lambda z: F.leaky_relu(z, m.negative_slope),
                   lambda m: lambda g, z, a: torch.ops.aten.leaky_relu_backward(g, z, m.negative_slope, False)),
    nn.Tanh: (lambda m: torch.tanh, lambda m: lambda g, z, a: torch.ops.aten.tanh_backward(g, a)),
    nn.Sigmoid: (lambda m: torch.sigmoid, lambda m: lambda g, z, a: torch.ops.aten.sigmoid_backward(g, a)),
    nn.GELU: (lambda m: lambda z: F.gelu(z, approximate=m.approximate),
              lambda m: lambda g, z, a: torch.ops.aten.gelu_backward(g, z, approximate=m.approximate)),
    nn.SiLU: (lambda m: F.silu, lambda m: lambda g, z, a: torch.ops.aten.silu_backward(g, z)),
    nn.ELU: (lambda m: lambda z: F.elu(z, m.alpha),
             lambda m: lambda g, z, a: torch.ops.aten.elu_backward(g, m.alpha, 1.0, 1.0, False, z)),
    nn.Identity: (lambda m: lambda z: z, lambda m: lambda g, z, a: g),
}


def has_written_backward(act: nn.Module) -> bool:
    """Whether the hand-written step knows ``act``'s derivative (else the step is autograd's)."""
    return type(act) in _ACTIVATIONS


def activation_function(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``act``'s forward as a plain function (hooks on it are checked before every step)."""
    return _ACTIVATIONS[type(act)][0](act)


def activation_backward(act: nn.Module) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``act``'s derivative applied to an upstream gradient: ``(g, z, a) -> g * act'(z)``."""
    return _ACTIVATIONS[type(act)][1](act)


def forward_keeping(h: torch.Tensor, layers: list) -> tuple[list, list, list, list]:
    """The hidden layers' forward pass, keeping what a hand-written backward needs.

    ``layers``: per hidden layer, ``(affine, act, mask_of)`` with ``affine(h) -> z``,
    ``act(z) -> a`` and ``mask_of(a) ->`` an inverted-dropout mask or None. Returns each
    layer's input (the output layer's input last), pre-activations, outputs and masks.
    """
    inputs, zs, outs, masks = [], [], [], []
    for affine, act, mask_of in layers:
        inputs.append(h)
        z = affine(h)
        a = act(z)
        mask = mask_of(a)
        zs.append(z)
        outs.append(a)
        masks.append(mask)
        h = a if mask is None else a * mask
    inputs.append(h)
    return inputs, zs, outs, masks


def no_mask(a: torch.Tensor) -> None:
    """A layer without dropout."""
    return None


def eligible(state) -> bool:
    """Whether ``state``'s model, head, regularizers and device take the hand-written step."""
    model, spec = state.model, state.spec
    if getattr(spec.train, "backward", "auto") != "auto":
        return False
    reg = spec.regularize      # weight penalties are written out below; activity, noise and clipping are not
    if any((reg.activity_l1, reg.activity_l2, reg.noise, reg.clip_norm, reg.clip_value)):
        return False
    if state.ctx.forward is not None or type(model).__name__ not in ("MLP", "PackedMLP"):
        return False
    if not hasattr(model, "blocks") or not hasattr(model, "out"):
        return False
    for block in model.blocks:
        if getattr(block, "bn_before", None) is not None or getattr(block, "bn_after", None) is not None:
            return False
        if getattr(block, "residual", False) or getattr(block, "proj", None) is not None:
            return False
        if not has_written_backward(block.act):
            return False
        if block.drop is not None and type(block.drop) is not nn.Dropout:
            return False
    head = state.head
    if head.loss != {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}.get(head.task):
        return False                     # multilabel, perceptron criterion, mae, huber: autograd
    if head.class_weight is not None:
        return False                     # the written-out backward is the unweighted loss's
    if head.task == "regression" and head.output_activation != "none":
        return False
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return False
    return next(model.parameters()).device.type == "cpu"


def fused_adam_step(opt: torch.optim.Optimizer) -> Callable[[], None]:
    """``opt.step`` for a fused CPU Adam/AdamW, calling torch's fused kernel without the Python wrapper.

    ``torch.optim.Adam.step`` spends ~30 us per call in Python (grouping tensors by
    device, hook and profiler plumbing) around one ``torch._fused_adam_`` kernel; on
    a digits-sized step that is a fifth of the step. This calls the same kernel on
    the same state tensors (``opt.state[p]``: ``step``, ``exp_avg``, ``exp_avg_sq``)
    with the group's current hyperparameters, so results are bit-identical and
    schedules, checkpoints and resume see an ordinary optimizer. Anything unusual
    (several groups, amsgrad, hooks, a torch without the kernel, state not created
    yet) goes through ``opt.step()``.
    """
    kernels = {o.fused_kernel for o in for_torch_class(torch_class(opt))} - {None}   # optim/optimizers.py
    kernel = getattr(torch, kernels.pop(), None) if len(kernels) == 1 else None
    group = opt.param_groups[0]
    kernel_ok = kernel is not None and len(opt.param_groups) == 1 and bool(group.get("fused")) \
        and not group.get("amsgrad") and not group.get("maximize") and not group.get("differentiable") \
        and not group.get("capturable") \
        and group.get("decoupled_weight_decay", False) == isinstance(opt, torch.optim.AdamW)   # as registered
    if not kernel_ok:
        return opt.step
    params = list(group["params"])

    def step() -> None:
        if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks \
                or torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks:
            opt.step()
            return
        states = [opt.state.get(p) for p in params]
        if any(not s or "exp_avg" not in s for s in states) or any(p.grad is None for p in params):
            opt.step()             # first step: torch creates the state
            return
        g = opt.param_groups[0]
        lr = g["lr"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        kernel(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
               [], steps, amsgrad=False, lr=lr.item() if isinstance(lr, torch.Tensor) else lr,
               beta1=float(g["betas"][0]), beta2=float(g["betas"][1]), weight_decay=g["weight_decay"],
               eps=g["eps"], maximize=False, grad_scale=None, found_inf=None)

    return step


class _Dense:
    """The four products of one plain layer ``z = h W^T + b`` (h: [batch, in])."""

    @staticmethod
    def affine(lin, h):
        return torch.addmm(lin.bias, h, lin.weight.t())

    @staticmethod
    def grads(lin, g, h):          # dL/dW, dL/db
        return g.t().mm(h), g.sum(0)

    @staticmethod
    def back(lin, g):              # dL/dh
        return g.mm(lin.weight)


class _Packed:
    """The same for a packed ensemble's layer (nn/ensemble.py): ``z[i] = h[i] W[i]^T + b[i]``, h: [k, batch, in]
    (the first layer's input [batch, in] is shared by the k members)."""

    @staticmethod
    def affine(lin, h):            # PackedLinear.forward without nn.Module's call machinery (hooks: checked per step)
        return packed_linear(h, lin.weight, lin.bias)

    @staticmethod
    def grads(lin, g, h):
        gt = g.transpose(1, 2)
        return (torch.matmul(gt, h) if h.dim() == 2 else torch.bmm(gt, h)), g.sum(1)

    @staticmethod
    def back(lin, g):
        return torch.bmm(g, lin.weight)


def analytic_step(state, fallback: Callable, with_metric: bool = True) -> Callable | None:
    """The hand-written step for ``state``'s model, or None when it does not apply.

    ``with_metric=False`` (``train.fast``) skips the per-step train metric terms and
    returns NaN terms instead. A packed ensemble (nn/ensemble.py) runs the same
    algebra with a member axis in front: its loss is the mean of the members' own
    losses, so each member's gradient is the one it would get alone.
    """
    if not eligible(state):
        return None
    model, head, opt = state.model, state.head, state.optimizer
    ops = _Packed if type(model).__name__ == "PackedMLP" else _Dense
    packed = ops is _Packed
    crossfit = packed and model.crossfit      # rows carry their fold; member j learns nothing from fold j
    blocks = list(model.blocks)
    linears = [b.linear for b in blocks] + [model.out]
    acts = [b.act for b in blocks]
    drops = [b.drop for b in blocks]
    backs = [activation_backward(act) for act in acts]
    hooked = [m for m in model.modules()]
    task = head.task
    nan_terms = torch.full((4 if task == "regression" else 2,), float("nan"))
    constants: dict = {}         # tensors made once per batch shape: the row counts, the -1 columns of the gradient
    opt_step = fused_adam_step(opt)
    add_penalties = penalty_gradients(state.spec.regularize, 1.0 / model.members if packed else 1.0)
    layers = [(lambda h, lin=lin: ops.affine(lin, h), activation_function(act),
               no_mask if drop is None else   # the same draw nn.Dropout makes, in training mode only
               (lambda a, p=drop.p: F.dropout(torch.ones_like(a), p, True) if model.training else None))
              for lin, act, drop in zip(linears, acts, drops)]

    def step(xb: torch.Tensor, yb: torch.Tensor, weight: float | None = None):
        if (weight is not None and weight != 1.0) or any(m._forward_hooks or m._forward_pre_hooks for m in hooked) \
                or getattr(model, "record_activity", False):
            return fallback(xb, yb, weight) if weight is not None else fallback(xb, yb)
        with torch.no_grad():
            fold = None
            if crossfit:
                xb, fold = split_fold_column(xb, model.n_inputs)
            inputs, zs, outs, masks = forward_keeping(xb.flatten(1) if xb.dim() > 2 else xb, layers)
            out = ops.affine(linears[-1], inputs[-1])
            if packed:
                loss, terms, g = _packed_loss_grad(head, out, yb, with_metric, nan_terms, constants)
                if fold is not None:     # as PackedMLP.forward's detach: the held-out rows' gradient is 0
                    g = g * trains_on(fold, model.members)
            else:
                loss, terms, g = _loss_grad(head, out, yb, with_metric, nan_terms, constants)
            for li in range(len(linears) - 1, -1, -1):
                lin = linears[li]
                lin.weight.grad, lin.bias.grad = ops.grads(lin, g, inputs[li])
                if add_penalties is not None:
                    add_penalties(lin)
                if li == 0:
                    break
                g = ops.back(lin, g)
                if masks[li - 1] is not None:
                    g = g * masks[li - 1]
                g = backs[li - 1](g, zs[li - 1], outs[li - 1])
        opt_step()
        return loss, terms

    return step


def penalty_gradients(reg, scale: float) -> Callable[[nn.Module], None] | None:
    """Adds ``regularize``'s L1/L2 gradients (optim/regularizers.py) to a layer's fresh weight and bias
    gradients, as autograd does for the penalty in the loss; None when there is none. ``scale``: 1/k for a
    packed ensemble, whose penalty is the mean of its members' own."""
    if not any((reg.l1, reg.l2, reg.bias_l1, reg.bias_l2)):
        return None

    def add(lin: nn.Module) -> None:
        for p, l1, l2 in ((lin.weight, reg.l1, reg.l2), (lin.bias, reg.bias_l1, reg.bias_l2)):
            grad = penalty_gradient(p.detach(), l1, l2, scale)
            if grad is not None:
                p.grad.add_(grad)
    return add


def _loss_grad(head, out: torch.Tensor, yb: torch.Tensor, with_metric: bool, nan_terms: torch.Tensor,
               constants: dict):
    """The batch loss, the epoch-metric terms and dL/d(out) of one network's [batch, outputs] output."""
    task, B = head.task, out.shape[0]
    terms = nan_terms
    if task == "multiclass":
        logp = log_softmax_classes(out)
        loss = F.nll_loss(logp, yb)
        if with_metric:   # [correct, count], as Head.metric_terms, in two fewer kernels
            count = constants.get(B)
            if count is None:
                count = constants[B] = logp.new_tensor(B)
            terms = torch.stack([torch.eq(logp.argmax(-1), yb).sum(dtype=out.dtype), count])
        g = logp.exp_()
        g.scatter_add_(1, yb.view(B, 1), _minus_ones(out, constants))
        return loss, terms, g.div_(B)
    if task == "binary":
        z = out.squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(z, yb)
        if with_metric:
            terms = head.metric_terms(out, yb)
        return loss, terms, ((torch.sigmoid(z) - yb) / B).unsqueeze(-1)
    loss = F.mse_loss(out, yb)
    if with_metric:
        terms = head.metric_terms(out, yb)
    return loss, terms, (out - yb).mul_(2.0 / out.numel())


def _packed_loss_grad(head, out: torch.Tensor, yb: torch.Tensor, with_metric: bool, nan_terms: torch.Tensor,
                      constants: dict | None = None):
    """``_loss_grad`` for k members' [k, batch, outputs] output: the loss value is the mean of the members'
    losses and each member's gradient that of its own loss (as Head.loss_fn); the metric terms score the
    averaged ensemble.

    The classification terms reuse the probabilities the gradient needs: the ensemble's prediction is the
    class of largest summed probability (multiclass) or a summed probability above k/2 (binary), the same
    as Head.metric_terms on the combined logits (log of the mean probability, a monotone map) in a third of
    its kernels; a packed step spent about a third of its time on those terms (docs/performance.md)."""
    k, B = out.shape[0], out.shape[1]
    own = with_metric and head.task in ("multiclass", "binary") and head.class_weight is None
    terms = head.metric_terms(out.transpose(0, 1), yb) if with_metric and not own else nan_terms
    if head.task == "multiclass":
        logp = log_softmax_classes(out)
        rows = yb.view(1, B, 1).expand(k, B, 1)
        loss = -logp.gather(2, rows).mean()
        g = logp.exp_()
        if own:
            terms = _correct_and_count(torch.eq(g.sum(0).argmax(-1), yb), out, constants)
        g.scatter_add_(2, rows, _minus_ones(out, constants))      # p - 1 at each row's class, in one kernel
        return loss, terms, g.div_(B)
    if head.task == "binary":
        z = out.squeeze(-1)
        target = yb.expand(k, B)
        loss = F.binary_cross_entropy_with_logits(z, target)
        p = torch.sigmoid(z)
        if own:
            terms = _correct_and_count(torch.eq(p.sum(0) > 0.5 * k, yb > 0.5), out, constants)
        return loss, terms, ((p - target) / B).unsqueeze(-1)
    diff = out - yb
    return diff.square().mean(), terms, diff.mul_(2.0 * k / diff.numel())


def _minus_ones(out: torch.Tensor, cache: dict | None) -> torch.Tensor:
    """A tensor of -1 shaped as ``out`` with its last dimension 1 (``[k, batch, 1]`` or ``[batch, 1]``), made
    once per shape."""
    shape = (*out.shape[:-1], 1)
    ones = None if cache is None else cache.get(shape)
    if ones is None:
        ones = out.new_full(shape, -1.0)
        if cache is not None:
            cache[shape] = ones
    return ones


def _correct_and_count(hits: torch.Tensor, out: torch.Tensor, constants: dict | None) -> torch.Tensor:
    """[correct, count] of one batch's boolean hits, the count tensor made once per batch size."""
    B = hits.shape[0]
    count = None if constants is None else constants.get(B)
    if count is None:
        count = out.new_tensor(float(B))
        if constants is not None:
            constants[B] = count
    return torch.stack([hits.sum(dtype=out.dtype), count])
