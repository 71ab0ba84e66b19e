"""Checkpoints never lose work: kills at many moments, corruption, pickle payloads, full disks,
signals and NaN — and every resume ends with exactly the weights of an uninterrupted run."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import trainwell
from trainwell.errors import UserError
from trainwell.train.checkpoint import CheckpointWarning, TrainingInterrupted

DRIVER = Path(__file__).with_name("ckpt_driver.py")
# small, on the DEFAULT training path (train.backward=auto: the hand-written MLP step, with the
# babysitting monitors on, whose sampled steps take autograd), with every source of state:
# dropout (torch RNG), a per-batch schedule (onecycle), Adam moments, early-stopping state,
# mid-epoch positions
SETS = ["train.epochs=3", "model.hidden=[32]", "train.progress=false", "model.dropout=0.1",
        "schedule.name=onecycle"]
ONE_NET = ["model.ensemble=1"] if "ensemble" in trainwell.Spec().model.model_dump() else []
SETS += ONE_NET          # one network: a packed ensemble of members does not take the hand-written step
NOISE = ["regularize.noise=0.05"]     # input noise (torch RNG): switches the hand-written step off
SCORES = ("train", "val", "test", "best_epoch", "epochs_run", "stopped_because")


def same_weights(a: Path, b: Path) -> None:
    """torch.equal on every tensor of the final model and of the last checkpoint; the same history
    (but the seconds) and the same scores."""
    for f in ("model.safetensors", "checkpoints/last/state.safetensors"):
        x, y = load_file(str(a / f)), load_file(str(b / f))
        assert x.keys() == y.keys(), f
        different = [k for k in x if not torch.equal(x[k], y[k])]
        assert not different, f"{f}: {different}"
    ha, hb = (pd.read_csv(d / "history.csv").drop(columns="seconds") for d in (a, b))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert {k: ma[k] for k in SCORES} == {k: mb[k] for k in SCORES}


def drive(tmp_path: Path, sets: list[str], attempts: list[dict], data: str = "digits") -> dict:
    plan = {"sets": sets, "data": data, "reference": str(tmp_path / "ref"), "run": str(tmp_path / "run"),
            "attempts": attempts}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if k != "TRAINWELL_FAULT"}
    res = subprocess.run([sys.executable, str(DRIVER), str(tmp_path / "plan.json")], capture_output=True,
                         text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    result["stderr"] = res.stderr[-3000:]      # the children's errors, for failure messages
    return result


def test_default_configuration_takes_the_hand_written_step(cli, tmp_path):
    """The resume tests below run the path users run: the hand-written step and the monitors."""
    res = cli("fit", "digits", *[a for s in [*SETS, "train.epochs=1"] for a in ("--set", s)],
              "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "step: MLP backward written out" in " ".join(res.stdout.split())
    assert (tmp_path / "run" / "diagnostics.csv").exists()          # monitors on


def test_sigkill_at_many_moments_resumes_exactly(tmp_path):
    """SIGKILL at 10 moments (mid-epoch, epoch boundary, four phases of a checkpoint write, from
    outside when a checkpoint appears) and a SIGTERM; each time the run resumes, and ends
    bit-identical to an uninterrupted run."""
    sets = [*SETS, "checkpoint.every_steps=5", "checkpoint.keep=2"]      # 45 steps per epoch
    attempts = [
        {"fault": "kill@step=3"},        # before any checkpoint: resume starts over
        {"fault": "kill@step=12"},       # mid-epoch, step-10 on disk
        {"fault": "kill@data=1"},        # step-15's tensors half written in the tmp dir
        {"fault": "kill@tmp=2"},         # step-20's tmp dir complete, never renamed
        {"fault": "kill@step=45"},       # last batch of epoch 1, before the epoch's end
        {"fault": "kill@swap=1"},        # epoch 2's `last`: old copy moved aside, new one not in place
        {"fault": "sigterm@step=100"},   # graceful: saves `last` mid-epoch, exits 143
        {"kill_when": "checkpoints/step-110"},   # from outside, as soon as step-110 is published
        {"fault": "kill@done=1"},        # published, before pruning old ones
        {"fault": "kill@step=134"},      # next-to-last step of the run
        {"fault": "kill@swap=1"},        # the final epoch's `last` swap
        {},                              # runs to the end
    ]
    result = drive(tmp_path, sets, attempts)
    assert result["reference"] == "exit:0"
    ended = [a["ended"] for a in result["attempts"]]
    expected = ["signal:9"] * 6 + ["exit:143"] + ["signal:9"] * 4 + ["exit:0"]
    assert ended == expected, (ended, result["stderr"])
    assert result["attempts"][7]["seen"], result["attempts"][7]
    same_weights(tmp_path / "ref", tmp_path / "run")
    leftovers = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers


def test_issue_15_wine_sigkill_after_checkpoints_resumes_exactly(tmp_path):
    """The issue's command on the default path: wine, seed 7, 60 epochs, a checkpoint every epoch,
    SIGKILL from outside as soon as checkpoint 2, 15 and 40 appear, then resume: torch.equal."""
    sets = ["train.seed=7", "train.epochs=60", "stop.patience=1000", "checkpoint.every=1", "train.progress=false"]
    attempts = [{"kill_when": f"checkpoints/epoch-{n}"} for n in (2, 15, 40)] + [{}]
    result = drive(tmp_path, sets, attempts, data="wine")
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9"] * 3 + ["exit:0"], (ended, result["stderr"])
    same_weights(tmp_path / "ref", tmp_path / "run")


def test_sigkill_with_input_noise_resumes_exactly(tmp_path):
    """The autograd path (input noise draws from the torch RNG every step): kills mid-epoch and
    from outside when a checkpoint appears."""
    sets = [*SETS, *NOISE, "checkpoint.every_steps=7"]
    attempts = [{"fault": "kill@step=30"}, {"kill_when": "checkpoints/step-70"}, {"fault": "sigint@step=100"}, {}]
    result = drive(tmp_path, sets, attempts)
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9", "signal:9", "exit:130", "exit:0"], (ended, result["stderr"])
    same_weights(tmp_path / "ref", tmp_path / "run")


@pytest.mark.slow
def test_sigkill_from_outside_at_many_checkpoints_resumes_exactly(tmp_path):
    """Eight SIGKILLs from outside, each as soon as a checkpoint appears (one every 3 steps,
    and one per epoch): the child is killed wherever it then is (training, writing, pruning)."""
    attempts = [{"kill_when": f"checkpoints/step-{n}"} for n in (9, 24, 42, 57, 75, 93, 108, 123)] + [{}]
    result = drive(tmp_path, [*SETS, "checkpoint.every_steps=3", "checkpoint.every=1"], attempts)
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9"] * 8 + ["exit:0"], (ended, result["stderr"])
    assert all(a["seen"] for a in result["attempts"][:8])
    same_weights(tmp_path / "ref", tmp_path / "run")


# --------------------------------------------------------------------------- in-process
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reference") / "run"
    trainwell.fit("digits", sets=[*SETS, "checkpoint.every_steps=10"], out=d, verbose=False)
    return d


@pytest.fixture
def base_run(reference, tmp_path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(reference, d)
    return d


def test_checkpoint_layout_and_retention(reference):
    names = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert names == ["best", "last", "step-110", "step-120", "step-130"]   # keep=3 numbered + best + last
    doc = json.loads((reference / "checkpoints" / "last" / "state.json").read_text())
    assert doc["format"] == "trainwell-checkpoint/1" and len(doc["tensors_sha256"]) == 64
    body = doc["body"]
    assert body["epoch"] == 3 and body["step"] == 135 and len(body["history"]) == 3
    assert (reference / "spec.yaml").exists()
    t = load_file(str(reference / "checkpoints" / "step-130" / "state.safetensors"))
    assert {"loop.permutation", "loop.epoch_loss", "loop.epoch_terms", "rng.torch", "rng.generator",
            "rng.numpy"} <= set(t) and any(k.startswith("optim.state.") for k in t)
    assert t["rng.torch"].dtype == torch.uint8


def test_load_any_checkpoint(reference):
    run = trainwell.load(reference, checkpoint="step-120")
    assert run.checkpoint == "step-120" and run.metrics["step"] == 120
    assert run.predict(load_digits_X()[:5]).shape == (5,)
    final = trainwell.load(reference, checkpoint="best")
    w = load_file(str(reference / "model.safetensors"))
    assert all(torch.equal(final.model.state_dict()[k], w[k]) for k in w)   # restore_best: model = best
    with pytest.raises(UserError, match="No checkpoint epoch-99"):
        trainwell.load(reference, checkpoint="epoch-99")
    with pytest.raises(UserError, match="not a checkpoint name"):
        trainwell.load(reference, checkpoint="../../etc")


def test_evaluate_checkpoint_cli(reference):
    from typer.testing import CliRunner

    from trainwell.cli import app
    res = CliRunner().invoke(app, ["evaluate", str(reference), "--checkpoint", "step-110"])
    assert res.exit_code == 0, res.output
    assert "checkpoint step-110" in res.output and "accuracy" in res.output


def load_digits_X():
    from sklearn.datasets import load_digits
    return load_digits().data


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


def test_damaged_checkpoints_fall_back_then_refuse(base_run):
    ck = base_run / "checkpoints"
    _flip(ck / "last" / "state.safetensors")                                   # bit flip in a weight
    raw = (ck / "step-130" / "state.safetensors").read_bytes()
    (ck / "step-130" / "state.safetensors").write_bytes(raw[: len(raw) // 3])  # truncated
    with pytest.warns(CheckpointWarning, match="last.*damaged.*sha256"):
        run = trainwell.load(base_run, checkpoint="last")
    assert run.checkpoint == "best"              # best is the end of epoch 3 too: the newest good one
    with pytest.warns(CheckpointWarning, match="truncated"):
        assert trainwell.load(base_run, checkpoint="step-130").checkpoint == "step-120"
    text = (ck / "step-120" / "state.json").read_text()
    (ck / "step-120" / "state.json").write_text(text.replace('"step": 120', '"step": 121'))  # JSON edit
    for name in ("best", "step-110"):
        _flip(ck / name / "state.safetensors", 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        with pytest.raises(UserError, match="No usable checkpoint.*checksum"):
            trainwell.load(base_run, checkpoint="last")
        with pytest.raises(UserError, match="No usable checkpoint"):
            trainwell.fit(resume=base_run, verbose=False)


class _Payload:
    """Runs code when unpickled: creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payloads_are_refused_and_never_run(base_run, tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))      # the payload is real: unpickling runs it
    assert control.exists()
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    ck = base_run / "checkpoints"
    for name in ("last", "best", "step-110", "step-120", "step-130"):
        (ck / name / "state.safetensors").write_bytes(payload)
        # even with a state.json whose checksum matches the pickle, the bytes are never unpickled
        doc = json.loads((ck / name / "state.json").read_text())
        import hashlib
        doc["tensors_sha256"], doc["tensors_bytes"] = hashlib.sha256(payload).hexdigest(), len(payload)
        (ck / name / "state.json").write_text(json.dumps(doc))
    torch.save({"x": _Payload(marker)}, ck / "last" / "state.pt")   # a torch.save file lying around
    (base_run / "model.safetensors").write_bytes(payload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        with pytest.raises(UserError):
            trainwell.load(base_run)
        with pytest.raises(UserError, match="No usable checkpoint"):
            trainwell.load(base_run, checkpoint="last")
        with pytest.raises(UserError, match="No usable checkpoint"):
            trainwell.fit(resume=base_run, verbose=False)
    assert not marker.exists()


class _FailWrites:
    """From epoch ``at`` on, writes into RUN/checkpoints fail with ``err`` (full disk, read-only)."""

    def __init__(self, monkeypatch, run_dir: Path, at: int, err: int, what: str = "write"):
        self.mp, self.root, self.at, self.err, self.what = monkeypatch, str(run_dir / "checkpoints"), at, err, what

    def on_epoch_end(self, state):
        if state.epoch != self.at:
            return
        err, root = self.err, self.root
        if self.what == "write":
            real = os.write

            def write(fd, data):
                if os.readlink(f"/proc/self/fd/{fd}").startswith(root):
                    raise OSError(err, os.strerror(err))
                return real(fd, data)
            self.mp.setattr(os, "write", write)
        else:
            real_mkdir = os.mkdir

            def mkdir(path, *a, **k):
                if str(path).startswith(root):
                    raise OSError(err, os.strerror(err), str(path))
                return real_mkdir(path, *a, **k)
            self.mp.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("err,what,words", [(errno.ENOSPC, "write", "disk is full"),
                                            (errno.EROFS, "mkdir", "read-only")])
def test_full_or_read_only_disk(reference, tmp_path, monkeypatch, err, what, words):
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match=f"Could not save checkpoint.*{words}.*Earlier checkpoints are intact"):
        trainwell.fit("digits", sets=[*SETS, "checkpoint.every_steps=10"], out=run_dir, verbose=False,
                      callbacks=[_FailWrites(monkeypatch, run_dir, 2, err, what)])
    monkeypatch.undo()
    ck = run_dir / "checkpoints"
    assert not [p for p in ck.iterdir() if p.name.startswith(".")]      # no half-written leftovers
    assert trainwell.load(run_dir, checkpoint="last").metrics["epoch"] == 1
    trainwell.fit(resume=run_dir, verbose=False)                        # space is back: carry on
    same_weights(reference, run_dir)


def test_sigint_mid_epoch_in_python_resumes_exactly(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("TRAINWELL_FAULT", "sigint@step=57")
    with pytest.raises(TrainingInterrupted) as info:
        trainwell.fit("digits", sets=[*SETS, "checkpoint.every_steps=10"], out=run_dir, verbose=False)
    assert info.value.exit_code == 130 and f"trainwell fit --resume {run_dir}" in info.value.message
    body = json.loads((run_dir / "checkpoints" / "last" / "state.json").read_text())["body"]
    assert (body["epoch"], body["batch_in_epoch"], body["step"]) == (1, 12, 57)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handlers put back
    monkeypatch.delenv("TRAINWELL_FAULT")
    trainwell.fit(resume=run_dir, verbose=False)
    same_weights(reference, run_dir)


def test_sigterm_mid_epoch_cli_resumes_exactly(cli, reference, tmp_path):
    """The real CLI: SIGTERM mid-epoch -> exit 143 with the resume command; resuming matches."""
    run_dir = tmp_path / "run"
    args = [a for s in SETS for a in ("--set", s)]
    res = subprocess.run([sys.executable, "-m", "trainwell", "fit", "digits", *args, "--out", str(run_dir)],
                         env={**os.environ, "COLUMNS": "200", "TRAINWELL_FAULT": "sigterm@step=70"},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 143, res.stderr
    assert f"trainwell fit --resume {run_dir}" in res.stderr and "Traceback" not in res.stderr
    body = json.loads((run_dir / "checkpoints" / "last" / "state.json").read_text())["body"]
    assert body["batch_in_epoch"] == 25 and body["mid_epoch"]
    res = cli("fit", "--resume", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert "resumed from checkpoints/last: epoch 2, batch 25 of 45" in res.stdout
    assert "step: MLP backward written out" in " ".join(res.stdout.split())      # the default path
    same_weights(reference, run_dir)     # the reference ran in this process: same thread count


def test_nan_stops_with_a_diagnosis_cli(tmp_path):
    from typer.testing import CliRunner

    from trainwell.cli import app
    run_dir = tmp_path / "run"
    res = CliRunner().invoke(app, ["fit", "digits", "--out", str(run_dir), "--set", "optim.name=sgd",
                                   "--set", "optim.lr=1e6", "--set", "checkpoint.every_steps=1",
                                   "--set", "train.progress=false", "--set", "model.hidden=[32]"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert "loss became NaN or inf at step" in text and "(epoch 1, batch" in text
    assert "gradient norm of layer" in text and "learning rate too high" in text
    assert "exploding gradients" in text and "bad input" in text
    assert "last good checkpoint is kept" in text
    name = text.split("--checkpoint ")[1].split("`")[0]
    good = trainwell.load(run_dir, checkpoint=name)              # and it is loadable
    assert all(torch.isfinite(p).all() for p in good.model.parameters())


def test_nan_rollback_halves_lr_and_finishes():
    """lr 6 from epoch 3 diverges; two rollbacks to the end of epoch 2 (6 -> 3 -> 1.5) and the run
    finishes exactly as a run that used 1.5 from epoch 3 on: the rollback restored everything."""
    base = ["train.epochs=5", "model.hidden=[32]", "train.progress=false", "optim.name=sgd", "optim.lr=0.5",
            "schedule.name=piecewise", "schedule.boundaries=[2]", "data.scale=standard", *ONE_NET]
    run = trainwell.fit("digits", sets=[*base, "schedule.values=[0.5,6]", "stop.on_nan=rollback"], save=False,
                        verbose=False)
    h = run.history
    assert h["lr"].tolist() == [0.5, 0.5, 1.5, 1.5, 1.5]     # 6 -> 3 -> 1.5: two rollbacks
    calm = trainwell.fit("digits", sets=[*base, "schedule.values=[0.5,1.5]"], save=False, verbose=False)
    pd.testing.assert_frame_equal(h.drop(columns="seconds"), calm.history.drop(columns="seconds"), check_exact=True)
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), calm.model.state_dict().values()))


def test_resume_refuses_other_settings(reference):
    with pytest.raises(UserError, match="do not pass data"):
        trainwell.fit(resume=reference, sets=["optim.lr=1"], verbose=False)
    with pytest.raises(UserError, match="no spec.yaml"):
        trainwell.fit(resume=reference / "checkpoints", verbose=False)


def test_run_files_are_replaced_atomically(tmp_path):
    """A save that dies half way leaves the previous spec.yaml whole (resume reads it; a truncated
    YAML would parse with defaults for the missing sections) and no temporary file behind."""
    from trainwell.run import _atomic
    path = tmp_path / "spec.yaml"
    path.write_text("schedule:\n  name: onecycle\n")

    def dies_half_way(p):
        p.write_text("schedule:\n")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _atomic(path, dies_half_way)
    assert path.read_text() == "schedule:\n  name: onecycle\n"
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]
    _atomic(path, lambda p: p.write_text("new\n"))
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]
