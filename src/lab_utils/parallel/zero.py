"""The ZeRO memory model: bytes of model states per device, per stage, and what moves.

Rajbhandari, Rasley, Ruwase, He, *ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models*, SC 2020 (arXiv:1910.02054), and Ren et al., *ZeRO-Offload:
Democratizing Billion-Scale Model Training*, USENIX ATC 2021 (arXiv:2101.06840).

Section 3.1 of the ZeRO paper: with mixed-precision Adam a model with Ψ parameters holds

* 2Ψ bytes of fp16 parameters,
* 2Ψ bytes of fp16 gradients,
* KΨ bytes of optimizer states, K = 12: an fp32 copy of the parameters, Adam's
  momentum and variance (4 + 4 + 4 bytes),

so (2 + 2 + K)Ψ = 16Ψ bytes. ZeRO-DP (Section 5, Figure 1) partitions these *model
states* over the N_d data-parallel devices:

=========  =======================  ====================================
stage      partitioned              bytes per device
=========  =======================  ====================================
0 (DP)     nothing                  (2 + 2 + K) Ψ
1 (P_os)   optimizer states         2Ψ + 2Ψ + KΨ / N_d
2 (P_os+g) + gradients              2Ψ + (2 + K) Ψ / N_d
3 (P_os+g+p) + parameters           (2 + 2 + K) Ψ / N_d
=========  =======================  ====================================

Figure 1's worked example, Ψ = 7.5 B and N_d = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB
(GB = 10^9 bytes). Other references (e.g. Hugging Face's "model memory anatomy") count
**18** bytes per parameter because they keep gradients in fp32: ``grad_bytes=4``.
Training entirely in fp32 with Adam is ``param_bytes=4, grad_bytes=4, k=8`` (no extra
master copy: the parameters *are* fp32), which is what :mod:`lab_utils.parallel.zero_stages`
measures on a CPU.

Communication (Section 7): data parallelism all-reduces the gradients, which a ring
does as a reduce-scatter plus an all-gather, 2Ψ elements per device. Stages 1 and 2
reduce-scatter the gradients (Ψ) and all-gather the updated parameters (Ψ): 2Ψ, no
extra cost. Stage 3 all-gathers the parameters before the forward (Ψ) and again before
the backward (Ψ) and reduce-scatters the gradients (Ψ): 3Ψ, 1.5x.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab_utils.graded import graded_reference
from lab_utils.measure import TrainingBytes

STAGES = (0, 1, 2, 3)
STAGE_NAMES = {0: "DP (baseline)", 1: "P_os", 2: "P_os+g", 3: "P_os+g+p"}
GB = 1e9  # the paper's GB are decimal


def _check(num_params: float, world_size: int, stage: int | None = None) -> None:
    if not num_params > 0:
        raise ValueError(f"num_params (Ψ) must be > 0, got {num_params!r}: count the model's parameters "
                         "with sum(p.numel() for p in model.parameters())")
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"world_size (N_d) must be an int >= 1, got {world_size!r}")
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of 0 (plain DP), 1 (P_os), 2 (P_os+g), 3 (P_os+g+p); got {stage!r}")


@graded_reference  # twin: memory_per_device(...) is memory_breakdown(...).total
def memory_breakdown(num_params: float, world_size: int, stage: int, k: float = 12,
                     param_bytes: float = 2, grad_bytes: float = 2) -> TrainingBytes:
    """Per-device bytes of parameters, gradients and optimizer states at a ZeRO ``stage`` (Section 5).

    ``k`` is the paper's K (bytes of optimizer state per parameter, 12 for mixed-precision
    Adam); ``param_bytes``/``grad_bytes`` are 2 in the paper (fp16), 4 for fp32.
    """
    _check(num_params, world_size, stage)
    if min(k, param_bytes, grad_bytes) < 0:
        raise ValueError(f"k, param_bytes and grad_bytes must be >= 0, got {k}, {param_bytes}, {grad_bytes}")
    psi, nd = float(num_params), world_size
    params = param_bytes * psi / (nd if stage >= 3 else 1)
    grads = grad_bytes * psi / (nd if stage >= 2 else 1)
    opt = k * psi / (nd if stage >= 1 else 1)
    return TrainingBytes(params, grads, opt)


@graded_reference
def memory_per_device(num_params: float, world_size: int, stage: int, k: float = 12,
                      param_bytes: float = 2, grad_bytes: float = 2) -> float:
    """Bytes of model states per device: (2 + 2 + K)Ψ partitioned as in ZeRO Figure 1.

    >>> round(memory_per_device(7.5e9, 64, 1) / 1e9, 1)
    31.4
    """
    return memory_breakdown(num_params, world_size, stage, k, param_bytes, grad_bytes).total


def fp32_adam_memory_per_device(num_params: float, world_size: int, stage: int) -> float:
    """The fp32 analogue (params 4Ψ, grads 4Ψ, Adam m and v 8Ψ): what the CPU reference stores."""
    return memory_per_device(num_params, world_size, stage, k=8, param_bytes=4, grad_bytes=4)


def paper_table(model_sizes: tuple[float, ...] = (7.5e9, 128e9, 1e12),
                dp_degrees: tuple[int, ...] = (1, 4, 16, 64, 256, 1024), k: float = 12,
                param_bytes: float = 2, grad_bytes: float = 2) -> list[dict]:
    """Rows of ZeRO Table 1 (per-device GB for stages 1, 2, 3 vs DP degree), computed by the formula."""
    rows = []
    for nd in dp_degrees:
        row: dict = {"N_d": nd}
        for psi in model_sizes:
            label = f"{psi / 1e9:g}B" if psi < 1e12 else f"{psi / 1e12:g}T"
            for stage in (1, 2, 3):
                gb = memory_per_device(psi, nd, stage, k, param_bytes, grad_bytes) / GB
                row[f"{label} {STAGE_NAMES[stage]}"] = gb
        rows.append(row)
    return rows


def communication_volume(num_params: float, stage: int) -> float:
    """Elements each device sends/receives per training step, counted as in Section 7.

    An all-reduce = reduce-scatter + all-gather = 2Ψ; stages 1 and 2 = 2Ψ; stage 3 = 3Ψ.
    (A ring moves (N_d - 1)/N_d of this; the paper drops that factor.)
    """
    _check(num_params, 1, stage)
    return (3.0 if stage == 3 else 2.0) * float(num_params)


@graded_reference
def largest_model(device_bytes: float, world_size: int, stage: int, k: float = 12,
                  param_bytes: float = 2, grad_bytes: float = 2) -> float:
    """The largest Ψ whose model states fit in ``device_bytes`` (activations ignored)."""
    per_param = memory_per_device(1.0, world_size, stage, k, param_bytes, grad_bytes)
    return device_bytes / per_param


@dataclass(frozen=True)
class OffloadBytes:
    """ZeRO-Offload: bytes on each GPU and on the host, per data-parallel process."""

    gpu: float
    cpu: float


def offload_memory(num_params: float, world_size: int = 1, k: float = 12,
                   param_bytes: float = 2, grad_bytes: float = 2) -> OffloadBytes:
    """ZeRO-Offload (Ren et al. 2021, Section 4.1-4.2) on top of ZeRO-2.

    The GPU keeps the fp16 parameters (2Ψ) and runs forward and backward; the fp16
    gradients are streamed to the host as they are produced, and the host keeps them with
    the fp32 parameters, momentum and variance (2Ψ + KΨ), partitioned over the N_d
    processes as in ZeRO-2. The host runs Adam (DeepSpeedCPUAdam) and copies the updated
    fp16 parameters back. Gradient buckets in flight on the GPU are ignored.
    """
    _check(num_params, world_size)
    psi = float(num_params)
    return OffloadBytes(gpu=param_bytes * psi, cpu=(grad_bytes + k) * psi / world_size)
