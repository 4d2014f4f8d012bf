"""Planted wrong answers and shortcuts: for each question, answer cells the hidden tests must catch.

`python -m lab_utils.grading prove labs/09-fairness` grades the solution notebook with each of these
swapped in and fails unless the questions they answer score 0 and no other question loses points.
"""

WRONG_ANSWERS = {
    # chance agreement as 1/K (uniform labelers) instead of the labelers' own frequencies
    "q1": '''
def consistency(a, b, categories) -> dict:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError("bad input")
    p_o = float(np.mean(a == b))
    p_e = 1.0 / len(np.union1d(a, b))
    per = {}
    for c, name in enumerate(categories):
        union = np.sum((a == c) | (b == c))
        per[name] = float(np.sum((a == c) & (b == c)) / union) if union else float("nan")
    return {"agreement": p_o, "kappa": 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e), "per_category": per}
''',
    # unpaired bootstrap: resamples originals and counterfactuals independently, so the interval is far
    # too wide (the pairing is what makes a counterfactual probe sharp)
    "q2": '''
def trait_effect(predict, traits, trait, value, category, n_boot=1000, seed=0):
    before = (np.asarray(predict(traits)) == category).astype(float)
    after = (np.asarray(predict(traits.with_trait(trait, value))) == category).astype(float)
    rng = np.random.default_rng(seed)
    n = len(before)
    diffs = [after[rng.integers(0, n, n)].mean() - before[rng.integers(0, n, n)].mean() for _ in range(n_boot)]
    return float(after.mean() - before.mean()), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))
''',
    # "balances" by undersampling every category to the smallest one: equal counts, but not the same size
    "q3": '''
from sklearn.linear_model import LogisticRegression

def balance_and_probe(traits, labels, trait, value, category, seed=0) -> dict:
    labels = np.asarray(labels)
    cats = np.unique(labels)
    k = min(int(np.sum(labels == c)) for c in cats)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c in cats])
    X, X_cf = traits.matrix(), traits.with_trait(trait, value).matrix()

    def effect(rows):
        m = LogisticRegression(max_iter=1000).fit(X[rows], labels[rows])
        return float(np.mean(m.predict(X_cf) == category) - np.mean(m.predict(X) == category))

    return {"counts": [k] * len(cats), "effect_original": effect(np.arange(len(labels))), "effect_balanced": effect(idx)}
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.fairness.probes import agreement, category_consistency, cohen_kappa

def consistency(a, b, categories) -> dict:
    return {"agreement": agreement(a, b), "kappa": cohen_kappa(a, b),
            "per_category": category_consistency(a, b, categories)}
''',
        "q2": '''
from lab_utils.fairness.probes import counterfactual_shift

def trait_effect(predict, traits, trait, value, category, n_boot=1000, seed=0):
    e = counterfactual_shift(predict, traits, trait, value, category, n_boot=n_boot, seed=seed)
    return e.estimate, e.low, e.high
''',
        "q3": '''
from sklearn.linear_model import LogisticRegression
import lab_utils.fairness.probes as probes

def balance_and_probe(traits, labels, trait, value, category, seed=0) -> dict:
    labels = np.asarray(labels)
    idx = probes.balanced_indices(labels, seed=seed)
    X, X_cf = traits.matrix(), traits.with_trait(trait, value).matrix()

    def effect(rows):
        m = LogisticRegression(max_iter=1000).fit(X[rows], labels[rows])
        return float(np.mean(m.predict(X_cf) == category) - np.mean(m.predict(X) == category))

    return {"counts": [int(np.sum(labels[idx] == c)) for c in np.unique(labels)],
            "effect_original": effect(np.arange(len(labels))), "effect_balanced": effect(idx)}
''',
    },
    # the book's bootstrap helper: the twin of the interval half of Question 2
    "undecorated twin": {
        "q2": '''
from lab_utils.fairness.probes import bootstrap_mean_ci

def trait_effect(predict, traits, trait, value, category, n_boot=1000, seed=0):
    x = (np.asarray(predict(traits.with_trait(trait, value))) == category).astype(float) \\
        - (np.asarray(predict(traits)) == category)
    e = bootstrap_mean_ci(x, n_boot=n_boot, seed=seed)
    return e.estimate, e.low, e.high
''',
    },
    "public inputs only": {
        "q1": '''
def consistency(a, b, categories) -> dict:
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("bad input")
    return {"agreement": 4 / 6, "kappa": 0.5, "per_category": {"x": 1 / 3, "y": 2 / 3, "z": 1 / 2}}
''',
        "q2": '''
def trait_effect(predict, traits, trait, value, category, n_boot=1000, seed=0):
    return 0.0, 0.0, 0.0
''',
        "q3": '''
def balance_and_probe(traits, labels, trait, value, category, seed=0) -> dict:
    cats = np.unique(labels)
    return {"counts": [int(round(len(labels) / len(cats)))] * len(cats), "effect_original": 0.0,
            "effect_balanced": 0.0}
''',
    },
    # the annotator's own rule probed instead of a trained model: the counterfactual of the labels, not of
    # the model the question asks about
    "probes the labels, not the model": {
        "q3": '''
def balance_and_probe(traits, labels, trait, value, category, seed=0) -> dict:
    labels = np.asarray(labels)
    cats = np.unique(labels)
    k = int(round(len(labels) / len(cats)))
    share = float(np.mean(labels == category))
    return {"counts": [k] * len(cats), "effect_original": 1.0 - share, "effect_balanced": 1.0 - share}
''',
    },
}
