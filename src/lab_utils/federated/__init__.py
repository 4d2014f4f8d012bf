"""Federated evaluation and tuning of on-device personalization (Paulik et al. 2021, arXiv 2102.08503).

``population`` — the simulated news readers and their phones (sealed logs, eligibility, check-ins);
``personalization`` — the on-device model with its 6- or 11-parameter vector, the device-side loss and the
evaluation task; ``aggregation`` — clipped, noised secure sums of metric vectors and their (ε, δ) budget, on
pfl's ``GaussianMechanism``, ``MappedVectorStatistics`` and PLD accountant; ``server`` — scheduling windows and
federated evaluation; ``tuning`` — the tuning loop with Optuna; ``abtest`` — the simulated A/B test.
"""
