"""Which count of communication matches what gloo really sends: the ZeRO paper's volume or a ring's?

Run: .venv/bin/python benchmarks/comm_wire_bytes.py [--worlds 2,4] [--numel 1048576]
Each collective of lab_utils.parallel.comm.CommCounter runs 5 times on 4 MiB of fp32 between N local
processes (gloo over the loopback interface); rank 0 reads /proc/net/dev's TX bytes of `lo` around them.
Prints, for all ranks together, the measured bytes and the two predictions, and their ratios. Anything
else using loopback at the same time adds to the measurement: run it on a quiet machine (Linux only).
"""

from __future__ import annotations

import argparse

from lab_utils.dist import launch
from lab_utils.parallel.comm import wire_bytes_worker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="2,4")
    ap.add_argument("--numel", type=int, default=1 << 20)
    args = ap.parse_args()
    print(f"{'ranks':>5} {'collective':<15}{'measured MiB':>13}{'volume MiB':>12}{'ring MiB':>10}"
          f"{'measured/volume':>17}{'measured/ring':>15}")
    for world in (int(w) for w in args.worlds.split(",")):
        rows = launch(wire_bytes_worker, world, numel=args.numel, echo="none", timeout=600)[0]
        if not rows:
            raise SystemExit("no /proc/net/dev here: this measurement needs Linux")
        for name, r in rows.items():
            print(f"{world:>5} {name:<15}{r['measured'] / 2**20:>13.2f}{r['volume'] / 2**20:>12.2f}"
                  f"{r['ring'] / 2**20:>10.2f}{r['measured'] / r['volume']:>17.2f}{r['measured'] / r['ring']:>15.2f}")


if __name__ == "__main__":
    main()
