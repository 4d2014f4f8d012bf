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
