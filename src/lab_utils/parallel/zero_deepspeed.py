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
import time
import warnings

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.measure import storage_key, time_it, training_state_bytes, unique_storage_bytes
from lab_utils.parallel.zero_stages import make_batch, make_model


def _quiet_deepspeed(cuda: bool | None = None) -> None:
    """Choose DeepSpeed's accelerator (CUDA only when this process has its own GPU) and quiet its logs."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if cuda else "cpu")
    # DeepSpeed still calls the collectives torch 2.14 renamed; its warnings are not ours to fix
    warnings.filterwarnings("ignore", message=r"`torch.distributed.\w+` is deprecated", category=FutureWarning)
    from deepspeed.utils import logger

    logger.setLevel(logging.WARNING)


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


def train_deepspeed(stage: int, sizes: tuple[int, ...], steps: int, global_batch: int,
                    lr: float = 1e-2, seed: int = 0, offload: bool = False) -> dict:
    """Train a fresh :func:`make_model` with DeepSpeed ZeRO ``stage`` in an initialised process group."""
    _quiet_deepspeed(cuda=dist.get_backend() == "nccl")  # gloo ranks run DeepSpeed's CPU accelerator
    import deepspeed

    rank, world_size = dist.get_rank(), dist.get_world_size()
    if global_batch % world_size:
        raise ValueError(f"global_batch {global_batch} is not divisible by world_size {world_size}")
    local = global_batch // world_size
    model = make_model(sizes, seed)
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                      config=deepspeed_config(stage, local, lr, offload))
    losses, times = [], []
    for step in range(steps):
        x, y = make_batch(step, global_batch, sizes, seed)
        x, y = x[rank * local:(rank + 1) * local], y[rank * local:(rank + 1) * local]
        t0 = time.perf_counter()
        loss = nn.functional.mse_loss(engine(x.to(engine.device)), y.to(engine.device))
        engine.backward(loss)
        engine.step()
        times.append(time.perf_counter() - t0)
        logged = loss.detach().clone()
        dist.all_reduce(logged)
        losses.append(logged.item() / world_size)
    with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), enabled=stage == 3):
        params = torch.cat([p.detach().float().flatten().cpu() for p in engine.module.parameters()])
    return {"rank": rank, "stage": stage, "offload": offload, "losses": losses, "params": params,
            "partition_numel": sum(partition_numels(engine)), "step_times": times,
            "state_bytes": deepspeed_state_bytes(engine),
            "optimizer": type(engine.optimizer).__name__,
            "basic_optimizer": type(getattr(engine.optimizer, "optimizer", engine.optimizer)).__name__}


def deepspeed_worker(rank: int, world_size: int, stages: tuple[int, ...], sizes: tuple[int, ...],
                     steps: int, global_batch: int, lr: float = 1e-2, seed: int = 0,
                     offload: bool = False) -> list[dict]:
    """Worker for ``lab_utils.dist.launch``: :func:`train_deepspeed` for each of ``stages``."""
    return [train_deepspeed(s, sizes, steps, global_batch, lr, seed, offload) for s in stages]


def cpu_adam_times(num_params: int, repeats: int = 5, warmup: int = 1, seed: int = 0,
                   tensors: int = 10) -> dict[str, float]:
    """Median seconds of one Adam step over ``num_params`` fp32 parameters, per implementation.

    The parameters are split into ``tensors`` equal tensors (a model has many), gradients
    are fixed random tensors, and every implementation sees identical data.
    """
    if num_params < tensors or tensors < 1:
        raise ValueError(f"need num_params >= tensors >= 1, got num_params={num_params}, tensors={tensors}")
    _quiet_deepspeed()
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
