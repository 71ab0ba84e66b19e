"""Convolutional networks (LeCun et al. 1998; docs/topologies/cnn.md): conv blocks, then a dense head.

A conv block is convolution -> [batch norm] -> activation -> max pooling ->
[dropout]; the "same" padding keeps the size until the pooling halves it. The
net works on 2-D images ``[C, H, W]`` and on 1-D signals ``[C, T]``; rows arrive
in the shape the data has (``[H, W]``, ``[T]`` ...) and are viewed as
``[C, *spatial]`` inside ``forward``. Light augmentation (random shifts, Gaussian
noise) is a module at the input that acts only in training mode, so it runs on
the device inside the training step and never at evaluation or predict time.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.activations import make_activation


class Augment(nn.Module):
    """Train-only augmentation on ``[B, C, *spatial]`` batches: random shifts (edge-replicated) and noise."""

    def __init__(self, shift: int = 0, noise: float = 0.0, dims: int = 2):
        super().__init__()
        self.shift, self.noise, self.dims = int(shift), float(noise), int(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.shift > 0:
            x = random_shift(x, self.shift, self.dims)
        if self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        return x

    def extra_repr(self) -> str:
        return f"shift={self.shift}, noise={self.noise}"


def random_shift(x: torch.Tensor, s: int, dims: int) -> torch.Tensor:
    """Shift each sample by its own random offset in [-s, s] per spatial axis (one gather, no loop)."""
    B, dev = x.shape[0], x.device
    b = torch.arange(B, device=dev)
    if dims == 1:
        T = x.shape[-1]
        xp = F.pad(x, (s, s), mode="replicate")
        off = torch.randint(0, 2 * s + 1, (B,), device=dev)
        idx = torch.arange(T, device=dev)[None] + off[:, None]                    # [B, T]
        return xp.permute(0, 2, 1)[b[:, None], idx].permute(0, 2, 1)
    H, W = x.shape[-2:]
    xp = F.pad(x, (s, s, s, s), mode="replicate")
    dy = torch.randint(0, 2 * s + 1, (B,), device=dev)
    dx = torch.randint(0, 2 * s + 1, (B,), device=dev)
    rows = torch.arange(H, device=dev)[None] + dy[:, None]                         # [B, H]
    cols = torch.arange(W, device=dev)[None] + dx[:, None]                         # [B, W]
    out = xp.permute(0, 2, 3, 1)[b[:, None, None], rows[:, :, None], cols[:, None, :]]   # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


class ConvBlock(nn.Module):
    """conv ("same" padding) -> [batch norm] -> activation -> max pool -> [dropout]."""

    def __init__(self, dims: int, c_in: int, c_out: int, kernel: int, pool: int, activation: str,
                 batchnorm: bool, dropout: float):
        super().__init__()
        Conv, BN, Pool = (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        self.conv = Conv(c_in, c_out, kernel, padding=kernel // 2, bias=not batchnorm)
        self.bn = BN(c_out) if batchnorm else None
        self.act = make_activation(activation)
        self.pool = Pool(pool) if pool > 1 else None
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)
        if self.drop is not None:
            x = self.drop(x)
        return x


def conv_stack(arch: dict[str, Any]) -> tuple[nn.Sequential, list[int]]:
    """The conv blocks of ``arch`` and the ``[C, *spatial]`` shape they output."""
    dims = int(arch["conv_dims"])
    shape = list(arch["conv_shape"])
    blocks = []
    c = shape[0]
    for width in arch["channels"]:
        spatial = shape[1:]
        pool = int(arch["pool"]) if min(spatial) >= int(arch["pool"]) else 1
        blocks.append(ConvBlock(dims, c, int(width), int(arch["kernel_size"]), pool, arch["activation"],
                                bool(arch.get("batchnorm")), float(arch.get("conv_dropout", 0.0))))
        c = int(width)
        shape = [c, *(s // pool for s in spatial)]
    return nn.Sequential(*blocks), shape


def dense_head(n_in: int, hidden: list[int], n_out: int, activation: str, dropout: float) -> nn.Sequential:
    """Linear -> activation -> [dropout] per hidden width, then the output layer (no dropout on it)."""
    layers: list[nn.Module] = []
    for w in hidden:
        layers += [nn.Linear(n_in, int(w)), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = int(w)
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """[augment] -> conv blocks -> flatten -> dense head -> logits."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.conv_shape = [int(s) for s in arch["conv_shape"]]
        aug = arch.get("augment") or {}
        self.augment = Augment(aug.get("shift", 0), aug.get("noise", 0.0), int(arch["conv_dims"])) \
            if (aug.get("shift") or aug.get("noise")) else None
        self.features, out_shape = conv_stack(arch)
        n_flat = 1
        for s in out_shape:
            n_flat *= int(s)
        self.head = dense_head(n_flat, list(arch["hidden"]), int(arch["n_outputs"]), arch["activation"],
                               float(arch.get("dropout", 0.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.conv_shape)
        if self.augment is not None:
            x = self.augment(x)
        return self.head(self.features(x).flatten(1))
