"""The mechanism checks and the empirical DP-SGD audit — each shown to fail on a planted bug."""

import math
import warnings

import numpy as np
import pytest
import torch
from test_synth_data import small_frame, small_schema

from lab_utils.synth import audit, dpgan, dpsgd, pate
from lab_utils.synth.audit import (
    audit_dpsgd,
    check_dpsgd_fit,
    check_pate_fit,
    clopper_pearson_upper,
    epsilon_lower_bound,
    replaced,
)
from lab_utils.synth.dpgan import DPGAN
from lab_utils.synth.pategan import PATEGAN

torch.set_num_threads(1)


def fit_dpgan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return DPGAN(iterations=3, n_critic=2, batch_size=16, hidden=8, seed=0).fit(
            small_frame(), 1.0, 1e-5, schema=small_schema())


def test_dpsgd_checks_pass_on_the_real_step():
    _, r = check_dpsgd_fit(fit_dpgan, dpgan)
    assert r["max_record_norm"] <= r["clip"] * (1 + 1e-5)
    assert r["max_record_norm"] > 0.5 * r["clip"]  # the records did reach the bound (the check saw real gradients)
    assert r["noise_std_lo"] <= r["charged_noise_std"] <= r["noise_std_hi"]
    assert r["noisy_steps"] == r["charged_steps"] == 6


def test_dpsgd_checks_catch_planted_bugs():
    with replaced(dpsgd, "clip_per_example", lambda g, clip: {k: v * 3 for k, v in g.items()}):
        _, r = check_dpsgd_fit(fit_dpgan, dpgan)
        assert r["max_record_norm"] > r["clip"]
    add = dpsgd.add_noise
    with replaced(dpsgd, "add_noise", lambda s, std, gen: add(s, 0.9 * std, gen)):
        _, r = check_dpsgd_fit(fit_dpgan, dpgan)
    assert not r["noise_std_lo"] <= r["charged_noise_std"] <= r["noise_std_hi"]
    # one noisy step skipped: the count no longer matches what the accountant charged
    calls = {"n": 0}
    step = dpgan.DPGAN._private_critic_step

    def skip_first(self, *a):
        calls["n"] += 1
        if calls["n"] > 1:
            step(self, *a)
    with replaced(dpgan.DPGAN, "_private_critic_step", skip_first):
        _, r = check_dpsgd_fit(fit_dpgan, dpgan)
    assert r["noisy_steps"] == r["charged_steps"] - 1


def test_pate_checks_count_votes_and_measure_laplace_scale():
    g = PATEGAN(teachers=3, iterations=4, teacher_steps=1, batch_size=32, hidden=8, seed=0)
    _, r = check_pate_fit(lambda: g.fit(small_frame(), 2.0, 1e-5, schema=small_schema()))
    assert r["votes_answered"] == g.accountant.queries == 4 * 32
    assert r["laplace_scale_lo"] <= 1 / g.lam <= r["laplace_scale_hi"]
    original = pate.noisy_counts
    with replaced(pate, "noisy_counts", lambda v, lam, rng: original(v, 2 * lam, rng)):  # half the noise
        _, r = check_pate_fit(lambda: g.fit(small_frame(), 2.0, 1e-5, schema=small_schema()))
    assert r["laplace_scale_hi"] < 1 / g.lam


@pytest.mark.parametrize("teachers, lam", [(10, 0.0021), (10, 0.2), (250, 0.016)])
def test_swayable_votes_match_the_closed_form(teachers, lam):
    """The count of noisy-argmax answers the teachers could still decide, read off the noise actually drawn, matches
    P(|z_1 − z_0| < k) = 1 − (2 + kλ)e^{−kλ}/2 (``accounting.pate_swayable``, derived by hand) within 5 binomial sd."""
    from lab_utils.synth.accounting import pate_swayable

    rng, n = np.random.default_rng(0), 40_000
    votes = np.stack([np.full(n, 3.0), np.full(n, teachers - 3.0)], 1)
    call = audit.Call((votes, lam, rng), {}, pate.noisy_counts(votes, lam, rng))
    p = pate_swayable(teachers, lam)
    assert abs(audit.swayable_votes(call) / n - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-9
    with pytest.raises(ValueError, match="teachers"):
        pate_swayable(0, lam)


def test_pate_fit_reports_the_swayable_votes_of_its_noise():
    g = PATEGAN(teachers=3, iterations=4, teacher_steps=1, batch_size=32, hidden=8, seed=0)
    big = PATEGAN(teachers=3, iterations=4, teacher_steps=1, batch_size=32, hidden=8, lam=0.5, seed=0)
    _, small_lam = check_pate_fit(lambda: g.fit(small_frame(), 2.0, 1e-5, schema=small_schema()))
    _, big_lam = check_pate_fit(lambda: big.fit(small_frame(), 1e3, 1e-5, schema=small_schema()))
    assert 0 <= small_lam["votes_swayable"] < big_lam["votes_swayable"] <= big_lam["votes_answered"]
    sw = audit.swayable_summary(big_lam, 3, 0.5)
    assert sw["measured"] == big_lam["votes_swayable"] / 128 and abs(sw["measured"] - sw["expected"]) < 5 * sw["sd"]


def test_clopper_pearson_and_the_lower_bound_formula():
    assert clopper_pearson_upper(0, 1000) == pytest.approx(1 - 0.025 ** (1 / 1000))
    assert clopper_pearson_upper(1000, 1000) == 1.0
    rng = np.random.default_rng(0)
    same = epsilon_lower_bound(rng.normal(size=500), rng.normal(size=500), 1e-5)
    assert same["epsilon_lb"] < 0.3  # indistinguishable worlds: (almost) nothing certified
    apart = epsilon_lower_bound(np.full(500, 10.0), np.zeros(500), 1e-5)
    cp0 = 1 - 0.025 ** (1 / 500)
    assert apart["epsilon_lb"] == pytest.approx(math.log((1 - 1e-5 - cp0) / cp0))


def test_audit_bounds_the_correct_step_and_catches_broken_ones():
    ok = audit_dpsgd(2.0, 1e-5, runs=300, steps=5)
    assert 0 <= ok["epsilon_lb"] <= ok["claimed_epsilon"] <= 2.0
    for bug in ("no_clipping", "noise_on_mean"):
        broken = audit_dpsgd(2.0, 1e-5, runs=300, steps=5, mechanism=bug)
        assert broken["epsilon_lb"] > broken["claimed_epsilon"], bug
    assert dpsgd.clip_per_example is not audit._no_clipping  # the planted bug is removed afterwards
    with pytest.raises(ValueError, match="mechanism"):
        audit_dpsgd(2.0, 1e-5, runs=300, mechanism="nope")
