"""Why SmartNoise's MWEM beats ours on Wage's TSTR AUC: its column-order split, measured.

Run from the main venv (needs ``.venv-smartnoise``, see ``smartnoise_env.sh``)::

    .venv/bin/python benchmarks/smartnoise_mwem_split.py [--eps 1 3 10] [--runs 5]

``smartnoise_compare.py`` runs SmartNoise's MWEM with ``split_factor=3``: it cuts Wage's nine columns, in table
order, into three independent histograms, and the last one is (health, health_ins, wage) — the target with its two
strongest predictors, every pair of them measured. This script fits SmartNoise's MWEM with that split and with
the same three-column groups rearranged so that the target sits with year and age (wage and health together in
another group), side by side in one run, next to this project's MWEM (one histogram over all nine columns).
If the split is what buys SmartNoise its TSTR AUC, moving the target away from wage drops it to about chance
while the 2-way TVD barely moves. SmartNoise's Laplace noise comes from OpenDP's unseeded generator, so its runs
are independent draws (the seed only fixes NumPy's choices); ours are seeded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smartnoise_compare as sc  # noqa: E402

from lab_utils.synth.data import train_test_split_frame  # noqa: E402
from lab_utils.synth.metrics import utility_report  # noqa: E402


def splits(names: list[str]) -> dict[str, dict]:
    """SmartNoise MWEM keyword arguments: its column-order split, and the same group sizes with the target apart."""
    at = {c: names.index(c) for c in names}
    apart = [["year", "age", "health_ins"], ["maritl", "race", "education"], ["jobclass", "health", "wage"]]
    return {"SN MWEM, column order": {"split_factor": 3},
            "SN MWEM, health_ins with year, age": {"splits": [[at[c] for c in g] for g in apart]}}


def run(eps_grid: list[float], runs: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    load, make_schema, target = sc.TABLES["Wage"]
    schema = make_schema()
    train, test = train_test_split_frame(load(), test_fraction=0.3, seed=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sn_split_") as tmp:
        for eps in eps_grid:
            for r in range(runs):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ours = sc.ours(quick=True)["MWEM"](r).fit(train, eps, schema=schema)  # its --quick MWEM
                rows.append({"synth": "MWEM (ours, one histogram)", "eps": eps, "run": r,
                             **utility_report(ours.sample(len(train)), train, test, schema, target)})
                for label, kwargs in splits(schema.names).items():
                    out, res = sc.run_smartnoise(label, ("mwem", True, kwargs), eps, r, train, schema, 400, Path(tmp))
                    if out is None:
                        raise SystemExit(f"{label} at ε = {eps}: {res['status']}")
                    rows.append({"synth": label, "eps": eps, "run": r,
                                 **utility_report(out, train, test, schema, target)})
                for row in rows[-3:]:
                    print(f"  ε={eps:<4} run={r} {row['synth']:<36} 2-way={row['tvd_2way']:.3f} "
                          f"TSTR={row['tstr_auc']:.3f}", flush=True)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> None:
    g = df.groupby(["eps", "synth"])[["tvd_2way", "tstr_auc"]]
    table = g.mean().map("{:.3f}".format) + " ± " + g.std(ddof=1).fillna(0.0).map("{:.3f}".format)
    table["runs"] = g.size()
    print(f"\nMean ± sd (Wage; train-on-real TSTR AUC {df['trtr_auc'].iloc[0]:.3f}):")
    print(table.to_string())
    mean = g.mean()
    print("\nSmartNoise's TSTR AUC with the target moved away from wage, over with its column-order split:")
    for eps in sorted(df["eps"].unique()):
        order = mean.loc[(eps, "SN MWEM, column order"), "tstr_auc"]
        apart = mean.loc[(eps, "SN MWEM, health_ins with year, age"), "tstr_auc"]
        print(f" - ε = {eps:g}: {apart:.3f} / {order:.3f} = {apart / order:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    ap.add_argument("--runs", type=int, default=5, help="runs per ε and synthesizer (our seeds 0..runs-1)")
    args = ap.parse_args()
    if not sc.SN_PYTHON.exists():
        raise SystemExit(f"{sc.SN_PYTHON} not found: run `bash benchmarks/smartnoise_env.sh` first")
    if min(args.eps) <= 0 or args.runs < 2:
        raise SystemExit("need ε > 0 and at least 2 runs (for an sd)")
    summarize(run(args.eps, args.runs))


if __name__ == "__main__":
    main()
