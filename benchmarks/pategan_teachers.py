"""Benchmark: PATE-GAN with the paper's MLP teachers vs the authors' 2020 code's logistic-regression teachers.

Run from the main venv::

    .venv/bin/python benchmarks/pategan_teachers.py [--eps 10 3] [--seeds 3] [--teachers mlp logistic] [--csv rows.csv]
    .venv/bin/python benchmarks/pategan_teachers.py --summarize mlp.csv logistic.csv   # from saved rows

Table: ISLR's Default (7,000 training rows after the 70/30 split with seed 0, the same split and public
schema as ``smartnoise_compare.py``), 250 teachers (28 rows each), 300 iterations of 64 votes each (19,200
votes planned, λ from the data-independent bound), Adam at 2e-4, δ = 1e-5. Both teacher kinds see the same
partitions, the same noisy-argmax votes and the same accountant; only the teacher model differs (the MLP
takes one Adam step per iteration on its partition, the logistic regression is refit from scratch); both sample
from the generator's moving average (β = 0.98).

Printed per run and as mean ± sd: 1-way / 2-way TVD against the training rows and TSTR AUC (logistic
regression trained on the synthetic rows, tested on the held-out 30 %), beside two references measured in the
same run: a table drawn uniformly from the public domain (what a generator that learned nothing would score
on TVD) and train-on-real AUC. The goal stated in the output: a PATE-GAN *trains* when its mean 1-way TVD is
below the uniform table's and its TSTR AUC above 0.5.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch

from lab_utils.synth.data import DEFAULT_TARGET, default_schema, load_default, train_test_split_frame
from lab_utils.synth.metrics import uniform_table, utility_report
from lab_utils.synth.pategan import PATEGAN

TEACHERS, ITERATIONS, BATCH, LR, DELTA, AVERAGE = 250, 300, 64, 2e-4, 1e-5, 0.98


def run(eps_grid: list[float], seeds: int, kinds: list[str], csv: str | None = None) -> pd.DataFrame:
    """Every (ε, teacher kind, seed) run, after the uniform reference; with ``csv``, rows are written as they
    finish (an interrupted run keeps what it measured)."""
    torch.set_num_threads(1)
    schema = default_schema(bins=16)
    train, test = train_test_split_frame(load_default(), test_fraction=0.3, seed=0)
    rows = []
    for s in range(seeds):
        rep = utility_report(uniform_table(schema, len(train), s), train, test, schema, DEFAULT_TARGET)
        rows.append({"teacher": "uniform table", "eps": np.nan, "seed": s, "fit_s": 0.0, **rep})
    for eps in eps_grid:
        for kind in kinds:
            for s in range(seeds):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    g = PATEGAN(teachers=TEACHERS, iterations=ITERATIONS, teacher_steps=1, batch_size=BATCH,
                                lr=LR, teacher=kind, average=AVERAGE, seed=s).fit(train, eps, DELTA, schema=schema)
                fit_s = time.perf_counter() - t0
                rep = utility_report(g.sample(len(train)), train, test, schema, DEFAULT_TARGET)
                rows.append({"teacher": kind, "eps": eps, "seed": s, "fit_s": fit_s, "lam": g.lam,
                             "eps_spent": g.epsilon_spent, **rep})
                if csv:
                    pd.DataFrame(rows).to_csv(csv, index=False)
                print(f"  {kind:<8} ε={eps:<4} seed={s} fit={fit_s:6.1f}s λ={g.lam:.4f} ε spent="
                      f"{g.epsilon_spent:.3f} 1-way={rep['tvd_1way']:.3f} 2-way={rep['tvd_2way']:.3f} "
                      f"TSTR={rep['tstr_auc']:.3f}", flush=True)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> None:
    metrics = ["tvd_1way", "tvd_2way", "tstr_auc", "fit_s"]
    g = df.fillna({"eps": -1}).groupby(["teacher", "eps"])[metrics]
    mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    table = mean.map("{:.3f}".format) + " ± " + sd.map("{:.3f}".format)
    table["runs"] = g.size()
    print("\nMean ± sd over seeds (ε = -1: no privacy, the uniform reference); train-on-real TSTR AUC "
          f"{df['trtr_auc'].iloc[0]:.3f}:")
    print(table.to_string())
    uniform = mean.loc[("uniform table", -1.0), "tvd_1way"]
    print(f"\nGoal: mean 1-way TVD below the uniform table's ({uniform:.3f}) and TSTR AUC above 0.5:")
    for (kind, eps), r in mean.drop(index="uniform table", level=0).iterrows():
        met = r["tvd_1way"] < uniform and r["tstr_auc"] > 0.5
        runs = df[(df["teacher"] == kind) & (df["eps"] == eps)]
        trained = int(((runs["tvd_1way"] < uniform) & (runs["tstr_auc"] > 0.5)).sum())
        print(f" - {kind} teachers, ε = {eps:g}: {'MET' if met else 'NOT MET'} — 1-way {r['tvd_1way']:.3f} "
              f"vs {uniform:.3f}, TSTR AUC {r['tstr_auc']:.3f}; seeds that meet it alone: {trained}/{len(runs)}")


def combine(paths: list[str]) -> pd.DataFrame:
    """Rows of several ``--csv`` files (one per teacher kind, run side by side), the uniform rows once."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return df.drop_duplicates(subset=["teacher", "eps", "seed"]).reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[10.0, 3.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teachers", nargs="+", default=["mlp", "logistic"], choices=["mlp", "logistic"])
    ap.add_argument("--csv", help="also write the per-run rows here")
    ap.add_argument("--summarize", nargs="+", metavar="CSV", help="only print the summary of saved rows")
    args = ap.parse_args()
    summarize(combine(args.summarize) if args.summarize else run(args.eps, args.seeds, args.teachers, args.csv))


if __name__ == "__main__":
    main()
