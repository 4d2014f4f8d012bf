"""Launch ``world_size`` processes on this machine from a notebook, safely; the rank's device.

:func:`launch` runs ``fn(rank, world_size, *args, **kwargs)`` in spawned processes that have
``torch.distributed`` initialised (gloo on CPU, NCCL when there is one GPU per rank),
and returns each rank's return value, in rank order. It never leaves a notebook
hanging:

* a worker that raises makes :func:`launch` raise :class:`WorkerError` carrying the
  worker's traceback, and the other ranks are killed at once;
* a worker that dies without a word (segfault, ``os._exit``) is reported with its exit code;
* when ``timeout`` seconds pass, every worker is killed and :class:`TimeoutError` raised.

Worker functions must live in an importable module (``lab_utils.*``): spawned
processes import them by name, so a function typed into a notebook cannot be sent.
A *script* that calls :func:`launch` must do so under ``if __name__ == "__main__":``
(spawned workers re-import the main module); without it the error says so.
Each worker's stdout/stderr (Python and C++ alike) is captured to a log and shown
afterwards (``echo="rank0"`` by default).

The same workers run unchanged under ``torchrun`` (see :mod:`lab_utils.run`): both set
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, and :func:`rank_device` puts a rank's tensors
on ``cuda:LOCAL_RANK`` under NCCL and on the CPU under gloo.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import pickle
import queue
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


class WorkerError(RuntimeError):
    """A worker process failed; ``rank`` and the worker's ``traceback`` text are attached."""

    def __init__(self, rank: int, tb: str, log: str = ""):
        self.rank, self.traceback, self.log = rank, tb, log
        tail = "\n".join(log.strip().splitlines()[-15:]) if log.strip() else ""
        msg = f"rank {rank} failed:\n{tb}"
        if tail:
            msg += f"\n--- last lines of rank {rank}'s output ---\n{tail}"
        super().__init__(msg)


def free_port() -> int:
    """A TCP port on localhost that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_backend(backend: str, world_size: int) -> str:
    """``auto`` → NCCL when there is a CUDA GPU per rank, else gloo; validates explicit choices."""
    ngpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend == "auto":
        return "nccl" if ngpu >= world_size else "gloo"
    if backend == "nccl" and ngpu < world_size:
        raise RuntimeError(
            f"backend='nccl' needs one CUDA GPU per rank ({world_size}) but {ngpu} are visible: "
            "use backend='gloo' (CPU) or a smaller world_size"
        )
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    return backend


def rank_device() -> torch.device:
    """The device every tensor of this rank lives on: ``cuda:LOCAL_RANK`` under NCCL, else the CPU.

    NCCL only moves CUDA tensors and gloo's collectives here run on CPU tensors, so the
    backend decides. ``LOCAL_RANK`` (set by :func:`launch` and by ``torchrun``) is the GPU
    index on this node; outside a process group the answer is the CPU.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return torch.device("cpu")


_NO_MAIN_GUARD = (
    "launch() was called while a spawned worker re-imported the main script: a script that calls "
    "launch() must do so under `if __name__ == \"__main__\":` (each worker process imports the script "
    "again, and without the guard it would start workers of its own). Move the call, and the code "
    "that prepares its arguments, into that block."
)


def _starting_inside_spawned_child() -> bool:
    """True while a spawned process is still importing its parent's main module."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


def _check_picklable_fn(fn: Callable) -> None:
    mod = getattr(fn, "__module__", None)
    if mod in (None, "__main__") or "<locals>" in getattr(fn, "__qualname__", "") \
            or getattr(fn, "__name__", "") == "<lambda>":
        raise ValueError(
            f"launch() needs a worker function defined at the top level of an importable module, "
            f"got {getattr(fn, '__qualname__', fn)!r} from module {mod!r}. Spawned processes import the "
            "function by name, so functions typed into a notebook or lambdas cannot be sent: "
            "put it in a lab_utils module (or a .py file next to the notebook) and import it."
        )


def _worker(fn: Callable, rank: int, world_size: int, backend: str, port: int, args: tuple,
            kwargs: dict, results: Any, log_path: str, threads: int, pg_timeout: float) -> None:
    # Send this process's stdout/stderr (Python and C++) to its log file.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size))
    torch.set_num_threads(threads)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=pg_timeout))
        out = fn(rank, world_size, *args, **kwargs)
        payload = ("ok", rank, pickle.dumps(out))
    except BaseException:  # noqa: BLE001 - SystemExit too: report everything
        payload = ("error", rank, traceback.format_exc())
    finally:
        if dist.is_available() and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001
                pass
        sys.stdout.flush()
        sys.stderr.flush()
    results.put(payload)


# A rank that fails only because a peer died inside a collective reports one of these.
_PEER_FAILURE_MARKERS = ("DistBackendError", "Connection closed by peer", "Connection reset by peer",
                         "remote worker crashing", "NCCL communicator was aborted")


def _root_cause(rank: int, tb: str, results: Any, procs: list, out: dict, grace: float = 3.0
                ) -> tuple[int, str]:
    """The error to show: when one rank raises, its peers then fail in their collectives and
    may report first. Wait ``grace`` seconds for the other reports and prefer a rank whose
    error is its own over one that only says a peer went away."""
    errors = {rank: tb}
    deadline = time.monotonic() + grace
    while len(errors) + len(out) < len(procs) and time.monotonic() < deadline:
        try:
            status, r, data = results.get(timeout=0.1)
        except queue.Empty:
            if all(p.exitcode is not None for i, p in enumerate(procs) if i not in errors and i not in out):
                break
            continue
        if status == "error":
            errors[r] = data
    own = [r for r, t in sorted(errors.items()) if not any(m in t for m in _PEER_FAILURE_MARKERS)]
    first = own[0] if own else min(errors)
    others = sorted(set(errors) - {first})
    note = f"\n(ranks {others} failed too, after rank {first})" if others else ""
    return first, errors[first] + note


def _silent_death(rank: int, exitcode: int, log: Path) -> WorkerError:
    """The error for a rank that died without reporting. A rank whose log was never opened died
    before running the worker at all: under spawn that is a script re-imported without a main guard."""
    if not log.exists():
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)
        why = (f"rank {rank}'s process exited with code {exitcode} before it started the worker function. "
               + (f"The main script {script} was re-imported by the spawned process and failed: "
                  + _NO_MAIN_GUARD + " (multiprocessing printed the details above.)" if script else
                  "Its error was printed above by multiprocessing."))
        return WorkerError(rank, why)
    return WorkerError(rank, f"process exited with code {exitcode} without a Python traceback",
                       log.read_text(errors="replace"))


def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "auto",
           timeout: float = 300.0, echo: str = "rank0", threads_per_rank: int | None = None,
           **kwargs: Any) -> list[Any]:
    """Run ``fn(rank, world_size, *args, **kwargs)`` on ``world_size`` local processes; return their results.

    ``echo`` chooses whose captured output is printed afterwards: ``"rank0"``, ``"all"``
    or ``"none"``. Results travel back by pickle: return CPU tensors, numbers, dicts,
    dataclasses such as :class:`lab_utils.record.RunRecord`. Keyword arguments other than
    ``backend``, ``timeout``, ``echo`` and ``threads_per_rank`` go to ``fn``.
    """
    if _starting_inside_spawned_child():
        raise RuntimeError(_NO_MAIN_GUARD)
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if echo not in ("rank0", "all", "none"):
        raise ValueError(f"echo must be 'rank0', 'all' or 'none', got {echo!r}")
    _check_picklable_fn(fn)
    backend = resolve_backend(backend, world_size)
    threads = threads_per_rank or max(1, (os.cpu_count() or 1) // world_size)

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    logdir = Path(tempfile.mkdtemp(prefix="lab_utils_launch_"))
    logs = [logdir / f"rank{r}.log" for r in range(world_size)]
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(fn, r, world_size, backend, port, args, kwargs, results,
                               str(logs[r]), threads, max(timeout, 30.0)))
             for r in range(world_size)]
    for p in procs:
        p.start()

    def read_log(r: int) -> str:
        try:
            return logs[r].read_text(errors="replace")
        except OSError:
            return ""

    def kill_all() -> None:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(timeout=5)

    out: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < world_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pending = sorted(set(range(world_size)) - set(out))
                raise TimeoutError(
                    f"launch(): ranks {pending} did not finish within {timeout:.0f} s and were killed. "
                    "A rank waiting in a collective that another rank never calls hangs like this; "
                    f"raise timeout= if the work is just slow. Last output of rank {pending[0]}:\n"
                    + "\n".join(read_log(pending[0]).strip().splitlines()[-15:]))
            try:
                status, rank, data = results.get(timeout=min(0.2, remaining))
            except queue.Empty:
                dead = [r for r, p in enumerate(procs) if r not in out and p.exitcode not in (None, 0)]
                if not dead:
                    continue
                try:  # its report may still be on its way
                    status, rank, data = results.get(timeout=1.0)
                except queue.Empty:  # died without a word: segfault, os._exit, killed
                    raise _silent_death(dead[0], procs[dead[0]].exitcode, logs[dead[0]]) from None
            if status == "error":
                rank, data = _root_cause(rank, data, results, procs, out)
                raise WorkerError(rank, data, read_log(rank))
            out[rank] = pickle.loads(data)
        for p in procs:
            p.join(timeout=30)
    finally:
        kill_all()
        results.close()
        if echo != "none":
            for r in ([0] if echo == "rank0" else range(world_size)):
                text = read_log(r).strip()
                if text:
                    print(f"[rank {r}] " + text.replace("\n", f"\n[rank {r}] "))
        for f in logs:
            f.unlink(missing_ok=True)
        logdir.rmdir()
    return [out[r] for r in range(world_size)]


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, end)`` of rank's contiguous slice when ``n`` items are split as evenly as possible."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def require_divisible(n: int, world_size: int, what: str = "batch size") -> int:
    """``n // world_size``, or a clear error when ``world_size`` does not divide ``n``."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if n % world_size:
        raise ValueError(f"{what} {n} is not divisible by world_size {world_size}: "
                         f"choose a {what} that is a multiple of {world_size}")
    return n // world_size

