"""TeraPipe for real: the small GPT of :mod:`~lab_utils.parallel.terapipe_gpt`, one stage per process,
token slices sent from stage to stage (gloo on CPUs, NCCL on GPUs), timed, and predicted.

:func:`terapipe_worker` (``fn(rank, world_size, **options) -> list[RunRecord]``, also
``torchrun -m lab_utils.run terapipe``) does three things on every rank:

1. **profile** its own stage the way TeraPipe's cost estimation does (§3.3; the authors' ``latency_model.py``):
   the forward and backward time of a slice of ``l`` tokens for every slice length with no context, on a
   grid of ``(l, c)`` with ``c`` tokens of context, and of whole sequences at the micro-batch sizes; plus
   the measured hand-over time between neighbouring ranks at two slice lengths (``pipeline_run.hop_latency``);
2. **fit** every stage's :class:`~lab_utils.parallel.terapipe_latency.FittedCost` from the gathered
   profiles and choose the slicing with the DP (:func:`~lab_utils.parallel.terapipe_cost.optimal_slicing`,
   Eq. 1 on the slowest stage's cost);
3. **run** each schedule for ``steps`` Adam steps: ``unsliced`` (the whole sequence as one slice: the
   pipeline without pipelining), ``uniform`` (``chunks`` equal slices), ``dp`` (the DP's slicing) and
   ``microbatch`` (GPipe: the batch in ``micro_batches`` whole-sequence micro-batches). Every slice's
   forward and backward is timed on its stage (busy time); a step's wall time is the slowest rank's. The
   prediction for the step is the event simulation of the schedule with the *fitted* times.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist

from lab_utils.dist import rank_device
from lab_utils.measure import time_it, training_state_bytes
from lab_utils.parallel.pipeline_run import hop_latency
from lab_utils.parallel.terapipe_cost import optimal_slicing, simulate_slicing, uniform_slicing
from lab_utils.parallel.terapipe_gpt import (
    Chunk,
    GPTConfig,
    StageRunner,
    build_gpt,
    make_tokens,
    stage_module,
    token_chunks,
)
from lab_utils.parallel.terapipe_latency import FittedCost, fit_comm, max_cost
from lab_utils.record import RunRecord

SCHEDULES = ("unsliced", "uniform", "dp", "microbatch")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_slices(runner: StageRunner, d_model: int, b: int, slices: list[int], device: torch.device,
                repeats: int = 3) -> list[tuple[float, float]]:
    """Measured (forward, backward) seconds of each slice of ``slices`` on this stage (batch ``b``), run the
    way the pipeline runs them: forwards in order with the KV cache growing, then backwards in reverse with
    every graph held. Median over ``repeats`` passes after one warm-up pass."""
    x = torch.randn(b, sum(slices), d_model, device=device)
    starts = [sum(slices[:i]) for i in range(len(slices))]
    chunks = [(0, b, a, a + n) for a, n in zip(starts, slices)]
    grads = [None if runner.last else torch.ones(b, n, d_model, device=device) for n in slices]
    times: list[list[tuple[float, float]]] = [[] for _ in slices]
    for rep in range(repeats + 1):
        runner.reset()
        fwd = []
        for ch in chunks:
            _sync(device)
            t0 = time.perf_counter()
            runner.forward(ch, x[:, ch[2]:ch[3]])
            _sync(device)
            fwd.append(time.perf_counter() - t0)
        for i in reversed(range(len(chunks))):
            _sync(device)
            t0 = time.perf_counter()
            runner.backward(chunks[i], grads[i])
            _sync(device)
            if rep:
                times[i].append((fwd[i], time.perf_counter() - t0))
    runner.reset()
    return [(statistics.median(f for f, _ in ts), statistics.median(b for _, b in ts)) for ts in times]


def profile_stage(runner: StageRunner, cfg: GPTConfig, batch: int, unit: int, micro_batches: int,
                  device: torch.device, repeats: int = 3) -> dict:
    """This stage's measured slice times, each from passes of equal slices of ``l = unit, 2 unit, .., L``
    tokens (:func:`time_slices`): ``t0`` rows ``[l, fwd, bwd]`` of the first slice (no context); ``ctx`` rows
    ``[l, c, fwd, bwd]`` of the later ones (``c`` tokens of context); ``mb``: ``[fwd, bwd]`` of a whole
    sequence at micro-batch size ``batch / micro_batches``."""
    L, d = cfg.seq_len, cfg.d_model
    t0, ctx = [], []
    for length in range(unit, L + 1, unit):
        measured = time_slices(runner, d, batch, [length] * (L // length), device, repeats)
        t0.append([length, *measured[0]])
        ctx += [[length, i * length, *m] for i, m in enumerate(measured) if i]
    mb = list(time_slices(runner, d, batch // micro_batches, [L], device, repeats)[0])
    return {"t0": t0, "ctx": ctx, "mb": mb}


def fit_stage(profile: dict, comm: tuple[float, float] = (0.0, 0.0)) -> tuple[FittedCost, FittedCost]:
    """(forward, backward) :class:`FittedCost` of one stage from :func:`profile_stage`'s rows; the hand-over
    ``comm`` goes with the forward."""
    fwd = FittedCost.fit({r[0]: r[1] for r in profile["t0"]}, {(r[0], r[1]): r[2] for r in profile["ctx"]}, comm)
    bwd = FittedCost.fit({r[0]: r[2] for r in profile["t0"]}, {(r[0], r[1]): r[3] for r in profile["ctx"]})
    return fwd, bwd


def predict_step(fits: list[tuple[FittedCost, FittedCost]], slices: list[int], hop: float) -> float:
    """The fitted model's step time for one batch group cut into ``slices``: the event simulation
    (:func:`~lab_utils.parallel.terapipe_cost.simulate_slicing`) of the per-stage fitted times with a
    measured ``hop`` per hand-over. Fits hold their comm separately (``comm`` of the forward is dropped)."""
    ctx = [sum(slices[:i]) for i in range(len(slices))]
    fwd = [[f(length, c) - f.comm[0] - f.comm[1] * length for length, c in zip(slices, ctx)] for f, _ in fits]
    bwd = [[b(length, c) for length, c in zip(slices, ctx)] for _, b in fits]
    return simulate_slicing(fwd, bwd, comm=hop).makespan


def predict_microbatch(profiles: list[dict], micro_batches: int, hop: float) -> float:
    """The step time of ``micro_batches`` whole-sequence micro-batches from their measured per-stage times."""
    fwd = [[p["mb"][0]] * micro_batches for p in profiles]
    bwd = [[p["mb"][1]] * micro_batches for p in profiles]
    return simulate_slicing(fwd, bwd, comm=hop).makespan


def _comm_fit(rank: int, world_size: int, cfg: GPTConfig, batch: int, unit: int, device) -> tuple[float, float]:
    if world_size == 1:
        return 0.0, 0.0
    lengths = sorted({unit, cfg.seq_len})
    hops = [hop_latency(rank, world_size, torch.zeros(batch, length, cfg.d_model, device=device)) for length in lengths]
    return fit_comm(lengths, hops)


def run_schedule(rank: int, world_size: int, cfg: GPTConfig, chunks: list[Chunk], batch: int, steps: int,
                 lr: float, seed: int, device: torch.device) -> dict:
    """``steps`` Adam steps of the token-pipelined model over ``chunks``: forwards in order (receive the
    slice's input from the previous rank, send its output on), then backwards in reverse order (receive
    the output's gradient, send the input's back). Per step: loss, wall time (slowest rank), this stage's
    timed operations; step 0's stage gradient."""
    module = stage_module(build_gpt(cfg, seed), rank, world_size).to(device)
    opt = torch.optim.Adam(module.parameters(), lr=lr, foreach=False)
    first, last = rank == 0, rank == world_size - 1
    losses, walls, ops, grads0 = [], [], [], None
    for step in range(steps):
        tokens, targets = (t.to(device) for t in make_tokens(cfg, batch, step, seed))
        runner = StageRunner(module, tokens, targets)
        opt.zero_grad()
        step_ops, pending, loss = [], [], torch.zeros(1, device=device)
        dist.barrier()
        t_start = time.perf_counter()
        for i, ch in enumerate(chunks):
            x = None
            if not first:
                x = torch.empty(ch[1] - ch[0], ch[3] - ch[2], cfg.d_model, device=device)
                dist.recv(x, rank - 1)
            _sync(device)
            t0 = time.perf_counter()
            out = runner.forward(ch, x)
            _sync(device)
            step_ops.append(("F", i, time.perf_counter() - t0))
            if last:
                loss += out.detach()
            else:
                pending.append(dist.isend(out.detach().contiguous(), rank + 1))
        for i in reversed(range(len(chunks))):
            ch, g = chunks[i], None
            if not last:
                g = torch.empty(ch[1] - ch[0], ch[3] - ch[2], cfg.d_model, device=device)
                dist.recv(g, rank + 1)
            _sync(device)
            t0 = time.perf_counter()
            g_in = runner.backward(ch, g)
            _sync(device)
            step_ops.append(("B", i, time.perf_counter() - t0))
            if not first:
                pending.append(dist.isend(g_in.contiguous(), rank - 1))
        for work in pending:
            work.wait()
        wall = torch.tensor([time.perf_counter() - t_start], device=device)
        dist.all_reduce(wall, op=dist.ReduceOp.MAX)
        if step == 0:
            grads0 = torch.cat([p.grad.flatten() for p in module.parameters()]).cpu()
        opt.step()
        dist.broadcast(loss, src=world_size - 1)
        losses.append(loss.item())
        walls.append(wall.item())
        ops.append(step_ops)
    params = torch.cat([p.detach().flatten() for p in module.parameters()]).cpu()
    return {"losses": losses, "walls": walls, "ops": ops, "grads0": grads0, "params": params,
            "state_bytes": training_state_bytes(module, opt).as_dict()}


def plan_slicings(fits: list[tuple[FittedCost, FittedCost]], comm: tuple[float, float], L: int, K: int,
                  unit: int, chunks: int) -> dict[str, list[int]]:
    """The token slicings of the schedules: ``unsliced`` ``[L]``, ``uniform`` (``chunks`` equal slices) and
    ``dp``: :func:`optimal_slicing` of Eq. (1) on the slowest stage's fitted forward + backward, plus the
    hand-over both ways (``2 (alpha + beta l)``)."""
    def stage_cost(f: FittedCost, b: FittedCost):
        return lambda length, c: f(length, c) - f.comm[0] - f.comm[1] * length + b(length, c) + 2 * (comm[0] + comm[1] * length)

    dp = optimal_slicing(max_cost([stage_cost(f, b) for f, b in fits]), L, K, unit=unit)
    return {"unsliced": [L], "uniform": uniform_slicing(L, chunks), "dp": list(dp.slices)}


def terapipe_worker(rank: int, world_size: int, schedules: tuple[str, ...] = SCHEDULES, chunks: int = 4,
                    micro_batches: int = 4, global_batch: int = 8, steps: int = 4, lr: float = 1e-3, seed: int = 0,
                    vocab: int = 64, d_model: int = 64, n_head: int = 4, n_layer: int = 4, seq_len: int = 64,
                    unit: int = 8, repeats: int = 3, keep_tensors: bool = False) -> list[RunRecord]:
    """Worker for :func:`lab_utils.dist.launch` and ``torchrun -m lab_utils.run terapipe``: profile this
    rank's stage, fit every stage's cost model, choose the DP slicing, then run each of ``schedules``
    (``unsliced``, ``uniform``, ``dp``, ``microbatch``) for ``steps`` steps. ``extra`` of each record holds
    the slicing, the timed operations, the measured hop, every stage's profile, the fitted prediction of
    the step time, and rank 0's measured time of the whole model in one process (``unpipelined``).
    ``keep_tensors`` adds step 0's stage gradient (``grads0``) for comparison with the unpipelined model."""
    bad = [s for s in schedules if s not in SCHEDULES]
    if bad:
        raise ValueError(f"schedules must be among {SCHEDULES}, got {bad}")
    cfg = GPTConfig(vocab, d_model, n_head, n_layer, seq_len)
    if seq_len % unit or global_batch % micro_batches:
        raise ValueError(f"seq_len {seq_len} must be a multiple of unit {unit}, and global_batch {global_batch} "
                         f"of micro_batches {micro_batches}")
    device = rank_device()
    tokens, targets = (t.to(device) for t in make_tokens(cfg, global_batch, 0, seed))
    stage = stage_module(build_gpt(cfg, seed), rank, world_size).to(device)
    profile = profile_stage(StageRunner(stage, tokens, targets), cfg, global_batch, unit, micro_batches, device, repeats)
    comm = _comm_fit(rank, world_size, cfg, global_batch, unit, device)
    profiles: list = [None] * world_size
    dist.all_gather_object(profiles, profile)
    fits = [fit_stage(p, comm) for p in profiles]
    slicings = plan_slicings(fits, comm, seq_len, world_size, unit, chunks)
    unpipelined = _time_unpipelined(rank, cfg, global_batch, seed, device, repeats)
    hop = comm[0] + comm[1] * seq_len / max(1, chunks)
    records = []
    for name in schedules:
        m = micro_batches if name == "microbatch" else 1
        slices = [seq_len] if name == "microbatch" else slicings[name]
        run = run_schedule(rank, world_size, cfg, token_chunks(slices, global_batch, m), global_batch, steps, lr,
                           seed, device)
        predicted = predict_microbatch(profiles, m, comm[0] + comm[1] * seq_len) if name == "microbatch" \
            else predict_step(fits, slices, comm[0] + comm[1] * (sum(slices) / len(slices)))
        records.append(RunRecord(
            f"terapipe-{name}", rank, world_size, device=str(device), backend=dist.get_backend(),
            config=dict(schedule=name, slices=tuple(slices), micro_batches=m, global_batch=global_batch,
                        steps=steps, lr=lr, seed=seed, cfg=cfg.__dict__.copy(), unit=unit),
            losses=run["losses"], step_times=run["walls"], params=run["params"], state_bytes=run["state_bytes"],
            extra={"ops": run["ops"], "profiles": profiles, "comm": comm, "hop": hop, "predicted": predicted,
                   "unpipelined": unpipelined, **({"grads0": run["grads0"]} if keep_tensors else {})}))
    return records


def _time_unpipelined(rank: int, cfg: GPTConfig, batch: int, seed: int, device: torch.device,
                      repeats: int) -> float | None:
    """Rank 0 times forward + backward of the whole model on the whole batch in one piece (its other ranks
    wait at a barrier, so it has the machine the pipeline would share): the unpipelined step."""
    out = None
    if rank == 0:
        runner = StageRunner(build_gpt(cfg, seed).to(device), *(t.to(device) for t in make_tokens(cfg, batch, 0, seed)))
        chunk = (0, batch, 0, cfg.seq_len)

        def step() -> None:
            runner.reset()
            runner.forward(chunk)
            runner.backward(chunk)
        out = time_it(step, warmup=1, repeats=repeats, device=device).median
    dist.barrier()
    return out
