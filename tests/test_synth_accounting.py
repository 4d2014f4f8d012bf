import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from lab_utils.synth.accounting import (
    ALPHAS,
    PateMomentsAccountant,
    gaussian_epsilon,
    gaussian_noise_multiplier,
    pate_moments,
    pate_q,
    steps_for_budget,
)
from lab_utils.synth.pategan import lambda_for_budget


def test_gaussian_epsilon_matches_stepping_opacus():
    acc = RDPAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=1.1, sample_rate=0.02)
    assert gaussian_epsilon(1.1, 0.02, 300, 1e-5) == pytest.approx(acc.get_epsilon(1e-5, alphas=ALPHAS), rel=1e-9)


def test_noise_multiplier_meets_target():
    sigma = gaussian_noise_multiplier(2.0, 1e-5, 0.03, 500)
    eps = gaussian_epsilon(sigma, 0.03, 500, 1e-5)
    assert eps <= 2.0 and eps > 1.95


@pytest.mark.parametrize("sigma, eps", [(4.0, 1.0), (3.0, 2.0), (2.0, 3.0), (4.0, 3.0), (1.5, 1.0)])
def test_steps_for_budget_is_the_largest_affordable_count_by_brute_force(sigma, eps):
    """Brute force over T = 1..40 from one step's RDP curve composed T times (RDP adds up over steps), read
    through Opacus' RDP → (ε, δ) conversion — not through ``gaussian_epsilon``."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    q, delta = 0.3, 1e-5  # answers 8, 16, 12, 40 (all) and 0 (not one step)
    one_step = compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=ALPHAS)
    costs = [get_privacy_spent(orders=ALPHAS, rdp=t * one_step, delta=delta)[0] for t in range(1, 41)]
    brute = max((t for t, c in zip(range(1, 41), costs) if c <= eps), default=0)
    assert steps_for_budget(sigma, q, eps, delta, 40) == brute


def test_pate_q_closed_form_binary():
    lam, votes = 0.3, np.array([[2.0, 8.0], [5.0, 5.0]])
    gap = 6 * lam
    assert pate_q(votes, lam)[0] == pytest.approx((2 + gap) / (4 * math.exp(gap)))
    assert pate_q(votes, lam)[1] == pytest.approx(0.5)


def test_pate_moments_use_the_log_of_the_data_dependent_bound():
    lam, order = 0.5, np.array([1.0, 2.0, 4.0])
    votes = np.array([[0.0, 20.0]])  # unanimous: q tiny, data-dependent bound applies
    q = (2 + 20 * lam) / (4 * math.exp(20 * lam))
    expected = np.log((1 - q) * ((1 - q) / (1 - math.exp(2 * lam) * q)) ** order + q * np.exp(2 * lam * order))
    got = pate_moments(votes, lam, order)[0]
    np.testing.assert_allclose(got, np.minimum(expected, 2 * lam**2 * order * (order + 1)))
    assert (got < 2 * lam**2 * order * (order + 1)).all()  # data-dependent is tighter here
    # the un-logged expression (smartnoise-sdk issue 596) is the log's argument, which is >= 1 > its log:
    # dropping the log over-counts (conservative), it never under-counts
    unlogged = pate_moments(votes, lam, order, log=False)[0]
    np.testing.assert_allclose(unlogged, np.minimum(np.exp(expected), 2 * lam**2 * order * (order + 1)))
    assert (unlogged > got).all()


def test_smartnoise_596_variant_over_counts_epsilon():
    votes = np.array([[10.0, 0.0]] * 200 + [[7.0, 3.0]] * 50)  # mostly unanimous votes, as in PATE-GAN
    ours, theirs = PateMomentsAccountant(0.5), PateMomentsAccountant(0.5, log=False)
    ours.add(votes)
    theirs.add(votes)
    assert ours.epsilon(1e-5) < theirs.epsilon(1e-5) <= theirs.epsilon_data_independent(1e-5)


def test_pate_moments_fall_back_to_data_independent_when_q_invalid():
    lam, order = 0.5, np.arange(1.0, 5.0)
    got = pate_moments(np.array([[10.0, 10.0]]), lam, order)[0]  # tie: q = 0.5 > validity bound
    np.testing.assert_allclose(got, 2 * lam**2 * order * (order + 1))


def test_accountant_closed_forms_and_lambda_search():
    acc = PateMomentsAccountant(lam=0.01, max_order=32)
    assert acc.epsilon(1e-5) == pytest.approx(math.log(1e5) / 32)
    acc.add(np.array([[3.0, 7.0]] * 100))
    assert acc.epsilon(1e-5) <= acc.epsilon_data_independent(1e-5)
    lam = lambda_for_budget(1.0, 1e-5, 5000)
    acc = PateMomentsAccountant(lam)
    acc.add(np.array([[5.0, 5.0]] * 5000))
    assert acc.epsilon_data_independent(1e-5) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="lambda"):
        PateMomentsAccountant(0)
