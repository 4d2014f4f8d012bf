"""Sharded data parallel side by side: DDP, OSS + ShardedDDP, FSDP2 (both reshard modes), DeepSpeed ZeRO-2/3.

Run: .venv/bin/python benchmarks/sharded.py [--worlds 2 4] [--sizes 128,255,255,32] [--steps 20] [--batch 32]

One ``lab_utils.dist.launch`` per world size runs every variant in turn in one process group (gloo on CPUs,
NCCL with a GPU per rank), through ``lab_utils.parallel.sharded.sharded_worker``. Printed per variant, as
ratios to DDP measured in the same run: the median step time (largest over ranks; the memory-traced step
excluded), the per-rank peak of live tensor bytes during one forward + backward
(``lab_utils.measure.live_tensor_peak``: tensors only, no allocator caching or library-internal buffers),
and the model-state bytes at rest. Goals checked (printed, never asserted): FSDP2's per-rank model-state
bytes within 5 % of the ZeRO-3 formula 16 Psi / N (fp32 Adam), and every variant's trajectory equal to
single-process Adam (parameters within 1e-4, losses within 1e-5: the ZeRO chapter's tolerances).
DeepSpeed's state counts its fp32 partition with Adam's states and not its gradient buffers.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

from lab_utils.dist import launch
from lab_utils.measure import fmt_bytes
from lab_utils.parallel.sharded import sharded_worker
from lab_utils.parallel.sharded_math import sharded_bytes_per_rank
from lab_utils.parallel.task import train_single

VARIANTS = ("ddp", "oss_sdp", "fsdp2", "fsdp2_noreshard", "deepspeed_zero2", "deepspeed_zero3")
PARAM_TOL, LOSS_TOL = 1e-4, 1e-5


def run_world(world: int, run: dict, baseline) -> list[str]:
    t0 = time.perf_counter()
    per_rank = launch(sharded_worker, world, variants=VARIANTS, **run, timeout=1800, echo="none")
    print(f"\n## {world} ranks ({per_rank[0][0].backend}), {time.perf_counter() - t0:.0f} s\n")
    recs = {v: [r[i] for r in per_rank] for i, v in enumerate(VARIANTS)}
    step = {v: max(r.median_step_time for r in rs) for v, rs in recs.items()}
    peak = {v: max(r.extra["peak_live_bytes"] for r in rs) for v, rs in recs.items()}
    state = {v: max(r.state_bytes["total"] for r in rs) for v, rs in recs.items()}
    print(f"{'variant':<17}{'step ms':>9}{'/DDP':>7}{'peak':>12}{'/DDP':>7}{'states':>12}{'/DDP':>7}"
          f"{'max|dparam|':>13}{'max|dloss|':>12}")
    verdicts = []
    for v, rs in recs.items():
        dp = max((r.params - baseline.params).abs().max().item() for r in rs)
        dl = max(abs(a - b) for r in rs for a, b in zip(r.losses, baseline.losses))
        print(f"{v:<17}{1e3 * step[v]:>9.2f}{step[v] / step['ddp']:>7.2f}{fmt_bytes(peak[v]):>12}"
              f"{peak[v] / peak['ddp']:>7.2f}{fmt_bytes(state[v]):>12}{state[v] / state['ddp']:>7.2f}"
              f"{dp:>13.1e}{dl:>12.1e}")
        if not (dp < PARAM_TOL and dl < LOSS_TOL):
            verdicts.append(f"trajectory of {v}: NOT MET ({dp:.1e}, {dl:.1e})")
    psi = recs["ddp"][0].extra["num_params"]
    formula = sharded_bytes_per_rank("fsdp2", psi, world).total
    for v in ("fsdp2", "fsdp2_noreshard"):
        worst = max(abs(r.state_bytes["total"] / formula - 1) for r in recs[v])
        verdicts.append(f"{v} model states within 5 % of ZeRO-3's 16 Psi/N = {fmt_bytes(formula)}: "
                        f"{'MET' if worst < 0.05 else 'NOT MET'} (worst rank off by {100 * worst:.2f} %)")
    ok = [v for v in VARIANTS if not any(f"trajectory of {v}" in x for x in verdicts)]
    verdicts.append(f"trajectories equal to single-process Adam: {len(ok)}/{len(VARIANTS)} variants MET")
    return verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--sizes", default="128,255,255,32", help="MLP layer widths")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32, help="global batch (divisible by every world size)")
    args = ap.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    run = dict(sizes=sizes, steps=args.steps, global_batch=args.batch)
    baseline = train_single(**run)
    print(f"# benchmarks/sharded.py, {datetime.date.today()}, torch {torch.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads; model {sizes}: Psi = {baseline.extra['num_params']:,}, "
          f"{args.steps} steps, global batch {args.batch}, fp32 Adam")
    for world in args.worlds:
        for line in run_world(world, run, baseline):
            print(" -", line)


if __name__ == "__main__":
    main()
