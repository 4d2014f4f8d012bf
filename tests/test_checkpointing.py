import math

import pytest
import torch

from lab_utils.fitting.checkpointing import (
    CheckpointedSequential,
    CheckpointSequential,
    activation_memory_estimate,
    budgeted_segments,
    checkpoint_sequential_segments,
    depths_that_fit,
    even_segments,
    feature_map_bytes,
    mlp_stack,
    mlp_step_bytes,
    recompute_schedule,
    search_budget,
    sqrt_n_bounds,
    sqrt_n_checkpointed,
    sqrt_n_segments,
    validate_segments,
)
from lab_utils.fitting.nin import nin_cifar10
from lab_utils.measure import live_feature_map_bytes, saved_activation_bytes


def _grads(model, layers, x):
    layers.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # same dropout masks for every variant
    out = model(x)
    (out.square().mean()).backward()
    return out.detach(), [p.grad.clone() for p in layers.parameters()]


@pytest.mark.parametrize("depth", [1, 5, 16])
def test_sqrt_n_segments_cover_the_chain(depth):
    segs = sqrt_n_segments(depth)
    assert validate_segments(segs, depth) == segs
    assert len(segs) == max(1, round(math.sqrt(depth)))
    lengths = [e - b for b, e in segs]
    assert max(lengths) - min(lengths) <= 1


def test_checkpointed_gradients_match_plain_backprop():
    layers = mlp_stack(12, 32, seed=1)
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    ref_out, ref = _grads(layers, layers, x)
    variants = [sqrt_n_checkpointed(layers), CheckpointedSequential(layers, even_segments(12, 12)),
                CheckpointedSequential(layers, search_budget(feature_map_bytes(layers, x)).segments),
                CheckpointSequential(layers, 3)]
    for model in variants:
        out, grads = _grads(model, layers, x)
        torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g, r, rtol=0, atol=1e-6)


def test_nin_with_dropout_gets_identical_gradients():
    net = nin_cifar10(seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref_out, ref = _grads(net, net, x)
    out, grads = _grads(sqrt_n_checkpointed(net), net, x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)


@pytest.mark.parametrize("depth", [16, 64])
def test_measured_saved_bytes_fall_as_predicted(depth):
    layers = mlp_stack(depth, 64)
    x = torch.randn(16, 64)
    sizes = feature_map_bytes(layers, x)
    with saved_activation_bytes(layers) as plain:
        loss = layers(x).sum()
    with saved_activation_bytes(layers) as sqrt_n:
        loss = sqrt_n_checkpointed(layers)(x).sum()
    k = round(math.sqrt(depth))
    with saved_activation_bytes(layers) as lib:
        loss = CheckpointSequential(layers, k)(x).sum()
    del loss
    ck, rest = checkpoint_sequential_segments(depth, k)
    assert plain.activations == activation_memory_estimate(sizes, [(0, depth)], [False]).stored
    assert plain.activations == sum(sizes)  # every feature map is kept
    assert sqrt_n.activations == activation_memory_estimate(sizes, sqrt_n_segments(depth)).stored
    assert lib.activations == activation_memory_estimate(sizes, ck + rest, [True] * len(ck) + [False]).stored
    assert sqrt_n.activations <= sqrt_n_bounds(depth, sizes[1])[0]
    assert sqrt_n.activations < lib.activations < plain.activations


def test_checkpoint_sequential_with_one_segment_checkpoints_nothing():
    layers = mlp_stack(8, 16)
    x = torch.randn(4, 16)
    assert checkpoint_sequential_segments(8, 1) == ([], [(0, 8)])
    with saved_activation_bytes(layers) as plain:
        a = layers(x).sum()
    with saved_activation_bytes(layers) as one:
        b = CheckpointSequential(layers, 1)(x).sum()
    assert one.activations == plain.activations and a.item() == b.item()


def test_budgeted_plan_follows_alg3():
    sizes = [1, 4, 1, 4, 1, 4, 1]  # a_0..a_6: big feature maps alternate with small ones
    plan = budgeted_segments(sizes, budget=4)
    # temp crosses B=4 at a_2 (4+1), a_4 and a_6 is the end: keep a_2 and a_4
    assert plan.kept == (2, 4) and plan.segments == [(0, 2), (2, 4), (4, 6)]
    assert plan.x == 2 and plan.y == 5 and plan.cost == 7
    only_small = budgeted_segments(sizes, budget=0, candidates=[2, 4])
    assert only_small.kept == (2, 4)
    assert budgeted_segments(sizes, budget=100).segments == [(0, 6)]
    # the searched plan is no worse than every fixed one
    best = search_budget(sizes)
    assert all(best.cost <= budgeted_segments(sizes, b).cost for b in range(0, 30))


def test_sqrt_n_estimate_is_order_sqrt_n():
    for n in (16, 64, 256):
        sizes = [1] * (n + 1)
        est = activation_memory_estimate(sizes, sqrt_n_segments(n))
        assert est.stored == math.isqrt(n) and est.peak == 2 * math.isqrt(n)  # Eq. 1: 2 sqrt(n)
        assert activation_memory_estimate(sizes, [(0, n)], [False]).peak == n + 1


def test_schedule_recomputes_each_layer_once():
    n, segs = 9, sqrt_n_segments(9)
    events, live = recompute_schedule(n, segs)
    labels = [e[3] for e in events]
    assert labels.count("F1") == 1 and sum(lab.startswith("R") for lab in labels) == n
    assert sum(lab.startswith("B") for lab in labels) == n
    plain_events, plain_live = recompute_schedule(n, None)
    assert max(plain_live) == n + 1 and max(live) < max(plain_live)


@pytest.mark.parametrize("bad", [0, -1, 10, 2.5])
def test_bad_segment_counts_raise(bad):
    with pytest.raises(ValueError, match="between 1 and the depth"):
        even_segments(9, bad)
    with pytest.raises(ValueError, match="1 <= segments <= n"):
        CheckpointSequential(mlp_stack(9, 4), bad)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="n >= 1"):
        sqrt_n_segments(0)
    with pytest.raises(ValueError, match="should start at 3"):
        validate_segments([(0, 3), (4, 8)], 8)
    with pytest.raises(ValueError, match="last range must end at 8"):
        CheckpointedSequential(mlp_stack(8, 4), [(0, 4)])
    with pytest.raises(TypeError, match="nn.Sequential"):
        CheckpointedSequential(torch.nn.Linear(2, 2), [(0, 1)])
    with pytest.raises(ValueError, match="budget B must be >= 0"):
        budgeted_segments([1, 1, 1], -1)
    with pytest.raises(ValueError, match="candidate split points"):
        budgeted_segments([1, 1, 1], 0, candidates=[5])


def _measured(layers, x, segments):
    """(stored, backward peak) bytes of feature maps of one training step with ``segments``."""
    model = CheckpointedSequential(layers, segments)
    with saved_activation_bytes(layers) as saved:
        loss = model(x).sum()
    del loss
    with live_feature_map_bytes(layers) as live:
        model(x).sum().backward()
    return saved.activations, live.peak


def test_sqrt_n_bounds_hold_for_every_depth():
    for n in range(1, 401):
        est = activation_memory_estimate([1] * (n + 1), sqrt_n_segments(n))
        stored, peak = sqrt_n_bounds(n, 1)
        assert est.stored <= stored and est.peak <= peak, n


@pytest.mark.parametrize("depth", [16, 32])
def test_measured_backward_peak_matches_the_estimate(depth):
    layers, x = mlp_stack(depth, 32, seed=depth), torch.randn(8, 32)
    sizes = feature_map_bytes(layers, x)
    k = round(math.sqrt(depth))
    ck, rest = checkpoint_sequential_segments(depth, k)
    plans = {"none": ([(0, depth)], [False]), "every layer": (even_segments(depth, depth), None),
             "sqrt(n)": (sqrt_n_segments(depth), None), "lib": (ck + rest, [True] * len(ck) + [False])}
    for name, (segs, flags) in plans.items():
        model = CheckpointedSequential(layers, segs, flags) if name != "lib" else CheckpointSequential(layers, k)
        with live_feature_map_bytes(layers) as live:
            model(x).sum().backward()
        est = activation_memory_estimate(sizes, segs, flags)
        # Eq. 1 charges every stored input during every recomputation: an upper bound, reached when
        # the last segment is a largest one (it is recomputed while all inputs are still stored)
        assert live.peak <= est.peak, name
        if name != "lib":  # the library's plain last chunk is freed before any recomputation
            assert live.peak >= est.peak - sizes[1], name
    stored, peak = _measured(layers, x, sqrt_n_segments(depth))
    bound_stored, bound_peak = sqrt_n_bounds(depth, sizes[1])
    assert stored <= bound_stored and peak <= bound_peak


def test_wrong_numbers_of_segments_break_the_sqrt_n_bounds():
    n = 64
    layers, x = mlp_stack(n, 16, seed=0), torch.randn(4, 16)
    bound_stored, bound_peak = sqrt_n_bounds(n, feature_map_bytes(layers, x)[1])
    for k in (1, 4, 16, 64):  # one segment, sqrt(n)/2, 2 sqrt(n), one per layer
        stored, peak = _measured(layers, x, even_segments(n, k))
        assert stored > bound_stored or peak > bound_peak, f"{k} segments should break a bound"
    stored, peak = _measured(layers, x, even_segments(n, 8))
    assert stored <= bound_stored and peak <= bound_peak


def test_sweep_is_sized_from_free_memory():
    depths, width, batch = [8, 16, 32, 64, 128, 256], 4096, 1024
    assert mlp_step_bytes(256, 4096, 1024) == 4 * (2 * 256 * (4096**2 + 4096) + 259 * 1024 * 4096)
    assert depths_that_fit(depths, width, batch, 16 * 2**30) == [8, 16, 32, 64]  # a 16 GiB card
    assert depths_that_fit(depths, width, batch, 140 * 2**30) == depths  # an H200
    assert depths_that_fit(depths, width, batch, None) == depths  # unknown: keep all
    # the margin is kept: depth 64 needs about 9 GiB
    need = mlp_step_bytes(64, width, batch)
    assert depths_that_fit(depths, width, batch, need, margin=0.0)[-1] == 64
    assert depths_that_fit(depths, width, batch, need, margin=0.25)[-1] == 32
    with pytest.raises(ValueError, match="no depth .* fits"):
        depths_that_fit(depths, width, batch, 2**20)
    with pytest.raises(ValueError, match="margin"):
        depths_that_fit(depths, width, batch, 2**40, margin=1.0)


def test_mlp_stack_is_built_on_the_device_with_the_same_weights():
    state = torch.random.get_rng_state()
    on_cpu = mlp_stack(3, 8, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG is left alone"
    gen = torch.Generator().manual_seed(5)
    first = torch.nn.init.kaiming_uniform_(torch.empty(8, 8), nonlinearity="relu", generator=gen)
    assert torch.equal(on_cpu[0][0].weight, first) and not on_cpu[0][0].bias.any()
    on_meta = mlp_stack(3, 8, seed=5, device="meta")  # no storage at all: nothing built on the host
    assert all(p.device.type == "meta" for p in on_meta.parameters())


def test_schedule_plot_draws_the_simulation():
    import matplotlib

    matplotlib.use("Agg")
    from lab_utils.plot import schedule_and_memory

    events, live = recompute_schedule(9, sqrt_n_segments(9))
    fig = schedule_and_memory(events, live, title="n = 9")
    top, bottom = fig.axes
    assert len(top.patches) == len(events)
    assert list(bottom.lines[0].get_ydata()) == live
    with pytest.raises(ValueError, match="held is empty"):
        schedule_and_memory(events, [])
