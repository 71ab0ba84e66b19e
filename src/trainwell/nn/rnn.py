"""Recurrent networks (docs/topologies/rnn.md): Elman (1990), LSTM (1997) and GRU (Cho et al. 2014) cells.

Input rows are sequences ``[T, F]`` (a ``[T]`` row is univariate, F = 1). The
recurrent stack (``layers`` deep, ``hidden_size`` wide, optionally
bidirectional, dropout between stacked layers) reads the whole sequence; the
final hidden state (both directions concatenated when bidirectional) feeds a
dense head (``hidden`` widths, default none) and the output layer. Recurrent
nets get gradient clipping by norm 1.0 unless the spec sets clipping
(nn/topologies/rnn.py).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwell.nn.cnn import dense_head

CELLS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNN(nn.Module):
    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.seq_shape = [int(s) for s in arch["seq_shape"]]
        layers, hs, bi = int(arch["layers"]), int(arch["hidden_size"]), bool(arch["bidirectional"])
        drop = float(arch.get("dropout", 0.0))
        self.cell = arch["cell"]
        self.rnn = CELLS[self.cell](self.seq_shape[1], hs, num_layers=layers, batch_first=True,
                                    dropout=drop if layers > 1 else 0.0, bidirectional=bi)
        self.directions = 2 if bi else 1
        self.head = dense_head(hs * self.directions, list(arch["hidden"]), int(arch["n_outputs"]),
                               arch["activation"], drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.seq_shape)
        _, h = self.rnn(x)
        if self.cell == "lstm":
            h = h[0]
        last = h[-self.directions:]                        # [directions, B, H]: the top layer
        return self.head(last.transpose(0, 1).flatten(1))
