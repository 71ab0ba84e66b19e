"""The CUDA-graph step's plumbing (train/graphs.py), on CPU with a stand-in that re-runs the captured step.

A real capture needs a GPU; what is tested here is everything around it: static
buffers, the warm-up steps, the lr tensor the graph reads (schedules and the NaN
rollback), eager fallbacks for the last batch and for hooked steps, and that the
run ends with the weights of the ordinary eager run.
"""
from __future__ import annotations

import pytest
import torch

from trainwell.build import build_state, resolve_architecture
from trainwell.data.loading import load_table
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.core.spec import Spec
from trainwell.train.graphs import WARMUP, GraphedStep, graphable
from trainwell.train.loop import make_step, run_epoch


class ReplayByCall:
    """Stand-in for a CUDA graph: replay re-runs the captured function, reading the lr tensor as the graph does."""

    def __init__(self):
        self.captures = self.replays = 0

    def capture(self, fn):
        self.fn, self.captures = fn, self.captures + 1
        self.out = torch.zeros(())
        return self.out

    def replay(self):
        step = self.owner
        step.opt.zero_grad(set_to_none=True)       # a replayed backward writes fresh gradients
        step.group["lr"] = step.lr
        try:
            self.out.copy_(self.fn())
        finally:
            step.group["lr"] = step.lr_value
        self.replays += 1

    @staticmethod
    def side_stream(fn):
        return fn()


def _state(sets=()):
    spec = Spec.build(None, sets=["data.source=digits", "model.hidden=[16]", "train.batch_size=100",
                                  "train.backward=autograd", "train.fast=true", "train.monitor=false", *sets])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    return build_state(spec, prep, resolve_architecture(spec, prep)[0], torch.device("cpu"))


def _epochs(state, step, n, on_epoch=None):
    for e in range(n):
        state.batch_in_epoch = 0
        run_epoch(state, step)
        state.epoch += 1
        if on_epoch:
            on_epoch(state, e)


def test_graphed_steps_train_like_eager_steps():
    ref, st = _state(), _state()
    assert graphable(st) is None
    backend = ReplayByCall()
    step = GraphedStep(st, make_step(st), backend=backend, autocast=False)
    backend.owner = step

    def halve(state, e):                     # an lr change between epochs (a schedule, a rollback)
        for g in state.optimizer.param_groups:
            g["lr"] = g["lr"] * 0.5
    _epochs(ref, make_step(ref), 3, halve)
    _epochs(st, step, 3, halve)
    n = st.data.X_train.shape[0]
    full, last = divmod(n, 100)
    assert last > 0
    assert backend.captures == 1
    assert backend.replays == 3 * full - WARMUP              # the last, smaller batch of each epoch runs eagerly
    assert st.optimizer.param_groups[0]["lr"] == ref.optimizer.param_groups[0]["lr"]
    assert step.lr_value == ref.optimizer.param_groups[0]["lr"] * 2   # synced at the last replay
    assert float(step.lr) == pytest.approx(step.lr_value, rel=1e-7)   # a float32 tensor, as torch keeps lr tensors
    assert isinstance(st.optimizer.param_groups[0]["lr"], float)
    for (k, a), b in zip(ref.model.state_dict().items(), st.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_hooked_steps_run_eagerly():
    st = _state()
    backend = ReplayByCall()
    step = GraphedStep(st, make_step(st), backend=backend, autocast=False)
    backend.owner = step
    _epochs(st, step, 1)
    before = backend.replays
    handle = st.model.out.register_forward_hook(lambda m, i, o: None)   # what a monitor does on sampled steps
    _epochs(st, step, 1)
    handle.remove()
    assert backend.replays == before


def test_failed_capture_falls_back_with_a_warning():
    import pytest
    st = _state()

    class Broken(ReplayByCall):
        def capture(self, fn):
            raise RuntimeError("operation not permitted when stream is capturing")
    step = GraphedStep(st, make_step(st), backend=Broken(), autocast=False)
    with pytest.warns(RuntimeWarning, match="capture failed"):
        _epochs(st, step, 1)
    assert step.disabled and isinstance(st.optimizer.param_groups[0]["lr"], float)


def test_what_is_not_graphed_is_explained():
    assert "regularize" in graphable(_state(["regularize.l2=0.01"]))
    assert "optimizer" in graphable(_state(["optim.name=rmsprop"]))


def test_new_optimizer_state_is_captured_again():
    """The NaN rollback loads optimizer state into new tensors: the old graph would update stale ones."""
    ref, st = _state(), _state()
    backend = ReplayByCall()
    step = GraphedStep(st, make_step(st), backend=backend, autocast=False)
    backend.owner = step

    def reload(state, e):    # as a rollback does: weights and optimizer state loaded from a checkpoint
        import copy
        state.optimizer.load_state_dict(copy.deepcopy(state.optimizer.state_dict()))   # new tensors, as from a file
    _epochs(ref, make_step(ref), 2, reload)
    _epochs(st, step, 2, reload)
    assert backend.captures == 2
    for (k, a), b in zip(ref.model.state_dict().items(), st.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
