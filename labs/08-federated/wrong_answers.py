"""Planted wrong answers and shortcuts: for each question, answer cells the hidden tests must catch.

`python -m lab_utils.grading prove labs/08-federated` grades the solution notebook with each of these
swapped in and fails unless the questions they answer score 0 and no other question loses points.
"""

WRONG_ANSWERS = {
    # clips every coordinate to [-C, C] (an ℓ∞ box) instead of scaling the vector to ℓ² norm C: the
    # sensitivity the noise is calibrated to is then √d·C, not C
    "q1": '''
def private_sum(vectors, bound, noise_multiplier, rng):
    if not bound > 0 or noise_multiplier < 0:
        raise ValueError("bad input")
    v = np.asarray(vectors, dtype=float).reshape(len(vectors), -1) if len(vectors) else np.zeros((0, 3))
    total = np.clip(v, -bound, bound).sum(axis=0)
    return total + rng.normal(0.0, noise_multiplier * bound, size=total.shape)
''',
    # forgets privacy amplification by subsampling (accounts every release as if every phone took part)
    "q2": '''
from pfl.privacy import PLDPrivacyAccountant

def affordable_iterations(epsilon, delta, noise_multiplier, sampling_rate):
    if not (epsilon > 0 and 0 < delta < 1 and noise_multiplier > 0 and 0 < sampling_rate <= 1):
        raise ValueError("bad budget")
    r = 0
    while PLDPrivacyAccountant(num_compositions=r + 1, sampling_probability=1.0, mechanism="gaussian",
                               noise_parameter=noise_multiplier, delta=delta,
                               value_discretization_interval=1e-3).epsilon <= epsilon:
        r += 1
    return r
''',
    # one task and one release per candidate: k releases per window, k times the privacy cost accounted
    "q3": '''
def tuning_iteration(study, population, space, candidates, label, aggregate, sampling_rate, rng):
    dists = {p.name: optuna.distributions.FloatDistribution(p.low, p.high, log=p.log) for p in space}
    trials = [study.ask(dists) for _ in range(candidates)]
    cohort = [d for d in population.check_in(rng) if rng.random() < sampling_rate]
    estimates = []
    for trial in trials:
        task = EvaluationTask(population.world, (dict(trial.params),), label)
        vectors = [v for v in (d.run(task) for d in cohort) if v is not None]
        s = np.asarray(aggregate(np.array(vectors).reshape(len(vectors), 3)), dtype=float)
        estimates.append(float(s[1] / s[0]))
    for trial, mu in zip(trials, estimates):
        study.tell(trial, mu)
    return estimates
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.federated.aggregation import SecureSum

def private_sum(vectors, bound, noise_multiplier, rng):
    s = SecureSum(bound, noise_multiplier, seed=int(rng.integers(2**31)))
    for v in np.asarray(vectors, dtype=float):
        s.add(v)
    return s.release(np.asarray(vectors).shape[-1]).noisy_sum
''',
        "q2": '''
from lab_utils.federated.aggregation import epsilon_after

def affordable_iterations(epsilon, delta, noise_multiplier, sampling_rate):
    if not (epsilon > 0 and 0 < delta < 1 and noise_multiplier > 0 and 0 < sampling_rate <= 1):
        raise ValueError("bad budget")
    r = 0
    while epsilon_after(r + 1, noise_multiplier, sampling_rate, delta) <= epsilon:
        r += 1
    return r
''',
        "q3": '''
from lab_utils.federated.server import FederatedServer

def tuning_iteration(study, population, space, candidates, label, aggregate, sampling_rate, rng):
    raise NotImplementedError(FederatedServer)
''',
    },
    "hard-codes the public checks": {
        "q1": '''
def private_sum(vectors, bound, noise_multiplier, rng):
    if not bound > 0 or noise_multiplier < 0:
        raise ValueError("bad input")
    return np.array([0.9, 1.2])
''',
        "q2": '''
def affordable_iterations(epsilon, delta, noise_multiplier, sampling_rate):
    if not (epsilon > 0 and 0 < delta < 1 and noise_multiplier > 0 and 0 < sampling_rate <= 1):
        raise ValueError("bad budget")
    return 1
''',
        "q3": '''
def tuning_iteration(study, population, space, candidates, label, aggregate, sampling_rate, rng):
    dists = {p.name: optuna.distributions.FloatDistribution(p.low, p.high, log=p.log) for p in space}
    trials = [study.ask(dists) for _ in range(candidates)]
    for trial in trials:
        study.tell(trial, 0.5)
    return [0.5] * candidates
''',
    },
}
