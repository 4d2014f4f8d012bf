"""Which device to run on, and at which *scale profile*.

Every chapter runs at one of three scales:

``ci``
    tiny sizes, a few minutes per chapter on 2 CPU cores; chosen when the ``CI``
    environment variable is set (GitHub Actions, GitLab and this project's
    ``make test`` set it) so that tests are fast and outputs are stable.
``cpu``
    a laptop without a GPU: bigger than ``ci`` but still minutes, not hours.
``gpu``
    full size, on one or more CUDA GPUs.

``LAB_SCALE=ci|cpu|gpu`` overrides the automatic choice. Chapters never
hard-code sizes; they ask the profile: ``SCALE.pick(ci=2, cpu=4, gpu=8)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

SCALES = ("ci", "cpu", "gpu")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Scale:
    """A scale profile: its ``name`` and the ``reason`` it was chosen."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        if self.name not in SCALES:
            raise ValueError(f"unknown scale {self.name!r}: use one of {', '.join(SCALES)}")

    def pick(self, *, ci: Any, cpu: Any = None, gpu: Any = None) -> Any:
        """The value for this scale; ``cpu`` defaults to ``ci`` and ``gpu`` to ``cpu``."""
        cpu = ci if cpu is None else cpu
        gpu = cpu if gpu is None else gpu
        return {"ci": ci, "cpu": cpu, "gpu": gpu}[self.name]

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def pick_device(prefer: str | None = None) -> torch.device:
    """``cuda`` if available, else Apple ``mps``, else ``cpu`` (or ``prefer`` if it exists)."""
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was requested but no CUDA GPU is visible: "
                "on Colab choose Runtime > Change runtime type > GPU, or pass prefer='cpu'"
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def detect_scale(env: Mapping[str, str] | None = None, cuda: bool | None = None) -> Scale:
    """Choose the scale profile: ``LAB_SCALE`` if set, else ``ci`` under CI, else by hardware."""
    env = os.environ if env is None else env
    cuda = torch.cuda.is_available() if cuda is None else cuda
    forced = env.get("LAB_SCALE", "").strip().lower()
    if forced:
        if forced not in SCALES:
            raise ValueError(
                f"LAB_SCALE={forced!r} is not a scale profile: set it to one of {', '.join(SCALES)} "
                "or unset it to choose automatically"
            )
        if forced == "gpu" and not cuda:
            raise RuntimeError(
                "LAB_SCALE=gpu needs a CUDA GPU and none is visible: use LAB_SCALE=cpu or ci, "
                "or run on a GPU machine (on Colab: Runtime > Change runtime type > GPU)"
            )
        return Scale(forced, "LAB_SCALE is set")
    if env.get("CI", "").strip().lower() in _TRUTHY:
        return Scale("ci", "the CI environment variable is set")
    if cuda:
        return Scale("gpu", f"{torch.cuda.device_count()} CUDA GPU(s) found")
    return Scale("cpu", "no CUDA GPU found")


def require_cuda(feature: str, min_devices: int = 1) -> None:
    """Raise a clear error when ``feature`` needs CUDA GPUs that are not there."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < min_devices:
        raise RuntimeError(
            f"{feature} needs {min_devices} CUDA GPU(s) but {n} are visible. "
            "Run this cell on a GPU machine (Colab: Runtime > Change runtime type > GPU) "
            "or use the CPU path of this chapter."
        )


def setup(prefer: str | None = None, verbose: bool = True) -> tuple[torch.device, Scale]:
    """Pick device and scale for a chapter and print one line saying what and why."""
    device = pick_device(prefer)
    scale = detect_scale()
    if verbose:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        print(f"lab_utils: device={name}, scale={scale}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPU core(s)")
    return device, scale
