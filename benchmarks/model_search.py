"""Model Search's beam search + mutation vs random search vs Optuna TPE, at a larger budget than the chapter's.

Every searcher gets the same budget of trained models on the same generated keyword-spotting task, over
several seeds, through ``lab_utils.model_search.platform.run_studies`` (each search sequential in one process,
processes side by side). Printed per searcher: the best validation accuracy after the budget (mean ± sd over
seeds) and the test accuracy of that model, and how many trained models it needed to reach a target
validation accuracy (the median over seeds; "—" when a seed never got there), as a ratio to random search.

    .venv/bin/python benchmarks/model_search.py [--budget 24] [--seeds 3] [--steps 150] [--target 0.8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date

import numpy as np

from lab_utils.model_search.ensemble import best_so_far, completed, load_trials
from lab_utils.model_search.platform import SearchConfig, run_studies

SEARCHERS = ("beam", "random", "tpe")
TASK = dict(n_train=1200, n_val=400, n_test=600, noise=0.4, n_mels=12, n_frames=28)


def trials_to_target(curve: np.ndarray, target: float) -> int | None:
    hit = np.nonzero(curve >= target)[0]
    return int(hit[0]) + 1 if hit.size else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=int, default=24, help="trained models per search")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150, help="training steps per candidate")
    ap.add_argument("--target", type=float, default=0.8, help="validation accuracy to reach")
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    thresholds = tuple(round(i * args.budget / 8) for i in range(5))   # deepen over the first half
    configs = {f"{s}|{seed}": SearchConfig(searcher=s, seed=seed, task_options=TASK, n_trials=args.budget,
                                           train_steps=args.steps, depth_thresholds=thresholds)
               for s in SEARCHERS for seed in range(args.seeds)}
    with tempfile.TemporaryDirectory(prefix="model_search_bench_") as run:
        t0 = time.perf_counter()
        run_studies(run, configs, n_processes=args.processes, timeout=3600)
        wall = time.perf_counter() - t0
        rows = {}
        for s in SEARCHERS:
            finals, tests, needed = [], [], []
            for seed in range(args.seeds):
                records = load_trials(run, f"{s}|{seed}")
                curve = best_so_far(records, args.budget)
                best = max(completed(records, args.budget), key=lambda r: r.val_accuracy)
                finals.append(float(np.nanmax(curve)))
                tests.append(best.test_accuracy)
                needed.append(trials_to_target(curve, args.target))
            rows[s] = (finals, tests, needed)
    print(f"{date.today()}  {len(configs)} searches ({args.seeds} seeds x {len(SEARCHERS)} searchers), budget "
          f"{args.budget} trained models of {args.steps} steps each, {args.processes} processes: {wall / 60:.1f} min")
    hits = {s: [n for n in rows[s][2] if n is not None] for s in SEARCHERS}
    ref = statistics.median(hits["random"]) if hits["random"] else None
    print(f"{'searcher':10} {'best val acc':>16} {'its test acc':>16} {f'models to val {args.target:.2f}':>22} "
          f"{'vs random':>10}")
    for s in SEARCHERS:
        finals, tests, _ = rows[s]
        med = statistics.median(hits[s]) if hits[s] else None
        reach = f"{med:g} ({len(hits[s])}/{args.seeds} seeds)" if med is not None else f"— (0/{args.seeds})"
        ratio = f"{med / ref:.2f}x" if med is not None and ref else "—"
        print(f"{s:10} {statistics.fmean(finals):8.3f} ± {statistics.pstdev(finals):.3f} "
              f"{statistics.fmean(tests):8.3f} ± {statistics.pstdev(tests):.3f} {reach:>22} {ratio:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
