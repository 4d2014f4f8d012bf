import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("ctgan")
from ctgan.data_transformer import DataTransformer  # noqa: E402
from test_synth_data import small_frame, small_schema  # noqa: E402

from lab_utils.synth import dpctgan as dpctgan_module  # noqa: E402
from lab_utils.synth.accounting import gaussian_epsilon, gaussian_noise_multiplier  # noqa: E402
from lab_utils.synth.audit import check_dpsgd_fit  # noqa: E402
from lab_utils.synth.dpctgan import DPCTGAN, dp_proxy_table  # noqa: E402

torch.set_num_threads(1)
SMALL = dict(iterations=4, batch_size=16, embedding_dim=8, hidden=16)


def test_transformer_never_sees_the_private_rows(monkeypatch):
    seen = []
    original = DataTransformer.fit
    monkeypatch.setattr(DataTransformer, "fit", lambda self, data, **kw: (seen.append(data.copy()),
                                                                          original(self, data, **kw))[1])
    df, s = small_frame(), small_schema()
    DPCTGAN(seed=0, **SMALL).fit(df, 1.0, 1e-5, schema=s)
    assert len(seen) == 1 and not seen[0].equals(df)
    assert not np.isin(seen[0]["c"].to_numpy(), df["c"].to_numpy()).any()  # no real value copied into the proxy


def test_conditional_frequencies_are_noisy_and_charged():
    df, s = small_frame(), small_schema()
    m = DPCTGAN(prep_share=0.5, seed=0, **SMALL).fit(df, 0.5, 1e-5, schema=s)
    exact = df["a"].value_counts(normalize=True).reindex(["x", "y", "z"]).to_numpy()
    assert not np.allclose(m.cond_probs[0], exact, atol=1e-3)  # privatised, not the exact frequencies
    q = 16 / len(df)
    assert m.epsilon_spent == pytest.approx(0.25 + gaussian_epsilon(m.noise_multiplier, q, 4, 1e-5))
    assert 0.49 < m.epsilon_spent <= 0.5


def test_steps_shrink_where_the_budget_needs_more_noise_than_the_cap():
    """Where ε pays for ``iterations`` steps only at σ > max_noise_multiplier, DP-CTGAN plans fewer: the noisy steps
    counted at the noise, the steps charged and ``steps`` agree, the noise measured is σ·C with σ ≤ the cap, and one
    step more would need σ above it; without a cap every step is taken at the larger σ."""
    df, s = small_frame(), small_schema()
    kw = dict(SMALL, iterations=60)
    m, r = check_dpsgd_fit(lambda: DPCTGAN(max_noise_multiplier=2.0, seed=0, **kw).fit(df, 1.0, 1e-5, schema=s),
                           dpctgan_module)
    q, eps_train = 16 / len(df), 1.0 - m.epsilon_prep
    assert r["noisy_steps"] == r["charged_steps"] == m.steps < 60
    assert m.noise_multiplier <= 2.0 < gaussian_noise_multiplier(eps_train, 1e-5, q, m.steps + 1)
    assert r["noise_std_lo"] <= r["charged_noise_std"] == m.noise_multiplier * 1.0 <= r["noise_std_hi"]
    assert m.epsilon_spent <= 1.0
    u, r = check_dpsgd_fit(lambda: DPCTGAN(max_noise_multiplier=None, seed=0, **kw).fit(df, 1.0, 1e-5, schema=s),
                           dpctgan_module)
    assert r["noisy_steps"] == r["charged_steps"] == u.steps == 60 and u.noise_multiplier > 2.0
    with pytest.raises(ValueError, match="max_noise_multiplier"):
        DPCTGAN(max_noise_multiplier=0)


def test_proxy_histograms_follow_laplace_scale():
    df, s = small_frame(5000), small_schema()
    proxy, counts = dp_proxy_table(df, s, 1e6, np.random.default_rng(0))  # ~no noise: frequencies match
    for name in ["a", "y"]:
        real = df[name].value_counts(normalize=True).sort_index().to_numpy()
        assert np.allclose(proxy[name].value_counts(normalize=True).sort_index().to_numpy(), real, atol=0.03)
    errs = [np.abs(dp_proxy_table(df, s, 4.0, np.random.default_rng(i))[1]["a"]
                   - df["a"].value_counts().reindex(["x", "y", "z"]).to_numpy()).mean() for i in range(30)]
    assert 0.5 < np.mean(errs) < 1.5  # Laplace(d / ε) = Laplace(1): mean |noise| = 1


def test_round_trip_and_seed():
    df, s = small_frame(), small_schema()
    a = DPCTGAN(seed=2, **SMALL).fit(df, 2.0, 1e-5, schema=s).sample(40)
    b = DPCTGAN(seed=2, **SMALL).fit(df, 2.0, 1e-5, schema=s).sample(40)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(df.columns) and a["b"].dtype == np.int64 and a["c"].between(-4, 4).all()
    with pytest.raises(ValueError, match="prep_share"):
        DPCTGAN(prep_share=1.0)


def test_pate_ctgan_teachers_disjoint_distinct_and_budget():
    from lab_utils.synth.patectgan import PATECTGAN

    df, s = small_frame(), small_schema()
    kw = dict(teachers=4, iterations=3, teacher_steps=1, batch_size=16, embedding_dim=8, hidden=16, seed=0)
    g = PATECTGAN(**kw).fit(df, 3.0, 1e-5, schema=s)
    ids = [id(p) for t in g.teachers for p in t.parameters()]
    assert len(ids) == len(set(ids)) and not {id(p) for p in g.student.parameters()} & set(ids)
    parts = [set(p.tolist()) for p in g.partitions]
    assert sum(map(len, parts)) == len(df) == len(set().union(*parts))
    assert not torch.equal(next(g.teachers[0].parameters()), next(g.teachers[1].parameters()))
    assert g.accountant.queries == 3 * 16
    assert g.epsilon_data_dependent <= g.epsilon_spent <= 3.0 + 1e-6 and g.epsilon_spent > 2.99
    a = g.sample(30)
    pd.testing.assert_frame_equal(a, PATECTGAN(**kw).fit(df, 3.0, 1e-5, schema=s).sample(30))
    assert list(a.columns) == list(df.columns)


def test_conditional_vectors_follow_the_dp_frequencies_and_the_rows_own_categories():
    """Fake side: each row picks a discrete column c uniformly and a category k by inverse CDF of the DP
    frequencies (the first k whose cumulative frequency exceeds the uniform draw), checked row by row from the same
    draws and in aggregate. Real side: the one 1 of each row sits at that row's own category in the column drawn."""
    df, s = small_frame(), small_schema()
    m = DPCTGAN(seed=0, **SMALL).fit(df, 1.0, 1e-5, schema=s)
    n = 6000
    cond, mask = m._sample_cond(n, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, replayed
    cols, u = torch.randint(0, len(m.spans), (n,), generator=g).numpy(), torch.rand(n, generator=g).numpy()
    assert (cond.sum(1) == 1).all() and (mask.sum(1) == 1).all()
    for i in range(0, n, 7):
        c, cum = cols[i], np.cumsum(m.cond_probs[cols[i]])
        k = next(j for j in range(len(cum)) if cum[j] > u[i])
        assert mask[i, c] == 1 and cond[i, m.cond_starts[c] + k] == 1
    for c, probs in enumerate(m.cond_probs):
        rows = mask[:, c] == 1
        freq = cond[rows, m.cond_starts[c]: m.cond_starts[c] + len(probs)].mean(0).numpy()
        assert np.abs(freq - probs).max() < 4 * np.sqrt(0.25 / rows.sum().item())

    data = m.transformer.transform(df)
    own = m._row_categories(data)
    idx = np.arange(0, len(df), 3)
    real = m._cond_from_rows(idx, own, torch.Generator().manual_seed(1))
    assert (real.sum(1) == 1).all()
    for row, pos in zip(idx, real.argmax(1).tolist()):
        c = int(np.searchsorted(m.cond_starts, pos, side="right")) - 1
        a, b = m.spans[c]
        assert pos - m.cond_starts[c] == data[row, a:b].argmax()
