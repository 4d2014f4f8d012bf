"""NCCL runs of every distributed reference, tensors on the ranks' GPUs (run by `make gpu-check`).

Each experiment in `lab_utils.run.EXPERIMENTS` trains on as many GPUs as are visible (at least
one: a 1-rank NCCL group still exercises every device placement), checks that every rank computed
on its own `cuda:LOCAL_RANK`, and that it trained like single-process Adam on the same GPU.
Skipped without CUDA.
"""

import pytest
import torch

from lab_utils.dist import launch
from lab_utils.parallel.task import train_single
from lab_utils.parallel.zero_stages import zero_worker

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

OPTS = dict(sizes=(64, 127, 127, 16), steps=10, global_batch=32)


def world() -> int:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 2 if n >= 2 else 1


def check_on_gpus(per_rank: list, baseline, tol: float = 1e-4) -> None:
    for rank, runs in enumerate(per_rank):
        for run in runs:
            assert run.backend == "nccl", run.backend
            assert run.device == f"cuda:{rank}", (rank, run.device)
            assert (run.params - baseline.params).abs().max().item() < tol, run.config
            assert run.losses == pytest.approx(baseline.losses, abs=1e-5)


def test_reference_zero_stages_on_nccl():
    baseline = train_single(**OPTS, device="cuda:0")
    per_rank = launch(zero_worker, world(), backend="nccl", timeout=600, echo="none", **OPTS)
    check_on_gpus(per_rank, baseline)


def test_deepspeed_zero_stages_on_nccl():
    pytest.importorskip("deepspeed")
    from lab_utils.parallel.zero_deepspeed import deepspeed_worker

    baseline = train_single(**OPTS, device="cuda:0")
    per_rank = launch(deepspeed_worker, world(), backend="nccl", timeout=900, echo="none", **OPTS)
    check_on_gpus(per_rank, baseline)


def test_torchrun_entry_point_on_nccl(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run.json"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                          str(world()), "-m", "lab_utils.run", "zero", "--stage", "3", "--backend", "nccl",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    records = json.loads(out.read_text())
    assert [r[0]["device"] for r in records] == [f"cuda:{i}" for i in range(world())]


def test_sharded_variants_on_nccl():
    """DDP, OSS, OSS + ShardedDDP and FSDP2 (both reshard modes, whole-model, CPU offload) on the GPUs."""
    pytest.importorskip("fairscale")
    from lab_utils.parallel.sharded import CPU_VARIANTS, sharded_worker
    from lab_utils.parallel.sharded_math import comm_volume_per_step, fsdp2_root_reshards

    baseline = train_single(**OPTS, device="cuda:0")
    per_rank = launch(sharded_worker, world(), backend="nccl", timeout=900, echo="none", variants=CPU_VARIANTS, **OPTS)
    check_on_gpus(per_rank, baseline)
    for run in per_rank[0]:
        v = run.config["variant"]
        psi = run.extra["fsdp2_padded_params"] if v.startswith("fsdp2") else run.extra["num_params"]
        if world() > 1:  # with one rank the libraries skip some collectives
            assert run.comm_bytes == pytest.approx(comm_volume_per_step(v, 4 * psi, fsdp2_root_reshards())), v


@pytest.mark.parametrize("ranks", ["one", "all"])
def test_fairscale_fsdp_on_nccl(ranks):
    """fairscale's FullyShardedDataParallel (CUDA only) trains like single-process Adam, on 1 and on all GPUs."""
    pytest.importorskip("fairscale")
    from lab_utils.parallel.sharded import sharded_worker

    baseline = train_single(**OPTS, device="cuda:0")
    n = 1 if ranks == "one" else world()
    per_rank = launch(sharded_worker, n, backend="nccl", timeout=900, echo="none", variants=("fairscale_fsdp",), **OPTS)
    check_on_gpus(per_rank, baseline)
    run = per_rank[0][0]
    assert run.state_bytes["total"] > 0 and run.extra["peak_live_bytes"] > 0


def test_pipeline_schedules_on_nccl():
    from lab_utils.parallel.pipeline_run import pipeline_worker, reference_step

    sizes, batch, steps = (64, 127, 127, 127, 16), 32, 5
    n = world()
    per_rank = launch(pipeline_worker, n, backend="nccl", timeout=600, echo="none", sizes=sizes, chunks=4,
                      steps=steps, global_batch=batch, keep_tensors=True)
    baseline = train_single(sizes, steps, batch, device="cuda:0")
    out, grads = reference_step(sizes, batch, device="cuda:0")
    for i in range(2):  # gpipe, 1f1b
        recs = [per_rank[r][i] for r in range(n)]
        assert [r.device for r in recs] == [f"cuda:{r}" for r in range(n)] and recs[0].backend == "nccl"
        assert torch.allclose(recs[-1].extra["output0"], out, atol=1e-5)
        assert torch.allclose(torch.cat([r.extra["grads0"] for r in recs]), grads, atol=1e-5)
        assert (torch.cat([r.params for r in recs]) - baseline.params).abs().max().item() < 1e-4


def test_terapipe_token_pipeline_on_nccl():
    """TeraPipe's token-pipelined GPT on the GPUs: every schedule's loss and gradient equal the unsliced model's."""
    from lab_utils.parallel.terapipe_gpt import GPTConfig, reference_loss_and_grads
    from lab_utils.parallel.terapipe_run import terapipe_worker

    n = world()
    cfg = GPTConfig(vocab=64, d_model=64, n_head=4, n_layer=4, seq_len=64)
    per_rank = launch(terapipe_worker, n, backend="nccl", timeout=600, echo="none", global_batch=8, steps=2,
                      unit=8, repeats=1, keep_tensors=True, d_model=64, n_layer=4, seq_len=64)
    loss, grads = reference_loss_and_grads(cfg, 8, device="cuda:0")
    for i in range(len(per_rank[0])):  # unsliced, uniform, dp, microbatch
        recs = [per_rank[r][i] for r in range(n)]
        assert [r.device for r in recs] == [f"cuda:{r}" for r in range(n)] and recs[0].backend == "nccl"
        assert recs[0].losses[0] == pytest.approx(loss, abs=1e-5)
        assert torch.allclose(torch.cat([r.extra["grads0"] for r in recs]), grads, atol=1e-5), recs[0].config
