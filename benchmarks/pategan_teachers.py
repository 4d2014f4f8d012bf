"""Benchmark: PATE-GAN with the paper's MLP teachers vs the authors' 2020 code's logistic-regression teachers.

Run from the main venv::

    .venv/bin/python benchmarks/pategan_teachers.py [--eps 10 3] [--seeds 3] [--teachers mlp logistic] [--csv rows.csv]
    .venv/bin/python benchmarks/pategan_teachers.py --plain-gan --teachers --csv plain.csv  # the GAN alone
    .venv/bin/python benchmarks/pategan_teachers.py --summarize mlp.csv logistic.csv   # from saved rows

Table: ISLR's Default (7,000 training rows after the 70/30 split with seed 0, the same split and public
schema as ``smartnoise_compare.py``), 250 teachers (28 rows each), 300 iterations of 64 votes each (19,200
votes planned, λ from the data-independent bound), Adam at 2e-4 with PATEGAN's betas (0.5, 0.9), δ = 1e-5.
Both teacher kinds see the same partitions, the same noisy-argmax votes and the same accountant; only the
teacher model differs (the MLP takes one Adam step per iteration on its partition, the logistic regression is
refit from scratch); both sample from the generator's moving average (β = 0.98).

Printed per run and as mean ± sd: 1-way / 2-way TVD against the training rows and TSTR AUC (logistic
regression trained on the synthetic rows, tested on the held-out 30 %), beside two references measured in the
same run: a table drawn uniformly from the public domain (what a generator that learned nothing would score
on TVD) and train-on-real AUC. ``--plain-gan`` adds a third reference: the same generator and discriminator
networks trained as a plain GAN on all rows — no teachers, no student, no privacy — with Adam's default betas
(0.9, 0.999) and with the GAN setting (0.5, 0.9), to tell what PATE costs from what the GAN alone cannot do.
The goal stated in the output: a PATE-GAN *trains* when its mean 1-way TVD is
below the uniform table's and its TSTR AUC above 0.5.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lab_utils.synth.data import DEFAULT_TARGET, default_schema, load_default, train_test_split_frame
from lab_utils.synth.metrics import uniform_table, utility_report
from lab_utils.synth.nets import Generator, discriminator, sample_table
from lab_utils.synth.pategan import PATEGAN

TEACHERS, ITERATIONS, BATCH, LR, DELTA, AVERAGE = 250, 300, 64, 2e-4, 1e-5, 0.98


def plain_gan(train: pd.DataFrame, schema, betas: tuple[float, float], seed: int) -> pd.DataFrame:
    """The reference without PATE or privacy: PATE-GAN's ``Generator`` and ``discriminator`` trained as a plain
    GAN (Goodfellow et al. 2014, Alg. 1 with k = 1: one discriminator step on BATCH real vs BATCH generated rows,
    then one generator step on Σ log(1 − D(G(z))), as PATE-GAN's generator step), ITERATIONS steps, Adam at LR
    with ``betas``; sampled from the generator's moving average, as PATE-GAN is here."""
    torch.manual_seed(seed)
    tgen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    x = torch.from_numpy(schema.to_unit(train)).float()
    gen, disc = Generator(schema, hidden=64), discriminator(x.shape[1], 64)
    opt_g = torch.optim.Adam(gen.parameters(), lr=LR, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=LR, betas=betas)
    averaged = AveragedModel(gen, multi_avg_fn=get_ema_multi_avg_fn(AVERAGE), use_buffers=True)
    labels = torch.cat([torch.ones(BATCH), torch.zeros(BATCH)])
    for _ in range(ITERATIONS):
        with torch.no_grad():
            fake = gen(gen.noise(BATCH, tgen))
        logits = disc(torch.cat([x[rng.integers(0, len(x), BATCH)], fake])).squeeze(1)
        opt_d.zero_grad()
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        opt_d.step()
        opt_g.zero_grad()
        (-F.softplus(disc(gen(gen.noise(BATCH, tgen)))).mean()).backward()
        opt_g.step()
        averaged.update_parameters(gen)
    return sample_table(averaged.module, schema, len(train), torch.Generator().manual_seed(seed + 1))


def run(eps_grid: list[float], seeds: int, kinds: list[str], csv: str | None = None,
        plain: bool = False) -> pd.DataFrame:
    """Every (ε, teacher kind, seed) run, after the uniform reference; with ``csv``, rows are written as they
    finish (an interrupted run keeps what it measured)."""
    torch.set_num_threads(1)
    schema = default_schema(bins=16)
    train, test = train_test_split_frame(load_default(), test_fraction=0.3, seed=0)
    rows = []
    for s in range(seeds):
        rep = utility_report(uniform_table(schema, len(train), s), train, test, schema, DEFAULT_TARGET)
        rows.append({"teacher": "uniform table", "eps": np.nan, "seed": s, "fit_s": 0.0, **rep})
    for betas in [(0.9, 0.999), (0.5, 0.9)] if plain else []:
        for s in range(seeds):
            t0 = time.perf_counter()
            out = plain_gan(train, schema, betas, s)
            rep = utility_report(out, train, test, schema, DEFAULT_TARGET)
            rows.append({"teacher": f"plain GAN, betas {betas}", "eps": np.nan, "seed": s,
                         "fit_s": time.perf_counter() - t0, **rep})
            print(f"  plain GAN betas={betas} seed={s} 1-way={rep['tvd_1way']:.3f} 2-way={rep['tvd_2way']:.3f} "
                  f"TSTR={rep['tstr_auc']:.3f}", flush=True)
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
    if csv:  # again, for a run of the references alone
        pd.DataFrame(rows).to_csv(csv, index=False)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> None:
    metrics = ["tvd_1way", "tvd_2way", "tstr_auc", "fit_s"]
    df = df.fillna({"eps": -1})
    g = df.groupby(["teacher", "eps"])[metrics]
    mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    table = mean.map("{:.3f}".format) + " ± " + sd.map("{:.3f}".format)
    table["runs"] = g.size()
    print("\nMean ± sd over seeds (ε = -1: no privacy — the uniform table and the plain GANs are references); "
          f"train-on-real TSTR AUC {df['trtr_auc'].iloc[0]:.3f}:")
    print(table.to_string())
    uniform = mean.loc[("uniform table", -1.0), "tvd_1way"]
    print(f"\nGoal: mean 1-way TVD below the uniform table's ({uniform:.3f}) and TSTR AUC above 0.5:")
    for (kind, eps), r in mean.drop(index="uniform table", level=0).iterrows():
        met = r["tvd_1way"] < uniform and r["tstr_auc"] > 0.5
        runs = df[(df["teacher"] == kind) & (df["eps"] == eps)]
        trained = int(((runs["tvd_1way"] < uniform) & (runs["tstr_auc"] > 0.5)).sum())
        what = f"{kind}, no privacy" if eps == -1 else f"{kind} teachers, ε = {eps:g}"
        print(f" - {what}: {'MET' if met else 'NOT MET'} — 1-way {r['tvd_1way']:.3f} vs {uniform:.3f}, "
              f"TSTR AUC {r['tstr_auc']:.3f}; seeds that meet it alone: {trained}/{len(runs)}")


def combine(paths: list[str]) -> pd.DataFrame:
    """Rows of several ``--csv`` files (one per teacher kind, run side by side), the uniform rows once."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return df.drop_duplicates(subset=["teacher", "eps", "seed"]).reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[10.0, 3.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teachers", nargs="*", default=["mlp", "logistic"], choices=["mlp", "logistic"],
                    help="teacher kinds to run (none: only the references)")
    ap.add_argument("--plain-gan", action="store_true", help="also run the plain, non-private GAN reference")
    ap.add_argument("--csv", help="also write the per-run rows here")
    ap.add_argument("--summarize", nargs="+", metavar="CSV", help="only print the summary of saved rows")
    args = ap.parse_args()
    summarize(combine(args.summarize) if args.summarize else run(args.eps, args.seeds, args.teachers, args.csv,
                                                                               args.plain_gan))


if __name__ == "__main__":
    main()
