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
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import trainwell
from trainwell.core.errors import UserError
from trainwell.train.checkpoint import CheckpointWarning, TrainingInterrupted

DRIVER = Path(__file__).with_name("ckpt_driver.py")
# small, on the DEFAULT training path (train.backward=auto: the hand-written MLP step, with the
# babysitting monitors on, whose sampled steps take autograd), with every source of state:
# dropout (torch RNG), a per-batch schedule (onecycle), Adam moments, early-stopping state,
# mid-epoch positions
SETS = ["train.epochs=12", "model.hidden=[32]", "train.progress=false", "model.dropout=0.1",
        "schedule.name=onecycle"]
ONE_NET = ["model.ensemble=1"]   # one network (the default here is a packed ensemble of 8, nn/ensemble.py)
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


def drive(tmp_path: Path, sets: list[str], attempts: list[dict], data: str = "digits", **options) -> dict:
    plan = {"sets": sets, "data": data, "reference": str(tmp_path / "ref"), "run": str(tmp_path / "run"),
            "attempts": attempts, **options}
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
    # 15 steps per epoch: a classifier's default batch of 128 (train/batch_size.py) over the 1,797 training,
    # validation and test rows the cross-fitted default pools (train/crossfit.py); 180 steps in the 12 epochs of SETS.
    # `last` is written with each epoch-N (and at the end, and on signals)
    sets = [*SETS, "checkpoint.every_steps=5", "checkpoint.every=1", "checkpoint.keep=2"]
    attempts = [
        {"fault": "kill@step=3"},        # before any checkpoint: resume starts over
        {"fault": "kill@step=12"},       # mid-epoch, step-10 on disk
        {"fault": "kill@data=1"},        # step-15's tensors half written in the tmp dir
        {"fault": "kill@tmp=2"},         # step-20's tmp dir complete, never renamed
        {"fault": "kill@step=26"},       # last batch of epoch 2, before the epoch's end
        {"fault": "kill@swap=1"},        # the next epoch's `last`: old copy moved aside, new one not in place
        {"fault": "sigterm@step=110"},   # graceful: saves `last` mid-epoch, exits 143
        {"kill_when": "checkpoints/step-120"},   # from outside, as soon as step-120 is published
        {"fault": "kill@done=1"},        # published, before pruning old ones
        {"fault": "kill@step=155"},      # next-to-last step of the run
        {"fault": "kill@swap=1"},        # the final epoch's `last` swap (epoch-12 is in place)
        {},                              # finished: puts the final `last` and `best` in place
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


# --------------------------------------------------------------------------- the write policy
class _Writes:
    """Records every CheckpointStore.write_many: (start, end, [(names, body)])."""

    def __init__(self, monkeypatch):
        from trainwell.train.checkpoint import CheckpointStore
        self.calls: list[tuple[float, float, list]] = []
        real = CheckpointStore.write_many

        def write_many(store, items):
            t0 = time.monotonic()
            real(store, items)
            self.calls.append((t0, time.monotonic(), [(names, body) for _, body, names in items]))
        monkeypatch.setattr(CheckpointStore, "write_many", write_many)

    def names(self) -> list[list[list[str]]]:
        return [[names for names, _ in items] for _, _, items in self.calls]


def test_default_policy_writes_once_at_the_end(tmp_path, monkeypatch):
    """No checkpoint is written while training (the best weights are kept in memory); at the end
    one write puts `last` and `best` in place; `best` holds the best epoch's weights."""
    writes = _Writes(monkeypatch)
    run_dir = tmp_path / "run"
    run = trainwell.fit("digits", sets=[*SETS, "train.epochs=4"], out=run_dir, verbose=False)
    assert writes.names() == [[["last"], ["best"]]]
    best_epoch = run.metrics["best_epoch"]
    body = json.loads((run_dir / "checkpoints" / "best" / "state.json").read_text())["body"]
    assert (body["kind"], body["epoch"], len(body["history"])) == ("best", best_epoch, best_epoch)
    best = load_file(str(run_dir / "checkpoints" / "best" / "state.safetensors"))
    final = load_file(str(run_dir / "model.safetensors"))                     # restore_best: the best epoch
    last = load_file(str(run_dir / "checkpoints" / "last" / "state.safetensors"))
    assert best.keys() == {f"model.{k}" for k in final}
    assert all(torch.equal(best[f"model.{k}"], final[k]) and torch.equal(last[f"best.{k}"], final[k]) for k in final)
    loaded = trainwell.load(run_dir, checkpoint="best")
    assert loaded.checkpoint == "best" and loaded.metrics["epoch"] == best_epoch and len(loaded.history) == best_epoch


def test_best_without_restore_best_and_from_a_killed_run(tmp_path, monkeypatch):
    """stop.restore_best=false: the model is the last epoch's, `best` still the best epoch's. A run
    killed before writing `best`: load(checkpoint="best") takes the best weights the newest checkpoint
    carries."""
    run_dir = tmp_path / "run"
    sets = [*SETS, "train.epochs=4", "stop.restore_best=false", "optim.lr=0.05"]   # a noisy lr: best < 4
    run = trainwell.fit("digits", sets=sets, out=run_dir, verbose=False)
    best_epoch = run.metrics["best_epoch"]
    best = trainwell.load(run_dir, checkpoint="best")
    last = load_file(str(run_dir / "checkpoints" / "last" / "state.safetensors"))
    final = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(best.model.state_dict()[k], last[f"best.{k}"]) for k in final)
    assert all(torch.equal(last[f"model.{k}"], final[k]) for k in final)     # no restore: the last epoch
    if best_epoch < 4:
        assert any(not torch.equal(last[f"best.{k}"], final[k]) for k in final)
    shutil.rmtree(run_dir / "checkpoints" / "best")                           # as if killed before it
    again = trainwell.load(run_dir, checkpoint="best")
    assert again.checkpoint == "best" and again.metrics["epoch"] == best_epoch
    assert all(torch.equal(again.model.state_dict()[k], best.model.state_dict()[k]) for k in final)


def test_time_budget_spaces_writes_by_their_cost(tmp_path, monkeypatch):
    """With no minimum interval, `last` is written on the time budget alone: mid-epoch too, and each
    write is followed by at least 1/MAX_COST times its duration without writing (<= 5 % of the time)."""
    from trainwell.train.checkpoint import Checkpointer
    monkeypatch.setattr(Checkpointer, "MIN_INTERVAL_S", 0.0)
    writes = _Writes(monkeypatch)
    # 40 epochs: on one thread (train/threads.py) 3 epochs of digits take less than two spaced writes
    trainwell.fit("digits", sets=[*SETS, "train.epochs=40"], out=tmp_path / "run", verbose=False)
    timed = [(t0, t1, items) for t0, t1, items in writes.calls[:-1]]         # the last one: the end
    assert len(timed) >= 2 and all([names for names, _ in items] == [["last"]] for *_, items in timed)
    assert any(items[0][1]["mid_epoch"] for *_, items in timed)
    for (a0, a1, _), (b0, _, _) in zip(timed, timed[1:]):
        assert b0 - a1 >= (a1 - a0) / Checkpointer.MAX_COST * 0.99
    assert writes.names()[-1] == [["last"], ["best"]]


def test_time_budgeted_last_resumes_exactly(tmp_path):
    """SIGKILL from outside as soon as a time-budgeted `last` is published (mid-epoch), twice."""
    attempts = [{"kill_when": "checkpoints/last"}, {"kill_when": "checkpoints/last"}, {}]
    result = drive(tmp_path, SETS, attempts, min_interval=0.0, max_cost=0.2)
    ended = [a["ended"] for a in result["attempts"]]
    assert ended == ["signal:9", "signal:9", "exit:0"], (ended, result["stderr"])
    same_weights(tmp_path / "ref", tmp_path / "run")


def test_monitors_sample_by_step_number():
    """The sampled steps are a function of the step number (a resumed run samples the same ones):
    each of the first epochs, then at least MIN_GAP steps apart (small epochs: a sample costs
    about five plain steps)."""
    from trainwell.diagnose.monitors import FIRST_EPOCHS, MIN_GAP, Monitor

    class State:
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        steps_per_epoch, step = 10, 0

    m = Monitor()
    m.on_train_begin(State)
    sampled = [k for k in range(1, 2001) if m.sampled(k)]
    assert sampled[:FIRST_EPOCHS + 1] == [1, *range(10, 10 * FIRST_EPOCHS + 1, 10)]
    assert sampled[FIRST_EPOCHS + 1:] == list(range(MIN_GAP, 2001, MIN_GAP))
    for start in (0, 9, 10, 57, 199, 200, 1234):          # a run resumed at any step arms the same
        State.step = start
        r = Monitor()
        r.on_train_begin(State)
        assert r._armed == ((start + 1) in sampled)
        r._disarm()
    explicit = Monitor(every=7)
    explicit.on_train_begin(State)
    assert [k for k in range(1, 60) if explicit.sampled(k)] == [1, 7, 14, 21, 28, 35, 42, 49, 56]


def test_nan_diagnosis_replays_from_the_initial_weights(tmp_path):
    """No checkpoint was written before the loss went NaN in epoch 3: the diagnosis replays from the
    initial weights (epochs 1-2 unprobed, taking the same steps as the run) and names the step."""
    from typer.testing import CliRunner

    from trainwell.cli import app
    sets = [*SETS, "optim.name=sgd", "schedule.name=piecewise", "schedule.boundaries=[2]",
            "schedule.values=[0.1,1e6]", "data.scale=standard"]
    res = CliRunner().invoke(app, ["fit", "digits", "--out", str(tmp_path / "run"),
                                   *[a for s in sets for a in ("--set", s)]])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "loss became NaN or inf at step" in text and "(epoch 3, batch" in text, text
    assert "No checkpoint had been saved yet" in text


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
    assert names == ["best", "last", "step-160", "step-170", "step-180"]   # keep=3 numbered + best + last
    doc = json.loads((reference / "checkpoints" / "last" / "state.json").read_text())
    assert doc["format"] == "trainwell-checkpoint/1" and len(doc["tensors_sha256"]) == 64
    body = doc["body"]
    assert body["epoch"] == 12 and body["step"] == 180 and len(body["history"]) == 12
    assert (reference / "spec.yaml").exists()
    t = load_file(str(reference / "checkpoints" / "step-180" / "state.safetensors"))
    assert {"loop.permutation", "loop.epoch_loss", "loop.epoch_terms", "rng.torch", "rng.generator",
            "rng.numpy"} <= set(t) and any(k.startswith("optim.state.") for k in t)
    assert t["rng.torch"].dtype == torch.uint8


def test_load_any_checkpoint(reference):
    run = trainwell.load(reference, checkpoint="step-170")
    assert run.checkpoint == "step-170" and run.metrics["step"] == 170
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
    res = CliRunner().invoke(app, ["evaluate", str(reference), "--checkpoint", "step-160"])
    assert res.exit_code == 0, res.output
    assert "checkpoint step-160" in res.output and "accuracy" in res.output


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
    raw = (ck / "step-180" / "state.safetensors").read_bytes()
    (ck / "step-180" / "state.safetensors").write_bytes(raw[: len(raw) // 3])  # truncated
    with pytest.warns(CheckpointWarning, match="last.*damaged.*sha256"):
        run = trainwell.load(base_run, checkpoint="last")
    assert run.checkpoint == "best"              # best is the end of epoch 3 too: the newest good one
    with pytest.warns(CheckpointWarning, match="truncated"):
        assert trainwell.load(base_run, checkpoint="step-180").checkpoint == "step-170"
    text = (ck / "step-170" / "state.json").read_text()
    assert '"step":170,' in text
    (ck / "step-170" / "state.json").write_text(text.replace('"step":170,', '"step":171,'))  # JSON edit
    for name in ("best", "step-160"):
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
    for name in ("last", "best", "step-160", "step-170", "step-180"):
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
                      callbacks=[_FailWrites(monkeypatch, run_dir, 8, err, what)])   # after step 120
    monkeypatch.undo()
    ck = run_dir / "checkpoints"
    assert not [p for p in ck.iterdir() if p.name.startswith(".")]      # no half-written leftovers
    assert sorted(p.name for p in ck.iterdir()) == ["step-100", "step-110", "step-120"]   # `last`: at the end
    newest = trainwell.load(run_dir, checkpoint="last")        # no `last` yet: the newest checkpoint
    assert newest.checkpoint == "step-120" and newest.metrics["step"] == 120
    trainwell.fit(resume=run_dir, verbose=False)                        # space is back: carry on
    same_weights(reference, run_dir)


def test_sigint_mid_epoch_in_python_resumes_exactly(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)   # default_int_handler; SIG_IGN when pytest runs as a background job
    monkeypatch.setenv("TRAINWELL_FAULT", "sigint@step=57")
    with pytest.raises(TrainingInterrupted) as info:
        trainwell.fit("digits", sets=[*SETS, "checkpoint.every_steps=10"], out=run_dir, verbose=False)
    assert info.value.exit_code == 130 and f"trainwell fit --resume {run_dir}" in info.value.message
    body = json.loads((run_dir / "checkpoints" / "last" / "state.json").read_text())["body"]
    assert (body["epoch"], body["batch_in_epoch"], body["step"]) == (3, 12, 57)   # 57 = 3 x 15 + 12
    assert signal.getsignal(signal.SIGINT) is before      # handlers put back
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
    assert body["batch_in_epoch"] == 10 and body["mid_epoch"]        # step 70 = 4 x 15 + 10
    res = cli("fit", "--resume", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert "resumed from checkpoints/last: epoch 5, batch 10 of 15" in res.stdout
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
    # batch 32: the divergence this test needs (lr 6 diverges at 45 steps an epoch; the rollback is what it tests)
    base = ["train.epochs=5", "model.hidden=[32]", "train.progress=false", "optim.name=sgd", "optim.lr=0.5",
            "train.batch_size=32",
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
    from trainwell.core.io import atomic_write as _atomic   # the one atomic-write helper
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
