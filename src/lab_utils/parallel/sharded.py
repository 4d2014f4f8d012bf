"""Sharded data parallelism from the libraries: DDP, fairscale OSS / ShardedDDP / FSDP, PyTorch FSDP2.

The ZeRO chapter's reference (:mod:`lab_utils.parallel.zero_stages`) shows *what happens inside*;
this module runs the libraries that ship the same ideas, on the same task
(:mod:`lab_utils.parallel.task`), and measures what each keeps per rank and sends per step:

==================  =====================================================  ==================
variant             what it shards (ZeRO §5 name)                           communication (§7)
==================  =====================================================  ==================
``ddp``             nothing: ``torch.nn.parallel.DistributedDataParallel``  all-reduce 2Ψ
``oss``             optimizer states (P_os): fairscale ``OSS`` under DDP    all-reduce 2Ψ + broadcast Ψ
``oss_sdp``         + gradients (P_os+g): ``OSS`` + ``ShardedDDP``          reduce Ψ + broadcast Ψ
``fsdp2``           + parameters (P_os+g+p), ``fully_shard`` per block,     all-gather 2Ψ + reduce-scatter Ψ
                    ``reshard_after_forward=True`` (ZeRO-3-like)
``fsdp2_noreshard`` per block, ``reshard_after_forward=False``: parameters  all-gather Ψ + reduce-scatter Ψ
                    stay gathered from forward to backward (ZeRO-2-like)
``fsdp2_whole``     one ``fully_shard`` on the whole model: all parameters  all-gather 2Ψ + reduce-scatter Ψ
                    gathered at once (torch < 2.8 never reshards the root: Ψ)
``fsdp2_offload``   ``fsdp2`` + ``CPUOffloadPolicy`` (shards and Adam on    as ``fsdp2``
                    the host; on a CPU-only machine host = device)
``fairscale_fsdp``  fairscale ``FullyShardedDataParallel`` per block        as ``fsdp2``
                    (CUDA only: it sets up CUDA streams at construction)
==================  =====================================================  ==================

Sources: fairscale docs, "OSS", "ShardedDDP" and "FullyShardedDataParallel"
(https://fairscale.readthedocs.io/en/latest/api/); Zhao et al., *PyTorch FSDP: Experiences on
Scaling Fully Sharded Data Parallel*, VLDB 2023 (arXiv:2304.11277), §3 (units, sharding,
reshard-after-forward, §3.2.1 flat parameters and padding); PyTorch docs, ``torch.distributed.fsdp.
fully_shard`` (FSDP2: per-parameter dim-0 sharding as DTensors). Communication is counted from what
the libraries actually call (:mod:`lab_utils.parallel.comm_trace`), memory from the real tensors
(:func:`lab_utils.measure.sharded_state_bytes`, :func:`lab_utils.measure.live_tensor_peak`).
The flat-parameter maths (flatten, pad, shard, and back) is :mod:`lab_utils.parallel.sharded_math`.
"""

from __future__ import annotations

import time
import warnings

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.dist import rank_device
from lab_utils.measure import live_tensor_peak, sharded_state_bytes
from lab_utils.parallel.comm_trace import counting_allreduce_hook, trace_collectives
from lab_utils.parallel.sharded_math import fsdp2_padded_numel
from lab_utils.parallel.task import local_batch, make_model, mean_loss
from lab_utils.record import RunRecord

VARIANTS = {
    "ddp": "torch DistributedDataParallel + Adam (nothing sharded)",
    "oss": "fairscale OSS (optimizer states sharded) under torch DDP",
    "oss_sdp": "fairscale OSS + ShardedDDP (optimizer states and gradients sharded)",
    "fsdp2": "torch fully_shard per block, reshard_after_forward=True (ZeRO-3-like)",
    "fsdp2_noreshard": "torch fully_shard per block, reshard_after_forward=False (ZeRO-2-like)",
    "fsdp2_whole": "torch fully_shard on the whole model only (one unit)",
    "fsdp2_offload": "torch fully_shard per block + CPUOffloadPolicy",
    "fairscale_fsdp": "fairscale FullyShardedDataParallel per block (CUDA only)",
    "deepspeed_zero2": "DeepSpeed ZeRO stage 2 (for benchmarks/sharded.py)",
    "deepspeed_zero3": "DeepSpeed ZeRO stage 3 (for benchmarks/sharded.py)",
}
CPU_VARIANTS = tuple(v for v in VARIANTS if v != "fairscale_fsdp" and not v.startswith("deepspeed"))
FAIRSCALE_FSDP_CPU = ("fairscale's FullyShardedDataParallel needs CUDA: its constructor sets up CUDA streams "
                      "(torch.cuda.Stream) and fails on a CPU-only machine. Run variant 'fairscale_fsdp' "
                      "with one GPU per rank (backend nccl), or use 'fsdp2', its successor in PyTorch.")


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=r"`torch.distributed.\w+` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"fairscale\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.distributed\..*")


def _adam(params, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, foreach=False)


def wrap_ddp(model: nn.Module, lr: float):
    """Plain DDP (baseline): every rank keeps everything; buckets all-reduced by a counting hook."""
    ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
    ddp.register_comm_hook(None, counting_allreduce_hook)
    opt = _adam(model.parameters(), lr)
    return ddp, opt, opt


def wrap_oss(model: nn.Module, lr: float, sharded_ddp: bool):
    """fairscale ``OSS`` (docs "OSS": each rank owns whole parameters, assigned greedily by size, and
    keeps Adam's state for those only; after its step it broadcasts them, ZeRO §5.1 P_os). With
    ``ShardedDDP`` (docs "ShardedDDP") each gradient is *reduced* to its owner instead of all-reduced
    and dropped elsewhere (§5.2 P_g): reduce Ψ + broadcast Ψ = DDP's 2Ψ. ``reduce_buffer_size=0``: no
    gradient buckets (docs: buckets are "parameters which will not be sharded"), so P_g holds at rest."""
    from fairscale.nn.data_parallel import ShardedDataParallel
    from fairscale.optim.oss import OSS

    oss = OSS(model.parameters(), optim=torch.optim.Adam, lr=lr, foreach=False)
    if sharded_ddp:
        return ShardedDataParallel(model, oss, reduce_buffer_size=0), oss, oss.optim
    ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
    ddp.register_comm_hook(None, counting_allreduce_hook)
    return ddp, oss, oss.optim


def wrap_fsdp2(model: nn.Sequential, lr: float, reshard: bool, per_block: bool, offload: bool):
    """FSDP2 (``fully_shard``; FSDP paper §3.1-3.2): each unit's parameters become DTensors sharded on
    dim 0 (padded to a multiple of N); a unit is all-gathered before its forward, freed after it when
    ``reshard`` (and gathered again for backward), and its gradients reduce-scattered (§3.2.2).
    Whole-model wrapping makes the root the only unit: everything is gathered at once."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    policy = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if offload else OffloadPolicy()
    if per_block:
        for layer in model:
            if any(True for _ in layer.parameters()):
                fully_shard(layer, reshard_after_forward=reshard, offload_policy=policy)
    fully_shard(model, reshard_after_forward=reshard, offload_policy=policy)
    opt = _adam(model.parameters(), lr)
    return model, opt, opt


def wrap_fairscale_fsdp(model: nn.Sequential, lr: float):
    """fairscale ``FullyShardedDataParallel`` (docs: flat parameter per unit, ZeRO-3-like) per block."""
    if rank_device().type != "cuda":
        raise RuntimeError(FAIRSCALE_FSDP_CPU)
    from fairscale.nn.data_parallel import FullyShardedDataParallel as FSDP

    kw = dict(flatten_parameters=True, mixed_precision=False, reshard_after_forward=True)
    for i, layer in enumerate(model):
        if any(True for _ in layer.parameters()):
            model[i] = FSDP(layer, **kw)
    wrapped = FSDP(model, **kw)
    opt = _adam(wrapped.parameters(), lr)
    return wrapped, opt, opt


class _EngineSteps:
    """DeepSpeed's engine behind the optimizer calls of :func:`_step` (its backward does ZeRO's reduction)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.engine.zero_grad()

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def step(self) -> None:
        self.engine.step()


def wrap_deepspeed(model: nn.Module, lr: float, stage: int, micro_batch: int):
    """DeepSpeed ZeRO ``stage`` with the ZeRO chapter's fp32 config (:mod:`lab_utils.parallel.zero_deepspeed`)."""
    from lab_utils.parallel.zero_deepspeed import deepspeed_config, use_accelerator

    use_accelerator(cuda=rank_device().type == "cuda")
    import deepspeed

    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                      config=deepspeed_config(stage, micro_batch, lr))
    return engine, _EngineSteps(engine), getattr(engine.optimizer, "optimizer", engine.optimizer)


def build(variant: str, model: nn.Sequential, lr: float, micro_batch: int = 1):
    """(module to call, optimizer to step, the optimizer holding this rank's Adam states)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if variant == "ddp":
        return wrap_ddp(model, lr)
    if variant in ("oss", "oss_sdp"):
        return wrap_oss(model, lr, sharded_ddp=variant == "oss_sdp")
    if variant == "fairscale_fsdp":
        return wrap_fairscale_fsdp(model, lr)
    if variant.startswith("deepspeed"):
        return wrap_deepspeed(model, lr, int(variant[-1]), micro_batch)
    return wrap_fsdp2(model, lr, reshard=variant != "fsdp2_noreshard", per_block=variant != "fsdp2_whole",
                      offload=variant == "fsdp2_offload")


def full_parameters(variant: str, module: nn.Module, model: nn.Module) -> torch.Tensor:
    """All parameters, flattened in model order, on the CPU (gathered where sharded)."""
    if variant.startswith("deepspeed"):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.module.parameters()), enabled=variant.endswith("3")):
            return torch.cat([p.detach().float().flatten().cpu() for p in module.module.parameters()])
    if variant == "fairscale_fsdp":  # its state_dict is the full, unflattened one (a collective)
        return torch.cat([v.detach().float().flatten().cpu() for v in module.state_dict().values()])
    return torch.cat([(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().flatten().cpu()
                      for p in model.parameters()])


def state_bytes(variant: str, module: nn.Module, inner: torch.optim.Optimizer) -> dict[str, float]:
    """Measured model-state bytes this rank holds (DeepSpeed: its fp32 partition counted as Adam's state)."""
    if not variant.startswith("deepspeed"):
        return sharded_state_bytes(module.parameters(), inner).as_dict()
    from lab_utils.parallel.zero_deepspeed import deepspeed_state_bytes

    ds = deepspeed_state_bytes(module)
    out = {"params": ds["params"], "grads": 0, "optimizer_states": ds["optimizer_states"] + ds["fp32_partition"]}
    return {**out, "total": sum(out.values())}


def _step(module, opt, x, y, held: list | None = None) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """One training step; with ``held``, (peak of live tensors during forward + backward, live bytes
    between forward and backward), counting ``held`` from the start (communication included, the
    optimizer step not)."""
    opt.zero_grad(set_to_none=True)
    backward = getattr(opt, "backward", lambda loss: loss.backward())
    peak = None
    if held is None:
        loss = nn.functional.mse_loss(module(x), y)
        backward(loss)
    else:
        with live_tensor_peak(held) as live:
            loss = nn.functional.mse_loss(module(x), y)
            after_forward = live.live()
            backward(loss)
        peak = (live.peak, after_forward)
    opt.step()
    return loss, peak


def train_sharded(rank: int, world_size: int, variant: str, sizes: tuple[int, ...], steps: int,
                  global_batch: int, lr: float = 1e-2, seed: int = 0, peak_step: int = 1) -> RunRecord:
    """Train :func:`~lab_utils.parallel.task.make_model` with ``variant`` on this rank's slice of every
    global batch; count collectives every step, follow live tensors during step ``peak_step``."""
    _quiet()
    device = rank_device()
    model = make_model(sizes, seed, device)
    psi = sum(p.numel() for p in model.parameters())
    shapes = [tuple(p.shape) for p in model.parameters()]
    module, opt, inner = build(variant, model, lr, global_batch // world_size)
    losses, times, peak, after_forward = [], [], None, None
    with trace_collectives(world_size) as trace:
        for step in range(steps):
            x, y = local_batch(step, rank, world_size, global_batch, sizes, seed, device)
            t0 = time.perf_counter()
            if step == peak_step:  # slower (a Python hook per operator): not timed
                held = [*module.parameters(), *(v for s in inner.state.values() for v in s.values()), x, y]
                loss, (peak, after_forward) = _step(module, opt, x, y, held)
            else:
                loss, _ = _step(module, opt, x, y)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - t0)
            with trace.pause():
                losses.append(mean_loss(loss, world_size))
        state = state_bytes(variant, module, inner)
        with trace.pause():
            params = full_parameters(variant, module, model)
    volume, ring = trace.per_step(steps)
    calls = {k: v / steps for k, v in trace.calls.items()}
    return RunRecord("sharded-" + variant, rank, world_size, device=str(device), backend=dist.get_backend(),
                     config=dict(variant=variant, sizes=tuple(sizes), steps=steps, global_batch=global_batch,
                                 lr=lr, seed=seed),
                     losses=losses, step_times=times, state_bytes=state, comm_bytes=volume, comm_ring_bytes=ring,
                     params=params,
                     extra={"num_params": psi, "fsdp2_padded_params": fsdp2_padded_numel(shapes, world_size),
                            "param_tensors": len(shapes), "adam_tensors": len(inner.state),
                            "peak_live_bytes": peak, "live_bytes_after_forward": after_forward,
                            "calls_per_step": calls,
                            "optimizer": type(opt).__name__, "module": type(module).__name__})


def sharded_worker(rank: int, world_size: int, variants: tuple[str, ...] = CPU_VARIANTS,
                   sizes: tuple[int, ...] = (64, 127, 127, 16), steps: int = 20, global_batch: int = 32,
                   lr: float = 1e-2, seed: int = 0) -> list[RunRecord]:
    """Worker for :func:`lab_utils.dist.launch` and ``torchrun -m lab_utils.run sharded``:
    :func:`train_sharded` for each of ``variants`` in turn (one process group for all)."""
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants must be among {list(VARIANTS)}, got {bad}")
    if steps < 3:
        raise ValueError(f"steps must be >= 3 (step 1 is the memory-traced one), got {steps}")
    return [train_sharded(rank, world_size, v, sizes, steps, global_batch, lr, seed) for v in variants]
