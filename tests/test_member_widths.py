"""Members of two widths (nn/member_widths.py, ``model.mixed_width=true``): half the packed members keep the
given width and half are 128 wide; the narrow members' unused units are zero and stay zero."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import trainwell as tw
from trainwell.core.errors import UserError
from trainwell.nn.ensemble import PackedMLP
from trainwell.nn.member_widths import WIDE, member_widths_choice, preserves_zero
from trainwell.nn.models import initialize
from trainwell.train.population import one_network

from conftest import SHARED

HOUSING = SHARED / "data" / "tabular" / "Housing.csv"
QUIET = ["train.progress=false"]


def choice(setting=True, **kw):
    return member_widths_choice(setting, **{**dict(members=8, hidden=[16], activation="relu"), **kw})


def test_two_widths_only_when_asked_half_narrow_half_wide():
    widths, line = choice()
    assert widths == [16] * 4 + [WIDE] * 4
    assert "4 members 16 units wide, 4 members 128 wide" in line and "model.mixed_width=true" in line
    assert choice(members=5, hidden=[32])[0] == [32] * 2 + [WIDE] * 3
    assert choice(False) == (None, "")
    assert tw.Spec.build({}).model.mixed_width is False          # the default: one width (docs/tabular.md)


@pytest.mark.parametrize("kw, why", [(dict(members=1), "one network"), (dict(hidden=[16, 8]), "2 hidden layers"),
                                     (dict(hidden=[256]), "already 256"), (dict(activation="softplus"), r"softplus\(0\) is not 0")])
def test_asking_for_it_where_it_cannot_hold_says_why(kw, why):
    with pytest.raises(UserError, match=why):
        choice(**kw)


def test_which_activations_keep_zero_at_zero():
    assert all(preserves_zero(a) for a in ("relu", "tanh", "gelu", "silu", "elu", "selu", "leaky_relu", "linear"))
    assert not any(preserves_zero(a) for a in ("sigmoid", "softplus"))


def test_narrow_members_start_as_networks_of_their_own_width():
    arch = {"members": 4, "task": "regression", "n_inputs": 5, "hidden": [16], "n_outputs": 1, "activation": "relu",
            "init": "he_uniform", "member_widths": [16, 16, WIDE, WIDE]}
    model = PackedMLP(arch)
    initialize(model, arch, seed=0)
    lin, out = model.blocks[0].linear, model.out
    assert lin.weight.shape == (4, WIDE, 5) and out.weight.shape == (4, 1, WIDE)
    for i in (0, 1):                                    # beyond the 16th unit: nothing in, no bias, nothing out
        assert not lin.weight[i, 16:].any() and not lin.bias[i, 16:].any() and not out.weight[i, :, 16:].any()
    for i, fan_in in ((0, 16), (2, WIDE)):              # He uniform of the member's own fan-in: sqrt(6 / fan_in)
        used = out.weight[i, :, :fan_in]
        assert used.abs().max() <= math.sqrt(6 / fan_in) and used.abs().max() > 0.5 * math.sqrt(6 / fan_in)
    assert lin.weight[2:].all()                         # the wide members use every unit


@pytest.mark.skipif(not HOUSING.exists(), reason="../shared/data/tabular is not checked out")
def test_on_a_small_real_regression_unused_units_stay_zero_to_the_prediction(tmp_path):
    run = tw.fit({"source": str(HOUSING), "target": "price"}, out=tmp_path / "run", verbose=False,
                 sets=[*QUIET, "model.mixed_width=true"])             # every other key the default
    assert run.arch["member_widths"] == [16] * 4 + [WIDE] * 4          # 546 rows: the heuristic gives 16
    assert run.arch["summary"].endswith("-16|128-1")
    model = tw.load(tmp_path / "run").model                             # through the saved weights
    lin, out = model.blocks[0].linear, model.out
    assert not lin.weight[:4, 16:].any() and not lin.bias[:4, 16:].any() and not out.weight[:4, :, 16:].any()
    assert lin.weight[:4, :16].any() and lin.weight[4:, 16:].any()     # both kinds trained

    # each narrow member is the heuristic's 16-unit network: its slice alone gives its output
    X = torch.randn(20, lin.in_features)
    members = model.member_outputs(X)                                   # [rows, members, outputs]
    for i in range(4):
        h = torch.relu(X @ lin.weight[i, :16].T + lin.bias[i, :16])
        torch.testing.assert_close(members[:, i], h @ out.weight[i, :, :16].T + out.bias[i])

    # the doctor counts the units members use: none of the narrow members' unused 4 x 112 units is "dead"
    diag = pd.read_csv(tmp_path / "run" / "diagnostics.csv")
    dead = diag.loc[diag["layer"] == "blocks.0.linear", "dead_frac"].dropna()
    assert len(dead) and (dead < 4 * (WIDE - 16) / (8 * WIDE)).all()


def test_a_population_trains_single_networks_of_the_heuristics_width():
    spec = tw.Spec.build({})
    arch = {"members": 8, "crossfit": True, "hidden": [16], "member_widths": [16] * 4 + [WIDE] * 4,
            "summary": "5-16|128-1"}
    one = one_network(spec, arch)
    assert one["members"] == 1 and one["hidden"] == [16] and "member_widths" not in one and "summary" not in one


def test_mixed_width_true_on_a_default_run_and_the_default_one_width():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] * 2 + np.sin(3 * X[:, 1])).astype(np.float32)
    on = tw.fit(X=X, y=y, verbose=False, save=False, sets=[*QUIET, "train.epochs=2", "model.mixed_width=true"])
    off = tw.fit(X=X, y=y, verbose=False, save=False, sets=[*QUIET, "train.epochs=2"])
    narrow = on.arch["hidden"][0]                      # 240 / ((4 + 1) * 2) = 24 -> 32
    assert narrow == 32 and on.arch["member_widths"] == [narrow] * 4 + [WIDE] * 4
    assert on.model.blocks[0].linear.weight.shape == (8, WIDE, 4)
    assert "member_widths" not in off.arch and off.model.blocks[0].linear.weight.shape == (8, narrow, 4)
