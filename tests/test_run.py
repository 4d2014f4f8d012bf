"""lab_utils.run: the book's distributed experiments under torchrun give what launch() gives."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_utils.dist import launch
from lab_utils.parallel.zero_stages import zero_worker
from lab_utils.run import EXPERIMENTS, main

TORCHRUN = Path(sys.executable).with_name("torchrun")
OPTS = dict(sizes=(10, 9, 3), steps=4, global_batch=8)


def test_every_experiment_names_an_importable_worker():
    for name, exp in EXPERIMENTS.items():
        assert callable(exp.worker()), name


@pytest.mark.slow
def test_torchrun_zero_stage3_gives_the_losses_launch_gives(tmp_path):
    out = tmp_path / "run.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "lab_utils.run", "zero",
                          "--stage", "3", "--sizes", "10,9,3", "--steps", "4", "--batch", "8", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "zero-reference" in res.stdout and "2 ranks, backend gloo" in res.stdout
    records = json.loads(out.read_text())
    assert [r[0]["rank"] for r in records] == [0, 1] and records[0][0]["config"]["stage"] == 3
    launched = launch(zero_worker, 2, stages=(3,), **OPTS, echo="none", threads_per_rank=1)
    for rank in range(2):
        assert records[rank][0]["losses"] == pytest.approx(launched[rank][0].losses, rel=1e-6)
        assert records[rank][0]["state_bytes"] == launched[rank][0].state_bytes
        assert records[rank][0]["params_norm"] == pytest.approx(launched[rank][0].params.double().norm().item(),
                                                                rel=1e-6)


def test_bad_input_is_a_clear_error(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["zer0"])
    assert "invalid choice: 'zer0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["zero", "--sizes", "10,x"])
    assert "comma-separated layer widths" in capsys.readouterr().err
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit, match="(?s)not a torchrun worker.*torchrun --standalone --nproc-per-node 2 -m lab_utils.run zero"):
        main(["zero"])
    with pytest.raises(SystemExit, match="--offload applies to 'deepspeed'"):
        main(["zero", "--offload"])
    assert main(["--list"]) == 0 and "deepspeed" in capsys.readouterr().out


def test_nccl_without_a_gpu_per_rank_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="one CUDA GPU per rank"):
        main(["zero", "--backend", "nccl"])
