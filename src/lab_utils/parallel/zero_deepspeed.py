"""DeepSpeed's ZeRO beside the reference implementation, and the CPU-Adam claim re-measured.

* :func:`deepspeed_worker` trains the same model as :mod:`lab_utils.parallel.zero_stages` with
  ``deepspeed.initialize`` and ``zero_optimization.stage`` 0-3 (fp32, gloo on CPU, NCCL on
  GPUs), optionally with ZeRO-Offload (``offload_optimizer: {device: cpu}``, Ren et al.
  2021), and reads the per-rank partition sizes out of DeepSpeed's ZeRO optimizer.
* :func:`cpu_adam_times` times one optimizer step of ``DeepSpeedCPUAdam`` (ZeRO-Offload
  Section 5.1: SIMD-vectorised, tiled, multithreaded Adam on the host) against
  ``torch.optim.Adam`` with ``foreach=False``, ``foreach=True`` and ``fused=True`` on the
  same number of parameters. The first use of ``DeepSpeedCPUAdam`` JIT-compiles its C++
  op with g++ (about a minute on 2 cores; cached in ``~/.cache/torch_extensions``).
"""

from __future__ import annotations

import logging
import os
import warnings

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.dist import rank_device, require_divisible
from lab_utils.measure import storage_key, time_it, training_state_bytes, unique_storage_bytes
from lab_utils.parallel.task import make_model, train_steps
from lab_utils.record import RunRecord


def use_accelerator(cuda: bool) -> str:
    """Point DeepSpeed at the CUDA or the CPU accelerator for this run, and quiet its logs.

    DeepSpeed reads ``DS_ACCELERATOR`` once and caches its choice in a module global, so a
    ``setdefault`` would let one run's choice leak into every later run in the same kernel
    (a CUDA cell followed by a gloo/CPU run). Both are set here, every time. Returns the name.
    """
    name = "cuda" if cuda else "cpu"
    os.environ["DS_ACCELERATOR"] = name
    # DeepSpeed still calls the collectives torch 2.14 renamed; its warnings are not ours to fix
    warnings.filterwarnings("ignore", message=r"`torch.distributed.\w+` is deprecated", category=FutureWarning)
    from deepspeed.accelerator import get_accelerator, set_accelerator
    from deepspeed.utils import logger

    logger.setLevel(logging.WARNING)
    if get_accelerator()._name != name:
        if cuda:
            from deepspeed.accelerator.cuda_accelerator import CUDA_Accelerator as Accelerator
        else:
            from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator as Accelerator
        set_accelerator(Accelerator())
    return get_accelerator()._name


def deepspeed_config(stage: int, micro_batch: int, lr: float, offload: bool = False) -> dict:
    """A DeepSpeed config for fp32 Adam (no weight decay) with ZeRO ``stage``; ``offload`` = ZeRO-Offload."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
    if offload and stage == 0:
        raise ValueError("ZeRO-Offload (offload_optimizer) needs ZeRO stage 1, 2 or 3, not 0")
    zero: dict = {"stage": stage}
    if offload:
        zero["offload_optimizer"] = {"device": "cpu"}
    # torch_adam: use torch.optim.Adam instead of DeepSpeed's FusedAdam (a CUDA/JIT op);
    # with offload DeepSpeed always uses its DeepSpeedCPUAdam for the host-side step.
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "optimizer": {"type": "Adam", "params": {"lr": lr, "weight_decay": 0.0, "adam_w_mode": False,
                                                 "torch_adam": not offload}},
        "zero_optimization": zero,
        "steps_per_print": 10**9,
    }


def partition_numels(engine) -> list[int]:
    """Sizes (elements) of this rank's fp32 partitions in DeepSpeed's ZeRO optimizer, per param group."""
    opt = engine.optimizer
    if hasattr(opt, "fp32_partitioned_groups_flat"):  # stage 3
        return [t.numel() for t in opt.fp32_partitioned_groups_flat]
    if hasattr(opt, "single_partition_of_fp32_groups"):  # stages 1-2
        return [t.numel() for t in opt.single_partition_of_fp32_groups]
    return [sum(p.numel() for p in engine.module.parameters())]  # stage 0: no partitioning


def deepspeed_state_bytes(engine) -> dict[str, int]:
    """Measured bytes of what one rank's DeepSpeed engine holds after a step (each storage once).

    ``params``: the module's parameter storages (stage 3: only the partitions ``p.ds_tensor``);
    ``fp32_partition``: the ZeRO optimizer's fp32 master partition (a copy even in fp32 training);
    ``optimizer_states``: the wrapped Adam's state tensors. Gradient buffers are not counted.
    """
    module_params = list(engine.module.parameters())
    held = [getattr(p, "ds_tensor", p) for p in module_params]
    opt = engine.optimizer
    masters = list(getattr(opt, "fp32_partitioned_groups_flat", None)
                   or getattr(opt, "single_partition_of_fp32_groups", None) or [])
    basic = getattr(opt, "optimizer", opt)
    states = training_state_bytes([], basic).optimizer_states
    return {"params": unique_storage_bytes(held), "fp32_partition": unique_storage_bytes(masters,
            exclude={storage_key(t) for t in held}),
            "optimizer_states": states}


def train_deepspeed(rank: int, world_size: int, stage: int, sizes: tuple[int, ...], steps: int,
                    global_batch: int, lr: float = 1e-2, seed: int = 0, offload: bool = False) -> RunRecord:
    """Train a fresh :func:`~lab_utils.parallel.task.make_model` with DeepSpeed ZeRO ``stage`` on this
    rank's slice of every global batch, inside an initialised process group."""
    device = rank_device()
    use_accelerator(cuda=device.type == "cuda")  # gloo ranks run DeepSpeed's CPU accelerator
    import deepspeed

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = make_model(sizes, seed, device)
    local = require_divisible(global_batch, world_size, "global batch")
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                      config=deepspeed_config(stage, local, lr, offload))

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.mse_loss(engine(x), y)
        engine.backward(loss)
        engine.step()
        return loss

    losses, times = train_steps(rank, world_size, step, steps, global_batch, sizes, seed, device)
    # peak of this rank's GPU during training (the allocator's own count); None on the CPU
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), enabled=stage == 3):
        params = torch.cat([p.detach().float().flatten().cpu() for p in engine.module.parameters()])
    return RunRecord("zero-deepspeed", rank, world_size, device=str(device), backend=dist.get_backend(),
                     config=dict(stage=stage, sizes=tuple(sizes), steps=steps, global_batch=global_batch,
                                 lr=lr, seed=seed, offload=offload),
                     losses=losses, step_times=times, state_bytes=deepspeed_state_bytes(engine), params=params,
                     extra={"partition_numel": sum(partition_numels(engine)), "peak_cuda_bytes": peak,
                            "optimizer": type(engine.optimizer).__name__,
                            "basic_optimizer": type(getattr(engine.optimizer, "optimizer", engine.optimizer)).__name__})


def deepspeed_worker(rank: int, world_size: int, stages: tuple[int, ...] = (0, 1, 2, 3),
                     sizes: tuple[int, ...] = (64, 127, 127, 16), steps: int = 20, global_batch: int = 32,
                     lr: float = 1e-2, seed: int = 0, offload: bool = False) -> list[RunRecord]:
    """Worker for :func:`lab_utils.dist.launch` and ``torchrun -m lab_utils.run deepspeed``:
    :func:`train_deepspeed` for each of ``stages``."""
    return [train_deepspeed(rank, world_size, s, sizes, steps, global_batch, lr, seed, offload) for s in stages]


def cpu_adam_times(num_params: int, repeats: int = 5, warmup: int = 1, seed: int = 0,
                   tensors: int = 10) -> dict[str, float]:
    """Median seconds of one Adam step over ``num_params`` fp32 parameters, per implementation.

    The parameters are split into ``tensors`` equal tensors (a model has many), gradients
    are fixed random tensors, and every implementation sees identical data.
    """
    if num_params < tensors or tensors < 1:
        raise ValueError(f"need num_params >= tensors >= 1, got num_params={num_params}, tensors={tensors}")
    use_accelerator(cuda=False)  # DeepSpeedCPUAdam is a host-side op
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    gen = torch.Generator().manual_seed(seed)
    size = num_params // tensors
    init = [torch.randn(size, generator=gen) for _ in range(tensors)]
    grads = [torch.randn(size, generator=gen) for _ in range(tensors)]
    makers = {
        "torch Adam foreach=False": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False),
        "torch Adam foreach=True": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        "torch Adam fused=True": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
        "DeepSpeedCPUAdam": lambda ps: DeepSpeedCPUAdam(ps, lr=1e-3, adamw_mode=False),
    }
    out = {}
    for name, make in makers.items():
        params = [nn.Parameter(t.clone()) for t in init]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt = make(params)
        out[name] = time_it(opt.step, warmup=warmup, repeats=repeats).median
        del opt, params
    return out
