"""Pipeline parallelism: GPipe vs 1F1B (torch.distributed.pipelining) vs the unpipelined model.

Run: .venv/bin/python benchmarks/pipeline.py [--width 2048] [--layers 4] [--batch 256] [--chunks 4] [--steps 6]
Two ranks (one stage each: gloo on CPUs, NCCL on GPUs) through lab_utils.dist.launch; the unpipelined
baseline is one process running the whole model on the whole batch (one thread per rank/process).
Prints, as ratios to the unpipelined model: median step time and peak activation bytes (the busiest
stage's saved-for-backward tensors, measured by weak reference), and for each schedule the measured
bubble 1 - sum(busy)/(p*wall) against the simulator's prediction for the measured operation times.
Goal (issue): measured bubble within 15 % (relative) of the prediction.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from lab_utils.dist import launch
from lab_utils.measure import fmt_bytes, live_saved_bytes, time_it
from lab_utils.parallel.pipeline_run import make_blocks, pipeline_worker, run_analysis
from lab_utils.parallel.task import make_batch


def unpipelined(sizes: tuple[int, ...], batch: int, repeats: int) -> tuple[float, int]:
    """Median step time (forward + backward + Adam) and peak saved activation bytes, one process."""
    torch.set_num_threads(1)
    model = make_blocks(sizes)
    opt = torch.optim.Adam(model.parameters(), foreach=False)
    x, y = make_batch(0, batch, sizes)

    def step() -> None:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    with live_saved_bytes(model) as live:
        loss = nn.functional.mse_loss(model(x), y)
        live.sample()
        del loss
    return time_it(step, warmup=1, repeats=repeats).median, live.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    sizes = (args.width,) * (args.layers + 1)
    base_time, base_bytes = unpipelined(sizes, args.batch, args.steps - 1)
    runs = launch(pipeline_worker, 2, sizes=sizes, chunks=args.chunks, steps=args.steps,
                  global_batch=args.batch, echo="none", timeout=1800)
    print(f"model {args.layers} x Linear({args.width}, {args.width}) + Tanh, batch {args.batch}, "
          f"{args.chunks} micro-batches, 2 stages, median of {args.steps - 1} steps after the first\n")
    print(f"{'run':<12}{'step ms':>9}{'step / unpiped':>16}{'peak act. bytes':>17}{'bytes / unpiped':>17}"
          f"{'bubble meas.':>14}{'bubble sim.':>13}{'rel. error':>12}{'within 15%':>12}")
    print(f"{'unpipelined':<12}{base_time * 1e3:9.1f}{1.0:16.2f}{fmt_bytes(base_bytes):>17}{1.0:17.2f}")
    for i in range(len(runs[0])):
        recs = [r[i] for r in runs]
        ana = run_analysis(recs)
        peak = max(r.extra["peak_saved_bytes"] for r in recs)
        wall = statistics.median(recs[0].step_times[1:])
        print(f"{ana['schedule']:<12}{wall * 1e3:9.1f}{wall / base_time:16.2f}{fmt_bytes(peak):>17}"
              f"{peak / base_bytes:17.2f}{ana['measured_bubble']:14.3f}{ana['predicted_bubble']:13.3f}"
              f"{ana['relative_error']:12.1%}{'met' if ana['relative_error'] <= 0.15 else 'NOT met':>12}")
        print(f"{'':<12}per-stage peak bytes {[fmt_bytes(r.extra['peak_saved_bytes']) for r in recs]}, "
              f"measured hop latency {ana['hop_latency'] * 1e3:.1f} ms, bubble predicted with it "
              f"{ana['predicted_bubble_with_hops']:.3f} (rel. error {ana['relative_error_with_hops']:.1%})")


if __name__ == "__main__":
    main()
