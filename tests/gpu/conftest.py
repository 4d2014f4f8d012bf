"""GPU-only tests (``tests/gpu``): marked ``gpu`` and skipped where torch sees no CUDA GPU.

``make gpu-check`` (``scripts/gpu_check.sh``) runs them on the GPU machine with ``pytest -m gpu tests/gpu``.
The ``gpu`` marker is registered here (``pytest_configure``), not in pyproject.toml. When
``LAB_GPU_PEAK_FILE`` is set (by ``scripts/gpu_check.py``) the session's peak of
``torch.cuda.max_memory_allocated`` is written there as JSON for the report.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

NO_CUDA = "needs a CUDA GPU (torch.cuda.is_available() is False): run on the GPU machine, see `make gpu-check`"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped without one (run by `make gpu-check`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("LAB_GPU_PEAK_FILE")
    if not path:
        return
    peak = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
    with open(path, "w") as f:
        json.dump({"peak_gpu_allocated_bytes": peak}, f)


@pytest.fixture(scope="session")
def nccl_group():
    """A one-rank NCCL process group in this process (free port on localhost), for DeepSpeed and fairscale."""
    import torch.distributed as dist

    from lab_utils.dist import free_port

    if dist.is_initialized():
        yield dist.group.WORLD
        return
    port = free_port()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            device_id=torch.device("cuda", 0))
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()
