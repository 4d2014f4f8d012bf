"""The one synthesizer template (lab_utils.synth.base): every synthesizer refuses to sample before a
successful fit, refuses bad n, and records δ only when it spends it."""

import warnings

import pytest
from test_synth_budget import PATHS
from test_synth_data import small_frame, small_schema

from lab_utils.synth.base import Synthesizer


@pytest.mark.parametrize("path", ["MWEM default", "DPGAN default", "PATEGAN lam=None", "DP-CTGAN prep 0.1",
                                  "QUAIL(MWEM) split 0.7"])
def test_template_guards_every_synthesizer(path):
    synth = PATHS[path]()
    assert isinstance(synth, Synthesizer)
    with pytest.raises(RuntimeError, match="before sample"):
        synth.sample(5)
    with pytest.raises(ValueError):
        synth.fit(small_frame(), -1.0, 1e-5, schema=small_schema())   # a failed fit leaves it unfitted
    with pytest.raises(RuntimeError, match="before sample"):
        synth.sample(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        synth.fit(small_frame(), 2.0, 1e-5, schema=small_schema())
    assert len(synth.sample(7)) == 7
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="rows"):
            synth.sample(bad)
    assert synth.delta == (1e-5 if synth.uses_delta else None)
