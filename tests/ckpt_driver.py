"""Crash-test driver for tests/test_checkpoint*.py (not a test module itself).

Imports trainwell once, then forks one real child process per attempt, so each
"training process" starts in milliseconds instead of re-importing torch. Every
child trains with one CPU thread; the parent never computes with torch before
forking. Usage::

    python tests/ckpt_driver.py PLAN.json

PLAN: {"sets": [...], "data": "digits", "reference": DIR, "run": DIR,
       "attempts": [{"fault": "kill@step=3"} | {"delay": 1.5} | {}, ...]}
The first attempt starts the run, later ones resume it. ``fault`` sets
TRAINWELL_FAULT in the child; ``delay`` SIGKILLs the child from outside after
that many seconds. Prints one JSON line: the reference's exit code and, per
attempt, how the child ended ("exit:0", "exit:143", "signal:9", ...) and how long
it ran.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time


def _child(plan: dict, out: str, resume: bool, fault: str | None) -> None:
    import torch

    import trainwell
    code = 0
    try:
        torch.set_num_threads(1)
        if fault:
            os.environ["TRAINWELL_FAULT"] = fault
        else:
            os.environ.pop("TRAINWELL_FAULT", None)
        if resume:
            trainwell.fit(resume=out, verbose=False)
        else:
            trainwell.fit(plan.get("data", "digits"), sets=plan["sets"], out=out, verbose=False)
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


def _spawn(plan: dict, out: str, resume: bool, fault: str | None, delay: float | None) -> tuple[str, float]:
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(plan, out, resume, fault)
    if delay is not None:
        deadline = t0 + delay
        while time.perf_counter() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    else:
        _, status = os.waitpid(pid, 0)
    how = f"signal:{os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit:{os.WEXITSTATUS(status)}"
    return how, time.perf_counter() - t0


def main() -> None:
    plan = json.loads(open(sys.argv[1]).read())
    import importlib

    import trainwell  # noqa: F401 - import once, before forking
    # modules the first fit imports lazily (torch's optimizers pull in torch._dynamo): import them
    # here, compute-free, so that each forked child starts training at once
    for name in ("torch._dynamo", "sklearn.datasets", "trainwell.train.checkpoint", "trainwell.diagnose.session",
                 "trainwell.report.html", "trainwell.report.plots", "matplotlib.pyplot"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    result: dict = {"attempts": []}
    if plan.get("reference"):
        result["reference"], result["reference_seconds"] = _spawn(plan, plan["reference"], False, None, None)
    for i, attempt in enumerate(plan["attempts"]):
        how, secs = _spawn(plan, plan["run"], i > 0, attempt.get("fault"), attempt.get("delay"))
        result["attempts"].append({"plan": attempt, "ended": how, "seconds": round(secs, 3)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
