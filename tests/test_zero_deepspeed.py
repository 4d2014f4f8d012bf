import math

import pytest
import torch

from lab_utils.dist import launch
from lab_utils.parallel.task import train_single
from lab_utils.parallel.zero_deepspeed import deepspeed_config, deepspeed_worker, use_accelerator

SIZES, STEPS, BATCH = (10, 9, 3), 3, 8


def test_deepspeed_config_rejects_bad_input():
    with pytest.raises(ValueError, match="stage must be"):
        deepspeed_config(4, 2, 1e-2)
    with pytest.raises(ValueError, match="needs ZeRO stage 1, 2 or 3"):
        deepspeed_config(0, 2, 1e-2, offload=True)


def test_accelerator_is_chosen_per_run_not_inherited(monkeypatch):
    # a CUDA cell earlier in the same kernel left DS_ACCELERATOR=cuda behind; a CPU run must not inherit it
    monkeypatch.setenv("DS_ACCELERATOR", "cuda")
    assert use_accelerator(cuda=False) == "cpu"
    import os

    assert os.environ["DS_ACCELERATOR"] == "cpu"
    from deepspeed.accelerator import get_accelerator

    assert get_accelerator()._name == "cpu"


@pytest.mark.slow  # DeepSpeed JIT-builds its CPU shm comm op with g++ on first use (~1-2 min), then ~15 s
def test_deepspeed_zero_stages_match_single_process_adam_on_cpu():
    ref = train_single(SIZES, STEPS, BATCH)
    per_rank = launch(deepspeed_worker, 2, sizes=SIZES, steps=STEPS, global_batch=BATCH, echo="none", timeout=900)
    for stage in range(4):
        for rank_runs in per_rank:
            run = rank_runs[stage]
            torch.testing.assert_close(run.params, ref.params, rtol=0, atol=1e-5)
            own = run.extra["partition_numel"]
            if stage == 0:
                assert own == ref.extra["num_params"]
            else:  # each rank holds about 1/N_d of the fp32 optimizer partition (plus DeepSpeed's padding)
                assert math.ceil(ref.extra["num_params"] / 2) <= own <= math.ceil(ref.extra["num_params"] / 2) + 8
