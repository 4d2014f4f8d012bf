import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from smartnoise_report import combine  # noqa: E402


def test_a_re_measure_replaces_only_its_own_cells():
    def rows(eps, seeds, value):
        return pd.DataFrame([{"table": "Wage", "synth": "MST", "eps": e, "seed": s, "tvd_2way": value}
                             for e in eps for s in range(seeds)])

    first = pd.concat([rows([0.3, 1.0], 3, 0.5), rows([0.3], 3, 0.7).assign(synth="SN MST")], ignore_index=True)
    again = rows([1.0], 10, 0.1)  # ten new runs of one cell
    out = combine([first, again])
    cell = out.groupby(["synth", "eps"]).tvd_2way.agg(["mean", "size"])
    assert cell.loc[("MST", 1.0)].tolist() == pytest.approx([0.1, 10])   # replaced by the re-measure
    assert cell.loc[("MST", 0.3)].tolist() == pytest.approx([0.5, 3])    # kept: not re-measured
    assert cell.loc[("SN MST", 0.3)].tolist() == pytest.approx([0.7, 3])
