"""Real multi-process pipelines with ``torch.distributed.pipelining``: GPipe and 1F1B, measured.

Each rank is one pipeline stage: a contiguous run of *blocks* (``Linear`` + ``Tanh``) of the
regression MLP of :mod:`lab_utils.parallel.task`, split by fairscale-style ``balance`` (blocks per
stage). ``ScheduleGPipe`` (Huang et al. 2019, §2.2) or ``Schedule1F1B`` (PipeDream-Flush,
arXiv:2006.09503 §3; Megatron-LM arXiv:2104.04473 §2.2.1) splits every global batch into
``chunks`` micro-batches, sends activations forward and gradients backward between ranks
(gloo on CPUs, NCCL on GPUs) and scales each micro-batch's gradient by ``1/chunks``, so a step
computes the gradient of the whole batch's mean loss, as one process would.

Each stage's ``forward_one_chunk`` / ``backward_one_chunk`` is timed (the stage's *busy* time;
waiting for a peer is not in it) and the tensors autograd saves are followed by weak reference
(:func:`lab_utils.measure.live_saved_bytes`) after every micro-batch: the stage's peak of held
activations. The wall time of a step is the slowest rank's, after a barrier. The measured bubble
is ``1 - sum(busy) / (p * wall)``, the quantity :class:`lab_utils.parallel.pipeline_sim.Schedule`
predicts from stage times.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.dist import rank_device
from lab_utils.measure import live_saved_bytes, training_state_bytes
from lab_utils.parallel.pipeline_sim import SCHEDULES, schedule_order, simulate
from lab_utils.parallel.task import make_batch, make_model
from lab_utils.record import RunRecord


def make_blocks(sizes: tuple[int, ...], seed: int = 0, device: torch.device | str = "cpu") -> nn.Sequential:
    """:func:`~lab_utils.parallel.task.make_model` regrouped into pipeline blocks: each ``Linear`` with
    the ``Tanh`` after it (``len(sizes) - 1`` blocks), same weights."""
    layers = list(make_model(sizes, seed, device))
    blocks, i = [], 0
    while i < len(layers):
        take = 2 if i + 1 < len(layers) and isinstance(layers[i + 1], nn.Tanh) else 1
        blocks.append(nn.Sequential(*layers[i:i + take]))
        i += take
    return nn.Sequential(*blocks)


def even_balance(n_blocks: int, p: int) -> list[int]:
    """``n_blocks`` split over ``p`` stages as evenly as possible (earlier stages take the extra)."""
    if not 1 <= p <= n_blocks:
        raise ValueError(f"need 1 <= stages ({p}) <= blocks ({n_blocks}): give the model more layers")
    base, extra = divmod(n_blocks, p)
    return [base + (1 if s < extra else 0) for s in range(p)]


def stage_blocks(blocks: nn.Sequential, balance: list[int], stage: int) -> nn.Sequential:
    """The blocks of ``stage`` under ``balance`` (blocks per stage, like fairscale's ``balance=``)."""
    if sum(balance) != len(blocks) or min(balance) < 1:
        raise ValueError(f"balance {balance} must split the {len(blocks)} blocks into non-empty stages")
    start = sum(balance[:stage])
    return nn.Sequential(*list(blocks)[start:start + balance[stage]])


def reference_step(sizes: tuple[int, ...], global_batch: int, seed: int = 0,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The unpipelined model's output and flat parameter gradient on batch 0 (mean-squared error)."""
    model = make_blocks(sizes, seed, device)
    x, y = make_batch(0, global_batch, sizes, seed, device)
    out = model(x)
    nn.functional.mse_loss(out, y).backward()
    return out.detach().cpu(), torch.cat([p.grad.flatten() for p in model.parameters()]).cpu()


class _StageClock:
    """Times a ``PipelineStage``'s forward/backward of each micro-batch and samples held activations.

    Also timed, as compute the replay must hold: the loss of each micro-batch on the last stage
    (``"L"``, computed by the schedule outside ``forward_one_chunk``) and the end-of-step gradient
    scaling by ``1/chunks`` (``"R"``, ``perform_reduce_grad``; ``scale_grads`` in older torch)."""

    def __init__(self, stage, device: torch.device, live, schedule=None) -> None:
        self.ops: list[tuple[str, int, float]] = []
        self.device, self.live = device, live
        for name, op in (("forward_one_chunk", "F"), ("backward_one_chunk", "B")):
            setattr(stage, name, self._wrap(getattr(stage, name), op))
        reduce_name = "perform_reduce_grad" if hasattr(stage, "perform_reduce_grad") else "scale_grads"
        setattr(stage, reduce_name, self._wrap(getattr(stage, reduce_name), "R", chunk_arg=None))
        if schedule is not None and hasattr(schedule, "_maybe_compute_loss"):
            schedule._maybe_compute_loss = self._wrap(schedule._maybe_compute_loss, "L", chunk_arg=3)

    def _wrap(self, fn, op: str, chunk_arg: int | None = 0):
        def timed(*args, **kwargs):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            chunk = -1 if chunk_arg is None else int(args[chunk_arg] if len(args) > chunk_arg
                                                     else kwargs.get("mb_index", -1))
            if op != "L" or args[0].is_last:
                self.ops.append((op, chunk, time.perf_counter() - t0))
            if op in "FB":
                self.live.sample()
            return out
        return timed


def _replay_times(stage_ops: list[list[tuple[str, int, float]]], chunks: int) -> dict:
    """Measured ``(stage, op, micro-batch) -> seconds`` for the simulator: a micro-batch's loss is part
    of its forward on the last stage, the end-of-step gradient scaling part of the stage's last backward
    (micro-batch ``chunks - 1`` in both schedules)."""
    measured: dict[tuple[int, str, int], float] = {}
    for s, stage in enumerate(stage_ops):
        for o, i, t in stage:
            key = (s, "F", i) if o == "L" else (s, "B", chunks - 1) if o == "R" else (s, o, i)
            measured[key] = measured.get(key, 0.0) + t
    return measured


def hop_latency(rank: int, world_size: int, like: torch.Tensor, repeats: int = 5) -> float:
    """Measured one-way time of sending ``like`` (a micro-batch's activation) to the next stage:
    half the median round trip between each pair of neighbouring ranks, the slowest pair. It holds
    what a hop costs beyond compute: the copy, the transport and waking the waiting process."""
    worst = 0.0
    buf = torch.empty_like(like)
    for a in range(world_size - 1):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            if rank == a:
                dist.send(like, a + 1)
                dist.recv(buf, a + 1)
            elif rank == a + 1:
                dist.recv(buf, a)
                dist.send(buf, a)
            times.append(time.perf_counter() - t0)
        if rank == a:
            worst = max(worst, statistics.median(times) / 2)
    out = torch.tensor([worst])
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out.item()


def _schedule(kind: str, stage, chunks: int):
    from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe

    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    cls = ScheduleGPipe if kind == "gpipe" else Schedule1F1B
    return cls(stage, n_microbatches=chunks, loss_fn=nn.functional.mse_loss)


def train_pipeline(rank: int, world_size: int, schedule: str, sizes: tuple[int, ...], chunks: int,
                   steps: int, global_batch: int, lr: float = 1e-2, seed: int = 0,
                   balance: list[int] | None = None, keep_tensors: bool = False) -> RunRecord:
    """``steps`` Adam steps of the pipelined MLP, this rank running stage ``rank`` of ``world_size``.
    ``keep_tensors`` adds step 0's stage gradient (``grads0``) and, on the last stage, output (``output0``)
    to ``extra`` for comparison with the unpipelined model (off for JSON records)."""
    from torch.distributed.pipelining import PipelineStage

    if global_batch % chunks:
        raise ValueError(f"global batch {global_batch} must split into {chunks} equal micro-batches")
    device = rank_device()
    blocks = make_blocks(sizes, seed, device)
    balance = list(balance) if balance else even_balance(len(blocks), world_size)
    module = stage_blocks(blocks, balance, rank)
    stage = PipelineStage(module, rank, world_size, device)
    sched = _schedule(schedule, stage, chunks)
    opt = torch.optim.Adam(module.parameters(), lr=lr, foreach=False)
    last = rank == world_size - 1
    losses, walls, ops, hops, grads0, out0 = [], [], [], [], None, None
    hidden = torch.zeros(global_batch // chunks, sizes[sum(balance[:1]) if world_size > 1 else -1], device=device)
    with live_saved_bytes(module) as live:
        clock = _StageClock(stage, device, live, sched)
        for step in range(steps):
            x, y = make_batch(step, global_batch, sizes, seed, device)
            opt.zero_grad()
            mb_losses: list[torch.Tensor] = []
            clock.ops = []
            hops.append(hop_latency(rank, world_size, hidden))
            dist.barrier()
            t0 = time.perf_counter()
            if rank == 0 and last:
                out = sched.step(x, target=y, losses=mb_losses)
            elif rank == 0:
                out = sched.step(x)
            else:
                out = sched.step(target=y, losses=mb_losses) if last else sched.step()
            wall = torch.tensor([time.perf_counter() - t0])
            dist.all_reduce(wall, op=dist.ReduceOp.MAX)  # the step ends when the slowest rank ends
            if step == 0:
                grads0 = torch.cat([p.grad.flatten() for p in module.parameters()]).cpu()
                out0 = out.detach().cpu() if last and out is not None else None
            opt.step()
            loss = torch.stack(mb_losses).mean().detach().reshape(1) if last else torch.zeros(1, device=device)
            dist.broadcast(loss, src=world_size - 1)
            losses.append(loss.item())
            walls.append(wall.item())
            ops.append(clock.ops)
    params = torch.cat([p.detach().flatten() for p in module.parameters()]).cpu()
    return RunRecord(f"pipeline-{schedule}", rank, world_size, device=str(device), backend=dist.get_backend(),
                     config=dict(schedule=schedule, sizes=tuple(sizes), chunks=chunks, steps=steps,
                                 global_batch=global_batch, lr=lr, seed=seed, balance=tuple(balance)),
                     losses=losses, step_times=walls, params=params,
                     state_bytes=training_state_bytes(module, opt).as_dict(),
                     extra={"ops": ops, "hop_latency": hops, "peak_saved_bytes": live.peak,
                            "stage_params": sum(p.numel() for p in module.parameters()),
                            **({"grads0": grads0, "output0": out0} if keep_tensors else {})})


def pipeline_worker(rank: int, world_size: int, schedules: tuple[str, ...] = SCHEDULES,
                    sizes: tuple[int, ...] = (64, 127, 127, 127, 16), chunks: int = 4, steps: int = 5,
                    global_batch: int = 32, lr: float = 1e-2, seed: int = 0,
                    balance: list[int] | None = None, keep_tensors: bool = False) -> list[RunRecord]:
    """Worker for :func:`lab_utils.dist.launch` and ``torchrun -m lab_utils.run pipeline``:
    :func:`train_pipeline` for each of ``schedules`` (``"gpipe"``, ``"1f1b"``) in turn."""
    bad = [s for s in schedules if s not in SCHEDULES]
    if bad:
        raise ValueError(f"schedules must be among {SCHEDULES}, got {bad}")
    return [train_pipeline(rank, world_size, s, sizes, chunks, steps, global_batch, lr, seed, balance, keep_tensors)
            for s in schedules]


# ------------------------------------------------------------------ analysis of the records
def step_analysis(records: list[RunRecord], step: int) -> dict:
    """For one step of one run (``records``: that run's record from every rank, in rank order):
    the measured per-micro-batch forward/backward time of each stage (median), each stage's busy
    time, the wall time, the measured bubble ``1 - sum(busy)/(p * wall)``, and the simulator's
    bubble and makespan for those measured times (every operation with its own measured duration).
    The makespan is a lower bound of the wall time up to ``barrier_slack``: the ranks leave the barrier
    a wake-up apart and each times its own step, so the wall can fall short by about a hop (two hops
    or 5 % of the makespan are allowed, whichever is larger)."""
    p, kind = len(records), records[0].config["schedule"]
    chunks = records[0].config["chunks"]
    ops = [r.extra["ops"][step] for r in records]
    fwd = [statistics.median(t for o, _, t in stage if o == "F") for stage in ops]
    bwd = [statistics.median(t for o, _, t in stage if o == "B") for stage in ops]
    busy = [sum(t for _, _, t in stage) for stage in ops]
    wall = records[0].step_times[step]
    measured = _replay_times(ops, chunks)
    comm = records[0].extra["hop_latency"][step]
    sim = simulate(schedule_order(kind, p, chunks), fwd, bwd, op_times=measured)
    sim_comm = simulate(schedule_order(kind, p, chunks), fwd, bwd, comm=comm, op_times=measured)
    return {"schedule": kind, "fwd": fwd, "bwd": bwd, "busy": busy, "wall": wall,
            "measured_bubble": 1 - sum(busy) / (p * wall), "predicted_bubble": sim.bubble,
            "predicted_makespan": sim.makespan, "hop_latency": comm,
            "barrier_slack": max(2 * comm, 0.05 * sim.makespan),
            "predicted_bubble_with_hops": 1 - sum(busy) / (p * sim_comm.makespan)}


def run_analysis(records: list[RunRecord], skip: int = 1) -> dict:
    """:func:`step_analysis` of every step after the first ``skip`` (warm-up), and their medians."""
    steps = [step_analysis(records, s) for s in range(skip, len(records[0].step_times))]
    if not steps:
        raise ValueError(f"the run has {len(records[0].step_times)} steps; need more than skip={skip}")
    med = {k: statistics.median(s[k] for s in steps)
           for k in ("wall", "measured_bubble", "predicted_bubble", "predicted_makespan", "hop_latency",
                     "predicted_bubble_with_hops")}
    return {**med, "schedule": steps[0]["schedule"], "steps": steps,
            "relative_error": abs(med["measured_bubble"] - med["predicted_bubble"]) / med["predicted_bubble"],
            "relative_error_with_hops": abs(med["measured_bubble"] - med["predicted_bubble_with_hops"])
            / med["predicted_bubble_with_hops"]}
