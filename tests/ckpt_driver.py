"""Crash-test driver for tests/test_checkpoint*.py (not a test module itself).

Imports trainwell once, then forks one real child process per attempt, so each
"training process" starts in milliseconds instead of re-importing torch. Every
child trains with one CPU thread; the parent never computes with torch before
forking. Usage::

    python tests/ckpt_driver.py PLAN.json

PLAN: {"sets": [...], "data": "digits", "ensemble": P, "reference": DIR, "run": DIR, "min_interval": S, "max_cost": F,
       "attempts": [{"fault": "kill@step=3"} | {"kill_when": "checkpoints/step-60"} | {"load": true} | {}, ...],
       "runs": [{"run": DIR, "attempts": [...]}, ...]}
The first attempt starts the run, later ones resume it (``"fresh": true``: start it again instead).
``load`` loads the run directory (``trainwell.load``) in a child and compares it with the reference
(or with the finished run ``"compare": DIR``; ``"reference": null`` trains none):
exit 0 when it loads and holds the reference's weights, history and scores, 2 when it is refused
with a UserError, 4 when it loads something else. ``runs``: more runs, each with its own attempts,
after the first one (one import of trainwell for all; results under "runs"). ``fault`` sets
TRAINWELL_FAULT in the child (the child kills itself at that exact moment);
``kill_when`` SIGKILLs the child from outside as soon as that path appears under
the run directory (or a new one replaces it), an event, not a time: for a numbered checkpoint
(``checkpoints/step-60``, ``checkpoints/epoch-2``) as soon as one with that number
or a higher one exists (the retention may already have pruned the exact one).
Where the child is when the signal lands (training, writing the next checkpoint,
pruning) is whatever it is: that is the point. Prints one JSON line: the
reference's exit code and, per attempt, how the child ended ("exit:0", "exit:143",
"signal:9", ...), how long it ran and, for ``kill_when``, whether the event was seen.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

NUMBERED = re.compile(r"^(.*)/(step|epoch)-(\d+)$")


def _child(plan: dict, out: str, resume: bool, fault: str | None) -> None:
    import torch

    import trainwell
    code = 0
    try:
        torch.set_num_threads(1)
        from trainwell.train.checkpoint import Checkpointer
        for key, attr in (("min_interval", "MIN_INTERVAL_S"), ("max_cost", "MAX_COST")):
            if key in plan:              # the time budget of `last`, shortened to test it
                setattr(Checkpointer, attr, plan[key])
        if fault:
            os.environ["TRAINWELL_FAULT"] = fault
        else:
            os.environ.pop("TRAINWELL_FAULT", None)
        if resume:
            trainwell.fit(resume=out, verbose=False, trust_module=plan.get("trust_module", False))
        else:
            trainwell.fit(plan.get("data", "digits"), sets=plan["sets"], out=out, verbose=False,
                          ensemble=plan.get("ensemble", 1))
    except trainwell.UserError as exc:
        print(f"UserError: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", 130)
    except BaseException as exc:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _load_child(plan: dict, out: str) -> None:
    """Exit 0: ``out`` loads and equals the reference run; 2: refused (UserError); 4: loads, but differs."""
    import torch

    import trainwell
    code = 0
    try:
        torch.set_num_threads(1)
        got, ref = trainwell.load(out), trainwell.load(plan.get("compare") or plan["reference"])
        a, b = got.model.state_dict(), ref.model.state_dict()
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        same = same and got.history.drop(columns="seconds").equals(ref.history.drop(columns="seconds"))
        same = same and all(got.metrics.get(k) == ref.metrics.get(k) for k in ("train", "val", "test", "best_epoch"))
        code = 0 if same else 4
    except trainwell.UserError as exc:
        print(f"UserError: {exc}", file=sys.stderr)
        code = 2
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _inode(run: str, event: str) -> int | None:
    try:
        return os.stat(Path(run) / event).st_ino
    except OSError:
        return None


def _happened(run: str, event: str, before: int | None) -> bool:
    """Whether ``event`` happened: a path under the run directory published since the child started
    (``checkpoints/last``: a new one renamed into place); numbered checkpoints: that one or later."""
    m = NUMBERED.match(event)
    if m is None:
        now = _inode(run, event)
        return now is not None and now != before
    folder, kind, target = Path(run) / m.group(1), m.group(2), int(m.group(3))
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n.startswith(kind + "-") and n[len(kind) + 1:].isdigit() and int(n[len(kind) + 1:]) >= target
               for n in names)


def _spawn(plan: dict, out: str, resume: bool, fault: str | None, kill_when: str | None,
           load: bool = False) -> tuple[str, float, bool]:
    t0 = time.perf_counter()
    before = _inode(out, kill_when) if kill_when is not None else None
    pid = os.fork()
    if pid == 0:
        if load:
            _load_child(plan, out)
        _child(plan, out, resume, fault)
    seen = False
    if kill_when is not None:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if _happened(out, kill_when, before):
                seen = True
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.0005)
    else:
        _, status = os.waitpid(pid, 0)
    how = f"signal:{os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit:{os.WEXITSTATUS(status)}"
    return how, time.perf_counter() - t0, seen


def main() -> None:
    plan = json.loads(open(sys.argv[1]).read())
    import importlib

    import trainwell  # noqa: F401 - import once, before forking
    # modules the first fit imports lazily (torch's optimizers pull in torch._dynamo): import them
    # here, compute-free, so that each forked child starts training at once
    for name in ("torch._dynamo", "sklearn.datasets", "trainwell.train.checkpoint", "trainwell.diagnose.session",
                 "trainwell.report.html", "trainwell.report.plots"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    result: dict = {}
    if plan.get("reference"):
        result["reference"], result["reference_seconds"], _ = _spawn(plan, plan["reference"], False, None, None)
    result["attempts"] = _attempts(plan, plan["run"], plan["attempts"])
    result["runs"] = [_attempts(plan, more["run"], more["attempts"]) for more in plan.get("runs", [])]
    print(json.dumps(result))


def _attempts(plan: dict, run: str, attempts: list[dict]) -> list[dict]:
    done = []
    for i, attempt in enumerate(attempts):
        resume = i > 0 and not attempt.get("fresh")
        how, secs, seen = _spawn(plan, run, resume, attempt.get("fault"), attempt.get("kill_when"),
                                 attempt.get("load", False))
        done.append({"plan": attempt, "ended": how, "seconds": round(secs, 3), "seen": seen})
    return done


if __name__ == "__main__":
    main()
