"""Autoencoders (Hinton & Salakhutdinov 2006; docs/topologies/autoencoder.md): encoder -> code -> decoder.

Trained on the inputs alone (task ``reconstruction``: the target is the input,
the loss MSE, the epoch metric R^2). ``encoder: dense`` is an MLP funnel whose
decoder mirrors it; ``encoder: conv`` uses stride-2 convolutions down and
transposed convolutions up. ``denoise: sigma`` makes it a denoising autoencoder:
in training mode the input gets Gaussian noise N(0, sigma^2) before the encoder
while the target stays the clean input. ``encode`` gives the bottleneck codes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwell.nn.activations import make_activation


def _mlp(widths: list[int], activation: str, last_linear: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2 or not last_linear:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.input_shape = [int(s) for s in arch["input_shape"]]
        self.denoise = float(arch.get("denoise", 0.0))
        n, code, hidden, act = int(arch["n_inputs"]), int(arch["bottleneck"]), list(arch["hidden"]), arch["activation"]
        self.kind = arch.get("encoder", "dense")
        if self.kind == "conv":
            dims = int(arch["conv_dims"])
            Conv, Up = (nn.Conv1d, nn.ConvTranspose1d) if dims == 1 else (nn.Conv2d, nn.ConvTranspose2d)
            self.conv_shape = [int(s) for s in arch["conv_shape"]]
            k = int(arch["kernel_size"])
            k = k if k % 2 else k + 1
            chans = [self.conv_shape[0], *map(int, arch["channels"])]
            sizes = [self.conv_shape[1:]]
            down: list[nn.Module] = []
            for i in range(len(chans) - 1):
                down += [Conv(chans[i], chans[i + 1], k, stride=2, padding=k // 2), make_activation(act)]
                sizes.append([(s + 1) // 2 for s in sizes[-1]])
            self.down = nn.Sequential(*down)
            self.flat_shape = [chans[-1], *sizes[-1]]
            flat = int(np.prod(self.flat_shape))
            self.to_code = _mlp([flat, *hidden, code], act)
            self.from_code = _mlp([code, *reversed(hidden), flat], act, last_linear=False)
            up: list[nn.Module] = []
            for i in range(len(chans) - 1, 0, -1):
                target, have = sizes[i - 1], sizes[i]
                op = tuple(t - (2 * h - 1) for t, h in zip(target, have))
                up.append(Up(chans[i], chans[i - 1], k, stride=2, padding=k // 2, output_padding=op))
                if i > 1:
                    up.append(make_activation(act))
            self.up = nn.Sequential(*up)
        else:
            self.encoder = _mlp([n, *hidden, code], act)
            self.decoder = _mlp([code, *reversed(hidden), n], act)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.denoise * torch.randn_like(x) if self.denoise > 0 else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return self.to_code(self.down(x.reshape(x.shape[0], *self.conv_shape)).flatten(1))
        return self.encoder(x.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            h = self.from_code(code).reshape(code.shape[0], *self.flat_shape)
            return self.up(h).reshape(code.shape[0], *self.input_shape)
        return self.decoder(code).reshape(code.shape[0], *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = self.corrupt(x)
        return self.decode(self.encode(x))


@torch.no_grad()
def plot_reconstructions(run: Any, X: torch.Tensor, path: str | Path) -> Path | None:
    """A PNG grid: inputs / noisy inputs (denoising) / reconstructions, in the data's scaled units."""
    from trainwell.core.figures import plt, save_figure   # lazy: matplotlib, only when the figure is written
    model = run.model
    model.eval()
    dev = next(model.parameters()).device
    X = X.to(dev)
    torch.manual_seed(0)
    rows = [("input", X)]
    if getattr(model, "denoise", 0) > 0:
        noisy = model.corrupt(X)
        rows.append((f"noisy (sigma {model.denoise:g})", noisy))
        rows.append(("reconstruction", model(noisy)))
    else:
        rows.append(("reconstruction", model(X)))
    shape = list(X.shape[1:])
    image = len(shape) == 2 and min(shape) >= 4 or len(shape) == 3
    n = X.shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.4 * len(rows)), squeeze=False)
    for r, (title, T) in enumerate(rows):
        A = T.float().cpu().numpy()
        for c in range(n):
            ax = axes[r][c]
            if image:
                img = A[c] if A[c].ndim == 2 else (A[c][0] if A[c].shape[0] in (1, 3) and A[c].shape[0] == 1
                                                   else np.moveaxis(A[c], 0, -1))
                ax.imshow(img, cmap="gray")
            else:
                ax.plot(A[c].reshape(-1), lw=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.suptitle("held-out inputs, noisy inputs and reconstructions", fontsize=8)
    return save_figure(fig, path, dpi=90)


def reconstruction_metrics(target: np.ndarray, recon: np.ndarray) -> dict:
    """MSE, MAE, RMSE and R^2 over every input value (R^2 = 1 - SSE / total variance around the
    per-feature means, i.e. variance-weighted, so constant border pixels cannot dominate it)."""
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    r = np.asarray(recon, dtype=np.float64).reshape(len(recon), -1)
    sse = float(((t - r) ** 2).sum())
    sst = float(((t - t.mean(axis=0)) ** 2).sum())
    mse = sse / max(t.size, 1)
    return {"mse": mse, "mae": float(np.abs(t - r).mean()), "rmse": float(np.sqrt(mse)),
            "r2": 1.0 - sse / sst if sst > 0 else None}
