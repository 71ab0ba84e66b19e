"""trainwell.tune and trainwell.diagnose are functions whatever was imported first (core/callable_package.py)."""
from __future__ import annotations

import subprocess
import sys


def test_tune_and_diagnose_stay_callable_after_their_submodules_are_imported():
    """In a fresh interpreter: import a submodule first (as tests and user code do), then call the names."""
    code = """
import trainwell as tw
import trainwell.tune.space, trainwell.diagnose.doctor
assert callable(tw.tune) and callable(tw.diagnose)
try:
    tw.tune("iris", trials=0, verbose=False)
except tw.UserError as exc:
    assert "--trials must be at least 1" in str(exc), exc
else:
    raise AssertionError("trials=0 accepted")
try:
    tw.diagnose("no/such/run")
except tw.UserError:
    pass
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["ok"]
