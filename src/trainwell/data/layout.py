"""Shapes and scaling for images, signals and sequences (docs/data.md, beyond tables).

What the network sees depends on the topology: a table is a row of features, an
image is ``[C, H, W]`` (an ``[H, W]`` array is one channel), a 1-D signal is
``[C, T]`` (a ``[T]`` row is one channel), a sequence is ``[T, F]``. Scaling
follows: per feature for tables; per channel for images and signals (one mean
and std over every pixel of a channel, so a convolution sees the same scale
everywhere); pixels to [0, 1] by dividing by the maximum value (255 for 8-bit).
Every scaler is a :class:`Standardizer` whose statistics broadcast over the
per-row shape, so predict applies the same transform and it round-trips to JSON.
"""
from __future__ import annotations

import numpy as np

from trainwell.core.inputs import InputLayout, conv_layout
from trainwell.data.scaling import Standardizer

def channel_axes(row_shape: list[int], axes: str = "conv", conv_dims: str | int = "auto") -> tuple[int, ...]:
    """Axes of the per-row shape that share one mean/std (everything but the channel axis).

    ``axes`` is the topology's ``InputLayout.axes``: ``conv`` (a channel over all positions) or
    ``sequence`` (an input feature over all time steps)."""
    nd = len(row_shape)
    if axes == "sequence":                            # [T, F]: per feature F; [T]: one scalar
        return tuple(range(nd - 1)) if nd >= 2 else (0,)
    _, cshape, _ = conv_layout(row_shape, conv_dims)
    if len(cshape) == nd + 1:                         # implicit single channel: all axes shared
        return tuple(range(nd))
    return tuple(range(1, nd))                        # [C, ...]: per channel


def channel_scaler(X: np.ndarray, axes: tuple[int, ...]) -> Standardizer:
    """One mean/std per channel, shaped to broadcast over a row."""
    X = np.asarray(X, dtype=np.float64)
    red = (0, *(a + 1 for a in axes))
    mean = X.mean(axis=red, keepdims=True)[0]
    std = X.std(axis=red, keepdims=True)[0]
    std = np.where(std > 1e-12, std, 1.0)
    return Standardizer(mean=mean, std=std)


def pixel_scaler(X: np.ndarray) -> tuple[Standardizer, float]:
    """Divide by the value range's top: 255 for 8-bit data, else the max |x| (1 if already in [0, 1])."""
    top = float(np.abs(X).max()) if X.size else 1.0
    top = 255.0 if 1.0 < top <= 255.0 else max(top, 1.0)
    ones = np.ones([1] * (X.ndim - 1))
    return Standardizer(mean=0.0 * ones, std=top * ones), top


def looks_like_pixels(X: np.ndarray) -> bool:
    """Non-negative integers up to 255 (8-bit images), or values already in [0, 1]."""
    sample = np.asarray(X[: min(len(X), 512)])
    lo, hi = float(sample.min()), float(sample.max())
    if lo < 0:
        return False
    return (hi <= 255 and np.all(sample == np.round(sample))) or hi <= 1.0


def choose_scaler(X_train: np.ndarray, scale: str, inputs: InputLayout, conv_dims: str | int = "auto"
                  ) -> tuple[Standardizer | None, str | None]:
    """(scaler, note) for ``data.scale`` on the training split, for a network reading rows as ``inputs``
    says (its topology's ``InputLayout``); None for tables under standard/none."""
    shaped = X_train.ndim >= 3 or inputs.shaped and X_train.ndim >= 2
    if scale == "auto":
        # Images into an MLP keep one scale for all pixels too: a per-pixel z-score divides the
        # border pixels, almost always 0 in training, by a tiny std, so one stray stroke at test
        # time becomes a value in the hundreds (MNIST: 0.974 test accuracy against 0.98 val).
        if not shaped:
            scale = "standard"
        elif inputs.pixels and looks_like_pixels(X_train):
            scale = "pixels"
        else:
            scale = inputs.auto_scale
        auto = " (auto"
    else:
        auto = " (given"
    if scale == "none":
        return None, None
    if scale == "standard":
        s = Standardizer.fit(X_train)
        return s, "scale: z-score per feature, fitted on the training split only" + (
            "" if auto == " (given" else f"{auto}: {'a table' if not shaped else 'per-feature statistics'})")
    if scale == "pixels":
        s, top = pixel_scaler(X_train)
        return s, f"scale: pixels to [0, 1] (divided by {top:g}){auto}: values look like pixel intensities)" \
            if auto == " (auto" else f"scale: pixels to [0, 1] (divided by {top:g})"
    s = channel_scaler(X_train, channel_axes(list(X_train.shape[1:]), inputs.axes, conv_dims))
    n = int(np.prod(s.mean.shape))
    what = "per input feature over all time steps" if inputs.axes == "sequence" else f"per channel ({n} channel(s))"
    return s, f"scale: z-score {what}, fitted on the training split only{auto}: shaped inputs keep one scale across positions)"
