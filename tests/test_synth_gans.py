import numpy as np
import pandas as pd
import pytest
import torch
from test_synth_data import small_frame, small_schema

from lab_utils.synth.accounting import gaussian_epsilon
from lab_utils.synth.dpgan import DPGAN
from lab_utils.synth.mwem import MWEM
from lab_utils.synth.nets import Generator, sample_table
from lab_utils.synth.pategan import PATEGAN
from lab_utils.synth.quail import QUAIL, dp_logistic_regression

torch.set_num_threads(1)


def check_round_trip(synth, df):
    out = synth.sample(50)
    assert list(out.columns) == list(df.columns)
    assert out["b"].dtype == np.int64 and out["c"].dtype == float and set(out["a"]) <= {"x", "y", "z"}
    assert out["b"].between(0, 10).all() and out["c"].between(-4, 4).all()
    return out


def test_generator_emits_one_hot_rows_while_training_and_samples_its_softmax():
    """Training: every categorical block is exactly one-hot (a softmax output would fail) and still passes a
    gradient; eval: the block is the softmax; sample_table draws categories in their softmax frequencies."""
    s = small_schema()
    torch.manual_seed(0)
    g = Generator(s, noise_dim=4, hidden=8)
    with torch.no_grad():
        g.net[-1].bias.zero_()
        g.net[-1].weight.zero_()
        g.net[-1].bias[0:3] = torch.tensor([0.0, 1.0, 2.0])       # block "a": softmax (0.09, 0.24, 0.67)
    kind, a, b = s.unit_blocks[0]
    assert kind == "categorical" and (a, b) == (0, 3)
    x = g(g.noise(4000, torch.Generator().manual_seed(1)))
    assert torch.equal(x[:, a:b].sum(1), torch.ones(4000)) and set(x[:, a:b].unique().tolist()) == {0.0, 1.0}
    x[:, a:b].mul(torch.arange(3.0)).sum().backward()
    assert g.net[-1].bias.grad[0:3].abs().sum() > 0
    p = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert torch.allclose(x[:, a:b].mean(0), p, atol=0.03)               # Gumbel-max: argmax ~ softmax
    g.eval()
    assert torch.allclose(g(g.noise(5, torch.Generator()))[:, a:b], p.expand(5, 3), atol=1e-6)
    g.train()
    out = sample_table(g, s, 4000, torch.Generator().manual_seed(2))
    freq = out["a"].value_counts(normalize=True).reindex(["x", "y", "z"]).to_numpy()
    assert np.allclose(freq, p.numpy(), atol=0.03) and g.training


def test_dpgan_accounting_seed_and_schema():
    df, s = small_frame(), small_schema()
    a = DPGAN(iterations=4, n_critic=2, batch_size=16, seed=1).fit(df, 2.0, 1e-5, schema=s)
    b = DPGAN(iterations=4, n_critic=2, batch_size=16, seed=1).fit(df, 2.0, 1e-5, schema=s)
    # ε is what Opacus' RDP accountant gives for 8 subsampled-Gaussian critic steps at q = 16/200
    assert a.epsilon_spent == pytest.approx(gaussian_epsilon(a.noise_multiplier, 16 / 200, 8, 1e-5))
    assert 1.9 < a.epsilon_spent <= 2.0
    pd.testing.assert_frame_equal(check_round_trip(a, df), b.sample(50))
    with pytest.raises(ValueError, match="delta"):
        DPGAN().fit(df, 1.0, 0.0, schema=s)


def test_pategan_teachers_are_distinct_and_disjoint():
    df, s = small_frame(), small_schema()
    g = PATEGAN(teachers=4, iterations=3, teacher_steps=1, batch_size=16, seed=0).fit(df, 5.0, 1e-5, schema=s)
    ids = [id(p) for t in g.teachers for p in t.parameters()]
    assert len(ids) == len(set(ids)) and not {id(p) for p in g.student.parameters()} & set(ids)
    parts = [set(p.tolist()) for p in g.partitions]
    assert sum(map(len, parts)) == len(df) == len(set().union(*parts))  # disjoint cover
    first = [next(t.parameters()).detach().clone() for t in g.teachers]
    assert not torch.equal(first[0], first[1])  # trained separately
    assert g.accountant.queries == 3 * 16
    assert g.epsilon_data_dependent <= g.epsilon_spent <= 5.0 + 1e-6
    h = PATEGAN(teachers=4, iterations=3, teacher_steps=1, batch_size=16, seed=0).fit(df, 5.0, 1e-5, schema=s)
    pd.testing.assert_frame_equal(check_round_trip(g, df), h.sample(50))
    with pytest.raises(ValueError, match="teachers"):
        PATEGAN(teachers=150).fit(df, 1.0, 1e-5, schema=s)


@pytest.mark.parametrize("lam", [0.5, 0.2])
def test_pategan_refuses_a_lambda_the_budget_cannot_pay_for(lam):
    # measured before the fix: the first batch of 64 votes already broke ε = 3, so it took no vote,
    # trained the generator against an untrained student and returned epsilon_spent = 0.045 silently
    df, s = small_frame(), small_schema()
    with pytest.raises(ValueError, match=r"cannot pay for the 3200 planned teacher votes.*lam=None"):
        PATEGAN(teachers=4, iterations=50, teacher_steps=1, batch_size=64, lam=lam).fit(df, 3.0, 1e-5, schema=s)


def test_pategan_takes_every_planned_vote_at_a_given_lambda():
    df, s = small_frame(), small_schema()
    g = PATEGAN(teachers=4, iterations=5, teacher_steps=1, batch_size=16, lam=0.01, seed=0).fit(df, 3.0, 1e-5, schema=s)
    assert g.lam == 0.01 and g.accountant.queries == 5 * 16 and g.epsilon_spent <= 3.0
    # a second fit at another ε chooses its own λ when none was given (the first fit's λ does not stick)
    h = PATEGAN(teachers=4, iterations=2, teacher_steps=1, batch_size=16, seed=0)
    lam1 = h.fit(df, 1.0, 1e-5, schema=s).lam
    assert h.fit(df, 4.0, 1e-5, schema=s).lam > lam1


def test_dp_logistic_regression_learns_and_accounts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)) / 2
    y = (x[:, 0] > 0).astype(int)
    w, eps = dp_logistic_regression(x, y, 2, 2.0, 1e-5, epochs=5, rng=rng)
    acc = ((np.c_[x, np.ones(len(x))] @ w).argmax(1) == y).mean()
    assert acc > 0.85 and 1.9 < eps <= 2.0


def test_quail_composes_budgets_and_keeps_schema():
    df, s = small_frame(), small_schema()
    q = QUAIL(lambda: MWEM(iterations=3), target="y", split=0.6, epochs=2).fit(df, 2.0, 1e-5, schema=s)
    assert q.synthesizer.epsilon_spent == pytest.approx(1.2)
    assert 1.95 < q.epsilon_spent <= 2.0
    out = check_round_trip(q, df)
    assert set(out["y"]) <= {"p", "q"}
    with pytest.raises(ValueError, match="categorical"):
        QUAIL(lambda: MWEM(), target="c").fit(df, 1.0, 1e-5, schema=s)
