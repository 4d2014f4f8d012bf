"""MST on Private-PGM (lab_utils.synth.mst) and the zCDP conversions it spends through.

The conversions against brute force over α and against Bun & Steinke's closed form; MST's measured
noise scale, its spanning tree, ρ charged from what ran (measurements' noise and EM selections) against
the ρ asked, ε never above the request, compression undone, and one seed one release.
"""

import math
import warnings

import numpy as np
import pytest
from test_synth_data import small_frame, small_schema

from lab_utils.synth.accounting import cdp_delta, cdp_epsilon, cdp_rho

mbi = pytest.importorskip("mbi")
from lab_utils.synth.mst import MST  # noqa: E402
from lab_utils.synth.pgm import measure  # noqa: E402


def _bun_steinke_rho(epsilon, delta):
    """ρ with ρ + 2√(ρ ln 1/δ) = ε (Bun & Steinke 2016, Prop. 1.3), solved for √ρ."""
    L = math.log(1 / delta)
    return (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2


@pytest.mark.parametrize("rho,eps", [(0.05, 1.0), (0.5, 3.0), (2.0, 8.0), (0.01, 0.3)])
def test_cdp_delta_is_the_minimum_over_alpha(rho, eps):
    alpha = np.linspace(1.0001, 400, 400_000)
    with np.errstate(over="ignore"):                    # large α overflow to inf, never the minimum
        brute = np.min(np.exp((alpha - 1) * (alpha * rho - eps) + alpha * np.log1p(-1 / alpha)) / (alpha - 1))
    assert cdp_delta(rho, eps) == pytest.approx(min(brute, 1.0), rel=1e-4)


@pytest.mark.parametrize("eps,delta", [(0.3, 1e-6), (1.0, 1e-5), (3.0, 1e-6), (10.0, 1e-9)])
def test_cdp_rho_and_epsilon_are_tight_and_never_overspend(eps, delta):
    rho = cdp_rho(eps, delta)
    assert cdp_delta(rho, eps) <= delta < cdp_delta(rho * 1.001, eps)
    assert rho >= _bun_steinke_rho(eps, delta)          # the tighter conversion affords at least as much ρ
    spent = cdp_epsilon(rho, delta)
    assert spent <= eps * (1 + 1e-9) and spent > 0.999 * eps
    assert cdp_epsilon(0.5, delta) <= 0.5 + 2 * math.sqrt(0.5 * math.log(1 / delta))


def test_measurement_noise_scale_is_measured():
    domain = mbi.Domain(["a", "b"], [3, 4])
    rng = np.random.default_rng(0)
    data = mbi.Dataset({"a": rng.integers(0, 3, 500), "b": rng.integers(0, 4, 500)}, domain)
    x = np.asarray(data.project(("a",)).datavector())
    draws = np.array([np.asarray(measure(data, [("a",), ("b",)], 2.0, np.random.default_rng(s))[0].noisy_measurement)
                      for s in range(600)])
    # two cliques: weights 1/√2 each, so each marginal carries noise σ·√2
    assert np.std(draws - x, axis=0) == pytest.approx(np.full(3, 2.0 * math.sqrt(2)), rel=0.1)


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {eps: MST(iters=150, select_iters=50, seed=3).fit(small_frame(400), eps, 1e-5, schema=small_schema())
                for eps in (0.5, 4.0)}


def test_charged_rho_is_the_rho_asked_and_epsilon_never_above(fitted):
    for eps, m in fitted.items():
        assert m.rho_spent == pytest.approx(cdp_rho(eps, 1e-5), rel=1e-9)
        assert 0 < m.epsilon_spent <= eps


def test_the_selected_pairs_form_a_spanning_tree(fitted):
    names = small_schema().names
    for m in fitted.values():
        assert len(m.tree) == len(names) - 1
        reach, frontier = {names[0]}, [names[0]]
        while frontier:
            a = frontier.pop()
            for e in m.tree:
                for u, v in (e, e[::-1]):
                    if u == a and v not in reach:
                        reach.add(v)
                        frontier.append(v)
        assert reach == set(names)                          # connected with r − 1 edges: a tree


def test_samples_are_valid_and_reproducible(fitted):
    m = fitted[4.0]
    a, b = m.sample(300), m.sample(300)
    assert list(a.columns) == small_schema().names and len(a) == 300
    assert set(a["a"]) <= {"x", "y", "z"} and a["b"].between(0, 10).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = MST(iters=150, select_iters=50, seed=3).fit(small_frame(400), 4.0, 1e-5, schema=small_schema())
    assert again.sample(300).equals(a) and not a.equals(b)


def test_compression_merges_rare_values_and_sampling_undoes_it():
    frame = small_frame(400)
    frame.loc[:, "a"] = np.where(np.arange(400) < 396, "x", "z")       # "y" never occurs, "z" 4 times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = MST(iters=100, select_iters=30, seed=1).fit(frame, 1.0, 1e-5, schema=small_schema())
    kept_a = m.kept[0]
    assert list(kept_a) == [0], f"at ε = 1, only 'x' clears 3σ; kept {kept_a}"
    out = m.sample(2000)
    assert set(out["a"]) <= {"x", "y", "z"} and (out["a"] == "x").mean() > 0.8
