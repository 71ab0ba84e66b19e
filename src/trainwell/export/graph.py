"""The whole prediction path of a run as one ``nn.Module``: graph inputs -> decoded outputs.

What goes into the exported graph (everything numeric that ``Run.predict`` does after reading the
table, in the same order and the same float precision):

1. one-hot encoding of category columns from their integer codes (``(other)`` included),
2. missing values filled with the training statistic, plus the missing indicators,
3. engineered features (``data.features: [squares]``),
4. scaling: z-score (float64, as numpy does it), robust scaling + smooth clipping, per-channel and
   pixel scaling of images and sequences,
5. the network in evaluation mode (a packed ensemble averages its members, batch norm is folded),
6. the head: temperature (calibration), softmax / sigmoid, or for regression the target's z-score
   inverted, ``expm1`` (after the smearing shift) where the target was logged, and the clip to the training range.

What stays outside (``export/runtime.py``, driven by the JSON file written beside the graph):
reading text — numbers written as text, yes/no, dates into their features — and mapping category
strings to the integer codes of step 1 (a string tensor op would tie the graph to one runtime's
string support), and turning class indices back into class names.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainwell.data.scaling import RobustScaler, Standardizer
from trainwell.core.errors import UserError


def _f64(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


class Encode(nn.Module):
    """``numbers`` [N, F] and ``codes`` [N, C] -> the encoded columns in training order (float32)."""

    def __init__(self, layout: list[tuple[str, int, int]]):
        super().__init__()
        self.layout = layout           # per kept column: ("numbers", first, width) or ("codes", index, width)

    def forward(self, numbers: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        for kind, start, width in self.layout:
            if kind == "numbers":
                parts.append(numbers[:, start:start + width])
            else:
                slots = torch.arange(width, dtype=torch.int64)
                parts.append((codes[:, start:start + 1] == slots).to(torch.float32))
        return torch.cat(parts, dim=1)


class Impute(nn.Module):
    """NaN -> the training fill value; one 0/1 indicator per raw column that had missing values."""

    def __init__(self, fill: list[float], indicators: list):
        super().__init__()
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32))
        self.groups = [list(cols) for _, cols in indicators]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nan = torch.isnan(x)
        out = torch.where(nan, self.fill, x)
        extra = [nan[:, cols].any(dim=1, keepdim=True).to(torch.float32) for cols in self.groups]
        return torch.cat([out, *extra], dim=1) if extra else out


class Scale(nn.Module):
    """The stored scaler, computed in float64 like data/scaling.py, returned as float32."""

    def __init__(self, scaler):
        super().__init__()
        self.robust = isinstance(scaler, RobustScaler)
        if self.robust:
            self.register_buffer("center", _f64(scaler.median))
            self.register_buffer("factor", _f64(scaler.factor))
            self.register_buffer("keep", torch.as_tensor(np.asarray(scaler.keep, dtype=bool)))
            self.linear = scaler.n_linear > 0      # heavy-tailed columns appended again as plain z-scores
            if self.linear:
                self.register_buffer("copied", torch.as_tensor(np.flatnonzero(scaler.linear), dtype=torch.long))
                self.register_buffer("mean", _f64(scaler.mean))
                self.register_buffer("std", _f64(scaler.std))
                self.held = scaler.low is not None          # copies held in their training range
                if self.held:
                    self.register_buffer("low", _f64(scaler.low))
                    self.register_buffer("high", _f64(scaler.high))
            self.binned = scaler.n_bins > 0        # the piecewise-linear encoding (data/piecewise.py)
            if self.binned:
                self.register_buffer("bin_column", torch.as_tensor(scaler.piecewise.column, dtype=torch.long))
                self.register_buffer("bin_lower", _f64(scaler.piecewise.lower))
                self.register_buffer("bin_width", _f64(scaler.piecewise.width))
        elif isinstance(scaler, Standardizer):
            self.register_buffer("center", _f64(scaler.mean).unsqueeze(0))
            self.register_buffer("spread", _f64(scaler.std).unsqueeze(0))
        else:
            raise UserError(f"data.scale={getattr(scaler, 'kind', type(scaler).__name__)} cannot be exported: the "
                            f"quantile transform needs the inverse normal CDF, which ONNX has no operator for. "
                            f"Retrain with data.scale=robust (the default for tables) or standard, then export.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if self.robust:
            z = (x - self.center) * self.factor
            out = torch.where(self.keep, z, z / torch.sqrt(1.0 + (z / 3.0) ** 2)).to(torch.float32)
            if self.linear:
                copies = (torch.index_select(x, 1, self.copied) - self.mean) / self.std
                if self.held:
                    copies = torch.minimum(torch.maximum(copies, self.low), self.high)
                out = torch.cat([out, copies.to(torch.float32)], dim=1)
            if self.binned:
                bins = (torch.index_select(x, 1, self.bin_column) - self.bin_lower) / self.bin_width
                out = torch.cat([out, torch.clamp(bins, 0.0, 1.0).to(torch.float32)], dim=1)
            return out
        return ((x - self.center) / self.spread).to(torch.float32)


class Decode(nn.Module):
    """Regression outputs -> original units: z-score inverted, expm1 (after the smearing shift) where
    logged, clipped (float64)."""

    def __init__(self, pre):
        super().__init__()
        ts, plan = pre.target_scaler, pre.target
        n = pre.coder.n_outputs
        self.register_buffer("mean", _f64(ts.mean if ts is not None else np.zeros(n)).reshape(1, -1))
        self.register_buffer("std", _f64(ts.std if ts is not None else np.ones(n)).reshape(1, -1))
        logged = plan.log if plan is not None else [False] * n
        self.register_buffer("logged", torch.as_tensor(np.asarray(logged, dtype=bool)).reshape(1, -1))
        shift = plan.shift if plan is not None and plan.shift is not None else [0.0] * n
        self.register_buffer("shift", _f64(shift).reshape(1, -1))   # smearing (train/smearing.py)
        self.clip = plan is not None and plan.low is not None
        if self.clip:
            self.register_buffer("low", _f64(plan.low).reshape(1, -1))
            self.register_buffer("high", _f64(plan.high).reshape(1, -1))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(torch.float64).reshape(v.shape[0], -1) * self.std + self.mean
        v = v.to(torch.float32).to(torch.float64)      # Standardizer.inverse returns float32, as predict does
        v = torch.where(self.logged, torch.expm1(torch.clamp(v + self.shift, max=700.0)), v)
        if self.clip:
            v = torch.minimum(torch.maximum(v, self.low), self.high)
        return v.to(torch.float32)


class Pipeline(nn.Module):
    """Graph inputs -> (probabilities, label index) for classifiers, (value,) for regression,
    (code,) for an autoencoder's encoder."""

    def __init__(self, run, layout: list | None, encoder_only: bool = False):
        super().__init__()
        pre = run.pre
        self.task = pre.task
        self.encode = Encode(layout) if layout else None
        self.impute = Impute(pre.impute, pre.indicators) if pre.impute is not None and len(pre.input_shape) == 1 \
            else None
        self.squares = "squares" in (pre.features or [])
        self.scale = Scale(pre.scaler) if pre.scaler is not None else None
        self.model = run.model
        self.head = run.head
        self.encoder_only = encoder_only
        self.decode = Decode(pre) if self.task == "regression" else None

    def forward(self, numbers: torch.Tensor, codes: torch.Tensor | None = None):
        x = self.encode(numbers, codes) if self.encode is not None else numbers
        if self.impute is not None:
            x = self.impute(x)
        if self.squares:
            x = torch.cat([x, x * x], dim=1)
        if self.scale is not None:
            x = self.scale(x)
        if self.encoder_only:
            return (self.model.encode(x).float(),)
        out = self.head.transform(self.model(x).float())
        if self.task == "regression":
            return (self.decode(out),)
        if self.task == "binary":
            p = out.reshape(-1)
            return torch.stack([1.0 - p, p], dim=1), (p >= 0.5).to(torch.int64)
        if self.task == "multilabel":
            return out, (out >= 0.5).to(torch.int64)
        return out, out.argmax(dim=-1)
