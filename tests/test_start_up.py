"""Start-up cost (issue 16): what ``import trainwell`` and a built-in fit import, and the NumPy
replacements for scikit-learn's split, metrics and toy data, checked equal to scikit-learn's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn import datasets, metrics as skm
from sklearn.model_selection import train_test_split

from trainwell.data.sources import _load_builtin
from trainwell.data.split import shuffle_split
from trainwell.optim.eager import eager, torch_class
from trainwell.train.metrics import classification_metrics, regression_metrics


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


def test_import_trainwell_loads_no_heavy_module():
    loaded = _modules_after("import trainwell")
    assert not loaded & {"torch", "pandas", "sklearn", "matplotlib", "optuna", "scipy"}


def test_cli_help_loads_no_heavy_module():
    loaded = _modules_after("import sys; sys.argv = ['trainwell', '--help']\n"
                            "from trainwell.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass")
    assert "typer" in loaded
    assert not loaded & {"torch", "pandas", "sklearn", "matplotlib", "optuna", "scipy"}


def test_fit_on_a_builtin_imports_neither_sklearn_nor_dynamo():
    code = ("import trainwell as tw\n"
            "tw.fit('iris', save=False, verbose=False, sets=['train.epochs=2'])\n")
    out = subprocess.run([sys.executable, "-c", code + "import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "sklearn" not in out and "scipy" not in out
    assert "torch._dynamo" not in out       # optim/eager.py: torch's optimizers without the dynamo wrappers


def test_fit_with_its_report_imports_neither_matplotlib_nor_sklearn(tmp_path):
    """A binary run with its run directory (every report figure, the ROC and precision-recall curves
    included) draws SVG itself (report/svg.py): matplotlib's import alone cost about half a second."""
    code = ("import trainwell as tw\n"
            f"tw.fit('breast_cancer', out={str(tmp_path / 'r')!r}, verbose=False, sets=['train.epochs=2'])\n")
    out = subprocess.run([sys.executable, "-c", code + "import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "matplotlib" not in out and "sklearn" not in out and "scipy" not in out
    assert "ROC and precision-recall curves" in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes", "iris", "wine"])
def test_builtin_data_equals_scikit_learns(name):
    bunch = getattr(datasets, f"load_{name}")()
    table = _load_builtin(name, 0)
    np.testing.assert_array_equal(table.X, np.asarray(bunch.data, dtype=np.float32))
    np.testing.assert_array_equal(table.y, bunch.target)
    assert table.y.dtype == np.asarray(bunch.target).dtype
    assert table.feature_names == [str(f) for f in bunch.feature_names]


@pytest.mark.parametrize("seed", range(12))
def test_shuffle_split_equals_train_test_split(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    k = int(rng.integers(3, n // 3))
    strata = rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05])
    for s in (None, strata):
        want_rest, want_taken = train_test_split(np.arange(n), test_size=k, random_state=seed, stratify=s)
        rest, taken = shuffle_split(n, k, s, seed)
        np.testing.assert_array_equal(rest, want_rest)
        np.testing.assert_array_equal(taken, want_taken)


def test_shuffle_split_refuses_what_scikit_learn_refuses():
    strata = np.array([0] * 9 + [1])          # a class with one row cannot be stratified
    with pytest.raises(ValueError):
        train_test_split(np.arange(10), test_size=2, random_state=0, stratify=strata)
    with pytest.raises(ValueError):
        shuffle_split(10, 2, strata, 0)


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1), 2)      # rounded: ties in the scores
    got = classification_metrics("binary", y, p)
    pred = (p >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert got["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    c = 5
    yc = rng.integers(0, c - 1, 150)                                        # class 4 never occurs
    proba = rng.random((150, c)) + np.eye(c)[yc] * rng.random((150, 1))
    got = classification_metrics("multiclass", yc, proba)
    pc, labels = proba.argmax(1), list(range(c))
    for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[key] == pytest.approx(fn(yc, pc, average="macro", labels=labels, zero_division=0), abs=1e-12)
    assert got["confusion_matrix"] == skm.confusion_matrix(yc, pc, labels=labels).tolist()
    ym = rng.integers(0, 2, (100, 3))
    pm = rng.random((100, 3))
    got = classification_metrics("multilabel", ym, pm)
    bm = (pm >= 0.5).astype(int)
    assert got["subset_accuracy"] == pytest.approx(skm.accuracy_score(ym, bm), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(ym, bm, average="macro", zero_division=0), abs=1e-12)
    np.testing.assert_allclose(got["per_label_f1"], skm.f1_score(ym, bm, average=None, zero_division=0), atol=1e-12)


def test_regression_metrics_equal_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(80, 2)) * [1.0, 30.0]
    p = y + rng.normal(size=(80, 2))
    got = regression_metrics(y, p)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    const = np.full((10, 1), 3.0)
    assert regression_metrics(const, const)["r2"] == skm.r2_score(const, const) == 1.0
    assert regression_metrics(const, const + 1)["r2"] == skm.r2_score(const, const + 1) == 0.0


@pytest.mark.parametrize("cls, kw", [(torch.optim.Adam, {"fused": True}), (torch.optim.AdamW, {"foreach": True}),
                                     (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}), (torch.optim.NAdam, {})])
def test_eager_optimizer_steps_like_torchs(cls, kw):
    """Same weights, state dict and lr schedule as torch's class, bit for bit, and resumable."""
    def train(make, steps=6, state=None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
        opt = make(model.parameters(), lr=0.05, **kw)
        if state is not None:
            opt.load_state_dict(state)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        X = torch.randn(32, 5, generator=torch.Generator().manual_seed(1))
        for _ in range(steps):
            opt.zero_grad()
            model(X).pow(2).mean().backward()
            opt.step()
            sched.step()
        return model, opt
    ref, ref_opt = train(cls)
    got, got_opt = train(eager(cls))
    assert torch_class(got_opt) is cls and isinstance(got_opt, cls)
    for a, b in zip(ref.parameters(), got.parameters()):
        assert torch.equal(a, b)
    assert str(ref_opt.state_dict()) == str(got_opt.state_dict())
    assert [g["lr"] for g in got_opt.param_groups] == [0.05 * 0.5 ** 3]
    loaded = train(eager(cls), steps=0, state=ref_opt.state_dict())[1]
    assert str(loaded.state_dict()["state"]) == str(ref_opt.state_dict()["state"])


def test_estimator_writes_nothing_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = datasets.load_iris(return_X_y=True)
    tw_cls = __import__("trainwell").Classifier
    clf = tw_cls(hidden=(8,), epochs=100, ensemble=1).fit(X, y)
    assert list(tmp_path.iterdir()) == []              # no run directory, checkpoint or report by default
    assert clf.score(X, y) > 0.8                       # a trained model (3 epochs of 5 steps are still the init)
    tw_cls(hidden=(8,), epochs=3, ensemble=1, report=str(tmp_path / "r")).fit(X, y)
    assert (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "model.safetensors").exists()


def test_the_command_waits_passively_at_openmp_barriers_unless_told(monkeypatch):
    """``trainwell`` sets OMP_WAIT_POLICY=PASSIVE before torch loads (busy cores: 5x the wall time without it,
    docs/performance.md); a value the user set is kept."""
    from trainwell.cli import common
    monkeypatch.setattr(common, "app", lambda: None)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert common.run() == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    common.run()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    code = ("import os, sys\nsys.argv = ['trainwell', '--help']\nfrom trainwell.cli.common import run\nrun()\n"
            "print('policy=' + os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    last = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.split()[-2:]
    assert last == ["policy=PASSIVE", "False"]          # set in a process where torch is not loaded yet


LEAVE = """
import atexit, os, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
out = Path(sys.argv[1])
class Teardown:
    def __del__(self):
        os.write(1, b"torn down")          # runs only when the interpreter clears this module
KEEP = Teardown()
atexit.register(lambda: (out / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (out / "thread").write_text("done")
threading.Thread(target=late).start()
pool = ThreadPoolExecutor(2)               # idle workers: a normal exit stops them; so must leave()
pool.submit(lambda: None).result()
sys.stdout.write("buffered ")              # no newline: still in the buffer when main() ends
sys.argv = ["trainwell"] + sys.argv[2:]
from trainwell.cli import main
main()
"""


@pytest.mark.parametrize("args, code", [(["list"], 0), (["fit", "no-such.csv", "--target", "y"], 2)])
def test_the_command_leaves_without_the_teardown_and_keeps_what_a_normal_exit_does(tmp_path, args, code):
    """``trainwell`` ends with os._exit after what Py_FinalizeEx does first (join the non-daemon threads,
    stop idle pools, run atexit handlers, flush stdout): the modules' teardown (0.4-0.55 s once torch is
    imported) is skipped, nothing a command or a handler writes is lost, the exit code is kept."""
    done = subprocess.run([sys.executable, "-c", LEAVE, str(tmp_path), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == code, done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"
    assert done.stdout.startswith("buffered ")
    assert "torn down" not in done.stdout
    assert "Traceback" not in done.stderr
    if code == 2:
        assert "no-such.csv" in done.stderr
    # the same script without main() is torn down as usual: the check above can fail
    plain = subprocess.run([sys.executable, "-c", LEAVE.replace("main()\n", "pass\n"), str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "torn down" in plain.stdout


COLLECTOR = """
import gc, json, sys
import trainwell.api
seen = []
real_fit = trainwell.api.fit
def spy(*args, **kwargs):
    seen.append((gc.isenabled(), gc.get_freeze_count()))
    return real_fit(*args, **kwargs)
trainwell.api.fit = spy
sys.argv = ["trainwell", "fit", "iris", "--out", sys.argv[1], "--set", "train.epochs=3"]
from trainwell.cli.common import run
code = run()
print(json.dumps({"code": code, "in_fit": seen, "after": gc.isenabled()}))
"""


def test_the_command_imports_with_the_collector_paused_and_trains_with_it_on(tmp_path):
    """``trainwell`` pauses the cyclic garbage collector while a command imports torch and pandas (each full
    collection walks their million objects), then freezes what was imported and trains with the collector
    on, so the command's own garbage is collected (docs/performance.md)."""
    done = subprocess.run([sys.executable, "-c", COLLECTOR, str(tmp_path / "r")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and len(result["in_fit"]) == 1
    enabled, frozen = result["in_fit"][0]
    assert enabled and frozen > 100_000                    # torch's, pandas' and trainwell's objects, frozen
    assert result["after"]


def test_a_command_that_fails_early_leaves_the_collector_as_it_found_it(monkeypatch):
    """A command that ends before its imports (a usage error, ``--help``) turns the collector back on without
    freezing anything; a collector the caller had turned off stays off."""
    import gc
    from trainwell.cli import common
    monkeypatch.setattr(common, "app", lambda: None)
    frozen = gc.get_freeze_count()
    assert common.run() == 0 and gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        assert common.run() == 0 and not gc.isenabled()
        common.imports_done()
        assert not gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.enable()
