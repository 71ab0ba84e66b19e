"""Bad input is a message, always: exit code 2 and one readable paragraph naming what, where and how to
fix it, never a traceback, never minutes of work before the refusal (issue 15, "Tracebacks instead of a
message" and "Smaller")."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import trainwell as tw
from trainwell.cli import app
from trainwell.diagnose import diagnose, overfit_check
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec
from trainwell.train import memory
from trainwell.tune import tune

FAST = ["train.epochs=2", "model.hidden=[8]", "train.progress=false"]


def invoke(*args: str):
    """The CLI in-process (typer's runner): exit code and output as a user sees them."""
    res = CliRunner().invoke(app, list(args))
    text = res.output                      # click 8.2+: stdout and stderr, as a terminal shows them
    assert "Traceback" not in text and not isinstance(res.exception, (RuntimeError, ValueError, TypeError)), text
    return res.exit_code, " ".join(text.split())


def bomb(levels: int, width: int = 9) -> str:
    """A "billion laughs" YAML: each level an alias list of ``width`` copies of the level below."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"model: {{hidden: *a{levels}}}"]) + "\n"


# --------------------------------------------------------------------------- memory
def test_a_network_too_large_for_memory_is_refused_before_allocating(cli, tmp_path):
    """The issue's command: a message with the parameter count and the free memory, exit 2, quickly."""
    res = cli("fit", "iris", "--set", "model.hidden=[100000000000]", "--out", str(tmp_path / "run"))
    text = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "800,000,000,003 parameters" in text and "free on cpu" in text and "model.hidden" in text


def test_memory_estimate_against_the_formula():
    """Parameters of a packed MLP by hand; 5 float32 copies per parameter and two per kept activation."""
    arch = {"type": "mlp", "members": 8, "n_inputs": 4, "hidden": [10], "n_outputs": 3}
    params = 8 * ((4 + 1) * 10 + (10 + 1) * 3)
    need, counted = memory.estimate_bytes(arch, batch=32)
    assert counted == params == 664
    assert need == 4 * (5 * params + 2 * 32 * 8 * (4 + 2 * 10 + 3))


def test_parameter_count_of_other_models_allocates_nothing():
    """A CNN's count on the meta device equals the parameters of the real model built from the same arch."""
    from trainwell.build import load_prepared, resolve_architecture
    from trainwell.nn.topologies import build_model
    spec, prep = load_prepared(Spec.build(sets=["data.source=digits", "model.type=cnn"]))
    arch, _ = resolve_architecture(spec, prep)
    real = sum(p.numel() for p in build_model(dict(arch)).parameters())
    assert memory.parameter_count(arch) == real > 0


def test_free_memory_is_read_from_the_system():
    free = memory.available_bytes(torch.device("cpu"))
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert free is not None and 0 < free <= total


def test_too_little_memory_refuses_before_any_model_is_built(monkeypatch):
    """With the free memory patched below the estimate, fit stops before the model's constructor runs."""
    from trainwell import build
    built = []
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    monkeypatch.setattr(build, "build_model", lambda arch: built.append(arch))
    with pytest.raises(UserError, match=r"needs about .* but only 1,000 bytes of memory is free"):
        tw.fit("iris", sets=FAST, save=False, verbose=False)
    assert built == []


# --------------------------------------------------------------------------- spec files
def test_a_binary_spec_file_is_refused_as_not_text(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    code, text = invoke("fit", "iris", "--spec", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and "is not UTF-8 text (byte 128 is 0x80)" in text and str(path) in text


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """A billion laughs (9 levels: 9**9 values once expanded) is refused in well under a second of CPU time."""
    path = tmp_path / "spec.yaml"
    path.write_text(bomb(9))
    t0 = time.process_time()
    with pytest.raises(UserError, match=r"expands to [\d,]+ values once its YAML aliases") as exc:
        Spec.build(path)
    assert time.process_time() - t0 < 1.0
    assert len(str(exc.value)) < 400


def test_errors_quoting_a_large_value_stay_readable(tmp_path):
    """A smaller bomb passes the bound but is not a valid width list: the message is cut, not 857 KB."""
    path = tmp_path / "spec.yaml"
    path.write_text(bomb(3))
    code, text = invoke("fit", "iris", "--spec", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and "model.hidden" in text and "more characters)" in text
    assert len(text) < 2500, len(text)


def test_duplicate_keys_in_a_spec_are_refused(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("optim:\n  lr: 0.1\n  name: adam\n  lr: 0.2\n")
    with pytest.raises(UserError, match=r'the key "lr" appears twice in one mapping \(lines 2 and 4\)'):
        Spec.build(path)
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.1]\noptim.lr: [0.2]\n")
    with pytest.raises(UserError, match=r'Search space file .* "optim.lr" appears twice'):
        tune("iris", space=space, trials=1, sets=FAST, out=tmp_path / "study", verbose=False)


def test_set_values_still_parse_and_bombs_in_them_are_refused():
    assert Spec.build(sets=["model.hidden=[16, 8]"]).model.hidden == [16, 8]
    assert Spec.build(sets=["data.source=a:b"]).data.source == "a:b"          # not YAML: the text itself
    with pytest.raises(UserError, match="appears twice"):
        Spec.build(sets=["data.augment={flip: true, flip: false}"])


# --------------------------------------------------------------------------- nonsense numbers
@pytest.mark.parametrize("args, words", [
    (["diagnose", "iris", "--overfit-check", "--n", "0"], "Invalid value for '--n'"),
    (["diagnose", "iris", "--overfit-check", "--steps", "0"], "Invalid value for '--steps'"),
])
def test_nonsense_numbers_on_the_command_line(args, words):
    code, text = invoke(*args)
    assert code == 2 and words in text, text


@pytest.mark.parametrize("call, words", [
    (lambda: overfit_check("iris", n=0), "n=0 is out of range: it must be at least 1"),
    (lambda: overfit_check("iris", steps=-3), "steps=-3 is out of range"),
    (lambda: tw.lr_find("iris", steps=1, verbose=False), "steps=1 is out of range: it must be at least 2"),
    (lambda: tw.lr_find("iris", start_lr=1.0, end_lr=0.1, verbose=False), "must be above start_lr"),
    (lambda: diagnose(None, bayes_error=1.5), "bayes_error=1.5 is out of range"),
    (lambda: tune("iris", trials=1, heartbeat=0, verbose=False), "--heartbeat=0 is out of range"),
])
def test_nonsense_numbers_in_python(call, words):
    with pytest.raises(UserError) as exc:
        call()
    assert words in str(exc.value)


# --------------------------------------------------------------------------- tables
def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_values_beyond_float32_are_refused_with_column_and_row(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{i % 2}" for i, (a, b) in enumerate(rng.random((40, 2)))]
    rows[6] = "0.5,-1e300,1"
    code, text = invoke("fit", str(_csv(tmp_path / "big.csv", "a,b,y", rows)), "--out", str(tmp_path / "run"))
    assert code == 2, text
    assert 'column "b"' in text and "-1e+300 in row 7 (line 8 of the file)" in text and "float32" in text
    assert "lr" not in text.split("float32")[0]                       # not blamed on the learning rate
    np.savez(tmp_path / "big.npz", X=np.array([[1.0, 2.0]] * 9 + [[3.0, 1e39]]), y=np.arange(10) % 2)
    with pytest.raises(UserError, match=r'feature|column "x1".*1e\+39 in row 10'):
        tw.fit(str(tmp_path / "big.npz"), sets=FAST, save=False, verbose=False)
    X = np.ones((20, 3))
    X[4, 2] = 5e38
    with pytest.raises(UserError, match=r'column "x2" of X holds 5e\+38 in row 5'):
        tw.fit(X=X, y=np.arange(20) % 2, sets=FAST, save=False, verbose=False)


def test_lr_find_suggests_nothing_from_nan_losses():
    """Inputs that are inf make every loss NaN, at the smallest lr too: no lr is 'suggested'."""
    from trainwell.diagnose import lr_range_test
    model = torch.nn.Linear(3, 2)
    X = torch.full((40, 3), math.inf)
    y = torch.zeros(40, dtype=torch.long)
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)
    with pytest.raises(UserError, match="NaN or inf from step 1 of the range test, at lr 1e-07 already"):
        lr_range_test(model, opt, torch.nn.functional.cross_entropy, X, y, steps=20)


def test_duplicate_column_names_are_refused(tmp_path):
    path = _csv(tmp_path / "dup.csv", "a,b,a,y,b", [f"{i},{i},{i},{i % 2},{i}" for i in range(30)])
    code, text = invoke("fit", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and 'names a column more than once: "a" (2 times), "b" (2 times)' in text, text
    frame = pd.DataFrame(np.ones((10, 2)), columns=["u", "u"])
    with pytest.raises(UserError, match='the X DataFrame names a column more than once: "u"'):
        tw.fit(X=frame, y=np.arange(10) % 2, sets=FAST, save=False, verbose=False)


def test_a_repeated_target_is_refused(tmp_path):
    code, text = invoke("fit", "iris", "--target", "target", "--target", "target", "--out", str(tmp_path / "run"))
    assert code == 2 and "names target more than once" in text, text


# --------------------------------------------------------------------------- tune
def test_tune_refuses_to_mix_a_changed_study(tmp_path):
    """A second tune on the same study with another space or base spec is refused (saying how to start a
    new study or force it); the same question resumes; --continue-study mixes knowingly."""
    space = {"optim.lr": [0.01, 0.03]}
    first = tune("iris", space=space, sampler="grid", trials=1, sets=FAST, out=tmp_path, threads=1, verbose=False)
    assert len(first.trials) == 1
    with pytest.raises(UserError, match=r"different the search space \(optim.lr\).*--study NEW_NAME.*--continue-study"):
        tune("iris", space={"optim.lr": [0.1, 0.3]}, sampler="grid", trials=2, sets=FAST, out=tmp_path,
                verbose=False)
    with pytest.raises(UserError, match=r"the base spec \(model.hidden\)"):
        tune("iris", space=space, sampler="grid", trials=2, sets=[*FAST, "model.hidden=[4]"], out=tmp_path,
                verbose=False)
    again = tune("iris", space=space, sampler="grid", trials=2, sets=FAST, out=tmp_path, threads=1, verbose=False)
    assert len(again.trials) == 2
    with pytest.raises(UserError, match=r"sampled optim.lr from other choices.*even with --continue-study"):
        tune("iris", space={"optim.lr": [0.1]}, sampler="grid", trials=3, sets=FAST, out=tmp_path,
                verbose=False, continue_study=True)
    mixed = tune("iris", space=space, sampler="random", trials=3, sets=[*FAST, "model.hidden=[4]"], out=tmp_path,
                    threads=1, verbose=False, continue_study=True)
    assert len(mixed.trials) == 3
    assert tw.Spec.from_yaml(tmp_path / mixed.trials.set_index("trial").loc[2, "run_dir"] / "spec.yaml").model.hidden == [4]


def test_tune_warns_when_trials_tie():
    from trainwell.tune.study_check import tie_warning
    frame = pd.DataFrame({"state": ["complete"] * 4 + ["pruned"], "val_accuracy": [1.0, 1.0, 1.0, 0.9, None]})
    assert "3 of 4 trials tie at the best val_accuracy 1" in tie_warning(frame, "val_accuracy")
    assert tie_warning(frame.iloc[2:], "val_accuracy") is None


def test_a_population_too_large_for_memory_is_refused_before_allocating():
    """fit(ensemble=P) trains P networks side by side (train/population.py): the estimate counts all P."""
    with pytest.raises(UserError, match=r"needs about .* \(640,000,000,012 parameters, batch"):
        tw.fit("iris", sets=["model.hidden=[20000000000]", "train.epochs=1"], ensemble=4, save=False,
               verbose=False)


def test_every_cli_error_is_one_readable_paragraph():
    """Whatever a message quotes, the CLI shows at most MESSAGE_LIMIT characters of it."""
    from trainwell import cli
    code, text = invoke("fit", "iris", "--set", "model." + "x" * 20_000 + "=1")
    assert code == 2 and "more characters)" in text and len(text) < cli.MESSAGE_LIMIT + 100, len(text)


def test_a_path_the_system_refuses_is_a_message(cli, tmp_path):
    res = cli("diagnose", str(tmp_path / ("x" * 5000)))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "File name too long" in res.stderr
