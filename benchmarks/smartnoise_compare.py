"""Benchmark: this project's DP synthesizers vs SmartNoise's (smartnoise-synth 1.0.8), on two tables.

Run from the main venv after ``bash benchmarks/smartnoise_env.sh``::

    .venv/bin/python benchmarks/smartnoise_compare.py [--quick] [--seeds 3] [--timeout 400] [--csv rows.csv]

Pairs (ours / SmartNoise's): MWEM, MST, AIM, DP-CTGAN, PATE-CTGAN; MWEM+PGM (and MWEM+PGM+1way, with AIM's
1-way initialisation on 20 % of ε) has no SmartNoise namesake and competes for "our best". SmartNoise's MST and
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
  Our MWEM+PGM: pure ε, like MWEM. SN MST / AIM: ε with δ = 1e-5 (zCDP inside, converted; ``mbi`` 1.1).

Metrics (``lab_utils.synth.metrics``): mean 1- and 2-way marginal TVD of the
synthetic table vs the training rows on the public bins; TSTR AUC of a logistic
regression predicting ``health_ins`` on the held-out real rows (TRTR, train on real,
is printed for reference); fit time (fit only, 1 torch thread on both sides).
Mean ± sd over seeds are printed, the side-by-side table per (table, ε) and one verdict line per goal
of issue 16, computed from those numbers.
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
PAIRS = [("MWEM", "SN MWEM"), ("MST", "SN MST"), ("AIM", "SN AIM"), ("DP-CTGAN", "SN DPCTGAN"),
         ("PATE-CTGAN", "SN PATECTGAN")]
OURS_BEST, SN_BEST = ["MWEM", "MWEM+PGM", "MWEM+PGM+1way", "MST", "AIM"], ["SN MST", "SN AIM"]   # candidates for "best"
TABLES = {"Wage": (load_wage, lambda: wage_schema(bins=8), WAGE_TARGET),
          "Default": (load_default, lambda: default_schema(bins=16), DEFAULT_TARGET)}
METRICS = ["tvd_1way", "tvd_2way", "tstr_auc", "fit_s"]
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
            "MST": lambda s: MST(iters=pgm_iters[1], seed=s),
            "AIM": lambda s: AIM(iters=pgm_iters[0], final_iters=pgm_iters[1], seed=s),
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



def run_table(tab: str, epsilons: list[float], seeds: list[int], quick: bool, timeout: float,
              only: list[str] | None, skip: set, record) -> None:
    load, make_schema, target = TABLES[tab]
    schema = make_schema()
    train, test = train_test_split_frame(load(), test_fraction=0.3, seed=0)
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
    return f"  {r['table']:<8} {r['synth']:<13} ε={r['eps']:<4} seed={r['seed']} fit={r['fit_s']:8.1f}s {r['status']} {vals}"


# ---- summary -----------------------------------------------------------------------------------
def stats(res: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd per (table, synthesizer, ε) over seeds (columns ``<metric>`` and ``<metric>_sd``); a
    cell with an unfinished run keeps the finished seeds and says so in ``note``."""
    ok = res[res.status == "ok"]
    g = ok.groupby(["table", "synth", "eps"])[METRICS]
    out = g.mean().join(g.std(ddof=1).fillna(0.0).add_suffix("_sd"))
    out["runs"] = ok.groupby(["table", "synth", "eps"]).size()
    bad = res[res.status != "ok"].groupby(["table", "synth", "eps"]).status.first()
    out["note"] = ""
    with warnings.catch_warnings():  # rows appended to a MultiIndex: lookups past the sorted depth, harmless
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for key, status in bad.items():
            if key not in out.index:
                out.loc[key, METRICS] = np.nan
                out.loc[key, "runs"] = 0
            out.loc[key, "note"] = status if len(status) <= 48 else status[:45] + "..."
    return out.sort_index()


def no_worse(x: pd.Series, y: pd.Series) -> dict[str, bool]:
    """Ours (x) at least matches theirs (y) within one sd (the larger of the two): TVDs not above, TSTR AUC
    not below; fit time at most 2x."""
    tol = {m: max(x[f"{m}_sd"], y[f"{m}_sd"]) for m in ("tvd_1way", "tvd_2way", "tstr_auc")}
    return {"tvd_2way": x.tvd_2way <= y.tvd_2way + tol["tvd_2way"],
            "tstr_auc": x.tstr_auc >= y.tstr_auc - tol["tstr_auc"],
            "fit_s": x.fit_s <= 2 * y.fit_s}


def side_by_side(st: pd.DataFrame) -> pd.DataFrame:
    """One row per (table, pair, ε) with both sides' means, the ratio ours / SN and the goal checks."""
    rows = []
    for tab, eps in sorted({(t, e) for t, _, e in st.index}):
        pairs = [(a, b, False) for a, b in PAIRS]
        pairs.append((_best(st, tab, eps, OURS_BEST), _best(st, tab, eps, SN_BEST), True))
        for a, b, best in pairs:
            if a is None or b is None or (tab, a, eps) not in st.index or (tab, b, eps) not in st.index:
                continue
            x, y = st.loc[(tab, a, eps)], st.loc[(tab, b, eps)]
            if not (x.runs and y.runs):
                continue
            row = {"table": tab, "ε": eps, "pair": f"{a} / {b}", "best": best}
            for m in METRICS:
                row[f"{m} ours"], row[f"{m} SN"] = x[m], y[m]
            row["fit ratio"] = x.fit_s / y.fit_s
            row.update({f"ok {k}": v for k, v in no_worse(x, y).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def _best(st: pd.DataFrame, tab: str, eps: float, names: list[str]) -> str | None:
    """The candidate with the lowest mean 2-way TVD in this cell."""
    have = [n for n in names if (tab, n, eps) in st.index and st.loc[(tab, n, eps)].runs]
    return min(have, key=lambda n: st.loc[(tab, n, eps), "tvd_2way"]) if have else None


def _unfinished(st: pd.DataFrame) -> str:
    """The namesake cells left out because SmartNoise finished no run there (timeout or error)."""
    out = [f"{t}/{b}@ε={e} ({st.loc[(t, b, e), 'note']}; ours {st.loc[(t, a, e), 'fit_s']:.0f} s)"
           for t, _, e in st.index.unique() for a, b in PAIRS
           if _ == b and not st.loc[(t, b, e), "runs"] and (t, a, e) in st.index]
    return f"; not counted, SmartNoise unfinished: {', '.join(out)}" if out else ""


# Read in smartnoise-synth 1.0.8, snsynth/pytorch/nn/patectgan.py (train): ``student_disc = discriminator`` and
# ``teacher_disc = [discriminator for i in range(self.num_teachers)]`` are one module.
SN_PATECTGAN_CAVEAT = (
    "caveat for PATE-CTGAN / SN PATECTGAN: SmartNoise's student discriminator is the same module as all its "
    "teachers (snsynth 1.0.8, patectgan.py: student_disc = discriminator; teacher_disc = [discriminator ...]), "
    "so the generator is trained against a discriminator fitted to the real rows without noise: its utility "
    "is not that of a DP synthesizer, and a PATE-CTGAN that is DP is not expected to match it")


def verdicts(st: pd.DataFrame, sbs: pd.DataFrame) -> list[str]:
    """One line per goal of issue 16, computed from the means and sds (nothing hard-coded)."""
    out = []
    pairs = sbs[~sbs.best] if len(sbs) else sbs
    if len(pairs):
        util = pairs["ok tvd_2way"] & pairs["ok tstr_auc"]
        fail = [f"{r.table}/{r.pair.split(' /')[0]}@ε={r['ε']}" for _, r in pairs[~(util & pairs["ok fit_s"])].iterrows()]
        out.append(f"every synthesizer ≥ its SmartNoise namesake (2-way TVD and TSTR AUC within one sd, fit ≤ 2x): "
                   f"{'MET' if not fail else 'NOT MET'} — utility in {int(util.sum())}/{len(pairs)} cells, fit time "
                   f"in {int(pairs['ok fit_s'].sum())}/{len(pairs)}" + (f"; not at {', '.join(fail)}" if fail else "")
                   + _unfinished(st))
        if pairs.pair.str.startswith("PATE-CTGAN").any():
            out.append(SN_PATECTGAN_CAVEAT)
    else:
        out.append("every synthesizer ≥ its SmartNoise namesake: not measured (no pair in this run)")
    best = sbs[sbs.best] if len(sbs) else sbs
    if len(best):
        ok = best["ok tvd_2way"] & best["ok tstr_auc"]
        fail = [f"{r.table}@ε={r['ε']} ({r.pair})" for _, r in best[~ok].iterrows()]
        out.append(f"our best matches SmartNoise's best (MST/AIM) in every cell: {'MET' if not fail else 'NOT MET'} "
                   f"— {int(ok.sum())}/{len(best)} cells" + (f"; not at {', '.join(fail)}" if fail else ""))
    for ours_name in ("MWEM+PGM", "MWEM+PGM+1way"):
        for ref in ("MST", "SN MST"):
            r = [(t, e, st.loc[(t, ours_name, e), "tvd_1way"] / st.loc[(t, ref, e), "tvd_1way"])
                 for t, e in sorted({(t, e) for t, _, e in st.index})
                 if {(t, ours_name, e), (t, ref, e)} <= set(st.index)]
            if r:
                met = all(x <= 1.5 for _, _, x in r)
                out.append(f"{ours_name} 1-way TVD within 1.5x of {ref}'s: {'MET' if met else 'NOT MET'} — "
                           + ", ".join(f"{t}@ε={e}: {x:.2f}x" for t, e, x in r))
    return out


def summarize(res: pd.DataFrame) -> None:
    """Print mean ± sd per cell, the side-by-side table and the verdicts."""
    st = stats(res)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_rows", 500)
    print("\nMean ± sd over seeds (TSTR AUC train-on-real: "
          + ", ".join(f"{t} {v:.3f}" for t, v in res.groupby("table").trtr_auc.median().items()) + "):")
    show = pd.DataFrame({m: st[m].map("{:.3f}".format) + " ± " + st[f"{m}_sd"].map("{:.3f}".format)
                         for m in METRICS})
    show["runs"], show["note"] = st["runs"].astype(int), st["note"]
    print(show.to_string())
    sbs = side_by_side(st)
    if len(sbs):
        print("\nOurs vs SmartNoise (means; the last row per cell pairs our best with SmartNoise's best by 2-way TVD):")
        print(sbs.round(3).to_string(index=False))
    print("\nVerdicts (from the means and sds above):")
    for line in verdicts(st, sbs):
        print(" -", line)


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
    ap.add_argument("--summarize", type=Path, nargs="+", help="only summarise per-run CSVs written by --csv")
    args = ap.parse_args()
    if args.summarize:
        return summarize(pd.concat([pd.read_csv(f) for f in args.summarize], ignore_index=True))
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
