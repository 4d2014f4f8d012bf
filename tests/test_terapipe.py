"""lab_utils.parallel.terapipe_*: Eq. (1), the DP against brute force, the cost models, and the
token-pipelined GPT against the unsliced model (in one process and on 2 ranks)."""

import itertools
import random

import numpy as np
import pytest
import torch

from lab_utils.dist import launch
from lab_utils.parallel.terapipe_cost import (
    brute_force_slicing,
    check_slicing,
    cost_table,
    joint_slicing,
    microbatch_latency,
    min_sum_under_cap,
    optimal_slicing,
    pipeline_latency,
    simulate_slicing,
    slice_times,
    slicing_latency,
    uniform_slicing,
)
from lab_utils.parallel.terapipe_gpt import (
    GPTConfig,
    StageRunner,
    build_gpt,
    make_tokens,
    reference_loss_and_grads,
    run_sliced,
    token_chunks,
)
from lab_utils.parallel.terapipe_latency import PAPER_SETTINGS, AnalyticCost, FittedCost, setting_cost
from lab_utils.parallel.terapipe_run import terapipe_worker


def random_cost(seed: int, L: int):
    """A table cost t(l, c) with random values (not monotone, not smooth): the DP must not rely on shape."""
    rng = random.Random(seed)
    table = {(length, c): rng.randint(1, 30) / 4 for length in range(1, L + 1) for c in range(0, L)}
    return lambda length, c: table[(int(length), int(c))]


def attention_cost(length, c):
    """Slices cost a fixed overhead plus tokens plus attention over the context: later slices cost more."""
    return 2.0 + length + 0.3 * length * (c + length) / 8


# ------------------------------------------------------------------------------------- Eq. (1)
def test_latency_formula_and_bad_input():
    assert pipeline_latency([1.0, 2.0, 3.0], K=1) == 6.0
    assert pipeline_latency([1.0, 2.0, 3.0], K=4) == 6.0 + 3 * 3.0
    assert pipeline_latency([2.0, 2.0], K=3, repeats=2) == 8.0 + 2 * 2.0
    assert slice_times([2, 3], lambda length, c: 10 * length + c) == [20.0, 32.0]
    with pytest.raises(ValueError, match="K"):
        pipeline_latency([1.0], K=0)
    with pytest.raises(ValueError, match="sequence length 5"):
        check_slicing([2, 2], 5)
    with pytest.raises(ValueError, match="positive"):
        slicing_latency([3, 0, 2], attention_cost, 2, L=5)
    with pytest.raises(ValueError):
        uniform_slicing(4, 5)
    assert uniform_slicing(10, 4) == [3, 3, 2, 2]


@pytest.mark.parametrize("seed", range(6))
def test_eq1_is_the_simulated_makespan_when_backward_is_proportional(seed):
    """Eq. (1) with t = t_fwd + t_bwd equals the event simulation of K equal stages (forward in order,
    backward in reverse) when t_bwd = 2 t_fwd: the formula is the pipeline's critical path."""
    rng = random.Random(seed)
    K, M = rng.randint(1, 5), rng.randint(1, 6)
    f = [rng.randint(1, 9) for _ in range(M)]
    sim = simulate_slicing([f] * K, [[2 * v for v in f]] * K)
    assert sim.makespan == pytest.approx(pipeline_latency([3 * v for v in f], K))


# ---------------------------------------------------------------------------- the DP, Algorithm 1
@pytest.mark.parametrize("L,K", [(1, 1), (2, 3), (5, 1), (6, 2), (7, 4), (9, 3), (10, 8)])
@pytest.mark.parametrize("seed", range(3))
def test_dp_equals_brute_force_over_all_slicings(L, K, seed):
    for cost in (random_cost(seed, L), attention_cost):
        dp = optimal_slicing(cost, L, K)
        best, _ = brute_force_slicing(cost, L, K)
        assert dp.latency == pytest.approx(best)
        assert sum(dp.slices) == L
        assert slicing_latency(dp.slices, cost, K, L) == pytest.approx(dp.latency)  # the slicing it reports


def test_planted_broken_dp_is_caught_by_brute_force():
    """Minimising only sum(t_i) (dropping the (K-1) max term of Eq. 1) must fail the brute-force check."""
    def broken(cost, L, K):
        total, units = min_sum_under_cap(cost_table(cost, L), float("inf"))
        return slicing_latency(units, cost, K)

    caught = [(L, K) for L, K in itertools.product(range(3, 10), (2, 4, 8))
              if broken(attention_cost, L, K) > brute_force_slicing(attention_cost, L, K)[0] + 1e-9]
    assert caught, "the brute-force check did not catch the DP without the (K-1) max term"


@pytest.mark.parametrize("K", [1, 2, 4, 16])
def test_dp_never_worse_than_uniform_slicing(K):
    L = 24
    dp = optimal_slicing(attention_cost, L, K)
    for m in range(1, L + 1):
        assert dp.latency <= slicing_latency(uniform_slicing(L, m), attention_cost, K) + 1e-9


@pytest.mark.parametrize("B,K", [(1, 4), (4, 2), (8, 8), (6, 3)])
def test_joint_slicing_never_worse_than_micro_batches(B, K):
    L = 32
    cost_for_batch = lambda b: AnalyticCost(layers=2, hidden=1024, batch=b)  # noqa: E731
    joint = joint_slicing(cost_for_batch, L, B, K, unit=4)
    baseline, _ = microbatch_latency(cost_for_batch, L, B, K)
    assert joint.latency <= baseline * (1 + 1e-12)
    assert B % joint.micro_batch == 0 and sum(joint.slices) == L


def test_early_stop_and_units():
    L, K = 64, 32
    D = cost_table(attention_cost, L)
    dp = optimal_slicing(attention_cost, L, K)
    assert dp.caps_tried < len(np.unique(D[np.isfinite(D)]))  # the early stop cut the sweep short
    coarse = optimal_slicing(attention_cost, L, K, unit=8)
    assert all(s % 8 == 0 for s in coarse.slices) and coarse.latency >= dp.latency - 1e-9
    with pytest.raises(ValueError, match="multiple of the slice unit"):
        cost_table(attention_cost, 30, unit=8)
    # a scalar-only cost model (if/else on its argument) gives the same table through the slow path
    scalar = lambda length, c: 1.0 if c == 0 else 1.0 + length * c  # noqa: E731
    D2 = cost_table(scalar, 6)
    assert D2[6, 2] == 1.0 + 2 * 4 and D2[3, 3] == 1.0


def test_optimal_slices_shrink_toward_the_end_for_a_long_sequence():
    s = next(p for p in PAPER_SETTINGS if p.seq_len == 8192)  # GPT3-13B at L = 8192: context matters most
    dp = optimal_slicing(setting_cost(s, batch=1), s.seq_len, s.nodes, unit=64)
    assert len(dp.slices) > 1 and dp.slices[-1] < dp.slices[0]
    assert list(dp.slices) == sorted(dp.slices, reverse=True)


# ------------------------------------------------------------------------------------ cost models
def test_fitted_cost_recovers_a_linear_context_term():
    true = lambda length, c: 0.5 + 0.1 * length + (0.2 + 0.01 * length + 0.02 * c + 0.003 * length * c) * (c > 0)  # noqa: E731
    no_ctx = {length: true(length, 0) for length in (8, 16, 32, 64)}
    with_ctx = {(length, c): true(length, c) for length in (8, 16, 32) for c in (8, 16, 32)}
    fit = FittedCost.fit(no_ctx, with_ctx, comm=(0.05, 0.001))
    assert fit.context == pytest.approx((0.2, 0.01, 0.02, 0.003), abs=1e-9)
    assert fit(16, 24) == pytest.approx(true(16, 24) + 0.05 + 0.016)
    assert np.allclose(fit(np.array([8, 16]), np.array([0, 8])), [true(8, 0) + 0.058, true(16, 8) + 0.066])
    with pytest.raises(ValueError, match="two slice lengths"):
        FittedCost.fit({8: 1.0}, {})


def test_analytic_cost_grows_with_context_and_batch():
    cost = AnalyticCost(layers=2, hidden=4096, batch=1, tp=8)
    assert cost(128, 1024) > cost(128, 0) > 0
    assert cost.with_batch(4)(128, 0) > cost(128, 0)
    assert cost.flops(1, 0) == 2 * 24 * 4096**2 + 2 * 4 * 4096


# -------------------------------------------------------------------- the token-pipelined GPT
CFG = GPTConfig(vocab=32, d_model=32, n_head=4, n_layer=4, seq_len=16)


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("slices,micro_batches,K", [([16], 1, 1), ([4, 4, 4, 4], 1, 2), ([7, 5, 3, 1], 1, 4),
                                                    ([16], 2, 2), ([9, 7], 2, 4), ([1] * 16, 1, 2)])
def test_sliced_pipeline_in_one_process_equals_the_unsliced_model(slices, micro_batches, K):
    ref_loss, ref_grads = reference_loss_and_grads(CFG, batch=4)
    model = build_gpt(CFG)
    tokens, targets = make_tokens(CFG, 4)
    loss = run_sliced(model, tokens, targets, token_chunks(slices, 4, micro_batches), K)
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    assert torch.allclose(_grads(model), ref_grads, atol=1e-5)


def test_planted_backward_without_the_kv_cache_gradient_is_caught():
    class NoCacheGrad(StageRunner):
        def backward(self, chunk, grad_out=None):
            for *_, k_leaf, v_leaf in self.saved[chunk][2]:
                k_leaf.grad = v_leaf.grad = None  # forget what later slices sent into the cache
            return super().backward(chunk, grad_out)

    _, ref_grads = reference_loss_and_grads(CFG, batch=4)
    model = build_gpt(CFG)
    tokens, targets = make_tokens(CFG, 4)
    runner = NoCacheGrad(model, tokens, targets)
    chunks = token_chunks([8, 8], 4)
    for ch in chunks:
        runner.forward(ch)
    for ch in reversed(chunks):
        runner.backward(ch)
    assert not torch.allclose(_grads(model), ref_grads, atol=1e-5)


def test_token_chunks_bad_input():
    with pytest.raises(ValueError, match="micro-batches"):
        token_chunks([8], batch=5, micro_batches=2)
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=30, n_head=4)


def test_two_rank_token_pipeline_equals_the_unsliced_model():
    """The real thing: 2 processes (gloo), slices sent between them; uniform, DP-chosen, unsliced and
    micro-batched schedules all give the unsliced model's loss and every parameter gradient."""
    opts = dict(vocab=CFG.vocab, d_model=CFG.d_model, n_head=CFG.n_head, n_layer=CFG.n_layer, seq_len=CFG.seq_len)
    per_rank = launch(terapipe_worker, 2, global_batch=4, steps=2, chunks=4, micro_batches=2, unit=4, repeats=1,
                      keep_tensors=True, timeout=300, echo="none", **opts)
    ref_loss, ref_grads = reference_loss_and_grads(CFG, batch=4)
    names = [r.config["schedule"] for r in per_rank[0]]
    assert names == ["unsliced", "uniform", "dp", "microbatch"]
    for i, name in enumerate(names):
        recs = [per_rank[r][i] for r in range(2)]
        assert recs[0].config["slices"] == recs[1].config["slices"] and sum(recs[0].config["slices"]) == CFG.seq_len
        assert recs[0].losses[0] == pytest.approx(ref_loss, abs=1e-5), name
        assert torch.allclose(torch.cat([r.extra["grads0"] for r in recs]), ref_grads, atol=1e-5), name
        assert recs[0].losses == pytest.approx(per_rank[0][0].losses, abs=1e-5)  # same training, any slicing
        assert recs[0].extra["predicted"] > 0 and len(recs[0].extra["ops"][0]) == 2 * len(
            recs[0].config["slices"]) * recs[0].config["micro_batches"]
