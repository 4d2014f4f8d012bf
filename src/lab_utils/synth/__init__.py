"""Differentially private synthetic data: one module per synthesizer, shared data/metrics/accounting.

``mwem.MWEM``, ``dpgan.DPGAN``, ``pategan.PATEGAN``, ``dpctgan.DPCTGAN``, ``patectgan.PATECTGAN``
(both need the ``ctgan`` package), ``quail.QUAIL`` and the marginal-based ``mst.MST``, ``aim.AIM`` and
``mwem_pgm.MWEMPGM`` (on Private-PGM, ``mbi``, through ``pgm``) share one template, ``base.Synthesizer``:
``fit(df, epsilon, delta=..., schema=...)`` runs the shared checks and calls ``_fit``; ``sample(n)`` calls
``_sample``; ``epsilon_spent`` after fit.
Shared mechanisms: ``dpsgd`` (the one DP-SGD clip-and-noise step), ``pate`` (the one PATE teacher
loop and noisy vote), ``pgm`` (noisy marginals, Private-PGM estimation, model marginals, sampling),
``accounting`` (composition, RDP, PATE moments, zCDP). ``audit`` checks those
mechanisms while a synthesizer trains and audits DP-SGD empirically (a lower bound on ε).
``reident`` is the Narayanan-Shmatikov re-identification attack run against the releases.
"""
