"""A run directory you can trust (docs/checkpoints.md, "What a run directory guarantees"): fit never
writes over a run (refuse, --resume, --overwrite that puts the old run back on failure), one writer at
a time (a lock, stale locks taken over), predictions never over the run or the input, unfinished runs
recognised, stable default names, a custom module run on load only when trusted and only from its
checked copy, every file checksummed and every model.json field validated."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import trainwell as tw
from trainwell.cli import app
from trainwell.core.io import atomic_write
from trainwell.run.manifest import _canonical
from trainwell.run.rundir import LOCK
from trainwell.core.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402

FAST = ["train.epochs=3", "train.progress=false", "model.ensemble=1"]
SRC = Path(__file__).resolve().parents[1] / "src" / "trainwell"


def invoke(*args: str):
    """The CLI in-process: (exit code, output); a traceback is never an acceptable answer."""
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code in (0, 2), (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    return res.exit_code, " ".join(res.output.split())


def sets(*extra: str) -> list[str]:
    return [a for s in [*FAST, *extra] for a in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("trust") / "run"
    code, out = invoke("fit", "iris", "--out", d, *sets())
    assert code == 0, out
    return d


@pytest.fixture
def run(trained, tmp_path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(trained, d)
    return d


@pytest.fixture
def features(tmp_path) -> Path:
    from sklearn.datasets import load_iris
    X = load_iris(as_frame=True).data.iloc[::10]
    path = tmp_path / "new.csv"
    X.rename(columns=lambda c: c).to_csv(path, index=False)
    return path


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def reseal_json(d: Path, edit) -> None:
    """Edit model.json and recompute its body checksum: a determined forger, not a damaged disk."""
    doc = json.loads((d / "model.json").read_text())
    edit(doc)
    body = {k: v for k, v in doc.items() if k != "body_sha256"}
    doc["body_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    (d / "model.json").write_text(json.dumps(doc))


# --------------------------------------------------------------------------- never lose work
def test_fit_refuses_an_existing_run_and_says_how_to_continue(run):
    before = snapshot(run)
    code, out = invoke("fit", "iris", "--out", run, *sets())
    assert code == 2
    assert f"trainwell fit --resume {run}" in out and f"--out {run}-2" in out and "--overwrite" in out
    assert snapshot(run) == before
    with pytest.raises(UserError, match="overwrite=True"):
        tw.fit("iris", sets=FAST, out=run, verbose=False)
    assert snapshot(run) == before


def test_overwrite_replaces_only_once_the_new_run_finished(run):
    (run / "old-marker.txt").write_text("from the first run")
    code, out = invoke("fit", "iris", "--out", run, "--overwrite", *sets("train.seed=3"))
    assert code == 0, out
    assert not (run / "old-marker.txt").exists() and (run / "model.json").exists()
    assert "seed: 3" in (run / "spec.yaml").read_text()
    assert [p.name for p in run.parent.iterdir() if p.name.startswith(".")] == []     # nothing left aside
    back = tw.load(run)
    assert back.spec.train.seed == 3


def test_overwrite_that_diverges_puts_the_old_run_back(run):
    before = snapshot(run)
    code, out = invoke("fit", "digits", "--out", run, "--overwrite",   # as test_checkpoint's NaN test
                       *sets("optim.name=sgd", "optim.lr=1e6", "model.hidden=[32]", "checkpoint.every_steps=1"))
    assert code == 2 and "NaN" in out, out
    assert "previous run was put back" in out
    assert snapshot(run) == before
    assert [p.name for p in run.parent.iterdir() if p.name.startswith(".")] == []


def test_a_replaced_run_left_aside_by_a_killed_overwrite_is_named(run):
    """SIGKILL between moving the old run aside and finishing the new one: the next refusal says where it is."""
    aside = run.parent / f".{run.name}.replaced-0123abcd"
    aside.mkdir()
    code, out = invoke("fit", "iris", "--out", run, *sets())
    assert code == 2 and f"the run it replaced is kept in {aside}" in out


def test_overwrite_in_python_that_fails_puts_the_old_run_back(run):
    before = snapshot(run)

    class Boom:
        def on_epoch_end(self, state):
            raise RuntimeError("disk exploded")

    with pytest.raises(RuntimeError, match="disk exploded"):
        tw.fit("iris", sets=FAST, out=run, overwrite=True, verbose=False, callbacks=[Boom()])
    assert snapshot(run) == before


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_lock_refuses_a_second_writer_and_a_dead_ones_lock_is_taken_over(tmp_path):
    d = tmp_path / "locked"
    d.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (d / LOCK).write_text(f"{sleeper.pid} {os.uname().nodename}\n")
        code, out = invoke("fit", "iris", "--out", d, *sets())
        assert code == 2 and "being written by another trainwell process" in out and str(sleeper.pid) in out
    finally:
        sleeper.kill()
        sleeper.wait()
    (d / LOCK).write_text(f"{_dead_pid()} {os.uname().nodename}\n")      # killed: a stale lock
    code, out = invoke("fit", "iris", "--out", d, *sets())
    assert code == 0, out
    assert not (d / LOCK).exists()                                          # released at the end


def test_resume_of_a_run_being_written_is_refused(run):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(f"{sleeper.pid} {os.uname().nodename}\n")
        code, out = invoke("fit", "--resume", run)
        assert code == 2 and "being written by another trainwell process" in out
        code, out = invoke("fit", "iris", "--out", run, "--overwrite", *sets())
        assert code == 2 and "being written by another trainwell process" in out
        assert (run / "model.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_predict_never_writes_over_the_run_or_the_input(run, features):
    before, data = snapshot(run), features.read_bytes()
    for target in (run / "model.safetensors", run / "spec.yaml", run / "model.json"):
        code, out = invoke("predict", run, features, "--out", target)
        assert code == 2 and "never write over a run" in out
    code, out = invoke("predict", run, features, "--out", features)
    assert code == 2 and "would destroy the data" in out
    assert snapshot(run) == before and features.read_bytes() == data
    code, out = invoke("predict", run, features, "--out", features.parent / "p.csv")
    assert code == 0, out
    assert len(pd.read_csv(features.parent / "p.csv")) == 15


def test_an_unfinished_run_is_recognised_with_the_resume_command(run, features):
    (run / "model.json").unlink()
    (run / "model.safetensors").unlink()
    for args in (("predict", run, features), ("evaluate", run), ("diagnose", run), ("report", run)):
        code, out = invoke(*args)
        assert code == 2 and f"trainwell fit --resume {run}" in out, (args, out)
    with pytest.raises(UserError, match="unfinished run"):
        tw.load(run)


def test_resume_takes_no_data_nor_other_settings(run):
    for extra in (["iris"], ["--out", "elsewhere"], ["--seed", "3"], ["--target", "y"], ["--overwrite"]):
        code, out = invoke("fit", *extra, "--resume", run)
        assert code == 2 and "--resume continues" in out, (extra, out)


def test_resume_refuses_a_spec_edited_since_the_checkpoint(run):
    text = (run / "spec.yaml").read_text()
    lr = re.search(r"\n  lr: (\S+)", text).group(1)
    (run / "spec.yaml").write_text(text.replace(f"\n  lr: {lr}", "\n  lr: 0.5", 1))
    code, out = invoke("fit", "--resume", run)
    assert code == 2 and "was edited after checkpoint" in out and f"optim.lr is 0.5 in spec.yaml but {lr}" in out


# --------------------------------------------------------------------------- stable names
def test_default_names_are_the_data_name_then_numbered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = invoke("fit", "iris", *sets())
    assert code == 0 and "run directory: runs/iris; report: runs/iris/report.html" in out, out
    code, out = invoke("fit", "iris", *sets())
    assert code == 0 and "run directory: runs/iris-2;" in out
    (tmp_path / "runs" / "iris-7").mkdir()                       # never hand out a name below one in use
    code, out = invoke("fit", "iris", *sets())
    assert code == 0 and "run directory: runs/iris-8;" in out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["iris", "iris-2", "iris-7", "iris-8"]
    assert tw.load("runs/iris").spec.data.source == "iris"


# --------------------------------------------------------------------------- every file verified
def test_one_flipped_bit_in_the_weights_is_refused(run, features):
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-3] ^= 0x01                                              # a weight, not the header
    (run / "model.safetensors").write_bytes(bytes(data))
    for args in (("predict", run, features, "--out", run.parent / "p.csv"), ("evaluate", run), ("report", run)):
        code, out = invoke(*args)
        assert code == 2 and "model.safetensors does not match the sha256" in out, out
    assert not (run.parent / "p.csv").exists()


def test_an_edited_model_json_is_refused(run):
    doc = json.loads((run / "model.json").read_text())
    doc["architecture"]["hidden"] = [17]
    (run / "model.json").write_text(json.dumps(doc))
    code, out = invoke("evaluate", run)
    assert code == 2 and "model.json does not match its own checksum" in out


@pytest.mark.parametrize("edit,words", [
    (lambda d: d.__setitem__("architecture", [1, 2]), "invalid field architecture"),
    (lambda d: d["architecture"].pop("n_inputs"), "invalid field architecture.n_inputs"),
    (lambda d: d["architecture"].__setitem__("hidden", [10**11]), "invalid field architecture.hidden.0"),
    (lambda d: d["architecture"].__setitem__("hidden", [17]), "do not describe the same network"),
    (lambda d: d["files"].pop("spec.yaml"), "does not list spec.yaml"),
    (lambda d: d.__setitem__("format", "trainwell-model/1"), "older trainwell"),
])
def test_every_model_json_field_is_validated_before_building(run, edit, words):
    reseal_json(run, edit)
    code, out = invoke("evaluate", run)
    assert code == 2 and words in out, out


def test_a_file_a_load_would_read_but_not_listed_is_refused(run):
    (run / "diagnosis.json").unlink()
    reseal_json(run, lambda d: d["files"].pop("diagnosis.json"))
    assert invoke("evaluate", run)[0] == 0                       # absent and unlisted: fine
    (run / "diagnosis.json").write_text('{"findings": "planted"}')
    code, out = invoke("diagnose", run)
    assert code == 2 and "diagnosis.json is not listed in model.json" in out


def test_diagnose_save_keeps_the_checksums_right(run):
    assert invoke("diagnose", run, "--save")[0] == 0
    assert invoke("diagnose", run)[0] == 0


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")

    def half(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="Could not write .*No space left"):
        atomic_write(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# --------------------------------------------------------------------------- nothing executed on load
MARKING = '''
import pathlib
import torch
from torch import nn

pathlib.Path({marker!r}).write_text("executed")


class Net(nn.Module):
    def __init__(self, n_in=4, n_out=3):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.lin(x)
'''


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run of a module that writes a marker file when imported: the marker shows every execution."""
    root = tmp_path_factory.mktemp("custom")
    marker = root / "executed.txt"
    source = root / "net.py"
    source.write_text(MARKING.format(marker=str(marker)))
    d = root / "run"
    res = run_cli("fit", "iris", "--model", f"{source}:Net", "--out", str(d), *sets())   # another process:
    assert res.returncode == 0, res.stderr                      # this one has never imported the module
    marker.unlink()
    return d, marker


def test_a_custom_module_is_copied_with_its_sha256(custom_run):
    d, _ = custom_run
    arch = json.loads((d / "model.json").read_text())["architecture"]
    assert arch["module_file"] == "module.py"
    assert arch["module_sha256"] == hashlib.sha256((d / "module.py").read_bytes()).hexdigest()


def test_a_custom_module_runs_only_when_trusted_and_only_from_its_checked_copy(custom_run, tmp_path, features):
    d, marker = custom_run
    run = tmp_path / "run"
    shutil.copytree(d, run)
    for args in (("predict", run, features, "--out", tmp_path / "p.csv"), ("evaluate", run), ("diagnose", run),
                 ("report", run), ("evaluate", run, "--checkpoint", "last"), ("summary", run), ("export", run)):
        code, out = invoke(*args)
        assert code == 2 and f"runs the Python file {run / 'module.py'}" in out and "--trust-module" in out, out
    with pytest.raises(UserError, match="trust_module=True"):
        tw.load(run)
    assert not marker.exists()                                   # nothing ran
    code, out = invoke("predict", run, features, "--out", tmp_path / "p.csv", "--trust-module")
    assert code == 0, out
    assert invoke("summary", run, "--trust-module")[0] == 0
    assert marker.exists()                                       # the copy ran, because we said so
    marker.unlink()
    (run / "module.py").write_text((run / "module.py").read_text() + "\n# edited\n")
    code, out = invoke("evaluate", run, "--trust-module")
    assert code == 2 and "module.py does not match the sha256" in out and not marker.exists()


def test_a_module_path_outside_the_run_is_never_imported(custom_run, tmp_path):
    d, marker = custom_run
    run = tmp_path / "run"
    shutil.copytree(d, run)
    evil = tmp_path / "evil.py"
    evil.write_text(MARKING.format(marker=str(marker)))
    marker.unlink(missing_ok=True)
    for edit in (lambda a: a.__setitem__("module_file", str(evil)),
                 lambda a: a.__setitem__("module_file", "../evil.py"),
                 lambda a: (a.pop("module_file"), a.__setitem__("module", f"{evil}:Net"))):
        fresh = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        shutil.copytree(run, fresh)
        reseal_json(fresh, lambda doc: edit(doc["architecture"]))
        code, out = invoke("evaluate", fresh, "--trust-module")
        assert code == 2, out
    assert not marker.exists()


def test_resuming_a_custom_run_needs_trust(custom_run, tmp_path):
    d, marker = custom_run
    run = tmp_path / "run"
    shutil.copytree(d, run)
    marker.unlink(missing_ok=True)
    code, out = invoke("fit", "--resume", run)
    assert code == 2 and "--trust-module" in out and not marker.exists()


# --------------------------------------------------------------------------- no pickle, no import of paths
BUILTINS = {"exec", "eval", "compile", "__import__"}          # as names: `.eval()`/`.compile` are torch's
LOADERS = {"spec_from_file_location", "exec_module", "module_from_spec", "spec_from_loader", "run_path",
           "run_module", "load_module", "import_module", "SourceFileLoader"}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "shelve", "marshal", "joblib", "runpy", "cloudpickle"}


def _uses(tree: ast.AST):
    """(enclosing function, name) for every name, attribute and import in ``tree`` (strings and comments skipped)."""
    def walk(node: ast.AST, fn: str):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            if isinstance(child, ast.Name):
                yield fn, f"name {child.id}"
            elif isinstance(child, ast.Attribute):
                yield fn, child.attr
            elif isinstance(child, ast.Import):
                yield from ((fn, f"import {a.name}") for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                yield from ((fn, f"import {child.module}.{a.name}") for a in child.names)
            yield from walk(child, inner)
    yield from walk(tree, "<module>")


def _imports_only_own_submodules(tree: ast.AST) -> bool:
    """Every ``import_module`` call in ``tree`` names a submodule of the calling package itself
    (``f"{__name__}.{...}"``): the topology registry imports the files of its own folder, nothing a file names."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "import_module"]
    def own(arg: ast.AST) -> bool:
        return (isinstance(arg, ast.JoinedStr) and len(arg.values) >= 2
                and isinstance(arg.values[0], ast.FormattedValue)
                and isinstance(arg.values[0].value, ast.Name) and arg.values[0].value.id == "__name__"
                and isinstance(arg.values[1], ast.Constant) and str(arg.values[1].value).startswith("."))
    return bool(calls) and all(len(c.args) == 1 and own(c.args[0]) for c in calls)


def test_src_has_no_pickle_no_torch_load_and_one_function_that_executes_a_file():
    """No pickle-family module, no torch.load, and every way of running a file (exec, compile, importlib's
    loaders) only inside nn/custom.py's _execute; importlib elsewhere only asks whether a package is
    installed (find_spec), reads its version (metadata) or imports trainwell's own modules by fixed name (or, in
    the topology registry, the submodules of its own folder)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        where = str(path.relative_to(SRC))
        for fn, name in _uses(tree):
            trusted = where == "nn/custom.py" and fn == "_execute"
            base = name.removeprefix("import ").split(".")[0]
            last = name.rsplit(".", 1)[-1].removeprefix("name ")
            if name.startswith("import ") and base in UNSAFE_MODULES:
                offenders.append(f"{where}:{fn}: {name}")
            elif (name.removeprefix("name ") in BUILTINS and name.startswith("name ") or last in LOADERS) \
                    and not trusted and not (last == "import_module" and where == "__init__.py") \
                    and not (last == "import_module" and where == "nn/topologies/__init__.py"
                             and _imports_only_own_submodules(tree)):
                offenders.append(f"{where}:{fn}: {name}")
        text = path.read_text()
        if re.search(r"torch\.(export\.|jit\.)?load\(|torch\.serialization", text) \
                or re.search(r"allow_pickle\s*=\s*True", text):
            offenders.append(f"{where}: torch.load / torch.export.load / torch.jit.load / allow_pickle=True")
    assert not offenders, offenders
    import trainwell
    assert all(m.startswith("trainwell.") for m in trainwell._LAZY.values())   # import_module: fixed names


def test_the_topology_registry_exception_admits_only_its_own_submodules():
    """The one import_module allowed outside __init__.py names ``f"{__name__}.<file>"``; any other argument
    (a name read from somewhere, another package's path) is still an offender."""
    assert _imports_only_own_submodules(ast.parse('importlib.import_module(f"{__name__}.{info.name}")'))
    assert not _imports_only_own_submodules(ast.parse("importlib.import_module(name)"))
    assert not _imports_only_own_submodules(ast.parse('importlib.import_module(f"{package}.{name}")'))
    assert not _imports_only_own_submodules(ast.parse('importlib.import_module(f"{__name__}{name}")'))
    assert not _imports_only_own_submodules(ast.parse("x = 1"))      # no call: nothing to allow
