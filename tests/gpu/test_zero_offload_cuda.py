"""DeepSpeed ZeRO-Offload on one GPU: stage 2 with ``offload_optimizer`` keeps Adam off the GPU.

Ren et al. 2021 (*ZeRO-Offload*, Sec. 4): the fp32 optimizer states (and DeepSpeed's fp32 master
partition) live in host memory and Adam steps on the CPU (``DeepSpeedCPUAdam``, JIT-built with the
machine's compiler on first use), so the GPU holds only parameters, gradients and activations.
The run uses :func:`lab_utils.parallel.zero_deepspeed.train_deepspeed`, the chapter's code, in a
one-rank NCCL process group created in this process.
"""

from __future__ import annotations

import gc
import inspect

import pytest
import torch

from lab_utils.measure import peak_cuda_memory

pytestmark = pytest.mark.gpu
SIZES = (2048, 4096, 4096, 2048)  # 33.6 M parameters: 8 bytes/param of Adam state is 269 MB
STEPS, BATCH = 3, 64


def _field(run, name):
    """A field of a run record (``RunRecord`` or the older dict), looking in ``extra`` too."""
    if isinstance(run, dict):
        return run.get(name)
    if hasattr(run, name):
        return getattr(run, name)
    return getattr(run, "extra", {}).get(name)


def _train(offload: bool):
    from lab_utils.parallel.zero_deepspeed import train_deepspeed

    kwargs = dict(stage=2, sizes=SIZES, steps=STEPS, global_batch=BATCH, offload=offload)
    if "rank" in inspect.signature(train_deepspeed).parameters:
        kwargs.update(rank=0, world_size=1)
    return train_deepspeed(**kwargs)


def test_zero_offload_stage2_saves_the_optimizer_states_gpu_memory(nccl_group):
    num_params = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    runs, peaks = {}, {}
    for offload in (True, False):
        gc.collect()
        torch.cuda.empty_cache()
        with peak_cuda_memory("cuda") as peak:
            runs[offload] = _train(offload)
        peaks[offload] = peak.increase
    assert _field(runs[True], "basic_optimizer") == "DeepSpeedCPUAdam"
    saving = peaks[False] - peaks[True]
    # without offload the GPU holds Adam's m and v (8 B/param) and the fp32 master partition (4 B/param)
    assert saving >= 0.9 * 8 * num_params, (
        f"ZeRO-Offload saved {saving / 2**20:.0f} MiB of GPU memory; expected >= "
        f"{0.9 * 8 * num_params / 2**20:.0f} MiB (peaks: {peaks[False] / 2**20:.0f} vs {peaks[True] / 2**20:.0f} MiB)")
    on, off = _field(runs[True], "losses"), _field(runs[False], "losses")
    assert len(on) == len(off) == STEPS
    torch.testing.assert_close(on[0], off[0], rtol=1e-5, atol=1e-6)  # same model, same first batch
    torch.testing.assert_close(torch.tensor(on), torch.tensor(off), rtol=1e-3, atol=1e-5)  # same Adam
