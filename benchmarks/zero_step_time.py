"""Step time and per-rank bytes: the reference ZeRO stages vs DeepSpeed's, same model, same world size.

Run: .venv/bin/python benchmarks/zero_step_time.py [--world 2] [--sizes 64,127,127,16] [--steps 30]
Both run fp32 Adam on the CPU with gloo (NCCL on GPUs) through lab_utils.dist.launch; step times are
medians over the steps after the first few (warm-up), measured inside the ranks on rank 0.
"""

from __future__ import annotations

import argparse
import statistics

from lab_utils.dist import launch
from lab_utils.measure import fmt_bytes
from lab_utils.parallel.zero import STAGE_NAMES
from lab_utils.parallel.zero_deepspeed import deepspeed_worker
from lab_utils.parallel.zero_stages import zero_worker
from lab_utils.record import RunRecord


def median_step(run: RunRecord, warmup: int) -> float:
    return statistics.median(run.step_times[warmup:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--sizes", default="64,127,127,16", help="MLP layer widths (CI model size by default)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    warmup = min(5, args.steps // 2)
    stages = (0, 1, 2, 3)
    run = dict(stages=stages, sizes=sizes, steps=args.steps, global_batch=args.batch, echo="none", timeout=900)
    ours = launch(zero_worker, args.world, **run)[0]
    theirs = launch(deepspeed_worker, args.world, **run)[0]
    print(f"model {sizes}: {ours[0].extra['num_params']:,} parameters, {args.world} ranks, fp32 Adam, "
          f"median of {args.steps - warmup} steps (rank 0)\n")
    print(f"{'stage':<16}{'reference ms':>13}{'DeepSpeed ms':>14}{'ref/DS':>8}   "
          f"{'reference bytes/rank (p+g+Adam)':>32}   DeepSpeed bytes/rank (p + fp32 partition + Adam)")
    for s in stages:
        t_ref, t_ds = median_step(ours[s], warmup), median_step(theirs[s], warmup)
        b_ref, b_ds = ours[s].state_bytes, theirs[s].state_bytes
        print(f"{s}: {STAGE_NAMES[s]:<13}{1e3 * t_ref:>13.2f}{1e3 * t_ds:>14.2f}{t_ref / t_ds:>8.2f}   "
              f"{fmt_bytes(b_ref['total']):>32}   {fmt_bytes(sum(b_ds.values()))} "
              f"({', '.join(f'{k} {fmt_bytes(v)}' for k, v in b_ds.items())}; gradients not counted)")


if __name__ == "__main__":
    main()
