"""Hidden tests of lab 09 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are none of
the public tests', the questions' or the chapter's: other label pairs and category systems, other traits
(nose width, hair texture, skin, eye opening toward narrow), threshold labelers, other pools and seeds.
"""

import math

import numpy as np

from lab_utils.grading.hidden import Hidden, no_error


# ---------------------------------------------------------------- q1: consistency
def _q1_pairs():
    out = []
    for seed in range(20):
        rng = np.random.default_rng(9100 + seed)
        k, n = int(rng.integers(2, 8)), int(rng.integers(15, 300))
        a = rng.integers(0, k, n)
        b = np.where(rng.random(n) < rng.uniform(0.2, 0.9), a, rng.integers(0, k, n))
        out.append((a.tolist(), b.tolist(), [f"c{i}" for i in range(k + 1)]))   # c{k}: used by neither
    return out


def probe_q1_random(consistency):
    import numpy as np

    out = []
    for seed in range(20):
        rng = np.random.default_rng(9100 + seed)
        k, n = int(rng.integers(2, 8)), int(rng.integers(15, 300))
        a = rng.integers(0, k, n)
        b = np.where(rng.random(n) < rng.uniform(0.2, 0.9), a, rng.integers(0, k, n))
        got = consistency(a.tolist() if seed % 2 else a, b.tolist() if seed % 2 else b,
                          [f"c{i}" for i in range(k + 1)])
        out.append({"agreement": float(got["agreement"]), "kappa": float(got["kappa"]),
                    "per_category": {str(c): (None if v != v else float(v)) for c, v in got["per_category"].items()}})
    return out


def judge_q1_random(out):
    from sklearn.metrics import cohen_kappa_score

    no_error(out, "random label pairs")
    for got, (a, b, cats) in zip(out, _q1_pairs(), strict=True):
        a, b = np.array(a), np.array(b)
        what = f"{len(a)} faces, {len(cats) - 1} categories"
        assert abs(got["agreement"] - np.mean(a == b)) < 1e-9, f"{what}: agreement {np.mean(a == b):.6f}, got {got['agreement']!r}"
        want = cohen_kappa_score(a, b)
        assert abs(got["kappa"] - want) < 1e-9, f"{what}: kappa {want:.6f}, got {got['kappa']!r}"
        for c, name in enumerate(cats):
            union = np.sum((a == c) | (b == c))
            v = got["per_category"].get(name, "missing")
            if union == 0:
                assert v is None, f"{what}: category {name} is used by neither labeler: expected nan, got {v!r}"
            else:
                w = np.sum((a == c) & (b == c)) / union
                assert v is not None and v != "missing" and abs(v - w) < 1e-9, f"{what}: {name} expected {w:.6f}, got {v!r}"


def probe_q1_edges(consistency):
    out = []
    for a, b in [([3, 3, 3, 3], [3, 3, 3, 3]), ([0, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0]), ([1, 1, 1, 0], [1, 1, 1, 1]),
                 ([2], [2])]:
        got = consistency(a, b, ["u", "v", "w", "z"])
        out.append([float(got["agreement"]), float(got["kappa"])])
    return out


def judge_q1_edges(out):
    no_error(out, "edge cases")
    want = [[1.0, 1.0], [0.0, -1.0], [0.75, 0.0], [1.0, 1.0]]
    what = ["one same category for all faces", "complete disagreement, balanced", "one labeler constant", "one face"]
    for got, w, name in zip(out, want, what, strict=True):
        assert all(abs(x - y) < 1e-9 for x, y in zip(got, w)), f"{name}: expected (agreement, kappa) {w}, got {got!r}"


def probe_q1_errors(consistency):
    out = []
    for a, b in [([0, 1, 2], [0, 1]), ([], [])]:
        try:
            consistency(a, b, ["x", "y", "z"])
            out.append("no error")
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    no_error(out, "invalid inputs")
    for got, case in zip(out, ["different lengths", "no faces"], strict=True):
        assert got.startswith("ValueError"), f"{case} must raise ValueError, got {got!r}"


# ---------------------------------------------------------------- q2: counterfactual probe
# (annotator or threshold rule, trait, value, category, pool seed, pool size)
Q2_CASES = [("Regional-5", "nose_width", 0.95, 4, 9201, 1500), ("SkinTone-4", "hair_curl", 0.95, 0, 9202, 1200),
            ("HairColour-4", "skin", 0.3, 3, 9203, 1000), ("Regional-5", "eye_open", 0.1, 2, 9204, 900),
            ("SkinTone-4", "face_width", 0.9, 2, 9205, 800), ("nose>0.55", "nose_width", 0.8, 1, 9206, 1100)]


def _q2_predict(name):
    from lab_utils.fairness.annotators import DATASETS

    if name == "nose>0.55":
        return lambda t: (t.values["nose_width"] > 0.55).astype(int)
    return DATASETS[name].label


def probe_q2_cases(trait_effect):
    from lab_utils.fairness.annotators import DATASETS
    from lab_utils.fairness.faces import sample_traits

    out = []
    for name, trait, value, category, seed, n in [
            ("Regional-5", "nose_width", 0.95, 4, 9201, 1500), ("SkinTone-4", "hair_curl", 0.95, 0, 9202, 1200),
            ("HairColour-4", "skin", 0.3, 3, 9203, 1000), ("Regional-5", "eye_open", 0.1, 2, 9204, 900),
            ("SkinTone-4", "face_width", 0.9, 2, 9205, 800), ("nose>0.55", "nose_width", 0.8, 1, 9206, 1100)]:
        predict = (lambda t: (t.values["nose_width"] > 0.55).astype(int)) if name == "nose>0.55" else DATASETS[name].label
        got = trait_effect(predict, sample_traits(n, seed=seed), trait, value, category, n_boot=800, seed=5)
        out.append([float(v) for v in got])
    return out


def _q2_effects():
    from lab_utils.fairness.faces import sample_traits

    out = []
    for name, trait, value, category, seed, n in Q2_CASES:
        predict, t = _q2_predict(name), sample_traits(n, seed=seed)
        out.append((np.asarray(predict(t.with_trait(trait, value))) == category).astype(float)
                   - (np.asarray(predict(t)) == category))
    return out


def judge_q2_estimates(out):
    no_error(out, "counterfactual probes")
    for got, x, case in zip(out, _q2_effects(), Q2_CASES, strict=True):
        assert len(got) == 3, f"return (estimate, low, high), got {got!r}"
        assert abs(got[0] - x.mean()) < 1e-9, \
            f"{case[0]}, {case[1]} -> {case[2]}, category {case[3]}: the effect is {x.mean():+.4f}, got {got[0]!r}"


def judge_q2_intervals(out):
    no_error(out, "counterfactual probes")
    for got, x, case in zip(out, _q2_effects(), Q2_CASES, strict=True):
        est, low, high = got
        if np.all(x == 0):
            assert low == high == 0, f"{case[:2]}: no face changes, the interval must be [0, 0], got {got!r}"
            continue
        se = x.std(ddof=1) / math.sqrt(len(x))
        ratio = (high - low) / (2 * 1.96 * se)
        assert low <= est <= high, f"{case[:2]}: the interval {low:+.4f}, {high:+.4f} must contain {est:+.4f}"
        assert 0.8 < ratio < 1.25, \
            f"{case[:2]}: a paired 95% interval is about {2 * 1.96 * se:.4f} wide here, yours is {high - low:.4f}"


# ---------------------------------------------------------------- q3: balancing, measured
# (annotator, trait, value, category, pool seed, size)
Q3_CASES = [("HairColour-4", "hair_light", 0.95, 1, 9301, 2400), ("Regional-5", "eye_open", 0.15, 2, 9302, 2000),
            ("SkinTone-4", "hair_curl", 0.9, 0, 9303, 1800)]


def probe_q3_cases(balance_and_probe):
    from lab_utils.fairness.annotators import DATASETS
    from lab_utils.fairness.faces import sample_traits

    out = []
    for name, trait, value, category, seed, n in [
            ("HairColour-4", "hair_light", 0.95, 1, 9301, 2400), ("Regional-5", "eye_open", 0.15, 2, 9302, 2000),
            ("SkinTone-4", "hair_curl", 0.9, 0, 9303, 1800)]:
        a = DATASETS[name]
        t = sample_traits(n, seed=seed, mix=a.mix)
        got = balance_and_probe(t, a.label(t), trait, value, category, seed=11)
        out.append({"counts": [int(c) for c in got["counts"]], "effect_original": float(got["effect_original"]),
                    "effect_balanced": float(got["effect_balanced"])})
    return out


def _q3_reference(name, trait, value, category, seed, n):
    from sklearn.linear_model import LogisticRegression

    from lab_utils.fairness.annotators import DATASETS
    from lab_utils.fairness.faces import sample_traits

    a = DATASETS[name]
    t = sample_traits(n, seed=seed, mix=a.mix)
    labels = a.label(t)
    cats = np.unique(labels)
    k = int(round(n / len(cats)))
    rng = np.random.default_rng(4242)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=k, replace=np.sum(labels == c) < k)
                          for c in cats])
    X, X_cf = t.matrix(), t.with_trait(trait, value).matrix()

    def effect(rows):
        m = LogisticRegression(max_iter=1000).fit(X[rows], labels[rows])
        return float(np.mean(m.predict(X_cf) == category) - np.mean(m.predict(X) == category))

    return len(cats), k, effect(np.arange(n)), effect(idx)


def judge_q3_counts(out):
    no_error(out, "balancing")
    for got, case in zip(out, Q3_CASES, strict=True):
        K, k, _, _ = _q3_reference(*case)
        assert got["counts"] == [k] * K, f"{case[0]}, {case[5]} faces in {K} categories: expected {[k] * K}, got {got['counts']}"


def judge_q3_effects(out):
    no_error(out, "balancing")
    for got, case in zip(out, Q3_CASES, strict=True):
        _, _, orig, bal = _q3_reference(*case)
        assert abs(got["effect_original"] - orig) < 1e-6, \
            f"{case[:3]}: the original model's effect is {orig:+.4f}, got {got['effect_original']:+.4f}"
        assert abs(got["effect_balanced"] - bal) < 0.08, \
            f"{case[:3]}: the balanced model's effect is about {bal:+.4f} (another resample), got {got['effect_balanced']:+.4f}"


HIDDEN = [
    Hidden("q1", 1.5, probe_q1_random, judge_q1_random, requires=("judge_q1_edges",)),
    Hidden("q1", 1, probe_q1_edges, judge_q1_edges, requires=("judge_q1_random",)),
    Hidden("q1", 0.5, probe_q1_errors, judge_q1_errors, requires=("judge_q1_random", "judge_q1_edges")),
    Hidden("q2", 1.5, probe_q2_cases, judge_q2_estimates, requires=("judge_q2_intervals",)),
    Hidden("q2", 1.5, probe_q2_cases, judge_q2_intervals, requires=("judge_q2_estimates",)),
    Hidden("q3", 1, probe_q3_cases, judge_q3_counts, requires=("judge_q3_effects",)),
    Hidden("q3", 1, probe_q3_cases, judge_q3_effects, requires=("judge_q3_counts",)),
]
