"""model.hidden auto / heuristic: the lecture notes' width N_h = N_s / ((N_i + N_o) * gamma), computed by hand."""
from __future__ import annotations

import pytest
import torch

from trainwell.build import resolve_architecture
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.nn.models import auto_hidden, default_hidden
from trainwell.core.spec import Spec


# (N_s, N_i, N_o) -> the width worked out by hand: gamma = 2, rounded to a power of two, at least 16 and the
# power of two at or above 2 N_o, at most 512; 10,000 rows or more add a halved second layer
@pytest.mark.parametrize("rows,inputs,outputs,want,raw", [
    (1437, 64, 10, [32], 9.7),        # digits: 1437/148 = 9.7 -> 8, raised to the floor 32 (2 x 10 -> 32)
    (5000, 10, 2, [256], 208.3),      # 5000/24 = 208.3 -> 2^8
    (3000, 100, 50, [128], 10.0),     # 3000/300 = 10 -> 8, floor 2^ceil(log2 100) = 128
    (400, 8, 1, [16], 22.2),          # 400/18 = 22.2 -> 2^4 = 16 (the 16 floor)
    (3000, 4, 1, [256], 300.0),       # 3000/10 = 300 -> 2^8 (log2 300 = 8.2)
    (50_000, 20, 3, [512, 256], 1087.0),   # 50000/46 = 1087 -> 1024, capped at 512; halved second layer
    (12_000, 784, 10, [32, 32], 7.6),      # 12000/1588 = 7.6 -> 8, raised to the floor 32 in both layers
])
def test_heuristic_width_by_hand(rows, inputs, outputs, want, raw):
    hidden, why = auto_hidden(rows, inputs, outputs)
    assert hidden == want
    assert f"= {raw:.1f}" in why and f"{rows}/(({inputs}+{outputs})*2)" in why


def test_auto_is_the_heuristic_below_10000_rows_and_256_128_from_there():
    assert default_hidden(9_999, 64, 10) == auto_hidden(9_999, 64, 10)
    assert default_hidden(10_000, 784, 10)[0] == [256, 128]
    assert default_hidden(60_000, 784, 10)[0] == [256, 128]


def test_a_default_run_resolves_auto_as_the_readme_says():
    """README tour: digits' default network is 64-32-10, with the formula shown."""
    spec = Spec.build(None, sets=["data.source=digits"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    arch, notes = resolve_architecture(spec, prep)
    assert arch["hidden"] == [32] and prep.X_train.shape == torch.Size([1437, 64])
    assert any("N_h = N_s/((N_i+N_o)*gamma) = 1437/((64+10)*2) = 9.7" in str(n) for n in notes)
