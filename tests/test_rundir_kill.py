"""A process killed while writing any file of a run directory leaves a directory that loads or resumes.

Every file of a run directory is written atomically (core/io.py: temporary file, fsync, rename;
checkpoints: a temporary folder renamed into place; the lock: a temporary file hard-linked into
place). This test checks it on every file a default ``fit`` of iris writes, read from a finished
reference run (so a file added later is covered without editing this list): for each, a real
training process is SIGKILLed at the moment that file is half written (an event:
``TRAINWELL_FAULT=kill@write=NAME``, core/faults.py, not a time), one run directory and one killed
process per file. The directory is then loaded (``trainwell.load``): it must hold exactly the
reference run or be refused with a UserError, never load other weights. Then ``fit --resume``
continues it, and it must end bit-identical to the reference.
"""
from __future__ import annotations

from pathlib import Path

from test_checkpoint import drive, same_weights

SETS = ["train.epochs=3", "train.progress=false"]   # the default spec, fewer epochs: the same files
LOCK = ".trainwell.lock"
# written before anything is saved: nothing to resume (`fit --resume` says so; the same command starts
# it again in that folder). spec.yaml is written twice (first thing, then by Run.save), model.json too
# (after Run.save, then with the checksums of every file): the second writes are killed as well
AT_START = [LOCK, "spec.yaml"]
TWICE = ["spec.yaml:2", "model.json:2"]


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def test_sigkill_while_writing_each_file_of_a_run_directory(tmp_path):
    ref = tmp_path / "ref"
    assert drive(tmp_path, SETS, [], data="iris")["reference"] == "exit:0"
    names = [LOCK, *_files(ref), *TWICE]
    assert {"spec.yaml", "model.json", "model.safetensors", "checkpoints/last/state.json",
            "checkpoints/best/state.safetensors"} <= set(names)
    runs = []
    for name in names:
        attempts = [{"fault": f"kill@write={name}"}, {"load": True}, {}]
        if name in AT_START:
            attempts.append({"fresh": True})
        runs.append({"run": str(tmp_path / "kills" / name.replace("/", "-")), "attempts": attempts})
    (tmp_path / "kills").mkdir()
    result = drive(tmp_path / "kills", SETS, [], data="iris", reference=None, compare=str(ref), runs=runs)
    loads = []
    for name, run in zip(names, result["runs"]):
        ended = [a["ended"] for a in run]
        want_resume = ["exit:2", "exit:0"] if name in AT_START else ["exit:0"]   # exit:2: "holds no saved state"
        assert ended[0] == "signal:9", (name, ended, result["stderr"])   # killed while writing it
        assert ended[1] in ("exit:0", "exit:2"), (name, ended, result["stderr"])   # exit:4: other weights
        assert ended[2:] == want_resume, (name, ended, result["stderr"])
        same_weights(ref, tmp_path / "kills" / name.replace("/", "-"))
        loads.append(ended[1])
    # some kills leave the complete run (the report's files come after model.json), others a refused one
    assert "exit:0" in loads and "exit:2" in loads, loads
    leftovers = [p.name for r in runs for p in Path(r["run"]).iterdir() if p.name.startswith(".") and p.name != LOCK]
    assert not leftovers      # the temporary files of the killed writes were dropped by the resumes
