"""Tasks, scheduling and federated evaluation: the server side of FE&T (Paulik et al. 2021, the system design).

The server defines a *task* (parameters for the on-device model plus the metric to compute) and never
contacts devices: devices *check in* when their local preconditions hold (charging, Wi-Fi, idle), the
server samples each check-in at a task-agnostic rate q and hands it one of the live tasks, the device
checks the task's own precondition (enough local data), runs it on its own log and uploads only the
metric vector, which goes into that task's secure sum. One scheduling window = one release per task.

A window runs one task; a tuning iteration's k candidates travel in it together and every device of the
cohort scores all of them (the comparisons share the cohort, so cohort-to-cohort sampling noise cancels
out of them). A device's data enters one release per window: a tuning run of R windows is R compositions
of the subsampled Gaussian mechanism at rate q (the probability a device is sampled is e_d·q ≤ q).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .aggregation import PrivacyBudget, Release, SecureSum
from .personalization import TAPPED, EvaluationTask, Label


@dataclass
class ServerLog:
    """Everything the server received: releases only (tests check that nothing else ever arrives)."""

    releases: list[Release] = field(default_factory=list)


class FederatedServer:
    """Schedules tasks on checked-in devices and receives one DP release per task per window."""

    def __init__(self, population, budget: PrivacyBudget, clip: float, seed: int) -> None:
        self._check_in = population.check_in  # the server can only wait for check-ins...
        self.world = population.world         # ...and knows the public side of the world
        self.budget, self.clip = budget, clip
        self.rng = np.random.default_rng(seed)
        self.log = ServerLog()

    def evaluate(self, task: EvaluationTask) -> Release:
        """One scheduling window: charge the budget, sample check-ins at rate q, release the cohort's noisy sum."""
        self.budget.charge()                       # before any device runs: a spent budget releases nothing
        secure_sum = SecureSum(self.clip, self.budget.noise_multiplier, seed=int(self.rng.integers(2**31)))
        for device in self._check_in(self.rng):
            if self.rng.random() < self.budget.sampling_rate:
                vector = device.run(task)
                if vector is not None:
                    secure_sum.add(vector)
        release = secure_sum.release(task.dim)
        self.log.releases.append(release)
        return release

    def estimate(self, params: dict[str, float], label: Label = TAPPED) -> tuple[float, float, float]:
        """Federated evaluation of one parameter vector: (μ̂, CI low, CI high) from one window's release."""
        return self.evaluate(EvaluationTask(self.world, (params,), label)).mean_interval()

