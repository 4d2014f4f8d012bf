"""Hidden tests of lab 10 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are none
of the public tests', the questions' or the chapter's: other histories (NaN, ±inf, ties, beams larger than
the pool), other parents, budgets and input lengths, other parent/child pairs.
"""

import math

from lab_utils.grading.hidden import Hidden, no_error

# ---------------------------------------------------------------- q1: the beam
HISTORIES = [
    ([0.31, 0.77, float("nan"), 0.77, 0.12, float("inf"), 0.55, 0.9, float("-inf"), 0.4], 4),
    ([0.5, 0.5, 0.5, 0.2], 3),
    ([float("nan"), 0.1, 0.3], 5),
    ([0.6, float("nan"), 0.2, 0.9, 0.9, 0.1, 0.75, 0.3], 1),
    ([float("nan"), float("inf")], 2),
    ([0.05 * i % 0.7 for i in range(23)], 5),
]


def probe_q1_beams(beam_select):
    from lab_utils.model_search.search import Completed
    from lab_utils.model_search.space import ArchSpec

    histories = [
        ([0.31, 0.77, float("nan"), 0.77, 0.12, float("inf"), 0.55, 0.9, float("-inf"), 0.4], 4),
        ([0.5, 0.5, 0.5, 0.2], 3),
        ([float("nan"), 0.1, 0.3], 5),
        ([0.6, float("nan"), 0.2, 0.9, 0.9, 0.1, 0.75, 0.3], 1),
        ([float("nan"), float("inf")], 2),
        ([0.05 * i % 0.7 for i in range(23)], 5),
    ]
    out = []
    for values, k in histories:
        # trial numbers are not positions: a store hands trials back in any order
        trials = [Completed(100 + 7 * i, v, ArchSpec(("CONV3_16",))) for i, v in enumerate(values)][::-1]
        out.append([t.number for t in beam_select(trials, k)])
    return out


def judge_q1_beams(out):
    no_error(out, "beam selection")
    for got, (values, k) in zip(out, HISTORIES, strict=True):
        valid = [(v, 100 + 7 * i) for i, v in enumerate(values) if math.isfinite(v)]
        want = [n for _, n in sorted(valid, key=lambda p: (-p[0], p[1]))[:k]]
        assert got == want, f"objectives {values}, beam_size {k}: expected trials {want}, got {got}"


def probe_q1_errors(beam_select):
    out = []
    for k in (0, -2):
        try:
            beam_select([], k)
            out.append("no error")
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    no_error(out, "beam_size < 1")
    assert all(isinstance(o, str) and o.startswith("ValueError") for o in out), \
        f"beam_size 0 and -2 must raise ValueError, got {out}"


# ---------------------------------------------------------------- q2: a mutation under a parameter budget
MUTATION_CASES = [
    (("CONV5_32", "DENSE_32", "MAXPOOL2"), 9, 20, 5, 6000),
    (("MAXPOOL2", "MAXPOOL2", "MAXPOOL2", "CONV3_16"), 4, 8, 3, 100000),   # the last slot cannot pool
    (("GRU_32", "RESNET3"), 5, 12, 7, 9000),
    (("DENSE_32",), 3, 10, 2, 400),
]


def probe_q2_mutations(mutate_within_budget):
    import numpy as np

    from lab_utils.model_search.space import ArchSpec

    cases = [
        (("CONV5_32", "DENSE_32", "MAXPOOL2"), 9, 20, 5, 6000),
        (("MAXPOOL2", "MAXPOOL2", "MAXPOOL2", "CONV3_16"), 4, 8, 3, 100000),
        (("GRU_32", "RESNET3"), 5, 12, 7, 9000),
        (("DENSE_32",), 3, 10, 2, 400),
    ]
    out = []
    for blocks, c, length, classes, budget in cases:
        children = []
        for seed in range(120):
            child = mutate_within_budget(ArchSpec(blocks), np.random.default_rng(seed + 7000), c, length, classes,
                                         budget)
            children.append(list(child.blocks))
        out.append(children)
    return out


def _feasible(blocks, c, length, classes, budget):
    """Brute force: every (position, block) whose child can be built and fits the budget."""
    from lab_utils.model_search.space import (
        BLOCK_NAMES,
        ArchSpec,
        build_model,
        count_parameters,
        is_buildable,
    )

    ok = set()
    for pos in range(len(blocks)):
        for b in BLOCK_NAMES:
            if b == blocks[pos]:
                continue
            child = ArchSpec(blocks[:pos] + (b,) + blocks[pos + 1:])
            if is_buildable(child, length) and count_parameters(build_model(child, c, length, classes)) <= budget:
                ok.add((pos, b))
    return ok


def judge_q2_valid_children(out):
    no_error(out, "mutations")
    for children, (blocks, c, length, classes, budget) in zip(out, MUTATION_CASES, strict=True):
        ok = _feasible(blocks, c, length, classes, budget)
        for child in children:
            diff = [i for i, (a, b) in enumerate(zip(blocks, child)) if a != b]
            assert len(child) == len(blocks) and len(diff) == 1, \
                f"parent {blocks}: a child must differ in exactly one block, got {child}"
            assert (diff[0], child[diff[0]]) in ok, \
                f"parent {blocks}, {length} frames, budget {budget}: {child} cannot be built or has too many parameters"


def judge_q2_uniform_positions(out):
    no_error(out, "mutations")
    for children, (blocks, c, length, classes, budget) in zip(out, MUTATION_CASES, strict=True):
        positions = {p for p, _ in _feasible(blocks, c, length, classes, budget)}
        counts = {p: 0 for p in positions}
        for child in children:
            diff = [i for i, (a, b) in enumerate(zip(blocks, child)) if a != b]
            if len(diff) == 1 and diff[0] in counts:
                counts[diff[0]] += 1
        expected = len(children) / len(positions)
        assert all(abs(n - expected) < 5 * math.sqrt(expected) for n in counts.values()), \
            f"parent {blocks}: the position should be uniform over the {len(positions)} positions that have a " \
            f"valid replacement; got counts {counts}"


def probe_q2_impossible(mutate_within_budget):
    import numpy as np

    from lab_utils.model_search.space import ArchSpec

    try:
        mutate_within_budget(ArchSpec(("CONV5_32", "GRU_32")), np.random.default_rng(1), 11, 16, 4, 50)
        return "no error"
    except ValueError as exc:
        return f"ValueError: {exc}"


def judge_q2_impossible(out):
    no_error(out, "no feasible mutation")
    assert isinstance(out, str) and out.startswith("ValueError"), \
        f"no block fits a 50-parameter budget: expected a ValueError, got {out!r}"


# ---------------------------------------------------------------- q3: how much snapshot transfer copies
PAIRS = [
    (("SEPCONV5_32", "GRU_32"), ("SEPCONV5_32", "GRU_32", "AVGPOOL2"), 7, 20, 3),
    (("CONV3_16", "RESNET3", "DENSE_32"), ("CONV5_32", "RESNET3", "DENSE_32"), 10, 24, 6),
    (("DILATED3_32", "MAXPOOL2", "CONV3_32"), ("DILATED3_32", "AVGPOOL2", "CONV3_32"), 5, 16, 9),
    (("CONV3_32", "CONV5_16"), ("CONV3_32", "CONV5_32", "RESNET3"), 8, 12, 4),
    (("GRU_32",), ("DENSE_32",), 6, 9, 2),
]


def probe_q3_fractions(transferred_fraction):
    from lab_utils.model_search.space import ArchSpec

    pairs = [
        (("SEPCONV5_32", "GRU_32"), ("SEPCONV5_32", "GRU_32", "AVGPOOL2"), 7, 20, 3),
        (("CONV3_16", "RESNET3", "DENSE_32"), ("CONV5_32", "RESNET3", "DENSE_32"), 10, 24, 6),
        (("DILATED3_32", "MAXPOOL2", "CONV3_32"), ("DILATED3_32", "AVGPOOL2", "CONV3_32"), 5, 16, 9),
        (("CONV3_32", "CONV5_16"), ("CONV3_32", "CONV5_32", "RESNET3"), 8, 12, 4),
        (("GRU_32",), ("DENSE_32",), 6, 9, 2),
    ]
    out = []
    for parent, child, c, length, classes in pairs:
        got = transferred_fraction(ArchSpec(parent), ArchSpec(child), c, length, classes)
        out.append({"copied": float(got["copied"]), "tensors": sorted(got["tensors"])})
    return out


def judge_q3_measured(out):
    """Against the book's snapshot transfer, run here on freshly built models."""
    no_error(out, "transferred_fraction")
    from lab_utils.model_search.space import ArchSpec, build_model
    from lab_utils.model_search.transfer import transfer_weights

    for got, (parent, child, c, length, classes) in zip(out, PAIRS, strict=True):
        p = build_model(ArchSpec(parent), c, length, classes).state_dict()
        model = build_model(ArchSpec(child), c, length, classes)
        names = transfer_weights(model, p)
        sizes = {k: v.numel() for k, v in model.state_dict().items()}
        want = sum(sizes[k] for k in names) / sum(sizes.values())
        assert sorted(names) == got["tensors"], f"{parent} -> {child}: expected tensors {sorted(names)}, got {got['tensors']}"
        assert abs(got["copied"] - want) < 1e-9, f"{parent} -> {child}: expected fraction {want:.6f}, got {got['copied']}"


HIDDEN = [
    Hidden("q1", 2, probe_q1_beams, judge_q1_beams),
    Hidden("q1", 1, probe_q1_errors, judge_q1_errors, requires=("judge_q1_beams",)),
    # a valid child at a biased position is not Model Search's mutation: validity and uniformity go together
    Hidden("q2", 2, probe_q2_mutations, judge_q2_valid_children, requires=("judge_q2_uniform_positions",),
           timeout=90),
    Hidden("q2", 1, probe_q2_mutations, judge_q2_uniform_positions, requires=("judge_q2_valid_children",), timeout=90),
    Hidden("q2", 1, probe_q2_impossible, judge_q2_impossible,
           requires=("judge_q2_valid_children", "judge_q2_uniform_positions")),
    Hidden("q3", 2, probe_q3_fractions, judge_q3_measured),
]
