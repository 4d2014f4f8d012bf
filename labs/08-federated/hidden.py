"""Hidden tests of lab 08 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are none of
the public tests', the questions' or the chapter's: other dimensions, bounds and noise multipliers; other
budgets, δ and sampling rates; other populations, numbers of candidates, the 11-parameter space, a read label.
"""

import numpy as np

from lab_utils.grading.hidden import Hidden, no_error


# ---------------------------------------------------------------- q1: private_sum
def _q1_cases():
    out = []
    for seed in range(12):
        rng = np.random.default_rng(8100 + seed)
        n, d = int(rng.integers(1, 40)), int(rng.integers(1, 7))
        v = rng.normal(0, rng.uniform(0.2, 6), (n, d))
        v[rng.random(n) < 0.1] = 0.0                       # some devices report zeros
        out.append((v, float(rng.uniform(0.3, 5.0))))
    return out


def probe_q1_exact(private_sum):
    import numpy as np

    out = []
    for seed in range(12):
        rng = np.random.default_rng(8100 + seed)
        n, d = int(rng.integers(1, 40)), int(rng.integers(1, 7))
        v = rng.normal(0, rng.uniform(0.2, 6), (n, d))
        v[rng.random(n) < 0.1] = 0.0
        bound = float(rng.uniform(0.3, 5.0))
        got = private_sum(v.tolist() if seed % 2 else v, bound, 0.0, np.random.default_rng(seed))
        out.append(np.asarray(got, dtype=float).tolist())
    empty = private_sum(np.zeros((0, 3)), 1.0, 0.0, np.random.default_rng(0))
    out.append(np.asarray(empty, dtype=float).tolist())
    return out


def judge_q1_exact(out):
    no_error(out, "clipped sums without noise")
    for got, (v, bound) in zip(out, _q1_cases()):
        norms = np.linalg.norm(v, axis=1)
        want = (v * np.minimum(1.0, bound / np.where(norms > 0, norms, 1.0))[:, None]).sum(axis=0)
        assert len(got) == len(want) and np.allclose(got, want, atol=1e-9), \
            f"{len(v)} vectors of dimension {v.shape[1]}, bound {bound:.3f}: expected {np.round(want, 4)}, got {got}"
    assert np.allclose(out[-1], [0, 0, 0]), f"an empty cohort (shape (0, 3)) without noise sums to zeros, got {out[-1]}"


def probe_q1_noise(private_sum):
    import numpy as np

    out = {}
    for name, bound, sigma, v in [("zeros", 1.7, 0.6, np.zeros((5, 3))),
                                  ("data", 0.4, 2.5, np.random.default_rng(3).normal(0, 3, (20, 2)))]:
        draws = [np.asarray(private_sum(v, bound, sigma, np.random.default_rng(500 + i)), dtype=float)
                 for i in range(400)]
        out[name] = {"mean": np.mean(draws, axis=0).tolist(), "sd": np.std(draws, axis=0).tolist()}
    return out


def judge_q1_noise(out):
    no_error(out, "noise over 400 draws")
    v = np.random.default_rng(3).normal(0, 3, (20, 2))
    norms = np.linalg.norm(v, axis=1)
    clipped = (v * np.minimum(1.0, 0.4 / norms)[:, None]).sum(axis=0)
    for name, bound, sigma, centre in [("zeros", 1.7, 0.6, np.zeros(3)), ("data", 0.4, 2.5, clipped)]:
        sd, mean = np.array(out[name]["sd"]), np.array(out[name]["mean"])
        assert np.all(np.abs(sd / (sigma * bound) - 1) < 0.15), \
            f"bound {bound}, σ {sigma}: the noise's measured sd per coordinate is {np.round(sd, 3)}, expected σ·C = {sigma * bound:.3f}"
        assert np.all(np.abs(mean - centre) < 4 * sigma * bound / np.sqrt(400)), \
            f"bound {bound}, σ {sigma}: the mean over 400 draws {np.round(mean, 3)} is not the clipped sum {np.round(centre, 3)}"


def probe_q1_errors(private_sum):
    import numpy as np

    out = []
    for bound, sigma in [(0.0, 1.0), (-1.0, 1.0), (1.0, -0.5)]:
        try:
            private_sum(np.ones((2, 2)), bound, sigma, np.random.default_rng(0))
            out.append("no error")
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    no_error(out, "invalid inputs")
    for got, case in zip(out, ["bound = 0", "bound < 0", "noise_multiplier < 0"], strict=True):
        assert got.startswith("ValueError"), f"{case} must raise ValueError, got {got!r}"


# ---------------------------------------------------------------- q2: affordable_iterations
Q2_CASES = [(2.0, 1e-6, 3.0, 0.4), (1.0, 1e-5, 1.5, 0.05), (3.0, 1e-7, 2.5, 0.3), (2.0, 1e-6, 1.0, 0.1),
            (6.0, 1e-6, 1.2, 1.0)]


def probe_q2_cases(affordable_iterations):
    out = []
    for case in [(2.0, 1e-6, 3.0, 0.4), (1.0, 1e-5, 1.5, 0.05), (3.0, 1e-7, 2.5, 0.3), (2.0, 1e-6, 1.0, 0.1),
                 (6.0, 1e-6, 1.2, 1.0)]:
        out.append(int(affordable_iterations(*case)))
    return out


def judge_q2_cases(out):
    from lab_utils.federated.aggregation import epsilon_after

    no_error(out, "budgets")
    for got, (eps, delta, sigma, q) in zip(out, Q2_CASES, strict=True):
        what = f"(ε, δ) = ({eps}, {delta:g}), σ = {sigma}, q = {q}"
        assert got >= 0, f"{what}: a number of releases is >= 0, got {got}"
        spent = epsilon_after(got, sigma, q, delta)
        assert spent <= eps * 1.002, f"{what}: {got} releases cost ε = {spent:.4f} > {eps}: too many"
        more = epsilon_after(got + 1, sigma, q, delta)
        assert more > eps * 0.998, f"{what}: {got + 1} releases still cost only ε = {more:.4f} <= {eps}: not the largest"


def probe_q2_errors(affordable_iterations):
    out = []
    for case in [(0.0, 1e-6, 1.0, 0.1), (1.0, 1.5, 1.0, 0.1), (1.0, 1e-6, 0.0, 0.1), (1.0, 1e-6, 1.0, 0.0),
                 (1.0, 1e-6, 1.0, 1.5)]:
        try:
            affordable_iterations(*case)
            out.append("no error")
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q2_errors(out):
    no_error(out, "invalid budgets")
    for got, case in zip(out, ["ε = 0", "δ >= 1", "σ = 0", "q = 0", "q > 1"], strict=True):
        assert got.startswith("ValueError"), f"{case} must raise ValueError, got {got!r}"


# ---------------------------------------------------------------- q3: tuning_iteration
def probe_q3_runs(tuning_iteration):
    import numpy as np
    import optuna

    from lab_utils.federated.personalization import ELEVEN, SIX, Label
    from lab_utils.federated.population import NewsWorld

    class Everyone:                    # every phone checks in every window (eligibility set aside)
        def __init__(self, pop):
            self.pop, self.world, self.runs = pop, pop.world, 0

        def check_in(self, rng):
            return [Proxy(self, d) for d in self.pop.devices]

    class Proxy:
        def __init__(self, owner, device):
            self.owner, self.device = owner, device

        def run(self, task):
            self.owner.runs += 1
            return self.device.run(task)

    out = {}
    for name, space, label, k, n, seed in [("six, k=1", SIX, Label(), 1, 250, 8301),
                                            ("eleven, k=3, read", ELEVEN, Label(20), 3, 300, 8302),
                                            ("six, k=5", SIX, Label(), 5, 200, 8303)]:
        pop = Everyone(NewsWorld(seed=seed).population(n, seed=seed + 1))
        calls = []

        def aggregate(v, calls=calls):
            v = np.asarray(v, dtype=float)
            calls.append(list(v.shape))
            return v.sum(axis=0)

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        got = tuning_iteration(study, pop, space, k, label, aggregate, 1.0, np.random.default_rng(seed))
        out[name] = {"estimates": [float(x) for x in got], "calls": calls, "runs": pop.runs,
                     "trials": [dict(t.params) for t in study.trials],
                     "values": [None if t.value is None else float(t.value) for t in study.trials]}
    pop = Everyone(NewsWorld(seed=8304).population(800, seed=8305))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    tuning_iteration(study, pop, SIX, 2, Label(), lambda v: np.asarray(v, dtype=float).sum(axis=0), 0.3,
                     np.random.default_rng(4))
    out["sampling 0.3 of 800"] = {"runs": pop.runs}
    return out


_Q3 = {"six, k=1": (0, 1, 250, 8301), "eleven, k=3, read": (20, 3, 300, 8302), "six, k=5": (0, 5, 200, 8303)}


def _cohort_vectors(min_seconds, params, n, seed):
    """Every phone's upload for the student's trials (the judge may open the simulator's vaults)."""
    from lab_utils.federated.personalization import EvaluationTask, Label
    from lab_utils.federated.population import NewsWorld

    pop = NewsWorld(seed=seed).population(n, seed=seed + 1)
    task = EvaluationTask(pop.world, tuple(params), Label(min_seconds))
    return np.array([v for v in (d.run(task) for d in pop.devices) if v is not None])


def judge_q3_estimates(out):
    no_error(out, "tuning iterations")
    for name, (secs, k, n, seed) in _Q3.items():
        got = out[name]
        assert len(got["trials"]) == k, f"{name}: expected {k} new trials in the study, found {len(got['trials'])}"
        assert got["values"] == got["estimates"], f"{name}: the study was told {got['values']}, you returned {got['estimates']}"
        v = _cohort_vectors(secs, got["trials"], n, seed)
        s = v.sum(axis=0)
        want = [s[2 * j + 1] / s[0] for j in range(k)]
        assert np.allclose(got["estimates"], want, rtol=1e-9), \
            f"{name}: with every phone sampled and a plain sum, the estimates are {np.round(want, 6)}, got {got['estimates']}"


def judge_q3_one_release(out):
    no_error(out, "tuning iterations")
    for name, (_, k, n, _) in _Q3.items():
        calls = out[name]["calls"]
        assert len(calls) == 1, f"{name}: aggregate was called {len(calls)} times: one window is one release"
        assert calls[0][1:] == [1 + 2 * k], \
            f"{name}: the release must hold every candidate ([1, l_1, l_1², …]: {1 + 2 * k} values per phone), got shape {calls[0]}"
        assert out[name]["runs"] == n, f"{name}: with sampling rate 1 every one of the {n} phones runs the task once, got {out[name]['runs']}"


def judge_q3_sampling(out):
    no_error(out, "tuning iterations")
    runs = out["sampling 0.3 of 800"]["runs"]
    sd = np.sqrt(800 * 0.3 * 0.7)
    assert abs(runs - 240) < 4 * sd, f"sampling rate 0.3 of 800 checked-in phones: expected about 240 runs, got {runs}"


HIDDEN = [
    Hidden("q1", 1.5, probe_q1_exact, judge_q1_exact, requires=("judge_q1_noise",)),
    Hidden("q1", 1, probe_q1_noise, judge_q1_noise, requires=("judge_q1_exact",)),
    Hidden("q1", 0.5, probe_q1_errors, judge_q1_errors, requires=("judge_q1_exact", "judge_q1_noise")),
    Hidden("q2", 1.5, probe_q2_cases, judge_q2_cases, timeout=90),
    Hidden("q2", 0.5, probe_q2_errors, judge_q2_errors, requires=("judge_q2_cases",)),
    Hidden("q3", 1.5, probe_q3_runs, judge_q3_estimates, requires=("judge_q3_one_release",)),
    Hidden("q3", 1, probe_q3_runs, judge_q3_one_release, requires=("judge_q3_estimates",)),
    Hidden("q3", 0.5, probe_q3_runs, judge_q3_sampling, requires=("judge_q3_estimates", "judge_q3_one_release")),
]
