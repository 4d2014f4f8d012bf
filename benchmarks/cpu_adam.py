"""ZeRO-Offload's CPU-Adam claim re-measured: DeepSpeedCPUAdam vs torch.optim.Adam (for-loop, foreach, fused).

Run: .venv/bin/python benchmarks/cpu_adam.py [--params 50000000] [--repeats 10]
The first run JIT-compiles DeepSpeed's cpu_adam op with g++ (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse

import torch

from lab_utils.parallel.zero_deepspeed import cpu_adam_times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=50_000_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--tensors", type=int, default=10)
    args = ap.parse_args()
    times = cpu_adam_times(args.params, repeats=args.repeats, tensors=args.tensors)
    ds = times["DeepSpeedCPUAdam"]
    print(f"\n{args.params:,} fp32 parameters in {args.tensors} tensors, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} steps")
    print(f"{'implementation':<28}{'ms/step':>10}{'DeepSpeedCPUAdam speed-up':>28}")
    for name, t in times.items():
        print(f"{name:<28}{1e3 * t:>10.2f}{t / ds:>28.2f}x")


if __name__ == "__main__":
    main()
