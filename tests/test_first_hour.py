"""A new user's first mistakes get an answer they can act on: names in the wrong case or misspelt, a list
without brackets, the scikit-learn habit ``fit(X, y)``, a folder of Parquet parts, and the lines `lr-find`,
`--version` and `summary` print."""
from __future__ import annotations

import shlex
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_iris
from torch import nn

import trainwell as tw
from trainwell.diagnose.lr_finder import LRFindResult, fit_commands
from trainwell.core.errors import UserError, did_you_mean
from trainwell.nn.summary import layer_rows
from trainwell.core.spec import Spec


def test_a_name_in_the_wrong_case_is_suggested_in_the_right_one(cli, tmp_path):
    assert did_you_mean("Relu", ["elu", "relu", "selu"]) == ' Did you mean "relu"?'   # not the closer "elu"
    assert did_you_mean("ADAM", ["adam", "nadam"]) == ' Did you mean "adam"?'
    assert did_you_mean("regresion", ["auto", "regression", "binary"]) == ' Did you mean "regression"?'
    res = cli("fit", "iris", "--set", "model.activation=Relu", cwd=tmp_path)
    assert res.returncode == 2 and 'Did you mean "relu"?' in res.stderr, res.stderr


def test_a_misspelt_task_gets_a_did_you_mean():
    with pytest.raises(UserError, match='task = \'regresion\' is not allowed.*Did you mean "regression"\\?'):
        Spec.build(sets=["task=regresion"])


@pytest.mark.parametrize("value", ["64,32", "(64, 32)"])
def test_a_list_without_brackets_shows_the_bracket_syntax(value):
    with pytest.raises(UserError) as exc:
        Spec.build(sets=[f"model.hidden={value}"])
    message = str(exc.value)
    assert "write a list in brackets" in message and '--set "model.hidden=[64,' in message
    assert "expected 'auto' or 'heuristic'" not in message          # the other branch's complaint only confuses
    assert Spec.build(sets=["model.hidden=[64,32]"]).model.hidden == [64, 32]   # and the syntax shown works


def test_fit_takes_arrays_in_the_scikit_learn_order():
    X, y = load_iris(return_X_y=True)
    run = tw.fit(X, y, verbose=False, save=False, train={"epochs": 3, "seed": 0})
    same = tw.fit(X=X, y=y, verbose=False, save=False, train={"epochs": 3, "seed": 0})
    assert run.spec.data.source == "arrays" and run.predict(X[:5]).shape == (5,)
    np.testing.assert_array_equal(run.predict_proba(X), same.predict_proba(X))
    with pytest.raises(UserError, match=r"tw.fit\(X, y\)"):
        tw.fit(X, verbose=False, save=False)


def test_a_folder_of_parquet_parts_trains_without_options(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=(X[:, 0] + X[:, 1] > 0).astype(int))
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        frame.iloc[i * 200:(i + 1) * 200].to_parquet(parts / f"part-{i}.parquet")
    run = tw.fit(str(parts), sets=["data.target=y", "train.epochs=20"], verbose=False, save=False)
    assert run.pre.task == "binary" and run.metrics["test"]["accuracy"] > 0.8


def test_version_is_the_installed_distributions(cli, tmp_path):
    res = cli("--version", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"trainwell {version('trainwell')}"


def test_lr_find_prints_fit_commands_that_are_valid_specs():
    result = LRFindResult(lrs=[1e-3], losses=[1.0], smoothed=[1.0], steepest_lr=0.0153, divergence_lr=0.43,
                          half_divergence_lr=0.215, min_loss_lr=0.1, suggested_lr=0.0153, stopped_early=True)
    lines = fit_commands("digits", None, ["model.hidden=[64, 32]", "data.target=y"], result)
    assert lines[0] == "use it: trainwell fit digits --set 'model.hidden=[64, 32]' --set data.target=y --set optim.lr=0.0153"
    for line in lines:
        argv = shlex.split(line.split(": ", 1)[1])
        assert argv[:3] == ["trainwell", "fit", "digits"]
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        spec = Spec.build(sets=sets)
        assert spec.model.hidden == [64, 32]
    assert spec.schedule.name == "onecycle" and spec.schedule.max_lr == 0.215
    assert Spec.build(sets=shlex.split(lines[0])[-1:]).optim.lr == 0.0153


class Shared(nn.Module):
    """One layer used twice: listed twice, its parameters counted once."""

    def __init__(self):
        super().__init__()
        self.layer, self.out = nn.Linear(4, 4), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.cat([self.layer(x), self.layer(-x)], dim=1))


def test_layer_summary_shapes_and_parameters():
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    rows = layer_rows(mlp, [64])
    assert [(r["name"], r["type"], r["output"], r["parameters"]) for r in rows] == [
        ("0", "Linear", ["N", 32], 64 * 32 + 32), ("1", "ReLU", ["N", 32], 0), ("2", "Linear", ["N", 10], 330)]
    shared = Shared()
    rows = layer_rows(shared, [4])
    assert [r["name"] for r in rows] == ["layer", "layer", "out"]
    assert sum(r["parameters"] for r in rows) == sum(p.numel() for p in shared.parameters()) == 20 + 27
    assert shared.training                                   # left as it was


def test_layer_summary_of_a_packed_ensemble_marks_the_batch_where_it_is():
    """A packed ensemble's layers compute [members, batch, units]: N is the second dimension there."""
    from trainwell.nn.ensemble import PackedMLP
    model = PackedMLP({"members": 8, "task": "binary", "n_inputs": 12, "hidden": [16], "n_outputs": 1,
                       "activation": "relu"})
    rows = layer_rows(model, [12])
    assert [(r["name"], r["output"], r["parameters"]) for r in rows] == [
        ("blocks.0.linear", [8, "N", 16], 8 * (12 * 16 + 16)), ("blocks.0.act", [8, "N", 16], 0),
        ("out", [8, "N", 1], 8 * 17)]
