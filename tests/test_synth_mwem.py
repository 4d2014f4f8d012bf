import numpy as np
import pandas as pd
import pytest

from lab_utils.synth.data import Column, Schema
from lab_utils.synth.metrics import marginal_tvd
from lab_utils.synth.mwem import MWEM, column_groups, exponential_mechanism, multiplicative_weights


def known_table(n=3000, seed=0):
    """A small known distribution: b depends on a, c depends on b."""
    rng = np.random.default_rng(seed)
    a = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    b = (a + rng.choice(4, n, p=[0.7, 0.1, 0.1, 0.1])) % 4
    c = (b >= 2).astype(int) ^ (rng.random(n) < 0.1)
    return pd.DataFrame({"a": a, "b": b, "c": c})


SCHEMA = Schema([Column("a", "categorical", categories=(0, 1, 2)), Column("b", "categorical", categories=(0, 1, 2, 3)),
                 Column("c", "categorical", categories=(0, 1))])


def mean_error(eps, iterations, seeds=range(4)):
    df = known_table()
    return np.mean([marginal_tvd(df, MWEM(iterations=iterations, seed=s).fit(df, eps, schema=SCHEMA).sample(20000),
                                 SCHEMA, 2) for s in seeds])


def test_error_falls_as_epsilon_grows():
    assert mean_error(0.05, 5) > mean_error(1.0, 5) > mean_error(20.0, 5)


def test_error_falls_with_more_iterations():
    assert mean_error(50.0, 1) > 2 * mean_error(50.0, 8)


def test_exponential_mechanism_prefers_high_scores():
    rng = np.random.default_rng(0)
    picks = [exponential_mechanism(np.array([0.0, 10.0, 0.0]), 5.0, 1.0, rng) for _ in range(200)]
    assert np.mean(np.array(picks) == 1) > 0.95
    picks = [exponential_mechanism(np.array([0.0, 10.0, 0.0]), 1e-6, 1.0, rng) for _ in range(600)]
    assert 0.25 < np.mean(np.array(picks) == 1) < 0.42  # ~uniform when ε → 0


def test_multiplicative_weights_moves_marginal_towards_measurement():
    hist = np.full((2, 3), 100 / 6)
    measured = np.array([80.0, 20.0])
    new = multiplicative_weights(hist, (0,), measured, 100)
    assert new.sum() == pytest.approx(100)
    before, after = np.abs(hist.sum(1) - measured).sum(), np.abs(new.sum(1) - measured).sum()
    assert after < before
    np.testing.assert_allclose(new[0] / new[0].sum(), 1 / 3)  # within-row shape untouched


def test_column_groups_respect_max_cells():
    assert column_groups([6] * 10, 40) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    with pytest.raises(ValueError, match="fewer bins"):
        column_groups([100], 50)


def test_budget_seed_and_schema_round_trip():
    df = known_table(500)
    m1 = MWEM(iterations=5, seed=3).fit(df, 1.0, schema=SCHEMA)
    m2 = MWEM(iterations=5, seed=3).fit(df, 1.0, schema=SCHEMA)
    assert m1.epsilon_spent == pytest.approx(1.0)
    s1, s2 = m1.sample(100), m2.sample(100)
    pd.testing.assert_frame_equal(s1, s2)
    assert list(s1.columns) == list(df.columns) and set(s1["b"]) <= {0, 1, 2, 3}
    grouped = MWEM(iterations=3, max_cells=12, seed=0).fit(df, 1.0, schema=SCHEMA)
    assert grouped.groups == [[0, 1], [2]] and grouped.epsilon_spent == pytest.approx(1.0)
    with pytest.raises(ValueError, match="epsilon"):
        MWEM().fit(df, 0.0, schema=SCHEMA)
    with pytest.raises(RuntimeError, match="fit"):
        MWEM().sample(3)


def test_more_passes_bring_the_histogram_to_its_measurements():
    """Sec. 3.3's re-applied updates: at a large ε (measurements ≈ the truth) one pass per round leaves the
    histogram short of what it measured, ten get it closer; a planted variant that ignored mw_rounds would tie."""
    df = known_table()
    one, ten = (np.mean([marginal_tvd(df, MWEM(iterations=4, mw_rounds=r, seed=s).fit(df, 100.0, schema=SCHEMA)
                                      .sample(20000), SCHEMA, 2) for s in range(3)]) for r in (1, 10))
    assert ten < 0.7 * one, (one, ten)
