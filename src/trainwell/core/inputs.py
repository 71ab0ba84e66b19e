"""How a network reads a row: the contract between ``data/`` (which shapes and scales rows) and ``nn/``.

``data/`` and ``nn/`` do not import each other (docs/architecture.md), yet scaling depends on
the network: a table for an MLP is scaled per feature, an image for a CNN per channel, a
sequence for an RNN per input feature over time, and an autoencoder's inputs are its targets.
Each topology (``nn/topologies/<name>.py``) declares an :class:`InputLayout` with plain values;
the assembly hands it to ``data.pipeline.prepare``. :func:`conv_layout` is the shape rule both
sides need: ``data/`` to find the channel axis, ``nn/`` to size the convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainwell.core.errors import UserError


@dataclass(frozen=True)
class InputLayout:
    """What ``data/`` needs to know of a topology to prepare its inputs (defaults: a dense net on a table).

    ``shaped``: rows of 2-D data are images/signals/sequences, not a table of features (rows with
    two or more axes each are shaped for every topology). ``pixels``: ``data.scale=auto`` may scale
    values that look like pixel intensities to [0, 1]. ``auto_scale``: ``data.scale=auto`` for other
    shaped rows. ``axes``: what ``channel`` scaling shares one mean/std over (``conv``: all positions
    of a channel; ``sequence``: all time steps of an input feature). ``table_scale``: ``data.scale=
    auto`` for a 2-D table (None: as shaped rows), with ``table_why`` as its reason. ``reconstructs``:
    the inputs are the targets (autoencoders; labels, if any, are ignored).
    """

    shaped: bool = False
    pixels: bool = True
    auto_scale: Literal["standard", "channel"] = "standard"
    axes: Literal["conv", "sequence"] = "conv"
    table_scale: Literal["robust", "standard"] | None = "robust"
    table_why: str = "a table for an MLP; data.scale=standard|quantile|none to change"
    reconstructs: bool = False


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
