"""A process killed while writing any file of a run directory leaves a directory that loads or resumes.

Every file of a run directory is written atomically (core/io.py: temporary file, fsync, rename;
checkpoints: a temporary folder renamed into place; the lock: a temporary file hard-linked into
place). This test checks it on the files a default ``trainwell fit iris`` writes: for each, a
real training process is SIGKILLed at the moment that file is half written (an event:
``TRAINWELL_FAULT=kill@write=NAME``, core/faults.py, not a time). After each kill the directory
is loaded (``trainwell.load``): it must either hold exactly the reference run or be refused with a
UserError; then ``fit --resume`` continues it. The kills are chained on one run directory (each
resume is killed at the next file, one process per file), so the run ends only once every file
has been interrupted once, and it must end bit-identical to an uninterrupted run.
"""
from __future__ import annotations

from pathlib import Path

from test_checkpoint import drive, same_weights

SETS = ["train.epochs=3", "train.progress=false"]   # the default spec, fewer epochs: the same files
LOCK = ".trainwell.lock"
# before anything is saved: nothing to resume (a new start of the same command is the way on)
AT_START = [LOCK, "spec.yaml"]
# the end of training: `last` and `best` in one batch of writes (nothing published yet: resume starts over)
CHECKPOINTS = [f"checkpoints/{name}/{f}" for name in ("last", "best") for f in ("state.safetensors", "state.json")]
# the final write (api.write_run_directory): Run.save, the doctor's files, model.json (twice: after
# Run.save, then with every sealed file), then the report; each resume writes them all again
SAVED = ["spec.yaml", "model.safetensors", "history.csv", "metrics.json", "model.json", "curves.png",
         "diagnosis.json", "data.json", "test_predictions.csv", "model.json:2"]
REPORT = ["report.html", "confusion_matrix.png", "reliability.png"]
# written from what the monitors recorded while training, so only by a process that trained (a resume
# from the final checkpoint does not): each is killed in a run directory of its own
TRAINED = ["diagnostics.csv", "activations.png", "gradient_flow.png"]


def _written(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def test_sigkill_while_writing_each_file_of_a_run_directory(tmp_path):
    attempts, expected = [], []
    for i, name in enumerate(AT_START):
        attempts += [{"fault": f"kill@write={name}", **({"fresh": True} if i else {})}, {"load": True}, {}]
        expected += ["signal:9", "exit:2", "exit:2"]     # refused to load; resume: "holds no saved state"
    for i, name in enumerate([*CHECKPOINTS, *SAVED, *REPORT]):
        attempts += [{"fault": f"kill@write={name}", **({"fresh": True} if i == 0 else {})}, {"load": True}]
        # complete once model.json:2 is written; before, it loads (what model.json lists is all there) or is refused
        expected += ["signal:9", "exit:0" if name in REPORT else "exit:0|exit:2"]
    attempts.append({})
    expected.append("exit:0")
    runs = [{"run": str(tmp_path / name), "attempts": [{"fault": f"kill@write={name}"}, {"load": True}, {}]}
            for name in TRAINED]
    result = drive(tmp_path, SETS, attempts, data="iris", runs=runs)
    assert result["reference"] == "exit:0"
    report = [(i, a["plan"], a["ended"], want) for i, (a, want) in enumerate(zip(result["attempts"], expected))]
    assert len(result["attempts"]) == len(expected)
    assert any(got == "exit:2" for _, plan, got, _ in report if plan.get("load"))   # some were refused
    wrong = [r for r in report if r[2] not in r[3].split("|")]    # exit:4 would be a load of other weights
    assert not wrong, (wrong, result["stderr"])
    same_weights(tmp_path / "ref", tmp_path / "run")
    for name, run in zip(TRAINED, result["runs"]):
        kill, load, resume = (a["ended"] for a in run)
        assert (kill, resume) == ("signal:9", "exit:0") and load in ("exit:0", "exit:2"), (name, run, result["stderr"])
        same_weights(tmp_path / "ref", tmp_path / name)
    # the parametrization is the run directory: every file the reference wrote was interrupted once
    names = {n.split(":")[0] for n in [*AT_START, *CHECKPOINTS, *SAVED, *REPORT, *TRAINED]}
    assert _written(tmp_path / "ref") | {LOCK} == names
    leftovers = [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".") and p.name != LOCK]
    assert not leftovers      # the temporary files of the killed writes were dropped by the resumes
