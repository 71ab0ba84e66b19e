"""The user's own nn.Module: two branches (a shared layer + concatenation) through Python and the CLI,
its source copied into the run (run again on load only when trusted; no pickle), exact resume after kills, diagnosed by the doctor."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.core.errors import UserError
from trainwell.nn.custom import load_class

sys.path.insert(0, str(Path(__file__).parent))
from test_checkpoint import drive, same_weights  # noqa: E402

TWO_BRANCH = '''
import torch
from torch import nn


class TwoBranch(nn.Module):
    """One shared layer applied to both halves of the input, a second branch on all of it; concatenated."""

    def __init__(self, n_in=64, n_out=10, width=32):
        super().__init__()
        self.half = n_in // 2
        self.shared = nn.Linear(self.half, width)       # reused: the same weights see both halves
        self.act = nn.ReLU()
        self.whole = nn.Sequential(nn.Linear(n_in, width), nn.Tanh())
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(3 * width, n_out)

    def forward(self, x):
        a, b = x[:, :self.half], x[:, self.half:2 * self.half]
        h = torch.cat([self.act(self.shared(a)), self.act(self.shared(b)), self.whole(x)], dim=1)
        return self.out(self.drop(h))
'''


@pytest.fixture
def module_file(tmp_path):
    path = tmp_path / "two_branch.py"
    path.write_text(TWO_BRANCH)
    return path


def test_python_instance_trains_saves_loads(module_file, tmp_path):
    TwoBranch = load_class(f"{module_file}:TwoBranch")
    net = TwoBranch(n_in=64, n_out=10, width=24)
    run = tw.fit("digits", module=net, module_kwargs={"n_in": 64, "n_out": 10, "width": 24},
                 train={"epochs": 15}, out=tmp_path / "run", verbose=False)
    assert run.model is net                                   # the very object passed is trained
    assert run.metrics["test"]["accuracy"] > 0.9
    meta = json.loads((tmp_path / "run" / "model.json").read_text())["architecture"]
    assert meta["module"] == f"{module_file.resolve()}:TwoBranch" and meta["module_kwargs"]["width"] == 24
    with pytest.raises(UserError, match="--trust-module"):     # loading runs code: only when asked
        tw.load(tmp_path / "run")
    back = tw.load(tmp_path / "run", trust_module=True)       # rebuilt from the run's copy + class + kwargs
    assert type(back.model).__name__ == "TwoBranch"
    from sklearn.datasets import load_digits
    X = load_digits().data[:100]
    assert np.array_equal(back.predict(X), run.predict(X))
    layers = set(run.diagnostics["layer"])                    # the doctor hooks whatever Linear it finds
    assert {"shared", "whole.0", "out"} <= layers
    bv = run.diagnosis["bias_variance"]                       # the doctor's verdict on this run's own errors
    assert bv["train_error"] == pytest.approx(1 - run.metrics["train"]["accuracy"])
    assert bv["val_error"] == pytest.approx(1 - run.metrics["val"]["accuracy"])
    saved = json.loads((tmp_path / "run" / "diagnosis.json").read_text())
    assert [f["id"] for f in saved["findings"]] == [f["id"] for f in run.diagnosis["findings"]]
    assert not {f["id"] for f in saved["findings"]} & {"vanishing_gradients", "exploding_gradients", "dead_units",
                                                        "saturation", "lr_too_high", "lr_too_low"}   # a healthy net


def test_cli_model_option_and_doctor(cli, module_file, tmp_path):
    out = tmp_path / "cli"
    res = cli("fit", "digits", "--model", f"{module_file}:TwoBranch", "--set", "model.module_kwargs={width: 16}",
              "--set", "train.epochs=8", "--set", "train.progress=false", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "custom TwoBranch(width=16)" in res.stdout
    diag = pd.read_csv(out / "diagnostics.csv")
    assert {"shared", "whole.0", "out"} <= set(diag["layer"])
    res = cli("diagnose", str(out))
    assert res.returncode == 2 and "--trust-module" in res.stderr and "module.py" in res.stderr
    res = cli("diagnose", str(out), "--trust-module")
    assert res.returncode == 0, res.stderr[-2000:]
    res = cli("fit", "digits", "--model", f"{module_file}:Missing", "--out", str(tmp_path / "bad"))
    assert res.returncode == 2 and "no class Missing" in res.stderr and "TwoBranch" in res.stderr


def test_wrong_output_shape_is_a_clear_error(module_file):
    with pytest.raises(UserError, match=r"needs \[2, 10\]"):
        tw.fit("digits", module=f"{module_file}:TwoBranch", module_kwargs={"n_out": 3}, verbose=False, save=False)


def test_kill_and_resume_exactly(module_file, tmp_path):
    sets = ["model.type=custom", f"model.module={module_file}:TwoBranch", "model.module_kwargs={width: 16}",
            "train.epochs=3", "train.progress=false", "checkpoint.every_steps=7"]
    result = drive(tmp_path, sets, [{"fault": "kill@step=10"}, {"fault": "kill@step=60"}, {}], trust_module=True)
    assert result["reference"] == "exit:0"
    assert [a["ended"] for a in result["attempts"]] == ["signal:9", "signal:9", "exit:0"]
    same_weights(tmp_path / "ref", tmp_path / "run")
