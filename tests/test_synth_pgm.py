"""AIM and MWEM+PGM (lab_utils.synth.aim, .mwem_pgm) and what they share with MST (lab_utils.synth.pgm).

Model marginals against mbi's own variable elimination; each mechanism's noise measured from its
measurements (residual against the true marginal) rather than read back from its parameters; ρ or ε
charged from what ran against what was asked, on every argument path tried; one seed, one release.
"""

import math
import os
import warnings

import numpy as np
import pytest
from test_synth_data import small_frame, small_schema

mbi = pytest.importorskip("mbi")
from lab_utils.synth import pgm  # noqa: E402
from lab_utils.synth.accounting import cdp_rho  # noqa: E402
from lab_utils.synth.aim import AIM, candidates  # noqa: E402
from lab_utils.synth.mst import MST  # noqa: E402
from lab_utils.synth.mwem_pgm import ALPHA, MWEMPGM  # noqa: E402


def _quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit()


def _toy_model(cliques):
    domain = mbi.Domain(["a", "b", "c", "e"], [2, 3, 4, 3])
    rng = np.random.default_rng(0)
    data = mbi.Dataset({k: rng.integers(0, s, 300) for k, s in zip(domain.attributes, domain.shape)}, domain)
    ms = [mbi.LinearMeasurement(np.asarray(data.project(c).datavector()) + rng.normal(0, 2, domain.size(c)), c,
                                stddev=2.0) for c in cliques]
    return mbi.estimation.MirrorDescent().estimate(domain, ms, iters=60)


@pytest.mark.parametrize("max_cells", [pgm.DENSE_CELLS, 10])          # the dense joint, and components
@pytest.mark.parametrize("cliques", [[("b", "a"), ("c", "b"), ("e", "c")], [("a",), ("b",), ("c", "e")],
                                     [("b", "a")]])                  # c and e in no clique: uniform
def test_model_marginals_match_variable_elimination(max_cells, cliques):
    model = _toy_model(cliques)
    marginals = pgm.ModelMarginals(model, max_cells=max_cells)
    for q in [("a",), ("b", "a"), ("a", "c"), ("e", "a"), ("c", "e", "a"), ("e", "b")]:
        assert np.allclose(marginals(q), np.asarray(model.project(q).datavector()), atol=1e-9), q


@pytest.mark.parametrize("cliques", [[("x1", "x2")], [("x1", "x2"), ("x2", "x3")], [("x1", "x2"), ("x3", "x4")]])
def test_size_filter_agrees_with_the_whole_domain_junction_tree(cliques):
    domain = mbi.Domain([f"x{i}" for i in range(12)], [6] * 12)
    for c in [("x5",), ("x1", "x3"), ("x4", "x9")]:
        full = mbi.junction_tree.hypothetical_model_size(domain, cliques + [c])
        free = c in set(mbi.clique_utils.downward_closure(cliques))
        assert c in pgm.within_size(domain, cliques, {c: 1}, full * (1 + 1e-9))
        assert (c in pgm.within_size(domain, cliques, {c: 1}, full * (1 - 1e-9))) == free, (cliques, c)


def test_size_filter_drops_what_would_grow_the_model():
    domain = mbi.Domain(["a", "b", "c"], [50, 50, 50])
    pool = {("a", "b"): 1, ("b", "c"): 1, ("a",): 1}
    kept = pgm.within_size(domain, [("a", "b")], pool, size_limit_mb=0.03)   # one 50x50 table is 0.019 MB
    assert set(kept) == {("a", "b"), ("a",)}          # (b, c) would need a second 2,500-cell table


def test_aim_candidates_are_the_downward_closure_with_workload_weights():
    c = candidates(["a", "b", "c"], 2)
    assert set(c) == {("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")}
    assert c[("a",)] == 2 and c[("a", "b")] == 2 + 1 + 1   # |C ∩ C'| over (a,b), (a,c), (b,c)


def _noise_as_charged(z: np.ndarray, kurtosis: float) -> bool:
    """Is the sample sd of standardised residuals z within 4 standard errors of 1? (The sd's standard error
    is √((κ − 1) / (4n)) for kurtosis κ: 3 for Gaussian noise, 6 for Laplace.)"""
    return abs(np.std(z) - 1) < 4 * math.sqrt((kurtosis - 1) / (4 * len(z)))


def _residuals(m, frame):
    """(y − M_C(D)) / sd for every measurement of a fitted model: N(0, 1) if the noise is what is charged."""
    data = m.dataset(m.schema.discretize(frame), m.schema.sizes)
    return np.concatenate([(np.asarray(x.noisy_measurement) - np.asarray(data.project(x.clique).datavector()))
                           / x.stddev for x in m.measurements])


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="memory maps are counted from Linux's /proc")
def test_near_map_limit_reads_this_process_s_maps_and_the_kernel_s_limit(monkeypatch):
    assert pgm.near_map_limit(0.0)             # every process holds some maps
    assert not pgm.near_map_limit(1.0)         # a test process is far below vm.max_map_count

    def unreadable(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(pgm, "open", unreadable, raising=False)
    assert pgm.near_map_limit(1.0)             # cannot tell: drop the caches, as on every fit before


@pytest.mark.parametrize("near", [True, False])
def test_jax_caches_are_dropped_after_a_fit_only_near_the_map_limit(monkeypatch, near):
    import jax

    drops = []
    monkeypatch.setattr(pgm, "near_map_limit", lambda: near)
    monkeypatch.setattr(jax, "clear_caches", lambda: drops.append(1))
    _quiet(lambda: MST(iters=10, select_iters=10, seed=0).fit(small_frame(200), 1.0, 1e-5, schema=small_schema()))
    assert len(drops) == int(near)


@pytest.fixture(scope="module")
def aims():
    frame = small_frame(600)
    fits = {}
    for eps, rounds in [(0.3, None), (3.0, 1), (3.0, 3)]:
        model = AIM(max_rounds=rounds, iters=40, final_iters=80, seed=2)
        fits[(eps, rounds)] = _quiet(lambda m=model, e=eps: m.fit(frame, e, 1e-5, schema=small_schema()))
    return frame, fits


def test_aim_noise_is_the_noise_charged_and_rho_is_never_exceeded(aims):
    frame, fits = aims
    z = np.concatenate([_residuals(m, frame) for m in fits.values()])
    assert _noise_as_charged(z, kurtosis=3) and len(z) > 150, (np.std(z), len(z))
    for (eps, rounds), m in fits.items():
        rho = cdp_rho(eps, 1e-5)
        charged = sum(1 / (2 * x.stddev**2) for x in m.measurements) + sum(e**2 / 8 for e in m.em_epsilons)
        assert 0.999 * rho <= charged <= rho, (eps, rounds)      # the whole ρ, never more (annealing included)
        assert 0 < m.epsilon_spent <= eps
        assert len(m.em_epsilons) == len(m.selected) == len(m.measurements) - len(small_schema().names)
        if rounds is not None:
            assert len(m.selected) <= rounds


def test_aim_anneals_and_ends_on_the_rest_of_the_budget(aims):
    _, fits = aims
    m = fits[(0.3, None)]
    sds = [x.stddev for x in m.measurements[len(small_schema().names):]]
    assert len(sds) >= 2 and sds[-1] != sds[0]       # the last round spends the rest, at its own σ


def test_aim_one_seed_one_release():
    frame = small_frame(600)

    def fit(seed):
        return _quiet(lambda: AIM(max_rounds=1, iters=40, final_iters=80, seed=seed).fit(frame, 3.0, 1e-5,
                                                                                        schema=small_schema()))

    a, b = fit(2), fit(2)
    assert a.selected == b.selected and a.sample(200).equals(b.sample(200))
    assert not fit(5).sample(200).equals(a.sample(200))


@pytest.mark.parametrize("kwargs", [{"max_rounds": 0}, {"degree": 0}, {"max_size_mb": 0}])
def test_aim_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        AIM(**kwargs)


@pytest.fixture(scope="module")
def mwem_pgm():
    frame = small_frame(600)
    return frame, _quiet(lambda: MWEMPGM(rounds=10, iters=40, final_iters=80, seed=4).fit(frame, 1.5,
                                                                                      schema=small_schema()))


def test_mwem_pgm_laplace_noise_and_epsilon(mwem_pgm):
    frame, m = mwem_pgm
    z = _residuals(m, frame)
    assert _noise_as_charged(z, kurtosis=6) and len(z) > 100, (np.std(z), len(z))  # Lap(b): sd b√2, as recorded
    b = np.array([x.stddev / math.sqrt(2) for x in m.measurements])
    assert np.allclose(1 / b, ALPHA * 1.5 / 10)                                  # measured at α·ε/T each
    assert len(m.selected) == len(m.round_charges) == 10
    assert m.epsilon_spent <= 1.5 and sum(m.round_charges) <= 1.5 and m.epsilon_spent > 1.5 * (1 - 1e-9)
    assert m.delta is None                                                      # pure ε-DP: δ unused


def test_mwem_pgm_one_way_initialisation_spends_its_share_and_no_more():
    frame, d = small_frame(600), len(small_schema().names)
    m = _quiet(lambda: MWEMPGM(rounds=4, iters=40, final_iters=80, one_way_share=0.3, seed=4).fit(
        frame, 1.5, schema=small_schema()))
    z = _residuals(m, frame)
    assert _noise_as_charged(z, kurtosis=6), (np.std(z), len(z))
    b = np.array([x.stddev / math.sqrt(2) for x in m.measurements])
    assert [x.clique for x in m.measurements[:d]] == [(c,) for c in small_schema().names]
    assert np.allclose(1 / b[:d], 0.3 * 1.5 / d) and np.allclose(1 / b[d:], ALPHA * 0.7 * 1.5 / 4)
    assert m.epsilon_spent <= 1.5 and m.epsilon_spent > 1.5 * (1 - 1e-9)
    with pytest.raises(ValueError, match="one_way_share"):
        MWEMPGM(one_way_share=1.0)


def test_mwem_pgm_gaussian_noise_spends_rho_as_the_code_splits_it(share=0.3):
    """noise="gaussian" (the authors' code): residuals at the recorded σ; the measurements' ρ, Σ 1/(2σ²), is
    the closed form ρ·(share + (1 − share)·α) and the rest (the selections) keeps the total within ρ(ε, δ)."""
    frame, d, rounds = small_frame(600), len(small_schema().names), 5
    m = _quiet(lambda: MWEMPGM(rounds=rounds, iters=40, final_iters=80, one_way_share=share, noise="gaussian",
                               seed=4).fit(frame, 1.5, 1e-5, schema=small_schema()))
    z = _residuals(m, frame)
    assert _noise_as_charged(z, kurtosis=3) and len(z) > 60, (np.std(z), len(z))
    rho = cdp_rho(1.5, 1e-5)
    measured = sum(1 / (2 * x.stddev**2) for x in m.measurements)
    assert math.isclose(measured, rho * (share + (1 - share) * ALPHA), rel_tol=1e-6)
    assert len(m.measurements) == rounds + d
    assert 0.999 * rho <= m.rho_spent <= rho and 1.5 * 0.999 <= m.epsilon_spent <= 1.5
    assert m.delta == 1e-5 and MWEMPGM().uses_delta is False            # δ only on the zCDP path
    with pytest.raises(ValueError, match="noise"):
        MWEMPGM(noise="gauss")


@pytest.mark.parametrize("noise, kurtosis", [("laplace", 6), ("gaussian", 3)])
def test_mwem_pgm_noise_check_catches_an_under_noised_variant(monkeypatch, noise, kurtosis):
    """Plant a measurement with half the noise it records: the residual checks above must fail on it."""
    frame = small_frame(600)
    real_measure = pgm.measure

    def half_noise(data, cliques, scale, rng, noise="gaussian"):
        out = real_measure(data, cliques, scale / 2, rng, noise)
        return [mbi.LinearMeasurement(x.noisy_measurement, x.clique, stddev=x.stddev * 2) for x in out]

    monkeypatch.setattr("lab_utils.synth.mwem_pgm.measure", half_noise)
    m = _quiet(lambda: MWEMPGM(rounds=10, iters=20, final_iters=20, noise=noise, seed=4).fit(
        frame, 1.5, schema=small_schema()))
    z = _residuals(m, frame)
    assert not _noise_as_charged(z, kurtosis=kurtosis)


def test_mwem_pgm_workload_is_checked():
    with pytest.raises(ValueError, match="workload"):
        _quiet(lambda: MWEMPGM(rounds=1, workload=[("a", "nope")]).fit(small_frame(100), 1.0, schema=small_schema()))
