"""The :class:`Checkpointer` callback: when to save, resuming, signals, and the NaN path of one ``fit``.

It writes to disk rarely, because on a small table one fsynced write costs more than an
epoch (issue 13: 275 rows, 200 epochs, 50 s): the best weights are kept in memory (a copy on
improvement; every checkpoint carries them, ``best`` is written once, weights only); ``last``
is written on a time budget (at most one every ``MIN_INTERVAL_S``, and never sooner than
``1/MAX_COST`` times the previous write's duration after it), at the end of training (with
``best``, in one batch of fsyncs) and on SIGINT/SIGTERM; ``epoch-N``/``step-N`` every
``checkpoint.every`` epochs / ``checkpoint.every_steps`` steps when set. Between saves it costs
an integer check and a clock read per step. It also turns SIGINT/SIGTERM into "save, then
exit cleanly", and a NaN loss into a rollback or a diagnosis (nan_replay.py).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import save as st_save

from trainwell.core.faults import ENV, Faults
from trainwell.core.spec import Spec
from trainwell.train.checkpoint.capture import capture, restore
from trainwell.train.checkpoint.codec import NUMBERED_RE, encode, to_cpu_unshared
from trainwell.train.checkpoint.nan_replay import MAX_ROLLBACKS, diagnose_nan, roll_back
from trainwell.train.checkpoint.store import CheckpointStore, warner
from trainwell.train.loop import TrainState, fit_loop


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training after saving a checkpoint.

    ``exit_code`` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM);
    ``message`` names the checkpoint and the exact command that resumes.
    """

    def __init__(self, signum: int, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
        self.message = message
        self.checkpoint = checkpoint


class Checkpointer:
    """Saves, resumes, handles signals and NaN for one ``fit``; see the module docstring."""

    MIN_INTERVAL_S = 30.0   # the time-budgeted `last`: at most one every this many seconds ...
    MAX_COST = 0.05         # ... and never more often than writing takes this share of the time between writes

    def __init__(self, spec: Spec, run_dir: str | Path | None, meta: dict | None = None,
                 console: Any | None = None):
        ck = spec.checkpoint
        self.spec = spec
        self.every, self.every_steps, self.keep = ck.every, ck.every_steps, ck.keep
        self.run_dir = Path(run_dir) if run_dir is not None else None
        fault_text = os.environ.get(ENV, "")
        self.faults = Faults(fault_text) if fault_text else None   # crash tests only (core/faults.py)
        self.store = CheckpointStore(self.run_dir, self.faults) if self.run_dir is not None else None
        self.meta = meta or {}
        self.console = console
        self.rollback_mode = spec.stop.on_nan == "rollback"
        self.in_memory = self.store is None and self.rollback_mode
        self.active = self.store is not None or self.in_memory
        self.last_good: tuple[bytes, dict, str] | None = None
        self.signal: int | None = None
        self.resumed_from: str | None = None
        self.warned_exploding = False
        self.next_due = math.inf        # time.monotonic() from which a time-budgeted `last` is due
        self.write_seconds: list[float] = []   # each disk write (capture included), for the budget and tests
        self.sampled: Callable[[int], bool] | None = None   # the monitors' sampled steps (NaN replay)
        self.best_written = False

    # -- resume ---------------------------------------------------------------
    def resume(self, state: TrainState) -> str | None:
        """Restore the newest good checkpoint into ``state``; None when nothing was saved yet."""
        if self.store is None:
            return None
        self.store.recover()
        found = self.store.newest(warn=warner(self.console), exclude=("best",))   # best: weights only
        if found is None:
            return None
        name, tensors, body = found
        restore(state, tensors, body)
        self.resumed_from = name
        return name

    # -- callback hooks ------------------------------------------------------------
    def on_train_begin(self, state: TrainState) -> None:
        first = self.last_good is None          # a NaN rollback calls fit_loop (and this) again
        if self.store is not None and first:
            self.store.recover()
            state.ctx.keep_best = True     # the best weights stay in memory (fit_loop) for `best`
            self.next_due = time.monotonic() + self.MIN_INTERVAL_S
        if first:                      # one in-memory capture per fit: NaN replay/rollback start here
            data, body = capture(state, self.meta)
            self.last_good = (data, body, f"checkpoints/{self.resumed_from}" if self.resumed_from
                              else "the initial weights")
            if self.store is not None and self.resumed_from not in (None, "last") and self._finished(state):
                # a finished run killed while publishing its final `last`: publish it now
                self._save(state, ["last"], force=True, with_best=True)

    def on_step_end(self, state: TrainState) -> None:
        if self.signal is not None:
            state.stop = True
            state.stopped_because = "interrupted"
        elif self.store is not None:
            if self.every_steps and state.step % self.every_steps == 0:
                self._save(state, [f"step-{state.step}"])
            elif time.monotonic() >= self.next_due and state.batch_in_epoch < state.steps_per_epoch:
                self._save(state, ["last"])          # a long epoch: the time budget's `last`, mid-epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if not self.active or state.stopped_because == "nan":
            return
        if self.store is None:                       # stop.on_nan=rollback without a run directory
            self._save(state, ["last"])
            return
        names = [f"epoch-{state.epoch}"] if self.every and state.epoch % self.every == 0 else []
        final = self._finished(state)
        if names or final or time.monotonic() >= self.next_due:
            self._save(state, [*names, "last"], with_best=final)   # the end: `last` and `best` in one write
        elif self.rollback_mode:                     # rollback restores the last epoch: keep it in memory
            self._save(state, ["last"], disk=False)

    def on_train_end(self, state: TrainState) -> None:
        if self.store is None:
            return
        if state.stopped_because == "interrupted":
            self._save(state, ["last"], force=True, with_best=True)
        if state.stopped_because != "nan" and not self.best_written:
            item = self._best_item(state)
            if item is not None:
                t0 = time.monotonic()
                self.store.write_many([item])
                self._spent(t0)
            self.best_written = True

    def _finished(self, state: TrainState) -> bool:
        """This epoch is the run's last (the Checkpointer is the last callback: nothing changes it after)."""
        return bool(state.stop) or state.epoch >= self.spec.train.epochs

    # -- saving -----------------------------------------------------------------
    def _health(self, state: TrainState) -> tuple[bool, float | None]:
        """(weights and loss finite, current mean training loss): one host sync, only when saving."""
        checks = [torch.isfinite(p).all() for p in state.model.parameters()]
        loss_sum = state.ctx.epoch_loss if state.batch_in_epoch > 0 else None
        if loss_sum is not None:
            checks.append(torch.isfinite(loss_sum).all())
        finite = bool(torch.stack(checks).all()) if checks else True
        if loss_sum is not None:
            seen = min(state.batch_in_epoch * state.batch_size, state.data.X_train.shape[0])
            return finite, float(loss_sum) / max(seen, 1)
        if state.batch_in_epoch == 0 and state.history:
            return finite, state.history[-1].get("train_loss")
        return finite, None

    def _exploding(self, state: TrainState, loss: float | None) -> bool:
        """The loss is 10x (+1) above the best epoch so far: not a state worth going back to."""
        if loss is None:
            return False
        past = state.history[:-1] if state.batch_in_epoch == 0 else state.history
        best = min((r["train_loss"] for r in past if math.isfinite(r.get("train_loss", math.nan))),
                   default=None)
        return best is not None and loss > 10 * best + 1.0

    def _save(self, state: TrainState, names: list[str], force: bool = False, disk: bool = True,
              with_best: bool = False) -> None:
        t0 = time.monotonic()
        finite, loss = self._health(state)
        if not finite:                     # never save a poisoned state: flag the NaN instead
            state.stop = True
            state.stopped_because = "nan"
            state.ctx.nan_epoch = state.epoch + (1 if state.batch_in_epoch else 0)
            return
        if not force and self._exploding(state, loss):   # keep the last good one on disk and in memory
            if not self.warned_exploding and self.console is not None:
                self.console.print(f"[yellow]·[/yellow] training loss {loss:.3g} is exploding: not saving "
                                   "checkpoints until it comes back down")
            self.warned_exploding = True
            return
        data, body = capture(state, self.meta)
        on_disk = self.store is not None and disk
        label = f"checkpoints/{names[0]}" if on_disk else "the last good state (kept in memory)"
        self.last_good = (data, body, label)
        if on_disk:
            best = self._best_item(state) if with_best else None
            self.store.write_many([(data, body, names), *([best] if best is not None else [])])
            self.best_written = self.best_written or with_best
            if any(NUMBERED_RE.match(n) for n in names):
                self.store.prune(self.keep)
            self._spent(t0)

    def _spent(self, t0: float) -> None:
        """A write took ``now - t0``: the next time-budgeted `last` waits at least 1/MAX_COST times that."""
        now = time.monotonic()
        self.write_seconds.append(now - t0)
        self.next_due = now + max(self.MIN_INTERVAL_S, (now - t0) / self.MAX_COST)

    def _best_item(self, state: TrainState) -> tuple[bytes, dict, list[str]] | None:
        """``best``: the best epoch's weights, kept in memory while training, written once at the end.

        A weights-only checkpoint (``"kind": "best"``): loaded and scored like any other, never
        resumed from (that epoch's optimizer and RNG states are not kept); every full checkpoint
        carries the best weights so far (``best.*``), so a resume loses nothing."""
        epoch, best = state.stopper.best_epoch, state.best_state
        if best is None or epoch < 1:
            return None
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in best.items()}
        history = state.history[:epoch]
        body = {"kind": "best", "step": epoch * state.steps_per_epoch, "epoch": epoch, "batch_in_epoch": 0,
                "steps_per_epoch": state.steps_per_epoch, "n_train": int(state.data.X_train.shape[0]),
                "mid_epoch": False, "stop": False, "stopped_because": "",
                "history": encode(history, "history", tensors),
                "history_columns": list(history[-1]) if history else [],
                "spec": state.spec.to_dict(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **self.meta}
        return st_save(to_cpu_unshared(tensors)), body, ["best"]

    # -- signals -------------------------------------------------------------------
    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: finish the current step, save, stop (a second signal aborts at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: Any) -> None:
            if self.signal is not None:
                raise KeyboardInterrupt
            self.signal = signum

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- the training driver --------------------------------------------------------------
    def train(self, state: TrainState, callbacks: list | None = None,
              on_epoch: Callable[[TrainState, dict], None] | None = None) -> TrainState:
        """``fit_loop`` with checkpoints, signal handling and NaN rollback/diagnosis."""
        faults = [self.faults] if self.faults is not None and self.faults.at_step else []
        cbs = [*(callbacks or []), *faults, self]
        self.sampled = next((cb.sampled for cb in callbacks or [] if callable(getattr(cb, "sampled", None))), None)
        with self.signals():
            while True:
                fit_loop(state, cbs, on_epoch=on_epoch)
                if state.stopped_because == "nan":
                    if self.spec.stop.on_nan == "rollback" and self.last_good is not None \
                            and state.ctx.nan_rollbacks < MAX_ROLLBACKS:
                        roll_back(state, self.last_good, self.console)
                        continue
                    state.ctx.nan_diagnosis = diagnose_nan(state, self)   # fit raises it as a UserError
                break
        if state.stopped_because == "interrupted" and self.signal is not None:
            raise self._interrupted(state)
        return state

    def _interrupted(self, state: TrainState) -> TrainingInterrupted:
        name = signal.Signals(self.signal).name
        where = describe_position(state)
        if self.store is None:
            return TrainingInterrupted(self.signal, f"{name}: training stopped at {where}; nothing was saved "
                                       "(save=False).", None)
        msg = (f"{name}: saved a checkpoint at {where} in {self.store.path / 'last'}. "
               f"Resume with:\n  trainwell fit --resume {self.run_dir}")
        return TrainingInterrupted(self.signal, msg, self.store.path / "last")


def describe_position(state: TrainState) -> str:
    """Where training stands, in words: "epoch 3, batch 12 of 45 (step 102)"."""
    if state.batch_in_epoch:
        return (f"epoch {state.epoch + 1}, batch {state.batch_in_epoch} of {state.steps_per_epoch} "
                f"(step {state.step})")
    return f"end of epoch {state.epoch} (step {state.step})"
