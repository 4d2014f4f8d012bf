import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import dist_workers as w
from lab_utils.dist import WorkerError, launch, rank_device, require_divisible, resolve_backend, shard_range


@pytest.mark.parametrize("world_size", [2, 4])
def test_results_come_back_in_rank_order(world_size, capsys):
    out = launch(w.allreduce_rank, world_size, 2.0)
    expected_sum = 2.0 * sum(range(world_size))
    assert [o["rank"] for o in out] == list(range(world_size))
    assert all(o["world"] == world_size and o["sum"] == expected_sum for o in out)
    assert out[0]["backend"] == "gloo"
    assert "[rank 0] hello from rank 0" in capsys.readouterr().out


def test_keyword_arguments_reach_the_worker_and_tensors_sit_on_the_rank_device():
    out = launch(w.echo_kwargs, 2, 10, scale=3, label="kw", echo="none")
    assert [o["sum"] for o in out] == [3 * (10 + 11)] * 2
    assert all(o["label"] == "kw" and o["world_size"] == 2 for o in out)
    # gloo: the CPU; outside a process group: the CPU as well
    assert {o["device"] for o in out} == {o["tensor_device"] for o in out} == {"cpu"}
    assert rank_device() == torch.device("cpu")


def test_rank_device_under_nccl_is_the_local_gpu(monkeypatch):
    # the NCCL branch, checked without a GPU: a fake initialised NCCL group on local rank 3
    import lab_utils.dist as d

    monkeypatch.setattr(d.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(d.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(d.dist, "get_rank", lambda: 11)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert rank_device() == torch.device("cuda", 3)
    monkeypatch.setattr(d.dist, "get_backend", lambda: "gloo")
    assert rank_device() == torch.device("cpu")


def test_script_without_main_guard_gets_told_what_to_do(tmp_path: Path):
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import dist_workers as w
        from lab_utils.dist import launch
        print(launch(w.allreduce_rank, 2, timeout=60))
    """))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert 'if __name__ == "__main__":' in res.stderr
    assert "before it started the worker function" in res.stderr


def test_worker_exception_surfaces_with_traceback_quickly():
    t0 = time.monotonic()
    with pytest.raises(WorkerError) as err:
        launch(w.raise_on_rank1, 2, timeout=120)
    assert time.monotonic() - t0 < 30
    assert err.value.rank == 1
    assert "ValueError: planted failure on rank 1" in str(err.value)
    assert "raise_on_rank1" in err.value.traceback


def test_hanging_worker_is_killed_at_timeout():
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 5 s"):
        launch(w.hang, 2, timeout=5)
    assert time.monotonic() - t0 < 25


def test_worker_dying_without_traceback_is_reported():
    with pytest.raises(WorkerError, match="exited with code 7"):
        launch(w.exit_hard, 2, timeout=60)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="world_size must be an int >= 1"):
        launch(w.allreduce_rank, 0)
    with pytest.raises(ValueError, match="importable module"):
        launch(lambda r, n: r, 2)
    with pytest.raises(RuntimeError, match="one CUDA GPU per rank"):
        resolve_backend("nccl", 2)
    with pytest.raises(ValueError, match="not divisible by world_size 3"):
        require_divisible(10, 3)


def test_shard_range_covers_everything_once():
    for n in (0, 1, 7, 10):
        for ws in (1, 2, 3, 4):
            ranges = [shard_range(n, r, ws) for r in range(ws)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_root_cause_beats_a_peer_that_reported_first():
    # rank 0 failed only because rank 1 died inside a collective, and its report came first
    import queue as q

    from lab_utils.dist import _root_cause

    class Proc:
        exitcode = 1

    results = q.Queue()
    results.put(("error", 1, "Traceback ...\nValueError: planted failure on rank 1"))
    rank, tb = _root_cause(0, "Traceback ...\ntorch.distributed.DistBackendError: Connection closed by peer",
                           results, [Proc(), Proc()], {})
    assert rank == 1 and "planted failure" in tb and "ranks [0] failed too" in tb
