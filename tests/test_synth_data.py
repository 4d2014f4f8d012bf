import numpy as np
import pandas as pd
import pytest

from lab_utils.synth.data import Column, Schema, check_privacy_params, fit_preamble, load_wage, wage_schema
from lab_utils.synth.metrics import correlation_difference, marginal_tvd, ml_efficacy, uniform_table


def small_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.choice(["x", "y", "z"], n), "b": rng.integers(0, 10, n),
                         "c": rng.normal(size=n), "y": rng.choice(["p", "q"], n)})


def small_schema():
    return Schema([Column("a", "categorical", categories=("x", "y", "z")),
                   Column("b", "continuous", lower=0, upper=10, bins=5, integer=True),
                   Column("c", "continuous", lower=-4, upper=4, bins=8),
                   Column("y", "categorical", categories=("p", "q"))])


@pytest.mark.parametrize("eps", [0, -1, float("nan"), float("inf"), "1"])
def test_bad_epsilon_is_refused(eps):
    with pytest.raises(ValueError, match="epsilon"):
        check_privacy_params(eps, 1e-5)


@pytest.mark.parametrize("delta", [0, 1, -0.1, 1.5])
def test_bad_delta_is_refused(delta):
    with pytest.raises(ValueError, match="delta"):
        check_privacy_params(1.0, delta)


def test_bad_tables_get_clear_errors():
    s = small_schema()
    with pytest.raises(ValueError, match="empty"):
        s.validate(small_frame().iloc[:0])
    df = small_frame()
    df["a"] = "x"
    with pytest.raises(ValueError, match="constant"):
        s.validate(df)
    df = small_frame()
    df["extra"] = np.arange(len(df))
    with pytest.raises(ValueError, match="unknown columns"):
        s.validate(df)
    df = small_frame()
    df.loc[3, "c"] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        s.validate(df)
    df = small_frame()
    df["c"] = pd.date_range("2020-01-01", periods=len(df))
    with pytest.raises(ValueError, match="unsupported dtype"):
        s.validate(df)
    df = small_frame()
    df.loc[0, "a"] = "w"
    with pytest.raises(ValueError, match="outside the public categories"):
        s.validate(df)
    with pytest.raises(ValueError, match="unknown kind"):
        Column("d", "datetime")


def test_schema_from_data_warns_that_it_is_not_private():
    with pytest.warns(UserWarning, match="NOT covered"):
        fit_preamble(small_frame(), None, 1.0, 1e-5)


def test_discretize_round_trip_keeps_codes_and_types():
    s, df = small_schema(), small_frame()
    codes = s.discretize(df)
    back = s.undiscretize(codes, np.random.default_rng(0))
    assert list(back.columns) == list(df.columns)
    assert back["b"].dtype == np.int64 and back["c"].dtype == float
    np.testing.assert_array_equal(s.discretize(back)[:, [0, 2, 3]], codes[:, [0, 2, 3]])
    unit = s.to_unit(df)
    assert unit.shape == (len(df), 3 + 1 + 1 + 2) and unit.min() >= -1 and unit.max() <= 1
    again = s.from_unit(unit)
    assert (again["a"] == df["a"]).all() and np.allclose(again["c"].clip(-4, 4), df["c"].clip(-4, 4), atol=1e-5)


def test_metrics_on_known_tables():
    s, df = small_schema(), small_frame()
    assert marginal_tvd(df, df, s, 1) == 0 and correlation_difference(df, df, s) == pytest.approx(0, abs=1e-12)
    other = df.copy()
    other["a"] = "x"  # column a: real is ~uniform over 3, synthetic all x -> TVD = 1 - p(x)
    px = (df["a"] == "x").mean()
    assert marginal_tvd(df, other, s, 1) == pytest.approx((1 - px) / 4)
    test = small_frame(seed=1)
    test["y"] = np.where(test["c"] > 0, "p", "q")
    train = small_frame(seed=2)
    train["y"] = np.where(train["c"] > 0, "p", "q")
    res = ml_efficacy(train, train, test, s, "y")
    assert res["tstr_auc"] > 0.95 and res["trtr_auc"] > 0.95


def test_wage_loads_offline_and_fits_its_public_schema():
    df = load_wage()
    assert df.shape == (3000, 9)
    wage_schema().validate(df)


def test_uniform_table_fills_every_bin_equally_and_independently():
    s = small_schema()
    u = uniform_table(s, 30_000, seed=3)
    codes = s.discretize(u)
    for j in (0, 2, 3):  # each column's bins: 1/size each (b is integer: rounding inside a bin moves its edges)
        size = s.sizes[j]
        freq = np.bincount(codes[:, j], minlength=size) / len(u)
        np.testing.assert_allclose(freq, 1 / size, atol=0.015)
    joint = np.bincount(codes[:, 0] * s.sizes[3] + codes[:, 3]) / len(u)  # two columns drawn independently
    np.testing.assert_allclose(joint, 1 / (s.sizes[0] * s.sizes[3]), atol=0.015)
    pd.testing.assert_frame_equal(u, uniform_table(s, 30_000, seed=3))
