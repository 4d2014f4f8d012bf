"""Run one SmartNoise synthesizer inside .venv-smartnoise/ (called by smartnoise_compare.py).

Usage: ``.venv-smartnoise/bin/python benchmarks/_smartnoise_worker.py JOB.json``

The job file names the synthesizer, ε, δ, seed, constructor keyword arguments, the
training CSV (integer-coded categoricals, raw public-bounded numerics), which columns
are categorical / continuous with their *public* bounds, and where to write the
sampled CSV and a result JSON ``{"fit_s", "sample_s", "epsilon", "snsynth"}``. Fit
time is measured here, around ``fit`` only (imports and data loading excluded).
This file imports only SmartNoise's environment (no lab_utils).
"""

from __future__ import annotations

import json
import random
import sys
import time
import warnings


def use_iid_sampling_on_mbi_1_1() -> str:
    """Work around a sampler bug in mbi 1.1.0, the Private-PGM that smartnoise-synth 1.0.8 installs.

    Its ``MarkovRandomField.synthetic_data(method="round")`` draws each column's values within a parent group
    from u = (rank + U(0,1)) / count with ranks in *row order* (a stable argsort, never shuffled), so every
    column is sorted by row index inside its groups: the columns come out co-monotone (on Wage at ε = 10, SN MST's
    2-way TVD is 0.12, worse than independent columns' 0.06). mbi 2.0 shuffles within each group. Here SN's MST
    and AIM sample with mbi's own i.i.d. method instead (0.04 on the same fit). Returns the sampler used.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("mbi") != "1.1.0":
            return "mbi default"
    except PackageNotFoundError:
        return "no mbi"
    import mbi.markov_random_field as mrf

    rounding = mrf.MarkovRandomField.synthetic_data
    mrf.MarkovRandomField.synthetic_data = lambda self, rows=None, method="round": rounding(self, rows, "sample")
    return "mbi 1.1.0 i.i.d. (rounding sampler bug)"


def main(job_path: str) -> None:
    import numpy as np
    import pandas as pd
    import snsynth
    import torch
    from snsynth import Synthesizer
    from snsynth.transform import MinMaxTransformer

    job = json.loads(open(job_path).read())
    sampler = use_iid_sampling_on_mbi_1_1()
    torch.set_num_threads(job.get("threads", 1))
    random.seed(job["seed"])
    np.random.seed(job["seed"])
    torch.manual_seed(job["seed"])
    df = pd.read_csv(job["train_csv"])
    categorical = job["categorical"]
    continuous = job["continuous"]  # {name: [lower, upper]} public bounds -> no preprocessor ε
    kwargs = dict(job.get("kwargs", {}))
    if job["synth"] in ("dpctgan", "patectgan", "mst", "aim"):
        kwargs["delta"] = job["delta"]
    synth = Synthesizer.create(job["synth"], epsilon=float(job["epsilon"]), **kwargs)
    constraints = {c: MinMaxTransformer(lower=lo, upper=hi, negative=True) for c, (lo, hi) in continuous.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        synth.fit(df, categorical_columns=categorical, continuous_columns=list(continuous),
                  transformer=constraints or None, preprocessor_eps=0.0)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = synth.sample(job["n"])
        sample_s = time.perf_counter() - t0
    out = pd.DataFrame(out, columns=df.columns) if not isinstance(out, pd.DataFrame) else out
    out.to_csv(job["out_csv"], index=False)
    eps = getattr(synth, "epsilon", job["epsilon"])
    with open(job["result_json"], "w") as f:
        json.dump({"fit_s": fit_s, "sample_s": sample_s, "epsilon": float(eps), "snsynth": snsynth.__name__,
                   "sampler": sampler}, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: _smartnoise_worker.py JOB.json")
    main(sys.argv[1])
