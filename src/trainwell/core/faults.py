"""Fault injection for the crash tests: ``TRAINWELL_FAULT`` names the moment this process dies.

The crash tests (tests/test_checkpoint.py, tests/test_rundir_kill.py) kill a real training
process at exact events instead of after a guessed delay, so that every moment they name is
hit on every machine. Unset, nothing here runs: the writers ask :func:`current` (one dict
lookup) and go on. The value is comma-separated:

* ``kill@step=N`` / ``sigterm@step=N`` / ``sigint@step=N``: that signal after optimizer step N;
* ``kill@PHASE=N``: SIGKILL the N-th time this process reaches PHASE of a checkpoint write:
  ``data`` (tensors half written), ``tmp`` (tmp dir complete, not renamed), ``swap`` (old copy
  of ``last``/``best`` moved aside, new one not yet in place) or ``done`` (published, not pruned);
* ``kill@write=NAME`` (or ``NAME:N``, the N-th time): SIGKILL while file NAME of a run directory
  is being written, its temporary copy holding half the bytes. NAME is the file name
  (``metrics.json``, ``.trainwell.lock``) or, inside a checkpoint, ``checkpoints/last/state.json``.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

ENV = "TRAINWELL_FAULT"


class Faults:
    """The parsed ``TRAINWELL_FAULT``, with how often each phase and file was reached so far."""

    SIGNALS = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}

    def __init__(self, text: str):
        self.at_step: dict[int, int] = {}
        self.at_phase: dict[str, int] = {}
        self.at_write: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            what, _, where = item.partition("@")
            kind, _, value = where.partition("=")
            if kind == "step":
                self.at_step[int(value)] = self.SIGNALS[what]
            elif kind == "write":
                name, _, nth = value.rpartition(":") if value.rpartition(":")[2].isdigit() else (value, "", "")
                self.at_write[name] = int(nth or 1)
            else:                      # kill@data=N, kill@tmp=N, kill@swap=N, kill@done=N
                self.at_phase[kind] = int(value)

    def on_step_end(self, state: Any) -> None:
        """A training callback: the signal of ``kill@step=N`` after step N."""
        sig = self.at_step.get(state.step)
        if sig is not None:
            os.kill(os.getpid(), sig)

    def wants(self, phase: str) -> bool:
        return phase in self.at_phase

    def point(self, phase: str) -> None:
        """The N-th time this process reaches ``phase``, die by SIGKILL."""
        if self._nth(phase, self.at_phase):
            os.kill(os.getpid(), signal.SIGKILL)

    def torn_write(self, tmp: Path, name: str) -> None:
        """``kill@write=NAME``: cut ``tmp`` (the file being written) to half its bytes, then SIGKILL."""
        if self._nth(name, self.at_write, key=f"write:{name}"):
            os.truncate(tmp, os.stat(tmp).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    def _nth(self, what: str, targets: dict[str, int], key: str | None = None) -> bool:
        if what not in targets:
            return False
        key = key or what
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key] == targets[what]


_CURRENT: tuple[tuple[int, str], Faults] | None = None


def current() -> Faults | None:
    """The process's faults (counts kept across calls), or None when ``TRAINWELL_FAULT`` is unset."""
    global _CURRENT
    text = os.environ.get(ENV, "")
    if not text:
        return None
    key = (os.getpid(), text)
    if _CURRENT is None or _CURRENT[0] != key:
        _CURRENT = (key, Faults(text))
    return _CURRENT[1]
