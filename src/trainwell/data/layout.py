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

from trainwell.data.scaling import Standardizer
from trainwell.errors import UserError

IMAGE_TYPES = ("cnn", "autoencoder")


def conv_layout(row_shape: list[int], conv_dims: str | int = "auto") -> tuple[int, list[int], str]:
    """(dims, [C, *spatial], why) for a conv net on rows of ``row_shape``.

    ``[T]`` -> 1-D, one channel; ``[C, T]`` with C <= 4 and T >= 8 -> 1-D, C channels;
    other ``[H, W]`` -> 2-D grayscale; ``[C, H, W]`` -> 2-D, C channels.
    """
    shape = [int(s) for s in row_shape]
    nd = len(shape)
    if conv_dims == "auto":
        if nd == 1:
            dims = 1
        elif nd == 2:
            dims = 1 if (shape[0] <= 4 and shape[1] >= 8) else 2
        elif nd == 3:
            dims = 2
        else:
            raise UserError(f"A conv net needs rows shaped [T], [C, T], [H, W] or [C, H, W]; got {shape}. "
                            f"Reshape the data (e.g. np.savez(f, X=X.reshape(N, C, H, W), y=y)).")
    else:
        dims = int(conv_dims)
    if dims == 1:
        if nd == 1:
            return 1, [1, shape[0]], f"1-D signal of length {shape[0]}, 1 channel"
        if nd == 2:
            return 1, shape, f"1-D signal of length {shape[1]}, {shape[0]} channel(s)"
    else:
        if nd == 2:
            return 2, [1, *shape], f"{shape[0]}x{shape[1]} image, 1 channel"
        if nd == 3:
            return 2, shape, f"{shape[1]}x{shape[2]} image, {shape[0]} channel(s)"
    raise UserError(f"model.conv_dims={conv_dims} does not fit rows shaped {shape}. Use conv_dims=auto.")


def channel_axes(row_shape: list[int], model_type: str, conv_dims: str | int = "auto") -> tuple[int, ...]:
    """Axes of the per-row shape that share one mean/std (everything but the channel axis)."""
    nd = len(row_shape)
    if model_type == "rnn":                           # [T, F]: per feature F; [T]: one scalar
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


def choose_scaler(X_train: np.ndarray, scale: str, model_type: str, conv_dims: str | int = "auto"
                  ) -> tuple[Standardizer | None, str | None]:
    """(scaler, note) for ``data.scale`` on the training split; None for tables under standard/none."""
    shaped = X_train.ndim >= 3 or model_type in ("cnn", "rnn", "autoencoder", "custom") and X_train.ndim >= 2
    if scale == "auto":
        # Images into an MLP keep one scale for all pixels too: a per-pixel z-score divides the
        # border pixels, almost always 0 in training, by a tiny std, so one stray stroke at test
        # time becomes a value in the hundreds (MNIST: 0.974 test accuracy against 0.98 val).
        if not shaped:
            scale = "standard"
        elif model_type in ("mlp", "perceptron", "autoencoder") and looks_like_pixels(X_train):
            scale = "pixels"
        elif model_type in ("mlp", "perceptron", "custom"):
            scale = "standard"
        else:
            scale = "channel"
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
    axes = channel_axes(list(X_train.shape[1:]), "rnn" if model_type == "rnn" else "cnn", conv_dims)
    s = channel_scaler(X_train, axes)
    n = int(np.prod(s.mean.shape))
    what = "per input feature over all time steps" if model_type == "rnn" else f"per channel ({n} channel(s))"
    return s, f"scale: z-score {what}, fitted on the training split only{auto}: shaped inputs keep one scale across positions)"


def prepare_reconstruction(table, spec):
    """Autoencoders: split and scale the inputs; each split's target is its own (scaled) input."""
    from trainwell.data.labels import LabelCoder
    from trainwell.data.pipeline import Prepared, Preprocessor
    from trainwell.data.split import split_indices

    X = table.X
    n = X.shape[0]
    if n < 3:
        raise UserError(f"An autoencoder needs at least 3 rows to split into train/val/test; got {n}.")
    tr, va, te, how = split_indices(n, None, spec.data.split, spec.train.seed, has_test=table.X_test is not None)
    X_tr, X_va = X[tr], X[va]
    X_te = table.X_test if table.X_test is not None else X[te]
    notes = ["task: reconstruction (an autoencoder learns to reproduce its inputs; labels, if any, are ignored)", how]
    scaler, note = (None, None) if spec.data.scale == "none" else choose_scaler(
        X_tr, spec.data.scale, "autoencoder", spec.model.conv_dims)
    if scaler is not None:
        X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
        notes.append(note)
    coder = LabelCoder("reconstruction", [], int(np.prod(X.shape[1:])), False)
    pre = Preprocessor(coder=coder, scaler=scaler, input_shape=list(X.shape[1:]),
                       feature_names=list(table.feature_names))
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in (X_tr, X_va, X_te)]
    raw_y = table.y_test if table.X_test is not None else (table.y[te] if table.y is not None else None)
    prep = Prepared(pre, arrays[0], arrays[0], arrays[1], arrays[1], arrays[2], arrays[2], name=table.name,
                    notes=notes, raw_test=(table.X_test if table.X_test is not None else X[te], raw_y))
    return prep
