import pytest
import torch
from torch import nn

from lab_utils.dist import WorkerError, launch
from lab_utils.parallel.comm import ring_bytes_sent
from lab_utils.parallel.task import train_single
from lab_utils.parallel.zero import (
    communication_volume,
    fp32_adam_memory_per_device,
    largest_model,
    memory_breakdown,
    memory_per_device,
    offload_memory,
    paper_table,
)
from lab_utils.parallel.zero_stages import ZeroDataParallel, zero_worker

SIZES = (10, 9, 3)  # 99 + 30 = 129 parameters: odd, so 2 and 4 ranks both need padding
STEPS, BATCH = 4, 8


def test_paper_worked_example_figure1():
    gb = [memory_per_device(7.5e9, 64, s) / 1e9 for s in range(4)]
    assert [round(g, 1) for g in gb] == [120.0, 31.4, 16.6, 1.9]


def test_conventions_and_table():
    assert memory_per_device(1, 1, 0) == 16  # ZeRO: 2 + 2 + 12
    assert memory_per_device(1, 1, 0, grad_bytes=4) == 18  # fp32 gradients (Hugging Face)
    assert fp32_adam_memory_per_device(1, 1, 0) == 16  # 4 + 4 + 8
    b = memory_breakdown(100, 4, 2)
    assert (b.params, b.grads, b.optimizer_states) == (200, 50, 300)
    row4 = paper_table()[1]
    assert row4["N_d"] == 4 and row4["7.5B P_os"] == pytest.approx(52.5) and row4["128B P_os+g+p"] == 512
    assert communication_volume(10, 0) == communication_volume(10, 2) == 20
    assert communication_volume(10, 3) == 30
    off = offload_memory(13e9)
    assert off.gpu == 26e9 and off.cpu == 14 * 13e9
    assert largest_model(32e9, 1, 0) == 2e9


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="world_size"):
        memory_per_device(1e9, 0, 1)
    with pytest.raises(ValueError, match="stage must be one of"):
        memory_per_device(1e9, 8, 4)
    with pytest.raises(ValueError, match="num_params"):
        memory_per_device(0, 8, 1)
    with pytest.raises(ValueError, match="stage must be 0, 1, 2 or 3"):
        ZeroDataParallel(nn.Linear(2, 2), stage=5)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ZeroDataParallel(nn.Tanh(), stage=1)
    with pytest.raises(RuntimeError, match="torch.distributed initialised"):
        ZeroDataParallel(nn.Linear(2, 2), stage=1)
    with pytest.raises(ValueError, match="world_size must be an int >= 1"):
        launch(zero_worker, 0, stages=(1,), sizes=SIZES, steps=STEPS, global_batch=BATCH)
    with pytest.raises(WorkerError, match="global batch 9 is not divisible by world_size 2"):
        launch(zero_worker, 2, stages=(1,), sizes=SIZES, steps=STEPS, global_batch=9, echo="none")
    with pytest.raises(WorkerError, match="stages must be among"):
        launch(zero_worker, 2, stages=(4,), sizes=SIZES, echo="none")


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_stage_matches_single_process_adam_and_the_formula(world_size):
    ref = train_single(SIZES, STEPS, BATCH)
    psi = ref.extra["num_params"]
    per_rank = launch(zero_worker, world_size, sizes=SIZES, steps=STEPS, global_batch=BATCH, echo="none")
    for stage in range(4):
        runs = [r[stage] for r in per_rank]
        for rank, run in enumerate(runs):  # every rank ends with the single-process Adam parameters
            torch.testing.assert_close(run.params, ref.params, rtol=0, atol=1e-5)
            assert run.losses == pytest.approx(ref.losses, abs=1e-5)
            assert (run.rank, run.world_size, run.device, run.config["stage"]) == (rank, world_size, "cpu", stage)
        run = runs[0]
        padded = run.extra["padded_params"]
        assert (padded > psi) == (stage > 0)  # 129 does not split evenly: padding is exercised
        formula = memory_breakdown(psi, world_size, stage, k=8, param_bytes=4, grad_bytes=4).as_dict()
        per_elem = {"params": 4 / (world_size if stage == 3 else 1),
                    "grads": 4 / (world_size if stage >= 2 else 1),
                    "optimizer_states": 8 / (world_size if stage >= 1 else 1)}
        for comp, b in per_elem.items():
            extra = run.state_bytes[comp] - formula[comp]
            slack = (padded - psi) * b + (4 * run.extra["optimizer_tensors"] if comp == "optimizer_states" else 0)
            assert 0 <= extra <= slack, (stage, comp, run.state_bytes, formula)
        # exact: measured = fp32 formula evaluated at the padded size (+ Adam's 4-byte step counters)
        exact = fp32_adam_memory_per_device(padded, world_size, stage) + 4 * run.extra["optimizer_tensors"]
        assert run.state_bytes["total"] == exact
        assert run.comm_bytes_per_step == 4 * communication_volume(padded, stage)
        # a ring sends (N-1)/N of the logical volume per rank, collective by collective
        for name, volume in run.comm_bytes.items():
            factor = 2 if name == "all_reduce" else 1
            assert run.comm_ring_bytes[name] == pytest.approx(volume * (world_size - 1) / world_size)
            assert volume % factor == 0


def test_ring_bytes_closed_forms():
    # 2 ranks: a ring all-reduce of S bytes sends S per rank (one reduce-scatter half, one all-gather half)
    assert ring_bytes_sent("all_reduce", 1000, 2) == 1000
    assert ring_bytes_sent("reduce_scatter", 1000, 4) == 750
    assert ring_bytes_sent("all_gather", 1000, 1) == 0
    with pytest.raises(ValueError, match="collective must be one of"):
        ring_bytes_sent("broadcast", 1000, 2)


def test_in_float64_every_stage_is_single_process_adam_to_rounding():
    # fp32 differences (up to 1e-4 at larger sizes) are rounding that Adam amplifies, not the algorithm:
    # in float64 the same runs agree to ~1e-12, so a tolerance of 1e-9 still catches any real bug
    ref = train_single(SIZES, STEPS, BATCH, dtype="float64")
    per_rank = launch(zero_worker, 2, sizes=SIZES, steps=STEPS, global_batch=BATCH, dtype="float64", echo="none")
    for runs in per_rank:
        for run in runs:
            assert run.params.dtype == torch.float64
            assert (run.params - ref.params).abs().max().item() < 1e-9, run.config
    with pytest.raises(ValueError, match="dtype must be one of"):
        train_single(SIZES, 1, BATCH, dtype="float16")
