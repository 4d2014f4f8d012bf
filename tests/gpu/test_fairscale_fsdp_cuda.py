"""fairscale's FullyShardedDataParallel on one GPU: the same losses as the unwrapped model.

FSDP (fairscale, after ZeRO-3: Rajbhandari et al. 2020, Sec. 5) flattens and shards the parameters,
all-gathers them for forward and backward and reduce-scatters the gradients; with one rank the
shards are whole and every step must equal plain training. fairscale's FSDP runs only on CUDA.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lab_utils.fitting.memory import make_mlp

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("flatten", [True, False])
def test_fairscale_fsdp_step_equals_unwrapped_model(nccl_group, flatten):
    from fairscale.nn.data_parallel import FullyShardedDataParallel as FSDP

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.manual_seed(0)
        ref = make_mlp(32, 64, 3, 4).cuda()
        sharded = FSDP(copy.deepcopy(ref), flatten_parameters=flatten, mixed_precision=False,
                       reshard_after_forward=True)
        opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2)
        opt = torch.optim.Adam(sharded.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, y = torch.randn(16, 32, generator=gen).cuda(), torch.randn(16, 4, generator=gen).cuda()
            losses = []
            for model, o in ((ref, opt_ref), (sharded, opt)):
                o.zero_grad(set_to_none=True)
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                o.step()
                losses.append(loss.detach())
            torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
        # the full (unsharded) parameters, under the unwrapped model's names, equal the reference's
        clean = lambda k: k.replace("_fsdp_wrapped_module.", "").replace("_fpw_module.", "")
        full = {clean(k): v.detach().float().cpu() for k, v in sharded.state_dict().items()}
        want = {k: v.detach().cpu() for k, v in ref.state_dict().items()}
        assert full.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(full[k], want[k], rtol=1e-5, atol=1e-6, msg=k)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
