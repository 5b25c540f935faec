"""Several training processes: who is rank 0, the process group, handing rank 0's work to the others,
and the command that starts the ranks.

A multi-process stage runs once (on one machine); it writes ``job.json`` and starts the ranks with
``torchrun`` (one node) or ``srun`` + ``torchrun`` (several nodes of a Slurm allocation), each rank running
``python -m autoif_lib.train job.json``. Why torchrun and not ``accelerate launch``: the Trainer configures
accelerate itself from its arguments (``deepspeed=`` the ZeRO config), ``accelerate launch --cpu`` starts a
single process (so the multi-rank code could never run on a CPU machine), and accelerate's DeepSpeed
multi-node launcher defaults to ``pdsh`` without a hostfile, where every node trains alone.

The process group is formed once per process, before any trainer (:func:`init`), with the recipe's timeout:
rank 0 may sample and score for hours while the others wait. They wait by polling the shared filesystem for
rank 0's product (:func:`on_main`), not inside a collective.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init(timeout_s: float, deepspeed: bool) -> str:
    """Form the process group (several ranks only) with ``timeout_s`` for every collective; return the
    backend. The Trainer then reuses this state (``accelerator_config.use_configured_state``).

    CPU ranks use gloo: plain DDP, or DeepSpeed (ZeRO-3 over gloo runs on CPU, so the sharded save path is
    tested without a GPU); GPU ranks use NCCL, one GPU per local rank."""
    if world_size() <= 1:
        return ""
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if deepspeed:
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    # cpu=True is accelerate's only multi-process CPU mode (DDP over gloo); with DeepSpeed it must be False,
    # and the explicit backend keeps accelerate from treating the CPU ranks as one process.
    PartialState(cpu=not cuda and not deepspeed, backend=backend, timeout=timedelta(seconds=timeout_s))
    return backend


def barrier() -> None:
    import torch.distributed as dist

    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def on_main(fn: Callable[[], object], product: str | Path, timeout_s: float, poll_s: float = 2.0):
    """Run ``fn`` on rank 0, which writes ``product``; the other ranks wait for that file (or for rank 0's
    failure marker) on the shared filesystem, then all meet at a barrier. Returns ``fn``'s value on rank 0,
    None elsewhere. A failure on rank 0 stops every rank with its message instead of a collective timeout."""
    product = Path(product)
    failed = product.with_name(product.name + ".failed")
    if is_main():
        failed.unlink(missing_ok=True)
        try:
            out = fn()
        except BaseException as e:
            failed.parent.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
            raise
        if not product.exists():
            raise RuntimeError(f"rank 0 finished without writing {product}")
        barrier()
        return out
    t0 = time.time()
    while not product.exists():
        if failed.exists():
            raise RuntimeError(f"rank 0 failed while writing {product}:\n{failed.read_text()[:2000]}")
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"rank {rank()}: waited {timeout_s:.0f} s for rank 0 to write {product} "
                               "(raise the stage's dist_timeout_minutes)")
        time.sleep(poll_s)
    barrier()
    return None


def check_shared_filesystem(folder: str | Path) -> None:
    """Every rank writes a marker into ``folder`` and must see every other rank's: rank 0 writes the data the
    others train on, and the others read it, so the run folder has to be one filesystem for all nodes."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    d = Path(folder) / ".ranks"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{rank()}.json").write_text(json.dumps({"rank": rank(), "host": socket.gethostname(), "pid": os.getpid()}))
    barrier()
    seen = len([p for p in d.glob("*.json") if p.stem.isdigit() and int(p.stem) < world_size()])
    views: list = [None] * world_size()
    dist.all_gather_object(views, {"rank": rank(), "host": socket.gethostname(), "seen": seen})
    blind = [v for v in views if v["seen"] < world_size()]
    if blind:
        raise RuntimeError(
            f"{folder} is not shared by every rank: " + "; ".join(f"rank {v['rank']} on {v['host']} sees "
                                                                   f"{v['seen']} of {world_size()} ranks' markers"
                                                                   for v in blind)
            + ". A multi-node stage needs its outputs/ on a filesystem all nodes mount (NFS, Lustre, GPFS).")


# ---------------------------------------------------------------------------
# the launch command (built here and checked by tests; run by train.run)
# ---------------------------------------------------------------------------

class LaunchError(ValueError):
    pass


def launch_command(job_path: str | Path, procs_per_node: int, num_machines: int = 1, python: str | None = None,
                   rdzv_host: str = "", rdzv_port: int = 29500, env: dict | None = None) -> list[str]:
    """The command that starts every rank of one training job.

    One machine: ``python -m torch.distributed.run --standalone --nproc_per_node N -m autoif_lib.train JOB``
    (``--standalone`` picks a free port, so concurrent stages on one node do not collide).

    Several machines: the stage runs once, inside a Slurm allocation of ``num_machines`` nodes, and
    ``srun`` starts one torchrun per node that meet at a c10d rendezvous on this node (or ``rdzv_host``)."""
    py = python or sys.executable
    run = [py, "-m", "torch.distributed.run", "--nproc_per_node", str(procs_per_node)]
    tail = ["-m", "autoif_lib.train", str(job_path)]
    if num_machines <= 1:
        return run[:3] + ["--standalone", "--nnodes", "1"] + run[3:] + tail
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        raise LaunchError(
            f"num_machines {num_machines}: a multi-node stage runs inside a Slurm allocation of that many nodes "
            f"(e.g. `salloc --nodes {num_machines} --gpus-per-node {procs_per_node}` or an sbatch job, then "
            "`autoif run ...` once, on its first node); srun starts the ranks on every node")
    have = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 0)
    if have < num_machines:
        raise LaunchError(f"num_machines {num_machines}: this Slurm allocation ({env['SLURM_JOB_ID']}) has {have} "
                          f"node(s)")
    host = rdzv_host or socket.gethostname()
    return (["srun", "--nodes", str(num_machines), "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
            + run[:3] + ["--nnodes", str(num_machines), "--rdzv_backend", "c10d",
                         "--rdzv_endpoint", f"{host}:{rdzv_port}", "--rdzv_id", f"autoif-{env['SLURM_JOB_ID']}"]
            + run[3:] + tail)


def launch_env(threads_per_rank: int | None = None) -> dict:
    """The ranks' environment: this interpreter's bin first on PATH (DeepSpeed JIT-builds ops with tools
    from there), and on a CPU-only machine the cores split between the ranks."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if threads_per_rank:
        env.setdefault("OMP_NUM_THREADS", str(threads_per_rank))
    return env


def describe(cmd: Sequence[str]) -> str:
    return "$ " + " ".join(cmd)
