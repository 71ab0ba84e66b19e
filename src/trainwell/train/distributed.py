"""Data-parallel training on several processes / machines (torch.distributed + DDP).

``trainwell fit ... --nproc N`` relaunches itself under torchrun
(``python -m torch.distributed.run --standalone --nproc_per_node N -m trainwell fit ...``);
``torchrun --nnodes M --nproc_per_node N --rdzv_endpoint HOST:PORT -m trainwell fit ...``
on each of M machines does the same across machines. Every rank runs the same ``fit``:

* the process group uses gloo on CPU and nccl on GPU (one GPU per rank, ``LOCAL_RANK``);
* seeds, generators and the per-epoch permutation are identical on every rank; each
  rank trains on a rank-strided slice of every global batch (in memory) or on its
  hash shard of the rows (streaming), so ``train.batch_size`` stays the global batch;
* DDP all-reduces (averages) the gradients; the loss of a rank's slice is weighted by
  ``local rows * world / global rows`` so uneven slices still give the exact global
  mean gradient — the loss curve matches a single-process run;
* the per-epoch sums (loss, metric terms) are all-reduced, so every rank sees the same
  history and makes the same early-stopping decision;
* only rank 0 prints, writes checkpoints and the run directory; on resume every rank
  loads the checkpoint rank 0 chose.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as td
from torch.nn.parallel import DistributedDataParallel as DDP

from trainwell.core.errors import UserError
from trainwell.train.checkpoint import Checkpointer, CheckpointStore
from trainwell.train.checkpoint.capture import restore


def in_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


class Distributed:
    """This process's place in the run (rank 0 of 1 when not launched by torchrun)."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, owns: bool = False,
                 backend: str = ""):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.owns, self.backend = owns, backend

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, spec: Any) -> "Distributed":
        """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR ...)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not td.is_initialized():
            use_cuda = spec.train.device != "cpu" and torch.cuda.is_available()
            backend = "nccl" if use_cuda else "gloo"
            if use_cuda:
                torch.cuda.set_device(local_rank % torch.cuda.device_count())
            try:
                td.init_process_group(backend=backend)
            except Exception as exc:  # noqa: BLE001 - rendezvous problems are the user's to fix
                raise UserError(f"Could not join the data-parallel process group ({backend}): {exc}. Check that "
                                "every node runs the same torchrun command with the same --rdzv_endpoint "
                                "(host:port reachable from all nodes) and --nnodes.") from None
            owns = True
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if local_world > 1 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        return cls(td.get_rank(), td.get_world_size(), local_rank, owns, td.get_backend())

    # -- pieces fit() asks for --------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        if self.active and device.type == "cuda":
            return torch.device("cuda", torch.cuda.current_device())
        return device

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a copy; the input is left alone)."""
        out = t.detach().clone()
        if self.backend == "gloo" and out.is_cuda:
            out = out.cpu()
            td.all_reduce(out)
            return out.to(t.device)
        td.all_reduce(out)
        return out

    def same_path(self, path: Path) -> Path:
        """Rank 0's choice of a path, on every rank (a default run directory is numbered by what rank 0 finds)."""
        if not self.active:
            return path
        box = [str(path)]
        td.broadcast_object_list(box, src=0)
        return Path(box[0])

    def wrap(self, state: Any) -> None:
        """DDP around the model, this rank's share of the data, reduced epoch sums."""
        if not self.active:
            return
        model = state.model
        dev = next(model.parameters()).device
        ddp = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        state.ctx.forward = ddp
        state.ctx.all_reduce = self.all_reduce           # epoch sums, and streamed validation's over the shards
        state.ctx.shard = (self.rank, self.world)        # in-memory batches: this rank's rows (streams: by hash)

    def checkpointer(self, make: Callable, state: Any, run_dir: Path | None, arch: dict, pre: Any,
                     console: Any, *, resume: bool) -> Any:
        """Rank 0: the usual Checkpointer (writes, resumes). Others: read-only, same checkpoint as rank 0."""
        if not self.active:
            return make(state, run_dir, arch, pre, console, resume=resume)
        ckpt = make(state, run_dir, arch, pre, console, resume=resume) if self.rank == 0 else None
        box = [ckpt.resumed_from if ckpt is not None else None]
        td.barrier()
        td.broadcast_object_list(box, src=0)
        if self.rank != 0:
            ckpt = Checkpointer(state.spec, None, {"architecture": arch, "preprocessing": pre.to_json()}, None)
            if resume and box[0] is not None and run_dir is not None:
                found = CheckpointStore(run_dir).newest(prefer=box[0])
                if found is not None:
                    restore(state, found[1], found[2])
                    ckpt.resumed_from = found[0]
        return ckpt

    def finish(self) -> None:
        if self.active and self.owns:
            td.barrier()
            td.destroy_process_group()


# --------------------------------------------------------------------------- launching
def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def launch(argv: list[str], nproc: int, run_dir: Path | None = None) -> int:
    """Run ``trainwell <argv>`` as ``nproc`` torchrun workers on this machine; their exit code."""
    args = strip_nproc(argv)
    if run_dir is not None and "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(run_dir)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "trainwell", *args]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(cmd, env=env)
