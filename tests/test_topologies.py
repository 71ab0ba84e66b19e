"""The topology registry (nn/topologies/): every model.type is one file, listed, resolved and built the same way."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.markup import escape

import trainwell as tw
from trainwell.build import load_prepared, spec_for
from trainwell.core.errors import UserError
from trainwell.nn import topologies
from trainwell.nn.topologies import TOPOLOGIES, build_model, resolve_architecture, topology

NAMES = ("mlp", "cnn", "rnn", "autoencoder", "perceptron", "custom")    # the built-in ones

MODULE = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)
'''


def test_the_registry_is_the_folder():
    """One module per model.type, named after it; nothing registered by hand."""
    folder = Path(topologies.__file__).parent
    files = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert sorted(TOPOLOGIES) == files and set(NAMES) <= set(files)
    for name, t in TOPOLOGIES.items():
        assert t.name == name and t.description.strip() and "\n" not in t.description
        assert escape(t.description) == t.description, name   # `trainwell list` prints with rich: no [markup]


def test_trainwell_list_shows_every_topology(cli):
    """`trainwell list` has a "model types" table with one row per topology, the default mlp included."""
    res = cli("list")
    assert res.returncode == 0
    section = res.stdout.split("model types", 1)[1].split("model presets", 1)[0]
    rows = re.findall(r"^\W*([a-z_]+)\s+\W", section, flags=re.M)
    for name in TOPOLOGIES:
        assert name in rows, (name, section)
    assert set(NAMES) <= set(rows)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_each_topology_resolves_builds_and_fits_the_head(name, tmp_path):
    """On digits, each registered topology's architecture dict builds a network whose output is
    [rows, n_outputs] (one that reconstructs its inputs: the rows' own shape), with its summary."""
    sets = [f"model.type={name}"]
    if name == "custom":
        (tmp_path / "tiny.py").write_text(MODULE)
        sets.append(f"model.module={tmp_path / 'tiny.py'}:Tiny")
    spec, prep = load_prepared(spec_for("digits", None, sets, {}))
    arch, notes = resolve_architecture(spec, prep)
    assert arch["type"] == name and notes
    model = build_model(dict(arch))
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(prep.X_train[:5]))
    reconstructs = topology(name).inputs.reconstructs
    assert list(out.shape) == ([5, *prep.X_train.shape[1:]] if reconstructs else [5, 10])
    if topology(name).describe is not None:
        assert arch["summary"] == topology(name).describe(arch)
    assert np.array_equal(prep.y_train, prep.X_train) == reconstructs
    assert reconstructs == (name == "autoencoder") or name not in NAMES


def test_an_unknown_model_type_names_the_known_ones():
    with pytest.raises(UserError, match=r'model.type=cnnn is not .* Did you mean "cnn"\?.*mlp'):
        tw.fit("iris", sets=["model.type=cnnn", "train.epochs=1"], save=False, verbose=False)


CHANGED = {"hidden": "[7]", "activation": "tanh", "dropout": "0.3", "batchnorm": "true", "residual": "true",
           "preset": "self_normalizing", "ensemble": "4"}


@pytest.mark.parametrize("name", NAMES)
def test_a_key_a_topology_ignores_changes_nothing_and_is_named(name, tmp_path):
    """``Topology.ignores`` is true: each key listed there, set away from its default, builds the very same
    network as the default (or is refused outright), and fit names it in one warning instead of training
    as if it acted."""
    base = [f"model.type={name}"]
    if name == "custom":
        (tmp_path / "tiny.py").write_text(MODULE)
        base.append(f"model.module={tmp_path / 'tiny.py'}:Tiny")

    def network(extra):
        spec, prep = load_prepared(spec_for("digits", None, base + extra, {}))
        return repr(build_model(dict(resolve_architecture(spec, prep)[0])))

    plain = network([])
    assert set(topology(name).ignores) <= set(CHANGED)
    for key in topology(name).ignores:
        setting = f"model.{key}={CHANGED[key]}"
        try:
            with pytest.warns(UserWarning, match=rf"model\.{key}=.* not read by model\.type={name} .*no effect"):
                assert network([setting]) == plain, setting
        except UserError:
            assert name == "perceptron", setting     # it refuses hidden layers, dropout, batch norm, residual


def test_another_types_key_on_an_mlp_is_named_with_the_types_that_read_it(cli, tmp_path):
    """``model.channels`` on the default MLP trains the same MLP; the CLI says so in one line and names the
    types that read it. A default fit, and a key set to its default value, warn of nothing."""
    res = cli("fit", "iris", "--set", "model.channels=[16,32]", "--set", "model.cell=gru",
              "--set", "train.epochs=2", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    line = [ln for ln in res.stderr.splitlines() if "not read" in ln]
    assert line == ["warning: model.channels=[16, 32] is not read by model.type=mlp and has no effect on this run: "
                    "only model.type=autoencoder or cnn reads channels. Set model.type to the one meant, or remove "
                    "the setting (`trainwell list` describes the choices; docs/spec.md)."], res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tw.fit("iris", sets=["train.epochs=2", "model.ensemble=auto", "model.type=cnn", "model.ensemble=1"],
               save=False, verbose=False)


@pytest.mark.parametrize("sets,named", [
    (["data.target_transform=log", "data.clip_predictions=false"], "data.target_transform=\"log\", "
                                                                   "data.clip_predictions=false are not read by task=binary"),
    (["train.monitor=false", "train.monitor_every=3"], "train.monitor_every=3 is not read by train.monitor=false"),
])
def test_a_setting_another_key_rules_out_changes_nothing_and_is_named(sets, named):
    """A regression-only data key on a classifier, the monitors' sampling with the monitors off: the model is the
    very same (weights equal bit for bit) and one warning names the keys and what would read them."""
    base = ["data.source=breast_cancer", "train.epochs=2", "model.ensemble=1"]
    plain = tw.fit(sets=base + sets[:1] if sets[0].startswith("train.monitor=") else base, save=False, verbose=False)
    with pytest.warns(UserWarning, match=re.escape(named)):
        changed = tw.fit(sets=base + sets, save=False, verbose=False)
    for a, b in zip(plain.model.state_dict().values(), changed.model.state_dict().values()):
        assert torch.equal(a, b)
