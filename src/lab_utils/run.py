"""Run the book's distributed experiments under ``torchrun``, on one machine or many.

    torchrun --standalone --nproc-per-node 2 -m lab_utils.run zero --stage 3
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m lab_utils.run deepspeed --stage 2 --offload --out run.json

``torchrun`` (torch.distributed.elastic) starts the processes and sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous; this module only initialises the process
group (NCCL when every local rank has its own GPU, else gloo), maps the experiment's name to
the same worker function the chapters pass to :func:`lab_utils.dist.launch`, and prints (and
with ``--out`` saves) the ranks' :class:`lab_utils.record.RunRecord` as JSON.
``python -m lab_utils.run --list`` lists the experiments.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lab_utils.dist import resolve_backend


@dataclass(frozen=True)
class Experiment:
    """A worker ``fn(rank, world_size, **options) -> list[RunRecord]``, named by import path."""

    target: str  # "package.module:function"; imported only when run (core imports no topic)
    help: str
    options: tuple[str, ...]  # which of the command-line options below it takes

    def worker(self) -> Callable:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


_TRAINING = ("stages", "sizes", "steps", "global_batch", "lr", "seed")
EXPERIMENTS = {
    "zero": Experiment("lab_utils.parallel.zero_stages:zero_worker",
                       "the book's reference ZeRO-DP (stages 0-3) on the small regression task", _TRAINING),
    "deepspeed": Experiment("lab_utils.parallel.zero_deepspeed:deepspeed_worker",
                            "DeepSpeed ZeRO (stages 0-3, --offload for ZeRO-Offload) on the same task",
                            _TRAINING + ("offload",)),
    "sharded": Experiment("lab_utils.parallel.sharded:sharded_worker",
                          "DDP, fairscale OSS/ShardedDDP/FSDP and PyTorch FSDP2 (--variant) on the same task",
                          ("variants", "sizes", "steps", "global_batch", "lr", "seed")),
    "pipeline": Experiment("lab_utils.parallel.pipeline_run:pipeline_worker",
                           "pipeline parallelism (torch.distributed.pipelining, --schedule gpipe|1f1b), one stage per rank",
                           ("schedules", "chunks", "sizes", "steps", "global_batch", "lr", "seed")),
    "terapipe": Experiment("lab_utils.parallel.terapipe_run:terapipe_worker",
                           "TeraPipe: a small GPT pipelined over token slices (--chunks equal slices, DP, micro-batches)",
                           ("chunks", "steps", "global_batch", "lr", "seed")),
}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated layer widths, e.g. 64,127,127,16; "
                                         f"got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes needs >= 2 positive widths, got {text!r}")
    return sizes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab_utils.run", description=__doc__.split("\n\n")[0],
                                epilog="experiments: " + "; ".join(f"{k}: {e.help}" for k, e in EXPERIMENTS.items()))
    p.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS), help="which experiment to run")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--stage", dest="stages", type=int, action="append", choices=(0, 1, 2, 3),
                   help="ZeRO stage; repeat for several (default: all four)")
    p.add_argument("--sizes", type=_sizes, default=(64, 127, 127, 16), help="MLP layer widths (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", dest="global_batch", type=int, default=32, help="global batch (split over ranks)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--offload", action="store_true", help="deepspeed: ZeRO-Offload (optimizer on the CPU)")
    p.add_argument("--variant", dest="variants", action="append",
                   help="sharded: ddp, oss, oss_sdp, fsdp2, fsdp2_noreshard, fsdp2_whole, fsdp2_offload, "
                        "fairscale_fsdp (CUDA); repeat for several (default: all but fairscale_fsdp)")
    p.add_argument("--schedule", dest="schedules", action="append", choices=("gpipe", "1f1b"),
                   help="pipeline: schedule; repeat for several (default: both)")
    p.add_argument("--chunks", type=int, default=4, help="pipeline: micro-batches per step (default: %(default)s)")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    p.add_argument("--out", help="write every rank's run record to this JSON file")
    p.add_argument("--timeout", type=float, default=600, help="seconds a collective may wait")
    return p


def _env_int(name: str, command: str) -> int:
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(
            f"lab_utils.run: {name} is not set, so this is not a torchrun worker. Start it with torchrun, e.g.\n"
            f"  torchrun --standalone --nproc-per-node 2 -m lab_utils.run {command}\n"
            "(from a notebook or script, use lab_utils.dist.launch with the same worker instead)")
    return int(value)


def options_for(exp: Experiment, args: argparse.Namespace) -> dict:
    """The keyword arguments ``exp``'s worker takes, from the parsed command line."""
    opts = {k: getattr(args, k) for k in exp.options}
    if "stages" in opts:
        opts["stages"] = tuple(opts["stages"] or (0, 1, 2, 3))
    if "variants" in opts:
        if opts["variants"]:
            opts["variants"] = tuple(opts["variants"])
        else:
            del opts["variants"]  # the worker's default
    if args.variants and "variants" not in exp.options:
        raise SystemExit(f"lab_utils.run: --variant applies to 'sharded', not to {args.experiment!r}")
    if "schedules" in opts:
        opts["schedules"] = tuple(opts["schedules"] or ("gpipe", "1f1b"))
    if args.schedules and "schedules" not in exp.options:
        raise SystemExit(f"lab_utils.run: --schedule applies to 'pipeline', not to {args.experiment!r}")
    if args.offload and "offload" not in exp.options:
        raise SystemExit(f"lab_utils.run: --offload applies to 'deepspeed', not to {args.experiment!r}")
    return opts


def init_from_torchrun(backend: str, timeout: float, command: str = "zero") -> tuple[int, int, str]:
    """Initialise the default process group from torchrun's environment; (rank, world_size, backend)."""
    rank, world_size = _env_int("RANK", command), _env_int("WORLD_SIZE", command)
    local_rank, local_world = _env_int("LOCAL_RANK", command), _env_int("LOCAL_WORLD_SIZE", command)
    backend = resolve_backend(backend, local_world)  # NCCL needs a GPU per rank *on this node*
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return rank, world_size, backend


def summary(records: list) -> str:
    """One line per run, from rank 0's record and every rank's state bytes."""
    lines = []
    for i, rec in enumerate(records[0]):
        per_rank = [r[i].state_bytes.get("total", float("nan")) for r in records]
        lines.append(f"{rec.experiment} {rec.config}: final loss {rec.losses[-1]:.6g}, "
                     f"median step {rec.median_step_time * 1e3:.1f} ms, state bytes per rank {per_rank}, "
                     f"communication {rec.comm_bytes_per_step:,.0f} B/step")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.list or args.experiment is None:
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<10} {exp.help}  (options: {', '.join(exp.options)})")
        return 0 if args.list else 2
    exp = EXPERIMENTS[args.experiment]
    opts = options_for(exp, args)
    rank, world_size, backend = init_from_torchrun(args.backend, args.timeout, " ".join(argv))
    try:
        records = exp.worker()(rank, world_size, **opts)
        gathered = [None] * world_size if rank == 0 else None
        dist.gather_object(records, gathered, dst=0)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(f"lab_utils.run {args.experiment}: {world_size} ranks, backend {backend}")
        print(summary(gathered))
        if args.out:
            with open(args.out, "w") as f:
                json.dump([[r.to_json() for r in recs] for recs in gathered], f, indent=1)
            print(f"run records written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
