"""Hidden tests of lab 04 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are
none of the public tests', the questions' or the chapter's (its model (64, 127, 127, 16) on 2 ranks, the
demo [(2, 3), (3,)] over 4 ranks).
"""

import math

from lab_utils.grading.hidden import Hidden, no_error

# ---------------------------------------------------------------- q1: bytes per rank, bytes per step
Q1_SHAPES = [(37, 21), (37,), (11, 37), (11,)]       # dim 0 = 37 and 11: padded for every N below
Q1_WORLDS = (3, 5, 8)


def probe_q1_costs(sharded_costs):
    shapes = [(37, 21), (37,), (11, 37), (11,)]
    out = {}
    for n in (3, 5, 8):
        for variant in ("ddp", "oss", "oss_sdp"):
            out[(variant, n)] = sharded_costs(shapes, n, variant)
        out[("fsdp2", n)] = sharded_costs(shapes, n, "fsdp2")
        out[("fsdp2_noreshard", n)] = sharded_costs(shapes, n, "fsdp2", reshard_after_forward=False)
    return out


def _close(got, want, what):
    assert isinstance(got, dict), f"{what}: return a dict, got {got!r}"
    for key in ("bytes_per_rank", "comm_bytes"):
        assert key in got, f"{what}: no {key!r} in {got!r}"
        assert abs(got[key] - want[key]) <= 1e-6 * max(1.0, abs(want[key])), \
            f"{what}: {key} expected {want[key]}, got {got[key]}"


def judge_q1_replicated(out):
    no_error(out)
    from lab_utils.parallel.sharded_math import comm_volume_per_step, sharded_bytes_per_rank

    psi = sum(math.prod(s) for s in Q1_SHAPES)
    for n in Q1_WORLDS:
        for v in ("ddp", "oss", "oss_sdp"):
            want = {"bytes_per_rank": sharded_bytes_per_rank(v, psi, n).total,
                    "comm_bytes": sum(comm_volume_per_step(v, 4 * psi).values())}
            _close(out[(v, n)], want, f"{v}, N={n}, shapes {Q1_SHAPES}")


def judge_q1_fsdp2(out):
    no_error(out)
    from lab_utils.parallel.sharded_math import (
        comm_volume_per_step,
        fsdp2_padded_numel,
        sharded_bytes_per_rank,
    )

    for n in Q1_WORLDS:
        padded = fsdp2_padded_numel(Q1_SHAPES, n)
        for key, v in (("fsdp2", "fsdp2"), ("fsdp2_noreshard", "fsdp2_noreshard")):
            want = {"bytes_per_rank": sharded_bytes_per_rank(v, padded, n).total,
                    "comm_bytes": sum(comm_volume_per_step(v, 4 * padded).values())}
            _close(out[(key, n)], want, f"{key}, N={n}, shapes {Q1_SHAPES} ({padded} padded elements)")


def probe_q1_unknown_variant(sharded_costs):
    out = []
    for variant in ("zero4", "FSDP2", "hsdp"):
        try:
            out.append(repr(sharded_costs([(9, 4), (9,)], 3, variant)))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_unknown_variant(out):
    no_error(out)
    for got, v in zip(out, ("zero4", "FSDP2", "hsdp")):
        assert isinstance(got, str) and got.startswith("ValueError"), f"variant {v!r} must raise ValueError, got {got}"


# ---------------------------------------------------------------- q2: flat parameters
Q2_CASES = [([(3, 4), (5,)], 3), ([(2,)], 3), ([(2, 2, 3)], 5), ([(1, 6), (2, 1), (7,)], 4), ([(6,)], 1)]


def probe_q2_flat(flatten_and_shard, unshard_and_unflatten):
    import torch

    g = torch.Generator().manual_seed(2024)
    out = []
    for shapes, n in [([(3, 4), (5,)], 3), ([(2,)], 3), ([(2, 2, 3)], 5), ([(1, 6), (2, 1), (7,)], 4), ([(6,)], 1)]:
        ts = [torch.randn(s, generator=g) for s in shapes]
        before = [t.clone() for t in ts]
        shards = flatten_and_shard(ts, n)
        got = {"shards": [s.detach().clone().float() for s in shards]}
        back = unshard_and_unflatten(shards, shapes)
        got["back"] = [b.detach().clone().float() for b in back]
        for s in shards:                       # write into every shard: the inputs must not change
            s.reshape(-1)[0] += 1.0
        got["inputs_unchanged"] = all(torch.equal(a, b) for a, b in zip(ts, before))
        out.append(got)
    return out


def _q2_originals():
    import torch

    g = torch.Generator().manual_seed(2024)
    return [[torch.randn(s, generator=g) for s in shapes] for shapes, _ in Q2_CASES]


def judge_q2_shards(out):
    no_error(out)
    import torch

    for got, ts, (shapes, n) in zip(out, _q2_originals(), Q2_CASES):
        shards = got["shards"]
        total = sum(math.prod(s) for s in shapes)
        size = math.ceil(total / n)
        assert len(shards) == n, f"{shapes} over {n} ranks: expected {n} shards, got {len(shards)}"
        assert all(s.numel() == size for s in shards), \
            f"{shapes} over {n} ranks: every shard must hold {size} elements, got {[s.numel() for s in shards]}"
        flat = torch.cat([s.reshape(-1) for s in shards])
        assert torch.equal(flat[:total], torch.cat([t.reshape(-1) for t in ts])), \
            f"{shapes} over {n} ranks: the values, flattened in order, must come first"
        assert torch.equal(flat[total:], torch.zeros(n * size - total)), f"{shapes} over {n} ranks: pad with zeros"


def judge_q2_round_trip(out):
    no_error(out)
    import torch

    for got, ts, (shapes, n) in zip(out, _q2_originals(), Q2_CASES):
        back = got["back"]
        assert [tuple(b.shape) for b in back] == [tuple(s) for s in shapes], \
            f"{shapes} over {n} ranks: got shapes {[tuple(b.shape) for b in back]}"
        assert all(torch.equal(a, b) for a, b in zip(back, ts)), f"{shapes} over {n} ranks: the round trip must be exact"


def judge_q2_copies(out):
    no_error(out)
    for got, (shapes, n) in zip(out, Q2_CASES):
        assert got["inputs_unchanged"] is True, f"{shapes} over {n} ranks: writing into a shard changed an input"


# ---------------------------------------------------------------- q3: measured peak
Q3_SIZES = (48, 96, 96, 8)
Q3_BATCHES = [5, 37, 150]


def probe_q3_peaks(measure_peak):
    got = measure_peak([5, 37, 150])
    return {int(k): int(v) for k, v in dict(got).items()}


def judge_q3_matches_a_measurement(out):
    no_error(out)
    from torch import nn

    from lab_utils.measure import live_tensor_peak
    from lab_utils.parallel.task import make_batch, make_model

    assert set(out) == set(Q3_BATCHES), f"expected one peak per batch size {Q3_BATCHES}, got keys {sorted(out)}"
    for batch in Q3_BATCHES:
        model = make_model(Q3_SIZES, seed=0)
        x, y = make_batch(0, batch, Q3_SIZES)
        with live_tensor_peak(list(model.parameters()) + [x, y]) as live:
            nn.functional.mse_loss(model(x), y).backward()
        assert abs(out[batch] - live.peak) <= 0.02 * live.peak, \
            f"batch {batch}: the grader measured a peak of {live.peak} bytes, you returned {out[batch]}"


# ---------------------------------------------------------------- q4: HSDP (not in lab_utils)
Q4_CASES = [([(29, 13), (29,), (6, 29), (6,)], 8, 4), ([(29, 13), (29,), (6, 29), (6,)], 6, 3),
            ([(29, 13), (29,), (6, 29), (6,)], 12, 2), ([(100, 7), (3, 3, 3), (10,)], 16, 8),
            ([(100, 7), (3, 3, 3), (10,)], 10, 5)]


def probe_q4_hsdp(hsdp_costs):
    cases = [([(29, 13), (29,), (6, 29), (6,)], 8, 4), ([(29, 13), (29,), (6, 29), (6,)], 6, 3),
             ([(29, 13), (29,), (6, 29), (6,)], 12, 2), ([(100, 7), (3, 3, 3), (10,)], 16, 8),
             ([(100, 7), (3, 3, 3), (10,)], 10, 5)]
    return [hsdp_costs(shapes, n, g) for shapes, n, g in cases]


def judge_q4_hsdp(out):
    no_error(out)
    import torch

    from lab_utils.parallel.sharded_math import fsdp2_padded_numel

    for got, (shapes, n, g) in zip(out, Q4_CASES):
        # brute force: pad each parameter's dim 0 to a multiple of g, split it into g shards; rank 0's
        local = 0
        for s in shapes:
            rows = torch.zeros(s).reshape(s[0], -1)
            rows = torch.cat([rows, rows.new_zeros((-s[0]) % g, rows.shape[1])])
            local += rows.chunk(g)[0].numel()
        padded = fsdp2_padded_numel(shapes, g)          # the book's FSDP2 padding, shard group of g
        assert local * g == padded
        want = {"bytes_per_rank": 16 * local,
                # within the shard group: all-gather (forward), all-gather (backward), reduce-scatter;
                # across the n // g replicas: all-reduce of the rank's gradient shard (2x)
                "comm_bytes": 3 * 4 * padded + 2 * 4 * local}
        _close(got, want, f"HSDP, shapes {shapes}, {n} ranks in shard groups of {g}")


def probe_q4_bad_mesh(hsdp_costs):
    out = []
    for n, g in [(8, 3), (6, 6), (6, 1), (7, 0)]:
        try:
            out.append(repr(hsdp_costs([(12, 5), (12,)], n, g)))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q4_bad_mesh(out):
    no_error(out)
    for got, mesh in zip(out, [(8, 3), (6, 6), (6, 1), (7, 0)]):
        assert isinstance(got, str) and got.startswith("ValueError"), \
            f"world_size, shard_size = {mesh} is no HSDP mesh: raise ValueError, got {got}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_costs, judge_q1_replicated, requires=("judge_q1_fsdp2",)),
    Hidden("q1", 1, probe_q1_costs, judge_q1_fsdp2, requires=("judge_q1_replicated",)),
    Hidden("q1", 1, probe_q1_unknown_variant, judge_q1_unknown_variant,
           requires=("judge_q1_replicated", "judge_q1_fsdp2")),
    Hidden("q2", 1, probe_q2_flat, judge_q2_shards, requires=("judge_q2_round_trip",)),
    Hidden("q2", 1, probe_q2_flat, judge_q2_round_trip, requires=("judge_q2_shards",)),
    Hidden("q2", 1, probe_q2_flat, judge_q2_copies, requires=("judge_q2_shards", "judge_q2_round_trip")),
    Hidden("q3", 2, probe_q3_peaks, judge_q3_matches_a_measurement),
    Hidden("q4", 2, probe_q4_hsdp, judge_q4_hsdp),
    Hidden("q4", 1, probe_q4_bad_mesh, judge_q4_bad_mesh, requires=("judge_q4_hsdp",)),
]
