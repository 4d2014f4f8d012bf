"""How far the reference ZeRO stages drift from single-process Adam in fp32, and that fp64 removes it.

Run: .venv/bin/python benchmarks/zero_fp32_drift.py [--worlds 2,4]
For the ZeRO chapter's three scale profiles (model sizes, steps, global batch as in book/zero/zero.ipynb),
trains single-process Adam and the reference stages 0-3 on the CPU (gloo) in fp32 and in fp64 and prints
the largest parameter and loss difference over ranks and stages. The chapter's fp32 tolerances are
justified from this table (benchmarks/README.md records one run); fp64 shows the algorithm itself is exact.
"""

from __future__ import annotations

import argparse
import time

from lab_utils.dist import launch
from lab_utils.parallel.task import train_single
from lab_utils.parallel.zero_stages import zero_worker

# (sizes, steps, global batch) of the ZeRO chapter's ci / cpu / gpu profiles
PROFILES = {"ci": ((64, 127, 127, 16), 20, 32), "cpu": ((256, 511, 511, 64), 40, 64),
            "gpu": ((512, 1023, 1023, 128), 60, 128)}


def drift(world: int, sizes: tuple[int, ...], steps: int, batch: int, dtype: str) -> tuple[float, float]:
    """Max |param - baseline| and max |loss - baseline| over all ranks and stages."""
    run = dict(sizes=sizes, steps=steps, global_batch=batch, dtype=dtype)
    base = train_single(**run)
    per_rank = launch(zero_worker, world, **run, echo="none", timeout=3600)
    dp = max((r.params - base.params).abs().max().item() for runs in per_rank for r in runs)
    dl = max(abs(a - b) for r in per_rank[0] for a, b in zip(r.losses, base.losses))
    return dp, dl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="2,4")
    args = ap.parse_args()
    print(f"{'profile':<8}{'ranks':>6}{'dtype':>9}{'max |param diff|':>18}{'max |loss diff|':>17}{'s':>6}")
    for name, (sizes, steps, batch) in PROFILES.items():
        for world in (int(w) for w in args.worlds.split(",")):
            for dtype in ("float32", "float64"):
                t0 = time.perf_counter()
                dp, dl = drift(world, sizes, steps, batch, dtype)
                print(f"{name:<8}{world:>6}{dtype:>9}{dp:>18.2e}{dl:>17.2e}{time.perf_counter() - t0:>6.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
