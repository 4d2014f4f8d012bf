import numpy as np
import pytest

from lab_utils.synth.reident import Ratings, attack, eccentricity, item_weights, make_ratings, scoreboard


@pytest.fixture(scope="module")
def table():
    return make_ratings(n_users=600, n_items=150, mean_ratings=15, zipf=0.8, seed=0)


def test_attack_reidentifies_raw_release(table):
    res = attack(table, table, n_targets=60, n_known=8, seed=1)
    assert res["success"] > 0.7 and res["baseline"] < 0.05


def test_attack_fails_when_links_between_ratings_are_broken(table):
    rng = np.random.default_rng(0)  # release each item column shuffled independently: marginals kept, people gone
    idx = np.stack([rng.permutation(len(table.ratings)) for _ in range(table.ratings.shape[1])], axis=1)
    shuffled = Ratings(np.take_along_axis(table.ratings, idx, 0), np.take_along_axis(table.dates, idx, 0))
    res = attack(table, shuffled, n_targets=60, n_known=8, seed=1)
    assert res["success"] <= 0.05


def test_rare_items_weigh_more_and_scoring_is_exact():
    r = np.zeros((4, 3), dtype=int)
    r[:, 0] = 3  # item 0 rated by everyone, item 1 by two users, item 2 by nobody
    r[0, 1] = r[1, 1] = 4
    release = Ratings(r)
    w = item_weights(release)
    assert w[1] > w[0] and w[0] == pytest.approx(1 / np.log(4))
    aux = {"items": np.array([0, 1]), "ratings": np.array([3, 4])}
    s = scoreboard(aux, release, w)
    np.testing.assert_allclose(s, [w[0] + w[1], w[0] + w[1], w[0], w[0]])
    assert eccentricity(np.array([1.0, 1.0, 5.0])) == pytest.approx(4 / np.std([1, 1, 5]))


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="mean_ratings"):
        make_ratings(n_users=10, n_items=5, mean_ratings=50)


def test_known_items_restrict_the_adversary(table):
    from lab_utils.synth.reident import auxiliary_information

    items = np.argsort(-(table.ratings > 0).sum(0))[:10]
    rng = np.random.default_rng(0)
    for t in range(20):
        aux = auxiliary_information(table, t, 3, rng, items=items)
        assert set(aux["items"]) <= set(items) and set(aux["items"]) <= set(np.flatnonzero(table.ratings[t]))
    res = attack(table, table, n_targets=40, n_known=3, seed=1, known_items=items)
    assert 0 <= res["success"] <= res["claimed"] <= 1
    with pytest.raises(ValueError, match="fewer targets"):
        attack(table, table, n_targets=600, n_known=3, seed=1, known_items=items)
