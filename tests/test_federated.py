"""Federated evaluation and tuning (lab_utils.federated): each claim checked by its mechanism.

Raw data never reaches the server (whole runs under sealed vaults, a planted snooping server caught);
clipping bound and noise scale measured on real releases; releases taken == releases charged and the
(R+1)-th refused before any device runs; pfl's accountant against the analytic Gaussian mechanism; the
confidence interval's coverage measured (and a CI that forgets the noise measured to fall short); the
device loss against a per-impression loop; the A/B lift against planted effects.
"""

import math

import numpy as np
import pytest
from scipy.stats import norm

from lab_utils.federated.abtest import ab_test, lift
from lab_utils.federated.aggregation import BudgetExhausted, PrivacyBudget, Release, SecureSum
from lab_utils.federated.personalization import (
    ELEVEN,
    SIX,
    EvaluationTask,
    Label,
    check_params,
    defaults,
    device_loss,
)
from lab_utils.federated.population import NewsWorld, PrivacyViolation
from lab_utils.federated.server import FederatedServer
from lab_utils.federated.tuning import federated_tune


@pytest.fixture(scope="module")
def world():
    return NewsWorld(seed=3)


@pytest.fixture(scope="module")
def population(world):
    return world.population(1500, seed=4)


def test_raw_data_is_sealed_outside_its_device(population):
    device = population.devices[0]
    with pytest.raises(PrivacyViolation, match="outside its device"):
        _ = device.log.tapped
    with pytest.raises(AttributeError):
        device.log.tapped = np.zeros(3)
    task = EvaluationTask(population.world, (defaults(SIX),))
    out = next(v for v in (d.run(task) for d in population.devices) if v is not None)
    assert out.shape == (3,) and out[0] == 1.0


def test_a_whole_tuning_run_sees_only_releases(population):
    """The server path (scheduling, aggregation, Optuna) runs with every vault sealed; all it received
    are Release objects of the task's dimension, one per window."""
    server = FederatedServer(population, PrivacyBudget(8.0, 1e-6, 3, 0.3), clip=2.0, seed=0)
    run = federated_tune(server, SIX, iterations=3, candidates=2, seed=0)
    assert [type(r) for r in server.log.releases] == [Release] * 3
    assert all(r.noisy_sum.shape == (1 + 2 * 2,) for r in server.log.releases)
    assert len(run.history) == 6 and run.history[0][1] == pytest.approx(defaults(SIX))


def test_a_snooping_server_is_caught(population):
    class Snooping(FederatedServer):
        def evaluate(self, task):
            for device in self._check_in(self.rng):
                _ = device.log.seconds           # reads raw reading times instead of waiting for a release
            return super().evaluate(task)

    server = Snooping(population, PrivacyBudget(8.0, 1e-6, 1, 0.3), clip=2.0, seed=0)
    with pytest.raises(PrivacyViolation):
        server.estimate(defaults(SIX))


def test_clipping_bound_and_noise_scale_measured():
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 5, (50, 4))
    quiet = SecureSum(clip=2.0, noise_multiplier=0.0, seed=0)
    for v in vectors:
        quiet.add(v)
    norms = np.linalg.norm(vectors, axis=1)
    want = sum(v * min(1.0, 2.0 / n) for v, n in zip(vectors, norms, strict=True))
    assert np.allclose(quiet.release(4).noisy_sum, want)
    single = SecureSum(clip=2.0, noise_multiplier=0.0, seed=0)
    single.add(np.array([30.0, 40.0]))
    assert np.linalg.norm(single.release(2).noisy_sum) == pytest.approx(2.0)
    draws = []
    for seed in range(400):
        s = SecureSum(clip=1.5, noise_multiplier=0.8, seed=seed)
        s.add(np.zeros(3))
        draws.append(s.release(3).noisy_sum)
    sd = np.std(draws, axis=0)
    assert np.all(np.abs(sd / (1.5 * 0.8) - 1) < 0.12), f"measured noise sd {sd}, expected σC = 1.2"
    assert np.all(np.abs(np.mean(draws, axis=0)) < 0.2)


def _analytic_gaussian_epsilon(sigma: float, delta: float) -> float:
    """Balle & Wang 2018, Thm 8: δ(ε) = Φ(1/2σ − εσ) − e^ε Φ(−1/2σ − εσ) for sensitivity 1; solved for ε."""
    def d(eps):
        return norm.cdf(0.5 / sigma - eps * sigma) - math.exp(eps) * norm.cdf(-0.5 / sigma - eps * sigma)
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if d(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize("sigma", [0.8, 2.0])
def test_pfl_accountant_matches_the_analytic_gaussian_mechanism(sigma):
    budget = PrivacyBudget(1.0, 1e-5, 1, 1.0)
    got, exact = budget.cost(1, sigma), _analytic_gaussian_epsilon(sigma, 1e-5)
    assert exact <= got + 1e-6 <= exact + 0.02, f"pfl PLD ε {got}, analytic {exact}"


def test_budget_never_overspent_and_refuses_the_next_release(population):
    for eps, releases, q in [(0.5, 3, 0.2), (4.0, 42, 0.15), (2.0, 1, 1.0)]:
        b = PrivacyBudget(eps, 1e-6, releases, q)
        assert b.cost(releases) <= eps and b.cost(releases) > 0.9 * eps
    ran = []

    class Counting(EvaluationTask):
        def run_on_device(self, data):
            ran.append(1)
            return super().run_on_device(data)

    server = FederatedServer(population, PrivacyBudget(2.0, 1e-6, 2, 0.3), clip=2.0, seed=1)
    task = Counting(population.world, (defaults(SIX),))
    server.evaluate(task), server.evaluate(task)
    before = len(ran)
    with pytest.raises(BudgetExhausted, match="spent"):
        server.evaluate(task)
    assert len(ran) == before and server.budget.used == len(server.log.releases) == 2
    assert server.budget.spent <= 2.0
    with pytest.raises(ValueError, match="releases"):
        federated_tune(FederatedServer(population, PrivacyBudget(2.0, 1e-6, 2, 0.3), 2.0, 0), SIX,
                       iterations=3, candidates=2)


def test_bad_inputs_get_clear_errors(population):
    with pytest.raises(ValueError, match="sampling_rate"):
        PrivacyBudget(1.0, 1e-6, 3, 0.0)
    with pytest.raises(ValueError, match="integer"):
        PrivacyBudget(1.0, 1e-6, 2.5, 0.1)
    with pytest.raises(ValueError, match="missing"):
        check_params({"bias": 0.0}, SIX)
    with pytest.raises(ValueError, match="out of range"):
        EvaluationTask(population.world, (dict(defaults(SIX), blend=1.5),))
    with pytest.raises(ValueError, match="clipping bound"):
        SecureSum(clip=0.0, noise_multiplier=1.0, seed=0)


def test_confidence_interval_covers_the_population_value(population):
    """Coverage over 120 windows >= 0.85 (nominal 0.95); the same intervals without the noise term
    (a planted mistake) fall clearly short: the check can fail."""
    params = defaults(SIX)
    truth = population.oracle_loss(params, Label())
    server = FederatedServer(population, PrivacyBudget(4.0, 1e-6, 120, 0.3), clip=2.0, seed=2)
    releases = [server.evaluate(EvaluationTask(population.world, (params,))) for _ in range(120)]
    cover = np.mean([lo <= truth <= hi for _, lo, hi in (r.mean_interval() for r in releases)])
    blind = np.mean([lo <= truth <= hi for _, lo, hi in (Release(r.noisy_sum, 0.0).mean_interval() for r in releases)])
    assert cover >= 0.85, f"coverage {cover:.2f}"
    assert blind < cover - 0.15, f"without the noise term coverage {blind:.2f} vs {cover:.2f}"


def _loss_by_loop(data, world, p, label):
    """The model of personalization.py's docstring, one impression at a time."""
    T, g = world.n_topics, world.topic_popularity
    w = [2 ** (-age / p.get("half_life_h", math.inf)) * tap for age, tap in zip(data.hist_age_h, data.hist_tapped)]
    share = [(sum(wi for wi, t in zip(w, data.hist_topic) if t == k) + p["alpha"] * g[k]) / (sum(w) + p["alpha"])
             for k in range(T)]
    total = 0.0
    for i in range(len(data.topic)):
        t = data.topic[i]
        a = p["blend"] * share[t] + (1 - p["blend"]) * g[t]
        s = p["bias"] + p["w_aff"] * math.log(T * a) + p["w_pop"] * data.trending[i] - data.age_h[i] / p["tau_h"]
        if "w_len" in p:
            reads = [(math.log(sec), tt) for sec, tt, tap in zip(data.hist_seconds, data.hist_topic, data.hist_tapped)
                     if tap]
            mine = [ls for ls, tt in reads if tt == t]
            dwell = (sum(mine) / len(mine) - sum(ls for ls, _ in reads) / len(reads)) if mine else 0.0
            s += (p["w_len"] * data.log_length[i] + p["w_pos"] * data.position[i] + p["w_dwell"] * dwell
                  + p["w_int"] * math.log(T * a) * data.trending[i])
        prob = min(max(1 / (1 + math.exp(-s)), 1e-3), 1 - 1e-3)
        y = data.tapped[i] if label.min_seconds <= 0 else data.tapped[i] and data.seconds[i] >= label.min_seconds
        total -= math.log(prob) if y else math.log(1 - prob)
    return total / len(data.topic)


def test_device_loss_equals_a_per_impression_loop(population):
    rng = np.random.default_rng(5)
    for space, label in [(SIX, Label()), (ELEVEN, Label(30))]:
        for d in population.devices[:12]:
            params = {p.name: float(rng.uniform(p.low, p.high)) for p in space}
            with d.log.opened() as data:
                got = device_loss(data, population.world, params, label)
                if got is not None:
                    assert got == pytest.approx(_loss_by_loop(data, population.world, params, label), rel=1e-9)


def test_lift_against_planted_effects():
    rng = np.random.default_rng(0)
    control = rng.gamma(2.0, 1.0, 4000)
    r = lift(control, control * 1.1, "views")
    assert r.lift == pytest.approx(0.1) and r.lift_low < 0.1 < r.lift_high
    same = lift(control, control.copy(), "views")
    assert same.lift == 0.0 and same.p_value == pytest.approx(1.0) and not same.significant
    with pytest.raises(ValueError, match="two users"):
        lift(control[:1], control, "views")


def test_ab_test_is_deterministic_and_detects_a_better_ranker(world):
    pop = world.population(600, seed=9)
    good = dict(defaults(SIX), bias=-1.2, w_aff=1.1, w_pop=0.6, tau_h=36.0, blend=0.9, alpha=1.0)
    a = ab_test(pop, defaults(SIX), good, days=2, seed=1)
    assert a == ab_test(pop, defaults(SIX), good, days=2, seed=1)
    assert a["daily article views"].lift > 0
    with pytest.raises(ValueError, match="days"):
        ab_test(pop, defaults(SIX), good, days=99)


def test_tuning_is_reproducible_per_seed(population):
    def run(seed):
        server = FederatedServer(population, PrivacyBudget(8.0, 1e-6, 2, 0.3), clip=2.0, seed=seed)
        return federated_tune(server, SIX, iterations=2, candidates=3, sampler="random", seed=seed)
    assert run(0).history == run(0).history
    assert run(0).history != run(1).history
