"""lab_utils.model_search: specs, the builder, Model Search's beam search, weight transfer, distillation,
ensembles, and the persistent store surviving a worker killed mid-trial."""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp

import numpy as np
import optuna
import pytest
import torch

from lab_utils.model_search.ensemble import (
    average_ensemble,
    greedy_ensemble_selection,
    load_trials,
    pareto_front,
)
from lab_utils.model_search.platform import SearchConfig, create_search, run_search, search_worker
from lab_utils.model_search.search import (
    Completed,
    allowed_depth,
    beam_select,
    mutate_replace,
    random_spec,
    suggest_beam,
    suggest_optuna,
)
from lab_utils.model_search.space import BLOCK_NAMES, BLOCKS, ArchSpec, build_model, is_buildable
from lab_utils.model_search.trainer import accuracy
from lab_utils.model_search.transfer import (
    average_transfer,
    balance_lambda,
    distillation_loss,
    transfer_weights,
)

LENGTH, CHANNELS, CLASSES = 16, 6, 4
TINY = {"n_train": 96, "n_val": 48, "n_test": 48, "n_mels": 8, "n_frames": 24}


def _forward_ok(spec: ArchSpec) -> bool:
    model = build_model(spec, CHANNELS, LENGTH, CLASSES)
    return model(torch.randn(3, CHANNELS, LENGTH)).shape == (3, CLASSES)


# ------------------------------------------------------------------------------------ specs and builder
def test_specs_round_trip_and_build():
    rng = np.random.default_rng(0)
    for depth in range(1, 6):
        for i in range(20):
            spec = random_spec(rng, depth, LENGTH)
            again = ArchSpec.from_json(spec.to_json())
            assert again == spec and again.blocks == spec.blocks
            assert i > 3 or _forward_ok(spec)


def test_bad_specs_give_clear_errors():
    with pytest.raises(ValueError, match="BLOCK_NAMES"):
        ArchSpec(("CONV3_16", "CONV7_99"))
    with pytest.raises(ValueError, match="at least one block"):
        ArchSpec(())
    with pytest.raises(ValueError, match="pooling blocks"):
        build_model(ArchSpec(("MAXPOOL2",) * 5), CHANNELS, LENGTH, CLASSES)   # 16 -> 0 frames
    with pytest.raises(ValueError, match="blocks"):
        ArchSpec.from_json('["CONV3_16"]')
    with pytest.raises(TypeError, match="ArchSpec"):
        build_model('{"blocks": ["CONV3_16"]}', CHANNELS, LENGTH, CLASSES)
    assert _forward_ok(ArchSpec(("MAXPOOL2",) * 4))                            # 16 -> 1 frame is fine


# ------------------------------------------------------------------------------------ beam search
def test_allowed_depth_matches_model_search_thresholds():
    # common.get_allowed_depth with [5 i]: brute force "number of thresholds <= n", capped at max_depth
    for n in range(40):
        assert allowed_depth(n, 5) == min(5, sum(5 * i <= n for i in range(5)))
    assert allowed_depth(3, 5, [0, 2, 4, 6, 8]) == 2
    with pytest.raises(ValueError):
        allowed_depth(0, 2, [0, 1, 2])


def test_beam_select_skips_invalid_and_breaks_ties_by_age():
    s = ArchSpec(("CONV3_16",))
    done = [Completed(0, 0.5, s), Completed(1, float("nan"), s), Completed(2, 0.9, s), Completed(3, 0.5, s),
            Completed(4, float("inf"), s), Completed(5, 0.7, s)]
    assert [t.number for t in beam_select(done, 3)] == [2, 5, 0]
    assert [t.number for t in beam_select(done, 99)] == [2, 5, 0, 3]
    with pytest.raises(ValueError):
        beam_select(done, 0)


def test_every_mutation_yields_a_buildable_model():
    rng = np.random.default_rng(1)
    for _ in range(40):
        parent = random_spec(rng, int(rng.integers(1, 6)), LENGTH)
        child = mutate_replace(parent, rng, LENGTH)
        assert child.depth == parent.depth
        assert sum(a != b for a, b in zip(parent.blocks, child.blocks)) <= 1
        assert _forward_ok(child)
    # the check has teeth: replacing without the buildability rule does produce unbuildable children
    parent = ArchSpec(("MAXPOOL2",) * 4 + ("CONV3_16",))
    naive = [ArchSpec(parent.blocks[:4] + (b,)) for b in BLOCK_NAMES]
    assert not all(is_buildable(c, LENGTH) for c in naive)


def test_suggest_beam_deepens_or_mutates_a_beam_member():
    rng = np.random.default_rng(2)
    done = [Completed(i, v, random_spec(rng, 1 + i % 2, LENGTH)) for i, v in enumerate([.1, .9, .5, .7, .3, .8, .2])]
    beam = {t.number for t in beam_select(done, 5)}
    parents, hows = [], []
    for seed in range(400):
        spec, parent, how = suggest_beam(done, np.random.default_rng(seed), LENGTH, thresholds=[0, 2, 4, 6, 8])
        assert parent in beam and (seed >= 20 or _forward_ok(spec))
        base = done[parent].spec
        if how == "deepen":
            assert spec.blocks[:-1] == base.blocks and spec.depth == base.depth + 1
        else:
            assert how == "mutate" and spec.depth == base.depth
        parents.append(parent)
        hows.append(how)
    counts = np.bincount(parents, minlength=7)[sorted(beam)]
    assert counts.min() > 400 / 5 * 0.6                       # the parent is uniform over the beam
    assert abs(hows.count("deepen") / 400 - 0.9) < 0.06       # deepen with probability 0.9
    spec, parent, how = suggest_beam([], np.random.default_rng(0), LENGTH)
    assert (parent, how, spec.depth) == (None, "random", 1)


def test_optuna_suggestion_covers_the_same_space():
    spec = suggest_optuna(optuna.trial.FixedTrial({"depth": 2, "block_0": "CONV5_32", "block_1": "GRU_32"}), LENGTH)
    assert spec == ArchSpec(("CONV5_32", "GRU_32"))
    fixed = optuna.trial.FixedTrial({"depth": 5, **{f"block_{i}": "AVGPOOL2" for i in range(5)}})
    assert suggest_optuna(fixed, LENGTH) is None              # 16 frames pooled five times


# ------------------------------------------------------------------------------------ weight transfer
@pytest.mark.parametrize("parent_blocks, child_blocks", [
    (("CONV3_16", "CONV5_32"), ("CONV3_16", "CONV5_32", "RESNET3")),        # deepened: all parent tensors fit
    (("CONV3_16", "CONV5_32", "DENSE_32"), ("CONV3_16", "CONV3_32", "DENSE_32")),  # replaced the middle block
    (("CONV3_16", "GRU_32"), ("CONV5_32", "GRU_32")),                        # channel change downstream
])
def test_transfer_copies_exactly_the_matching_tensors(parent_blocks, child_blocks):
    torch.manual_seed(0)
    parent = build_model(ArchSpec(parent_blocks), CHANNELS, LENGTH, CLASSES).state_dict()
    child = build_model(ArchSpec(child_blocks), CHANNELS, LENGTH, CLASSES)
    before = {k: v.clone() for k, v in child.state_dict().items()}
    copied = transfer_weights(child, parent)
    want = {k for k, v in before.items() if k in parent and parent[k].shape == v.shape}
    assert set(copied) == want and want
    for k, v in child.state_dict().items():
        assert torch.equal(v, parent[k] if k in want else before[k]), k


def test_average_transfer_uniform_and_loss_weighted():
    torch.manual_seed(0)
    spec = ArchSpec(("CONV3_16",))
    states = [build_model(spec, CHANNELS, LENGTH, CLASSES).state_dict() for _ in range(3)]
    states[2] = build_model(ArchSpec(("CONV3_32",)), CHANNELS, LENGTH, CLASSES).state_dict()  # shapes differ
    losses = [0.2, 1.5, 0.1]
    child = build_model(spec, CHANNELS, LENGTH, CLASSES)
    average_transfer(child, states, mode="uniform")
    w = child.state_dict()["blocks.0.conv.weight"]
    assert torch.allclose(w, (states[0]["blocks.0.conv.weight"] + states[1]["blocks.0.conv.weight"]) / 2)
    average_transfer(child, states, losses, mode="loss_weighted")
    a, b = math.exp(-0.2), math.exp(-1.5)                       # softmax(-loss) over the two that match
    want = (a * states[0]["blocks.0.conv.weight"] + b * states[1]["blocks.0.conv.weight"]) / (a + b)
    assert torch.allclose(child.state_dict()["blocks.0.conv.weight"], want, atol=1e-6)
    with pytest.raises(ValueError):
        average_transfer(child, states, mode="loss_weighted")


def test_distillation_loss_and_balance():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, y, t, 0.0), ce)
    assert torch.allclose(distillation_loss(s, y, s, 3.0), ce, atol=1e-6)      # KL(p || p) = 0
    # CE to the teacher's softmax = KL + the teacher's entropy (Model Search's form, same gradient)
    p = torch.softmax(t, 1)
    soft_ce = -(p * torch.log_softmax(s, 1)).sum(1).mean()
    entropy = -(p * torch.log(p)).sum(1).mean()
    assert torch.allclose(distillation_loss(s, y, t, 1.0) - ce, soft_ce - entropy, atol=1e-5)
    assert [balance_lambda(i, 2, 4, 0.0, 1.0) for i in range(8)] == [0, 0, 0, .25, .5, .75, 1, 1.25]
    assert balance_lambda(7, 0, 0) == 1.0


# ------------------------------------------------------------------------------------ ensembles
def test_ensembles_and_pareto_front():
    torch.manual_seed(0)
    y = torch.randint(0, 3, (60,))
    logits = [torch.randn(60, 3) + 1.5 * torch.nn.functional.one_hot(y, 3) * (i % 2) for i in range(5)]
    chosen = greedy_ensemble_selection(logits, y, max_size=6)
    single = max(accuracy(v, y) for v in logits)
    assert accuracy(average_ensemble([logits[i] for i in chosen]), y) >= single
    assert chosen[0] == int(np.argmax([accuracy(v, y) for v in logits]))
    params, acc = [5, 1, 3, 4, 2, 6], [.6, .2, .7, .5, .2, .9]
    front = pareto_front(params, acc)
    brute = [i for i in range(6) if not any(params[j] <= params[i] and acc[j] >= acc[i] and
                                             (params[j], acc[j]) != (params[i], acc[i]) for j in range(6))]
    assert sorted(front) == sorted(brute)


# ------------------------------------------------------------------------------------ the store
def test_store_survives_a_worker_killed_mid_trial(tmp_path):
    config = SearchConfig(task_options=TINY, n_trials=4, train_steps=6, depth_thresholds=(0, 1, 2, 3, 4))
    name = "crash"
    create_search(tmp_path, config, name)
    # one worker that dies (os._exit) halfway through trial 2, as a preempted or out-of-memory worker does
    proc = mp.get_context("fork").Process(target=search_worker, args=(0, 1, str(tmp_path), name, 2))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 3, f"the worker should have died with os._exit(3), exit code {proc.exitcode}"
    states = {r.number: r.state for r in load_trials(tmp_path, name)}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "RUNNING"}
    run_search(tmp_path, config, n_workers=0, study_name=name)      # resume
    records = load_trials(tmp_path, name)
    assert records[2].state == "FAIL"
    done = [r for r in records if r.state == "COMPLETE"]
    assert len(done) == config.n_trials and all(r.parent != 2 for r in done)
    with pytest.raises(ValueError, match="another config"):
        run_search(tmp_path, SearchConfig(task_options=TINY, n_trials=5), n_workers=0, study_name=name)


def test_block_registry_is_consistent():
    for name, (make, out_channels, stride) in BLOCKS.items():
        module = make(CHANNELS)
        out = module(torch.randn(2, CHANNELS, LENGTH))
        assert out.shape == (2, out_channels(CHANNELS), LENGTH // stride), name
    assert len(set(itertools.chain(BLOCK_NAMES))) == len(BLOCKS)


@pytest.mark.parametrize("options", [dict(transfer="uniform"), dict(transfer="loss_weighted", distill=True),
                                     dict(searcher="tpe", n_startup_trials=1), dict(task="digits", task_options={})])
def test_every_search_mode_runs_end_to_end(tmp_path, options):
    config = SearchConfig(**{**dict(task_options=TINY, n_trials=3, train_steps=4, depth_thresholds=(0, 1, 2, 3, 4)),
                             **options})
    name = run_search(tmp_path, config, n_workers=0)
    done = [r for r in load_trials(tmp_path, name) if r.state == "COMPLETE"]
    assert len(done) == 3 and all(0 <= r.val_accuracy <= 1 and r.params > 0 for r in done)
