"""The summary of ``smartnoise_compare.py``'s per-run rows: mean ± sd per cell, ours vs SmartNoise side by side,
and one verdict line per goal of issue 16, all computed from the rows (nothing hard-coded).

``python benchmarks/smartnoise_compare.py --summarize rows.csv [more.csv ...]`` prints it for recorded CSVs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

PAIRS = [("MWEM", "SN MWEM"), ("MST", "SN MST"), ("AIM", "SN AIM"), ("DP-CTGAN", "SN DPCTGAN"),
         ("PATE-CTGAN", "SN PATECTGAN")]
OURS_BEST, SN_BEST = ["MWEM", "MWEM+PGM", "MWEM+PGM+1way", "MWEM+PGM zCDP+1way", "MST", "AIM"], ["SN MST", "SN AIM"]   # candidates for "best"
METRICS = ["tvd_1way", "tvd_2way", "tstr_auc", "fit_s"]


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
    for ours_name in ("MWEM+PGM", "MWEM+PGM+1way", "MWEM+PGM zCDP+1way"):
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


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-run rows of several CSVs; a later frame's (table, synth, ε) cells replace the earlier frames' ones
    (a re-measure of some ε of a synthesizer keeps its other ε from the earlier file)."""
    out = frames[0]
    for f in frames[1:]:
        redone = set(zip(f.table, f.synth, f.eps.astype(float)))
        keep = [k not in redone for k in zip(out.table, out.synth, out.eps.astype(float))]
        out = pd.concat([out[keep], f], ignore_index=True)
    return out
