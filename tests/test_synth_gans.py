import copy

import numpy as np
import pandas as pd
import pytest
import torch
from test_synth_data import small_frame, small_schema

from lab_utils.synth.accounting import gaussian_epsilon
from lab_utils.synth.audit import check_pate_fit
from lab_utils.synth.dpgan import DPGAN
from lab_utils.synth.mwem import MWEM
from lab_utils.synth.nets import Generator, sample_table
from lab_utils.synth.pate import (
    fit_logistic,
    logistic_teachers,
    teacher_optimizer,
    teacher_round,
    teacher_votes,
)
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


def test_logistic_teachers_vote_by_their_own_hyperplane_fit_on_their_own_partition():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(1.0, 0.3, (90, 6)).astype(np.float32))  # "real" rows around +1
    parts = np.array_split(rng.permutation(90), 3)
    seen = []

    def real_of(idx):
        seen.append(sorted(idx.tolist()))
        return x[idx]

    def fake_of(m):  # "generated" rows around -1
        return torch.from_numpy(rng.normal(-1.0, 0.3, (m, 6)).astype(np.float32))

    teachers = logistic_teachers(parts, real_of, fake_of)
    assert seen == [sorted(p.tolist()) for p in parts]  # teacher i read exactly D_i, once
    assert len({id(t.weight) for t in teachers}) == 3
    votes = teacher_votes(teachers, torch.cat([x[:10], fake_of(10)]))
    assert (votes[:10, 1] == 3).all() and (votes[10:, 1] == 0).all()  # the hyperplane's side, per teacher


def test_teacher_round_steps_each_teacher_on_its_own_partition_as_a_separate_pass_would():
    """``teacher_round`` makes one generator call and one backward pass for all k teachers, and
    ``teacher_optimizer`` steps them with one Adam; teacher i must still see only rows of D_i and end exactly
    where its own Adam, stepping on L_i alone, takes it (two rounds, so Adam's moments carry over). D_1's rows are
    NaN, so a row of D_1 reaching any other teacher, or one teacher's loss or moments reaching another's weights,
    shows as NaN."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.randn(60, 4)
    parts = np.array_split(rng.permutation(60), 3)
    x[parts[1]] = float("nan")
    teachers = [torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)) for _ in range(3)]
    refs = copy.deepcopy(teachers)
    opt = teacher_optimizer(teachers, lr=0.05, betas=(0.5, 0.9))
    reads, fakes = [], []

    def real_of(idx):
        reads.append(idx)
        return x[idx]

    def fake_of(m):
        fakes.append(torch.randn(m, 4))
        return fakes[-1]

    for _ in range(2):
        teacher_round(teachers, opt, parts, real_of, fake_of, 8, rng)
    assert len(reads) == len(fakes) == 2 and len(fakes[0]) == 24  # one read, one generator call per round
    for i, ref in enumerate(refs):
        own = torch.optim.Adam(ref.parameters(), lr=0.05, betas=(0.5, 0.9))  # T_i's own optimizer, L_i alone
        for read, fake_all in zip(reads, fakes):
            idx, fake = np.split(read, 3)[i], fake_all.split(8)[i]
            assert set(idx.tolist()) <= set(parts[i].tolist())  # T_i's real rows are D_i's
            own.zero_grad()
            logits, labels = ref(torch.cat([x[idx], fake])).squeeze(1), torch.cat([torch.ones(8), torch.zeros(8)])
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
            own.step()
        for p, q in zip(teachers[i].parameters(), ref.parameters()):
            assert torch.isnan(p).any() == (i == 1)  # only D_1's teacher reads D_1
            if i != 1:
                torch.testing.assert_close(p.grad, q.grad)  # ∂L_i/∂θ_i: the same gradient, not a share of Σ_j L_j
                torch.testing.assert_close(p, q)


@pytest.mark.parametrize("gap", [0.2, 3.0, 10.0])  # overlapping, nearly and fully separable classes
def test_fit_logistic_matches_scikit_learn_per_problem(gap):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (4, 20, 5)), rng.normal(gap, 1, (4, 20, 5))], 1)
    y = np.tile(np.r_[np.ones(20), np.zeros(20)], (4, 1))
    mask = np.ones((4, 40))
    mask[1, -3:] = 0  # a shorter partition, padded
    w, b = fit_logistic(*(torch.from_numpy(a) for a in (x, y, mask)), c=0.5)
    for i in range(4):
        keep = mask[i] > 0
        ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x[i][keep], y[i][keep])
        np.testing.assert_allclose(w[i].numpy(), ref.coef_[0], atol=1e-5)
        assert b[i].item() == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_pategan_logistic_teachers_take_every_vote_at_the_charged_noise():
    df, s = small_frame(), small_schema()
    g = PATEGAN(teachers=3, iterations=4, batch_size=32, hidden=8, teacher="logistic", seed=0)
    _, r = check_pate_fit(lambda: g.fit(df, 2.0, 1e-5, schema=s))
    assert len(g.teachers) == 3 and all(isinstance(t, torch.nn.Linear) for t in g.teachers)
    assert r["votes_answered"] == g.accountant.queries == 4 * 32
    assert r["laplace_scale_lo"] <= 1 / g.lam <= r["laplace_scale_hi"]
    assert 0 < g.epsilon_spent <= 2.0
    h = PATEGAN(teachers=3, iterations=4, batch_size=32, hidden=8, teacher="logistic", seed=0)
    pd.testing.assert_frame_equal(g.sample(40), h.fit(df, 2.0, 1e-5, schema=s).sample(40))
    with pytest.raises(ValueError, match="teacher must be"):
        PATEGAN(teacher="tree")


def test_pategan_samples_from_the_generators_moving_average():
    # θ̄ after two generator steps with decay β is β·θ_1 + (1 − β)·θ_2: θ_1 from a one-iteration fit, θ_2 from a
    # two-iteration fit without averaging (λ fixed, so both runs draw the same first iteration)
    df, s = small_frame(), small_schema()

    def fit(iterations, average):
        kw = dict(teachers=3, batch_size=16, hidden=8, lam=0.01, teacher="logistic", seed=0)
        return PATEGAN(iterations=iterations, average=average, **kw).fit(df, 3.0, 1e-5, schema=s)

    theta1, theta2 = (fit(t, None).generator.state_dict() for t in (1, 2))
    avg = fit(2, 0.75)
    assert avg.accountant.queries == 2 * 16  # the average costs no vote
    for name, value in avg.generator.state_dict().items():
        torch.testing.assert_close(value, 0.75 * theta1[name] + 0.25 * theta2[name])
    with pytest.raises(ValueError, match="EMA decay"):
        PATEGAN(average=1.0)


def test_pategan_betas_reach_the_generator_student_and_teachers(monkeypatch):
    # every Adam the fit builds is recorded with the parameters it steps: each of G, S and T_1..T_k must be
    # stepped by an Adam with the requested betas (a variant that kept Adam's defaults in any one fails here)
    built = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kw):
            params = list(params)
            super().__init__(params, **kw)
            built.append(({id(p) for p in params}, self.defaults["betas"]))

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    df, s = small_frame(), small_schema()
    g = PATEGAN(teachers=3, iterations=2, teacher_steps=1, batch_size=16, hidden=8, lam=0.01, betas=(0.3, 0.8),
                seed=0).fit(df, 3.0, 1e-5, schema=s)
    for module in [g.generator, g.student, *g.teachers]:  # the teachers share one Adam (teacher_optimizer)
        ids = {id(p) for p in module.parameters()}
        assert [b for params, b in built if ids <= params] == [(0.3, 0.8)]
    with pytest.raises(ValueError, match="betas"):
        PATEGAN(betas=(1.0, 0.9))


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
