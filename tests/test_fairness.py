"""lab_utils.fairness: the face generator, the annotators, the probes, the data pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from lab_utils.fairness.annotators import COMMON, DATASETS, blend, identical_twin, labelled_faces
from lab_utils.fairness.classifier import FaceDataset, face_transform, predict, train_classifier
from lab_utils.fairness.faces import TRAITS, render_faces, sample_traits
from lab_utils.fairness.probes import (
    agreement,
    agreement_matrix,
    balanced_indices,
    bootstrap_mean_ci,
    category_consistency,
    cohen_kappa,
    counterfactual_shift,
    group_metrics,
)

W = COMMON.index("White")


@pytest.fixture(scope="module")
def pool():
    return sample_traits(3000, seed=5)


# ------------------------------------------------------------------ generator
def test_generator_is_deterministic_per_seed():
    a, b, c = sample_traits(50, 3), sample_traits(50, 3), sample_traits(50, 4)
    assert np.array_equal(a.matrix(), b.matrix()) and np.array_equal(render_faces(a), render_faces(b))
    assert not np.array_equal(a.matrix(), c.matrix())
    img = render_faces(a)
    assert img.shape == (50, 32, 32, 3) and img.dtype == np.uint8


def test_counterfactual_changes_only_its_trait():
    t = sample_traits(40, 1)
    same = t.with_trait("skin", t.values["skin"])
    assert np.array_equal(render_faces(same), render_faces(t))        # same noise, same nuisance
    cf = t.with_trait("hair_light", 0.95)
    assert all(np.array_equal(cf.values[k], t.values[k]) for k in TRAITS if k != "hair_light")
    diff = np.any(render_faces(cf) != render_faces(t), axis=-1)       # (n, 32, 32) changed pixels
    assert diff.any(axis=(1, 2)).all()
    assert not diff[:, 18:26, 12:20].any(), "blond hair must not change the centre of the lower face"
    with pytest.raises(ValueError, match="unknown trait"):
        t.with_trait("race", 1.0)


def test_subset_keeps_identity_and_labels():
    t = sample_traits(30, 2)
    a = DATASETS["Regional-5"]
    idx = np.array([7, 3, 21])
    assert np.array_equal(a.label(t.subset(idx)), a.label(t)[idx])    # slips fixed per (annotator, face)


# ------------------------------------------------------------------ agreement and kappa
def test_consistency_is_one_for_identical_labelers_and_falls_as_rules_diverge(pool):
    a, b = DATASETS["SkinTone-4"], DATASETS["HairColour-4"]
    assert agreement(a.label(pool), a.label(pool)) == 1.0
    assert agreement(a.label(pool), identical_twin(a, 99).label(pool)) > 0.85   # other slips only
    base = a.label(pool)
    ag = [agreement(base, blend(a, b, alpha).label(pool)) for alpha in (0.0, 0.35, 0.7, 1.0)]
    assert ag[0] == 1.0 and all(x > y for x, y in zip(ag, ag[1:])), ag


def test_agreement_matrix_is_symmetric_with_unit_diagonal(pool):
    m = agreement_matrix({n: a.common(a.label(pool)) for n, a in DATASETS.items()})
    assert np.allclose(m.to_numpy(), m.to_numpy().T) and np.allclose(np.diag(m), 1.0)


def _kappa_from_confusion(a, b):
    """Cohen's kappa from the confusion matrix, written independently of the reference."""
    cats = sorted(set(a) | set(b))
    m = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        m[cats.index(x), cats.index(y)] += 1
    m /= m.sum()
    p_e = m.sum(1) @ m.sum(0)
    return (np.trace(m) - p_e) / (1 - p_e)


@pytest.mark.parametrize("seed", range(6))
def test_cohen_kappa_matches_sklearn_and_confusion(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    a = rng.integers(0, k, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, k, 200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert cohen_kappa(a, b) == pytest.approx(_kappa_from_confusion(list(a), list(b)), abs=1e-12)
    raw = lambda x, y: float(np.mean(x == y))          # a planted broken variant: no chance correction
    assert abs(raw(a, b) - cohen_kappa_score(a, b)) > 1e-3, "the comparison must be able to fail"


def test_kappa_edges_and_errors():
    assert cohen_kappa([2, 2, 2], [2, 2, 2]) == 1.0
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one length"):
        cohen_kappa([0, 1], [0])


def test_category_consistency_by_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    got = category_consistency(a, b, ["x", "y", "z", "never"])
    for c, name in enumerate(["x", "y", "z"]):
        sa, sb = {i for i in range(100) if a[i] == c}, {i for i in range(100) if b[i] == c}
        assert got[name] == pytest.approx(len(sa & sb) / len(sa | sb))
    assert np.isnan(got["never"])


# ------------------------------------------------------------------ bootstrap and counterfactuals
def test_bootstrap_interval_matches_normal_approximation():
    x = np.random.default_rng(1).normal(0.3, 1.0, 400)
    ci = bootstrap_mean_ci(x, n_boot=3000, seed=0)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert ci.low < x.mean() < ci.high
    assert (ci.high - ci.low) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_counterfactual_hair_effect(pool):
    skin, hair = DATASETS["SkinTone-4"], DATASETS["HairColour-4"]
    none = counterfactual_shift(lambda t: skin.common(skin.label(t)), pool, "hair_light", 0.9, W, n_boot=300)
    assert none.low <= 0 <= none.high and none.estimate == 0
    some = counterfactual_shift(lambda t: hair.common(hair.label(t)), pool, "hair_light", 0.9, W, n_boot=300)
    assert some.low > 0.3, some
    # the planted reverse: dark hair makes the stereotyped labeler call fewer faces White
    less = counterfactual_shift(lambda t: hair.common(hair.label(t)), pool, "hair_light", 0.0, W, n_boot=300)
    assert less.high < 0, less


def test_balanced_indices_equalise_counts():
    labels = np.repeat([0, 1, 2], [500, 60, 40])
    idx = balanced_indices(labels, seed=0)
    assert len(idx) == 600 and np.array_equal(np.bincount(labels[idx]), [200, 200, 200])
    assert len(set(idx[labels[idx] == 0])) == 200                   # the large category is subsampled


def test_group_metrics_match_a_hand_count():
    rng = np.random.default_rng(3)
    y, p, g = rng.integers(0, 3, 300), rng.integers(0, 3, 300), rng.choice(["a", "b"], 300)
    mf = group_metrics(y, p, g, positive=1, n_categories=3)
    for grp in ("a", "b"):
        m = g == grp
        assert mf.by_group.loc[grp, "accuracy"] == pytest.approx(np.mean(y[m] == p[m]))
        assert mf.by_group.loc[grp, "selection rate"] == pytest.approx(np.mean(p[m] == 1))
        assert np.array_equal(mf.by_group.loc[grp, "confusion"].sum(), m.sum())


# ------------------------------------------------------------------ the data pipeline
def test_dataset_from_files_equals_dataset_from_array(tmp_path):
    from PIL import Image

    images = render_faces(sample_traits(5, 0))
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(paths[-1])
    from_files = FaceDataset(paths, [0, 1, 2, 3, 0], face_transform(size=32))
    from_array = FaceDataset(images, [0, 1, 2, 3, 0])
    for i in range(5):
        assert torch.allclose(from_files[i][0], from_array[i][0], atol=1e-6)
    with pytest.raises(ValueError, match="one label per image"):
        FaceDataset(images, [0, 1])


def test_small_cnn_learns_an_annotator():
    a = DATASETS["HairColour-4"]
    _, images, labels = labelled_faces(a, 600, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)              # tiny convolutions: a second thread only contends
    try:
        model = train_classifier(images[:450], labels[:450], len(a.categories), epochs=2, lr=5e-3, batch_size=32)
        acc = agreement(predict(model, images[450:]), labels[450:])
    finally:
        torch.set_num_threads(threads)
    majority = np.bincount(labels[450:]).max() / 150
    assert acc > majority + 0.2, f"a trained classifier should beat the majority class ({majority:.2f}) clearly, got {acc:.2f}"
