"""Property: a damaged or tampered run directory never gives a traceback, a wrong answer or code execution.

Hypothesis corrupts a copy of one small trained run (truncate, flip bytes, delete, rewrite a JSON value,
plant a pickle, a Python module, a symlink, a module reference in a re-checksummed model.json) and runs
one load command through the CLI's typer app in this process. Each must either work and print exactly
what the intact run prints, or exit 2 with an ``error:`` paragraph; and a planted module (which would
write a marker file when imported) must never run. docs/checkpoints.md cites this test.
"""
from __future__ import annotations

import hashlib
import json
import pickle  # noqa: S403 -- the test plants a pickle to show nothing ever opens it; src/ has none
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from trainwell.cli import app
from trainwell.run.manifest import _canonical

EXAMPLES = 200
COMMANDS = {
    "predict": lambda d, w: ["predict", d, w / "new.csv", "--out", w / "p.csv"],
    "evaluate": lambda d, w: ["evaluate", d],
    "checkpoint": lambda d, w: ["evaluate", d, "--checkpoint", "last"],
    "diagnose": lambda d, w: ["diagnose", d],
    "report": lambda d, w: ["report", d],
}


class Marker:
    """Unpickling this, or importing the planted module, writes the marker file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "unpickled"))


def _module(marker: Path) -> str:
    return (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
            "from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.lin = nn.Linear(4, 3)\n    def forward(self, x):\n        return self.lin(x)\n")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """ONE tiny run, trained once, and what each command prints (or writes) for it intact."""
    w = tmp_path_factory.mktemp("pristine")
    from sklearn.datasets import load_iris
    load_iris(as_frame=True).data.iloc[::10].to_csv(w / "new.csv", index=False)
    d = w / "run"
    res = CliRunner().invoke(app, ["fit", "iris", "--out", str(d), "--set", "train.epochs=3", "--set",
                                   "train.progress=false", "--set", "model.ensemble=1"])
    assert res.exit_code == 0, res.output
    expected = {}
    for name, args in COMMANDS.items():
        copy = Path(tempfile.mkdtemp(dir=w)) / "run"
        shutil.copytree(d, copy)
        res = CliRunner().invoke(app, [str(a) for a in args(copy, w)])
        assert res.exit_code == 0, (name, res.output)
        expected[name] = _answer(name, res.output, copy, w)
    return d, w, expected


def _answer(name: str, output: str, d: Path, w: Path) -> str:
    """What must not change: the predictions file, or the printed text without the run's own path."""
    if name == "predict":
        return (w / "p.csv").read_text()
    if name == "report":
        return "wrote report.html" if (d / "report.html").is_file() else "no report"
    return " ".join(output.replace(str(d), "RUN").split())


FILES = ["model.json", "model.safetensors", "spec.yaml", "history.csv", "metrics.json", "diagnosis.json",
         "diagnostics.csv", "data.json", "test_predictions.csv", "curves.svg", "report.html",
         "checkpoints/last/state.json", "checkpoints/last/state.safetensors", "checkpoints/best/state.json",
         "checkpoints/best/state.safetensors", "seen_rows.safetensors"]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
                    | st.text(max_size=8), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                               max_size=3), max_leaves=6)
ACTION = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.sampled_from(FILES), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.sampled_from(FILES + ["checkpoints"])),
    st.tuples(st.just("edit"), st.sampled_from([f for f in FILES if f.endswith(".json")]), st.integers(0, 10**6), JSON),
    st.tuples(st.just("plant"), st.sampled_from(["module.py", "evil.py", "model.pkl", "checkpoints/last/x.pkl",
                                                 "diagnosis.json", "reconstructions.png"])),
    st.tuples(st.just("custom"), st.sampled_from(["module.py", "../evil.py", "ABS"]), st.booleans()),
    st.tuples(st.just("symlink"), st.sampled_from(FILES)),
)


def _paths(doc, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _edit(path: Path, pick: int, value) -> None:
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:                          # already damaged by an earlier action: replace it whole
        doc = None
    spots = [p for p, _ in _paths(doc) if p]
    if not spots:
        path.write_text(json.dumps(value))
        return
    *parent, last = spots[pick % len(spots)]
    node = doc
    for k in parent:
        node = node[k]
    node[last] = value
    path.write_text(json.dumps(doc))


def _custom(d: Path, w: Path, where: str, reseal: bool, marker: Path) -> None:
    """model.json made to name a planted module; with ``reseal`` its checksums are recomputed (a forger)."""
    planted = {"module.py": d / "module.py", "../evil.py": d.parent / "evil.py", "ABS": w / "abs_evil.py"}[where]
    planted.write_text(_module(marker))
    doc = json.loads((d / "model.json").read_text())
    arch = doc["architecture"]
    arch.update(type="custom", module=f"{planted}:Net", module_kwargs={},
                module_file=str(planted) if where == "ABS" else where,
                module_sha256=hashlib.sha256(planted.read_bytes()).hexdigest())
    if reseal:
        if where == "module.py":
            doc["files"]["module.py"] = {"sha256": arch["module_sha256"], "bytes": planted.stat().st_size}
        body = {k: v for k, v in doc.items() if k != "body_sha256"}
        doc["body_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    (d / "model.json").write_text(json.dumps(doc))


def corrupt(d: Path, w: Path, action: tuple, marker: Path) -> None:
    kind, target = action[0], d / action[1]
    if kind in ("truncate", "flip", "delete", "edit", "symlink") and not (target.exists() or target.is_symlink()):
        return
    if kind == "truncate":
        data = target.read_bytes()
        target.write_bytes(data[:int(len(data) * action[2])])
    elif kind == "flip":
        data = bytearray(target.read_bytes())
        if data:
            data[min(int(len(data) * action[2]), len(data) - 1)] ^= action[3]
            target.write_bytes(bytes(data))
    elif kind == "delete":
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    elif kind == "edit":
        _edit(target, action[2], action[3])
    elif kind == "plant":
        target.parent.mkdir(parents=True, exist_ok=True)
        body = _module(marker) if target.suffix == ".py" else pickle.dumps(Marker(str(marker)))
        target.write_bytes(body.encode() if isinstance(body, str) else body)
    elif kind == "custom":
        _custom(d, w, action[1], action[2], marker)
    elif kind == "symlink":                     # the file replaced by a link to another one of the run
        target.unlink()
        target.symlink_to(d / "metrics.json")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=st.lists(ACTION, min_size=1, max_size=3), command=st.sampled_from(sorted(COMMANDS)))
def test_every_load_works_or_says_why_and_never_runs_anything(pristine, actions, command):
    source, w, expected = pristine
    case = Path(tempfile.mkdtemp(dir=w))
    try:
        d, marker = case / "run", case / "executed.txt"
        shutil.copytree(source, d, symlinks=True)
        for action in actions:
            corrupt(d, case, action, marker)
        args = [str(a) for a in COMMANDS[command](d, case if command == "predict" else w)]
        if command == "predict":
            shutil.copy(w / "new.csv", case / "new.csv")
        res = CliRunner().invoke(app, args)
        assert not marker.exists(), "a planted file was executed"
        assert res.exit_code in (0, 2), (res.exit_code, res.output, res.exception)
        assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
        assert "Traceback" not in res.output
        if res.exit_code == 2:
            assert "error:" in res.output and len(res.output) < 4000
            return
        touched_checkpoints = any(a[1].startswith("checkpoints") for a in actions if len(a) > 1)
        if command == "checkpoint" and touched_checkpoints:
            return                               # a damaged checkpoint is skipped for an older good one
        got = _answer(command, res.output, d, case if command == "predict" else w)
        assert got == expected[command], (actions, res.output)
    finally:
        shutil.rmtree(case, ignore_errors=True)
