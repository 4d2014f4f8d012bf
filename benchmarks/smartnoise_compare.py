"""Benchmark: this project's DP synthesizers vs SmartNoise's (smartnoise-synth 1.0.8), on two tables.

Run from the main venv after ``bash benchmarks/smartnoise_env.sh``::

    .venv/bin/python benchmarks/smartnoise_compare.py [--quick] [--seeds 3] [--timeout 400] [--csv rows.csv]

Pairs (ours / SmartNoise's): MWEM, MST, AIM, DP-CTGAN, PATE-CTGAN; MWEM+PGM (and MWEM+PGM+1way, with AIM's
1-way initialisation on 20 % of ε, and MWEM+PGM zCDP+1way, the same in the authors' code's ρ-zCDP currency)
has no SmartNoise namesake and competes for "our best". SmartNoise's MST and
AIM sample with the rounding sampler of the mbi 1.1.0 they install fixed as in mbi 2.0
(``_smartnoise_worker.fix_mbi_1_1_rounding_sampler``: unfixed, it leaves the columns co-monotone). Tables: Wage
(below) and ISLR's Default (``load_default``, ``default_schema``: public bounds fixed by hand, 16 bins, target
``default``), each split 70/30 with seed 0.

Each SmartNoise fit runs in ``.venv-smartnoise/`` through ``_smartnoise_worker.py`` in
a subprocess (data as CSV/JSON in a temp dir) with a per-run timeout: a run that
exceeds it is recorded as "did not finish in N s", never waited for.

**Same data, same public domain.** Both sides get the same training rows of ISLR's
Wage (``lab_utils.synth.data.load_wage``, 70/30 split with seed 0; the 30 % is held
out for TSTR) and the same public domain from ``wage_schema(bins=8)`` (categories
from the data documentation; age ∈ [18, 81], wage ∈ [20, 320]), so no side spends ε
on preprocessing and no side reads bounds from the rows:

* discrete synthesizers (our MWEM; SmartNoise's MWEM, MST, AIM) get every column as
  integer codes (categories by index, age and wage in 8 equal-width public bins);
  SmartNoise's MWEM with ``split_factor=3`` (its defaults build one histogram over
  the whole 358,400-cell domain and do not finish in 400 s here — see
  ``--smartnoise-defaults-mwem``); our MWEM keeps one histogram (the domain fits).
* GANs get categorical columns as integer codes and age/wage as numbers; SmartNoise's
  DPCTGAN/PATECTGAN get ``MinMaxTransformer`` with the public bounds (so
  ``preprocessor_eps=0``); ours get the schema's bounds.

**Equal ε.** Every synthesizer is asked for the same total ε (and δ = 1e-5 where it
uses δ); what each spends it on:

* our MWEM: pure ε-DP, ε/T per round (basic composition), δ unused. SN MWEM: pure ε.
* our DP-CTGAN: 10 % of ε on Laplace per-column histograms (the DP proxy table for
  mode-specific normalisation and the conditional-vector frequencies), 90 % on
  DP-SGD (Opacus RDP accountant). SN DPCTGAN: all of ε on DP-SGD (σ = 5, stops when
  ε is reached or after ``epochs``); its conditional vector uses exact category
  frequencies, outside its accounting (a leak our version pays for).
* our PATE-CTGAN: 10 % on the same histograms, 90 % on PATE votes (data-independent
  moments bound). SN PATECTGAN: all of ε on its PATE accountant (trains until spent).
* our MST / AIM: ε with δ = 1e-5 through ρ-zCDP (``accounting.cdp_rho``), Private-PGM (``mbi`` 2).
  Our MWEM+PGM(+1way): pure ε, like MWEM; MWEM+PGM zCDP+1way: ε with δ = 1e-5 through ρ-zCDP. SN MST / AIM: ε with δ = 1e-5 (zCDP inside, converted; ``mbi`` 1.1).

Metrics (``lab_utils.synth.metrics``): mean 1- and 2-way marginal TVD of the
synthetic table vs the training rows on the public bins; TSTR AUC of a logistic
regression predicting ``health_ins`` on the held-out real rows (TRTR, train on real,
is printed for reference); fit time (fit only, 1 torch thread on both sides, after the same warm-up on both sides:
library imports and torch's one-time lazy imports, ``_smartnoise_worker.warm_torch``).
Mean ± sd over seeds are printed, the side-by-side table per (table, ε) and one verdict line per goal
of issue 16, computed from those numbers. Seeds make our runs reproducible; SmartNoise's MWEM, MST and AIM draw
their noise from OpenDP, which no seed reaches, so their runs are independent draws whatever the seed (the
worker's seeds fix only NumPy's and torch's choices): give them enough runs for a fair sd.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _smartnoise_worker import warm_torch
from smartnoise_report import combine, summarize

from lab_utils.synth.aim import AIM
from lab_utils.synth.data import (
    DEFAULT_TARGET,
    WAGE_TARGET,
    default_schema,
    load_default,
    load_wage,
    train_test_split_frame,
    wage_schema,
)
from lab_utils.synth.dpctgan import DPCTGAN
from lab_utils.synth.metrics import utility_report
from lab_utils.synth.mst import MST
from lab_utils.synth.mwem import MWEM
from lab_utils.synth.mwem_pgm import MWEMPGM
from lab_utils.synth.patectgan import PATECTGAN

ROOT = Path(__file__).resolve().parents[1]
SN_PYTHON = ROOT / ".venv-smartnoise" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "_smartnoise_worker.py"
DELTA = 1e-5
TABLES = {"Wage": (load_wage, lambda: wage_schema(bins=8), WAGE_TARGET),
          "Default": (load_default, lambda: default_schema(bins=16), DEFAULT_TARGET)}
CSV_COLUMNS = ["table", "synth", "eps", "seed", "status", "fit_s", "eps_spent", "tvd_1way", "tvd_2way", "corr_diff",
               "tstr_auc", "trtr_auc"]


def ours(quick: bool) -> dict:
    """Our synthesizers and their sizes (quick = the chapter's CI scale, full = its cpu scale)."""
    t_mwem, it_ct, it_pct = (25, 300, 60) if quick else (40, 1500, 300)
    pgm_iters = (100, 500) if quick else (200, 1000)   # Private-PGM steps per round / at the end
    return {"MWEM": lambda s: MWEM(iterations=t_mwem, seed=s),
            "MWEM+PGM": lambda s: MWEMPGM(iters=pgm_iters[0], final_iters=pgm_iters[1], seed=s),
            # AIM's 1-way initialisation in MWEM+PGM's pure-ε currency (not in the 2019 paper): 20 % of ε
            "MWEM+PGM+1way": lambda s: MWEMPGM(iters=pgm_iters[0], final_iters=pgm_iters[1], one_way_share=0.2,
                                               seed=s),
            # the authors' code's default currency (ρ-zCDP, Gaussian noise, δ used) with the 1-way initialisation,
            # at that code's 1,000 Private-PGM steps per round
            "MWEM+PGM zCDP+1way": lambda s: MWEMPGM(iters=1000, final_iters=1000, one_way_share=0.2,
                                                    noise="gaussian", seed=s),
            # MST at the reference code's Private-PGM steps (5,000 at the end, 1,000 for selection), as SmartNoise
            "MST": lambda s: MST(seed=s),
            # AIM at the reference code's Private-PGM steps (1,000 per round and at the end), as SmartNoise runs it
            "AIM": lambda s: AIM(seed=s),
            "DP-CTGAN": lambda s: DPCTGAN(iterations=it_ct, prep_share=0.1, seed=s),
            "PATE-CTGAN": lambda s: PATECTGAN(teachers=10, iterations=it_pct, seed=s)}


def smartnoise(quick: bool) -> dict:
    """SmartNoise synthesizers: (registry name, discrete?, constructor kwargs)."""
    epochs = 30 if quick else 300  # SN's DPCTGAN default is 300 epochs (it also stops when ε is spent)
    return {"SN MWEM": ("mwem", True, {"split_factor": 3}),
            "SN DPCTGAN": ("dpctgan", False, {"epochs": epochs, "verbose": False, "cuda": False}),
            "SN PATECTGAN": ("patectgan", False, {"epochs": epochs, "verbose": False, "cuda": False}),
            "SN MST": ("mst", True, {}),
            "SN AIM": ("aim", True, {})}


# ---- the shared encoding handed to SmartNoise ------------------------------------------------
def encode(df: pd.DataFrame, schema, discrete: bool) -> pd.DataFrame:
    """Integer codes for every column (discrete) or for categoricals only (age/wage stay numbers)."""
    codes = schema.discretize(df)
    out = pd.DataFrame(codes, columns=schema.names)
    if not discrete:
        for c in schema.columns:
            if c.kind == "continuous":
                out[c.name] = df[c.name].to_numpy(dtype=float)
    return out


def decode(frame: pd.DataFrame, schema, discrete: bool, rng: np.random.Generator) -> pd.DataFrame:
    """SmartNoise's output back to a Wage-like table (codes clipped into the public domain)."""
    codes = np.zeros((len(frame), len(schema.columns)), dtype=np.int64)
    for j, c in enumerate(schema.columns):
        if discrete or c.kind == "categorical":
            codes[:, j] = np.clip(pd.to_numeric(frame[c.name], errors="coerce").fillna(0).round(), 0, c.size - 1)
    out = schema.undiscretize(codes, rng)
    if not discrete:
        for c in schema.columns:
            if c.kind == "continuous":
                v = np.clip(pd.to_numeric(frame[c.name], errors="coerce").fillna(c.lower).to_numpy(float),
                            c.lower, c.upper)
                out[c.name] = np.round(v).astype(np.int64) if c.integer else v
    return out


def run_smartnoise(name: str, spec: tuple, eps: float, seed: int, train: pd.DataFrame, schema,
                   timeout: float, tmp: Path) -> tuple[pd.DataFrame | None, dict]:
    """One SmartNoise fit+sample in the other venv; (None, status) on timeout or error."""
    synth, discrete, kwargs = spec
    tag = f"{synth}_{eps}_{seed}"
    enc = encode(train, schema, discrete)
    enc.to_csv(tmp / f"{tag}_train.csv", index=False)
    cont = {} if discrete else {c.name: [c.lower, c.upper] for c in schema.columns if c.kind == "continuous"}
    job = {"synth": synth, "epsilon": eps, "delta": DELTA, "seed": seed, "kwargs": kwargs, "n": len(train),
           "train_csv": str(tmp / f"{tag}_train.csv"), "out_csv": str(tmp / f"{tag}_out.csv"),
           "result_json": str(tmp / f"{tag}_result.json"),
           "categorical": [c for c in enc.columns if c not in cont], "continuous": cont}
    (tmp / f"{tag}.json").write_text(json.dumps(job))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(SN_PYTHON), str(WORKER), str(tmp / f"{tag}.json")], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, {"status": f"did not finish in {timeout:.0f} s", "fit_s": float("inf")}
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None, {"status": f"error: {err[:120]}", "fit_s": float("nan"), "wall_s": time.perf_counter() - t0}
    res = json.loads(Path(job["result_json"]).read_text())
    out = decode(pd.read_csv(job["out_csv"]), schema, discrete, np.random.default_rng(seed))
    return out, {"status": "ok", **res}


def run_grid(tables: list[str], epsilons: list[float], seeds: list[int], quick: bool, timeout: float,
             only: list[str] | None = None, csv: Path | None = None) -> pd.DataFrame:
    """Every (table, ε, seed, synthesizer) run; with ``csv``, each row is appended as it finishes and runs
    already in that file are not repeated (a long grid survives an interruption)."""
    torch.set_num_threads(1)
    done = pd.read_csv(csv) if csv and csv.exists() else pd.DataFrame(columns=["table", "synth", "eps", "seed"])
    skip = {(r.table, r.synth, float(r.eps), int(r.seed)) for r in done.itertuples()}

    def record(row: dict) -> None:
        print(_line(row), flush=True)
        if csv:
            pd.DataFrame([row]).reindex(columns=CSV_COLUMNS).to_csv(csv, mode="a", header=not csv.exists(),
                                                                     index=False)

    for tab in tables:
        run_table(tab, epsilons, seeds, quick, timeout, only, skip, record)
    return pd.read_csv(csv) if csv else pd.DataFrame(ROWS)


ROWS: list[dict] = []   # this run's rows when no CSV is kept



def warm_up_ours() -> None:
    """Our side's imports and torch's one-time lazy imports before any timed fit, as the worker does for SmartNoise's
    (``warm_torch``; until 2026-12-02's seventh session only SmartNoise's fits carried them, about 1.4 s each)."""
    import ctgan.data_transformer  # noqa: F401  (imported lazily by our DP-CTGAN / PATE-CTGAN)
    import ctgan.synthesizers.ctgan  # noqa: F401

    warm_torch()


def run_table(tab: str, epsilons: list[float], seeds: list[int], quick: bool, timeout: float,
              only: list[str] | None, skip: set, record) -> None:
    load, make_schema, target = TABLES[tab]
    schema = make_schema()
    train, test = train_test_split_frame(load(), test_fraction=0.3, seed=0)
    warm_up_ours()
    with tempfile.TemporaryDirectory(prefix="sn_bench_") as tmpdir:
        for eps in epsilons:
            for seed in seeds:
                for name, make in ours(quick).items():
                    if (only and name not in only) or (tab, name, eps, seed) in skip:
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t0 = time.perf_counter()
                        s = make(seed).fit(train, eps, delta=DELTA, schema=schema)
                        fit_s = time.perf_counter() - t0
                    rep = utility_report(s.sample(len(train)), train, test, schema, target)
                    ROWS.append({"table": tab, "synth": name, "eps": eps, "seed": seed, "status": "ok",
                                 "fit_s": fit_s, "eps_spent": s.epsilon_spent, **rep})
                    record(ROWS[-1])
                for name, spec in smartnoise(quick).items():
                    if (only and name not in only) or (tab, name, eps, seed) in skip:
                        continue
                    out, res = run_smartnoise(name, spec, eps, seed, train, schema, timeout, Path(tmpdir))
                    row = {"table": tab, "synth": name, "eps": eps, "seed": seed, "status": res["status"], "fit_s": res["fit_s"]}
                    if out is not None:
                        row.update(utility_report(out, train, test, schema, target))
                    ROWS.append(row)
                    record(row)


def _line(r: dict) -> str:
    vals = " ".join(f"{k}={r[k]:.3f}" for k in ["tvd_1way", "tvd_2way", "tstr_auc", "trtr_auc"] if k in r)
    return f"  {r['table']:<8} {r['synth']:<18} ε={r['eps']:<4} seed={r['seed']} fit={r['fit_s']:8.1f}s {r['status']} {vals}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-scale iterations (the grid is unchanged)")
    ap.add_argument("--eps", type=float, nargs="+", help="override the ε grid (default 0.3 1 3 10)")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    ap.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    ap.add_argument("--timeout", type=float, default=400.0, help="per SmartNoise run, s")
    ap.add_argument("--only", nargs="+", help="restrict to these synthesizer names (e.g. MWEM 'SN MWEM')")
    ap.add_argument("--csv", type=Path, help="append the per-run rows here as they finish; runs already in it are "
                                             "skipped (resume an interrupted grid)")
    ap.add_argument("--summarize", type=Path, nargs="+", help="only summarise per-run CSVs written by --csv; a "
                    "later file's rows replace an earlier file's for the same table, synthesizer and ε (a re-measure)")
    args = ap.parse_args()
    if args.summarize:
        return summarize(combine([pd.read_csv(f) for f in args.summarize]))
    if not SN_PYTHON.exists():
        raise SystemExit(f"{SN_PYTHON} not found: run `bash benchmarks/smartnoise_env.sh` first")
    eps = args.eps or [0.3, 1.0, 3.0, 10.0]
    seeds = list(range(args.seeds))
    known = list(ours(True)) + list(smartnoise(True))
    if args.only and set(args.only) - set(known):
        raise SystemExit(f"unknown names in --only: {sorted(set(args.only) - set(known))}; choose from {known}")
    if min(eps) <= 0 or not seeds or args.timeout <= 0:
        raise SystemExit("need ε > 0, at least one seed and a positive timeout")
    print(f"tables {args.tables}, ε grid {eps}, seeds {seeds}, δ={DELTA}, timeout {args.timeout:.0f} s per "
          f"SmartNoise run, {'quick' if args.quick else 'full'} sizes", flush=True)
    res = run_grid(args.tables, eps, seeds, args.quick, args.timeout, args.only, args.csv)
    summarize(res)


if __name__ == "__main__":
    sys.exit(main())
