"""Differentially private synthetic data: one module per synthesizer, shared data/metrics/accounting.

``mwem.MWEM``, ``dpgan.DPGAN``, ``pategan.PATEGAN``, ``dpctgan.DPCTGAN``, ``patectgan.PATECTGAN``
(both need the ``ctgan`` package) and ``quail.QUAIL`` share one interface:
``fit(df, epsilon, delta=..., schema=...)``, ``sample(n)``, ``epsilon_spent``.
``reident`` is the Narayanan-Shmatikov re-identification attack run against the releases.
"""
