"""Benchmark: this project's MWEM, DP-CTGAN and PATE-CTGAN vs SmartNoise (smartnoise-synth 1.0.8).

Run from the main venv after ``bash benchmarks/smartnoise_env.sh``::

    .venv/bin/python benchmarks/smartnoise_compare.py [--quick] [--seeds 3] [--timeout 400]
    .venv/bin/python benchmarks/smartnoise_compare.py --smartnoise-defaults-mwem   # times SN's MWEM defaults

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
* SN MST / AIM: ε with δ = 1e-5 (zCDP inside, converted), the modern reference.

Metrics (``lab_utils.synth.metrics``): mean 1- and 2-way marginal TVD of the
synthetic table vs the training rows on the public bins; TSTR AUC of a logistic
regression predicting ``health_ins`` on the held-out real rows (TRTR, train on real,
is printed for reference); fit time (fit only, 1 torch thread on both sides).
Medians over seeds are printed, with the ratio ours / SmartNoise's per synthesizer
and ε, and one verdict line per goal of issue 7, computed from those numbers.
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

from lab_utils.synth.data import WAGE_TARGET, load_wage, train_test_split_frame, wage_schema
from lab_utils.synth.dpctgan import DPCTGAN
from lab_utils.synth.metrics import utility_report
from lab_utils.synth.mwem import MWEM
from lab_utils.synth.patectgan import PATECTGAN

ROOT = Path(__file__).resolve().parents[1]
SN_PYTHON = ROOT / ".venv-smartnoise" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "_smartnoise_worker.py"
DELTA = 1e-5
PAIRS = [("MWEM", "SN MWEM"), ("DP-CTGAN", "SN DPCTGAN"), ("PATE-CTGAN", "SN PATECTGAN")]
METRICS = ["tvd_1way", "tvd_2way", "tstr_auc", "fit_s"]
AUC_TOL = 0.01  # TSTR AUC counts as "at least as good" within this margin


def ours(quick: bool) -> dict:
    """Our synthesizers and their sizes (quick = the chapter's CI scale, full = its cpu scale)."""
    t_mwem, it_ct, it_pct = (25, 300, 60) if quick else (40, 1500, 300)
    return {"MWEM": lambda s: MWEM(iterations=t_mwem, seed=s),
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


def run_grid(epsilons: list[float], seeds: list[int], quick: bool, timeout: float,
             only: list[str] | None = None) -> pd.DataFrame:
    df = load_wage()
    schema = wage_schema(bins=8)
    train, test = train_test_split_frame(df, test_fraction=0.3, seed=0)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sn_bench_") as tmpdir:
        for eps in epsilons:
            for seed in seeds:
                for name, make in ours(quick).items():
                    if only and name not in only:
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t0 = time.perf_counter()
                        s = make(seed).fit(train, eps, delta=DELTA, schema=schema)
                        fit_s = time.perf_counter() - t0
                    rep = utility_report(s.sample(len(train)), train, test, schema, WAGE_TARGET)
                    rows.append({"synth": name, "eps": eps, "seed": seed, "status": "ok", "fit_s": fit_s,
                                 "eps_spent": s.epsilon_spent, **rep})
                    print(_line(rows[-1]), flush=True)
                for name, spec in smartnoise(quick).items():
                    if only and name not in only:
                        continue
                    out, res = run_smartnoise(name, spec, eps, seed, train, schema, timeout, Path(tmpdir))
                    row = {"synth": name, "eps": eps, "seed": seed, "status": res["status"], "fit_s": res["fit_s"]}
                    if out is not None:
                        row.update(utility_report(out, train, test, schema, WAGE_TARGET))
                    rows.append(row)
                    print(_line(row), flush=True)
    return pd.DataFrame(rows)


def _line(r: dict) -> str:
    vals = " ".join(f"{k}={r[k]:.3f}" for k in ["tvd_1way", "tvd_2way", "tstr_auc", "trtr_auc"] if k in r)
    return f"  {r['synth']:<13} ε={r['eps']:<4} seed={r['seed']} fit={r['fit_s']:8.1f}s {r['status']} {vals}"


# ---- summary -----------------------------------------------------------------------------------
def medians(res: pd.DataFrame) -> pd.DataFrame:
    """Median per (synthesizer, ε) over seeds; a cell with any unfinished run shows its status."""
    ok = res[res.status == "ok"]
    med = ok.groupby(["synth", "eps"])[METRICS].median()
    bad = res[res.status != "ok"].groupby(["synth", "eps"]).status.first()
    for key, status in bad.items():
        if key not in med.index:
            med.loc[key, :] = np.nan
            med.loc[key, "fit_s"] = np.inf if status.startswith("did not") else np.nan
    med["note"] = ""
    for key, status in bad.items():
        med.loc[key, "note"] = status if len(status) <= 48 else status[:45] + "..."
    return med.sort_index()


def side_by_side(med: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for a, b in PAIRS:
        for eps in sorted(med.index.get_level_values("eps").unique()):
            if (a, eps) not in med.index or (b, eps) not in med.index:
                continue
            x, y = med.loc[(a, eps)], med.loc[(b, eps)]
            row = {"pair": f"{a} / {b}", "ε": eps}
            for m in METRICS:
                row[f"{m} ours"], row[f"{m} SN"] = x[m], y[m]
                row[f"{m} ratio"] = x[m] / y[m] if np.isfinite(y[m]) and y[m] != 0 else np.nan
            row["SN note"] = y["note"]
            rows.append(row)
    cols = ["pair", "ε"] + [f"{m} {s}" for m in METRICS for s in ("ours", "SN", "ratio")] + ["SN note"]
    return pd.DataFrame(rows, columns=cols)


def verdicts(med: pd.DataFrame, sbs: pd.DataFrame, defaults_mwem: dict | None) -> list[str]:
    """One line per goal of issue 7, computed from the medians (nothing hard-coded)."""
    out = []
    fin = sbs[np.isfinite(sbs["tvd_1way SN"].astype(float))]
    tvd_ok = (fin["tvd_1way ours"] <= fin["tvd_1way SN"]) & (fin["tvd_2way ours"] <= fin["tvd_2way SN"])
    auc_ok = fin["tstr_auc ours"] >= fin["tstr_auc SN"] - AUC_TOL
    worse = [f"{r.pair.split(' /')[0]}@ε={r['ε']}" for _, r in fin[~(tvd_ok & auc_ok)].iterrows()]
    dnf = len(sbs) - len(fin)
    if len(sbs) == 0:
        out.append("utility ≥ SmartNoise at equal ε: not measured (no pair of ours and SmartNoise's in this run)")
    else:
        out.append(f"utility ≥ SmartNoise at equal ε: {'MET' if len(fin) and not worse else 'NOT MET'} — "
                   f"both TVDs ≤ SmartNoise's in {int(tvd_ok.sum())}/{len(fin)} (pair, ε) cells, TSTR AUC ≥ "
                   f"SmartNoise's − {AUC_TOL} in {int(auc_ok.sum())}/{len(fin)}"
                   + (f"; not both at {', '.join(worse)}" if worse else "")
                   + (f"; {dnf} cells without a SmartNoise result (timeout or error; not counted)" if dnf else ""))
    eps_all = sorted(med.index.get_level_values("eps").unique())
    m_ok, m_mst = [], {1: [], 2: []}
    for e in eps_all:
        if ("MWEM", e) in med.index and ("SN MWEM", e) in med.index:
            m_ok.append(med.loc[("MWEM", e), "tvd_2way"] <= med.loc[("SN MWEM", e), "tvd_2way"]
                        or not np.isfinite(med.loc[("SN MWEM", e), "tvd_2way"]))
        if ("MWEM", e) in med.index and ("SN MST", e) in med.index:
            for w in (1, 2):
                m_mst[w].append(med.loc[("MWEM", e), f"tvd_{w}way"] / med.loc[("SN MST", e), f"tvd_{w}way"])
    beat = ("not measured" if not m_ok else f"{'MET' if all(m_ok) else 'NOT MET'} ({sum(m_ok)}/{len(m_ok)} ε)")
    near = []
    for w in (1, 2):
        r = np.asarray(m_mst[w], dtype=float)
        txt = ", ".join(f"{x:.2f}" for x in r)
        near.append(f"{w}-way {'not measured' if not np.isfinite(r).any() else ('MET' if np.nanmax(r) <= 1.5 else 'NOT MET')}"
                    + (f" (by ε: {txt})" if len(r) else ""))
    out.append(f"MWEM beats SmartNoise's MWEM (2-way TVD): {beat}; approaching MST "
               f"(TVD ours / MST's ≤ 1.5 at every ε): {'; '.join(near)}")
    fr = sbs["fit_s ratio"].astype(float)
    if not fr.notna().any():
        out.append("fit time ≤ 2x SmartNoise's: not measured (no finished pair in this run)")
    else:
        slow = [f"{r.pair.split(' /')[0]}@ε={r['ε']} ({r['fit_s ratio']:.1f}x)" for _, r in sbs[fr > 2].iterrows()]
        out.append(f"fit time ≤ 2x SmartNoise's: {'MET' if not slow else 'NOT MET'} — worst ratio "
                   f"{np.nanmax(fr):.2f}x" + (f"; slower at {', '.join(slow)}" if slow else ""))
    mw = med.xs("MWEM", level="synth")["fit_s"] if "MWEM" in med.index.get_level_values("synth") else None
    if mw is None:
        out.append("MWEM in seconds: not measured")
    elif defaults_mwem is None:
        out.append(f"MWEM in seconds: ours ≤ {mw.max():.1f} s; SmartNoise defaults not timed in this run "
                   "(pass --smartnoise-defaults-mwem)")
    else:
        dnf_defaults = defaults_mwem["status"] != "ok"
        out.append(f"MWEM in seconds (< 60 s) where SmartNoise's defaults do not finish: "
                   f"{'MET' if dnf_defaults and mw.max() < 60 else 'NOT MET'} — ours ≤ {mw.max():.1f} s; "
                   f"SmartNoise MWEM defaults at ε={defaults_mwem['eps']}: "
                   + (defaults_mwem["status"] if dnf_defaults else
                      f"finished in {defaults_mwem['fit_s']:.1f} s ({defaults_mwem['fit_s'] / mw.max():.0f}x ours)"))
    return out


def defaults_mwem_timing(eps: float, timeout: float) -> dict:
    """SmartNoise MWEM with default settings (no split_factor) on the same coded table."""
    df = load_wage()
    schema = wage_schema(bins=8)
    train, _ = train_test_split_frame(df, test_fraction=0.3, seed=0)
    with tempfile.TemporaryDirectory(prefix="sn_bench_") as tmpdir:
        _, res = run_smartnoise("SN MWEM defaults", ("mwem", True, {}), eps, 0, train, schema, timeout, Path(tmpdir))
    print(f"SmartNoise MWEM, default settings, ε={eps}: "
          + (f"fit {res['fit_s']:.1f} s" if res["status"] == "ok" else res["status"]), flush=True)
    return {"eps": eps, **res}


def summarize(res: pd.DataFrame, defaults: dict | None) -> None:
    """Print medians, the side-by-side ratio table and the verdicts."""
    med = medians(res)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print("\nMedians over seeds (TSTR AUC train-on-real: "
          f"{res['trtr_auc'].dropna().median():.3f}):")
    print(med.round(3).to_string())
    sbs = side_by_side(med)
    cols = ["pair", "ε"] + [f"{m} {s}" for m in METRICS for s in ("ours", "SN", "ratio")] + ["SN note"]
    print("\nOurs vs SmartNoise (ratio = ours / SmartNoise; TVD: lower is better, AUC: higher is better):")
    print(sbs[cols].round(3).to_string(index=False))
    print("\nVerdicts (from the medians above):")
    for line in verdicts(med, sbs, defaults):
        print(" -", line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="ε ∈ {1, 3}, 1 seed, CI-scale iterations")
    ap.add_argument("--eps", type=float, nargs="+", help="override the ε grid")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; 1 with --quick)")
    ap.add_argument("--timeout", type=float, default=None, help="per SmartNoise run, s (400; 150 with --quick)")
    ap.add_argument("--only", nargs="+", help="restrict to these synthesizer names (e.g. MWEM 'SN MWEM')")
    ap.add_argument("--smartnoise-defaults-mwem", action="store_true",
                    help="also time SmartNoise's MWEM with default settings under the timeout")
    ap.add_argument("--csv", type=Path, help="write the per-run rows here")
    ap.add_argument("--summarize", type=Path, nargs="+", help="only summarise per-run CSVs written by --csv")
    args = ap.parse_args()
    if args.summarize:
        return summarize(pd.concat([pd.read_csv(f) for f in args.summarize], ignore_index=True), None)
    if not SN_PYTHON.exists():
        raise SystemExit(f"{SN_PYTHON} not found: run `bash benchmarks/smartnoise_env.sh` first")
    eps = args.eps or ([1.0, 3.0] if args.quick else [0.1, 0.5, 1.0, 3.0, 9.0])
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 3)))
    timeout = args.timeout or (150.0 if args.quick else 400.0)
    known = list(ours(True)) + list(smartnoise(True))
    if args.only and set(args.only) - set(known):
        raise SystemExit(f"unknown names in --only: {sorted(set(args.only) - set(known))}; choose from {known}")
    if min(eps) <= 0 or not seeds or timeout <= 0:
        raise SystemExit("need ε > 0, at least one seed and a positive timeout")
    print(f"Wage, ε grid {eps}, seeds {seeds}, δ={DELTA}, timeout {timeout:.0f} s per SmartNoise run, "
          f"{'quick' if args.quick else 'full'} sizes", flush=True)
    defaults = defaults_mwem_timing(3.0, timeout) if args.smartnoise_defaults_mwem else None
    res = run_grid(eps, seeds, args.quick, timeout, args.only)
    if args.csv:
        res.to_csv(args.csv, index=False)
    summarize(res, defaults)

if __name__ == "__main__":
    sys.exit(main())
