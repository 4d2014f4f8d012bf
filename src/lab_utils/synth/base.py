"""The template every synthesizer follows: one ``fit``/``sample`` preamble, written once.

``fit(df, epsilon, delta=None, schema=None)`` checks ε and δ, validates the table against the schema (or
reads one from it, with a warning that the domain is then not covered by ε), falls back to the class's
``default_delta``, calls the subclass's ``_fit(df, epsilon, delta)``, and marks the model fitted only if
``_fit`` returned; ``sample(n)`` refuses an unfitted model or a bad ``n`` and calls ``_sample(n)``.
``uses_delta`` says whether ``_fit`` spends part of δ (the pure-ε mechanisms do not): QUAIL reads it to
split δ between its two parts. Every subclass sets ``epsilon_spent`` in ``_fit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd

from .data import Schema, fit_preamble


class Synthesizer(ABC):
    """``fit(df, epsilon, delta)`` → ``_fit``; ``sample(n)`` → ``_sample``; ``epsilon_spent`` after fit."""

    uses_delta: bool = True              # does _fit() consume part of δ?
    default_delta: float | None = 1e-5   # δ when fit() is given none (None: a pure-ε mechanism)
    epsilon_spent: float = 0.0
    fitted: bool = False

    def fit(self, df: pd.DataFrame, epsilon: float, delta: float | None = None,
            schema: Schema | None = None) -> Synthesizer:
        delta = self.default_delta if delta is None else delta
        self.fitted = False
        self.schema = fit_preamble(df, schema, epsilon, delta)
        self._fit(df, epsilon, delta)
        self.delta = delta if self.uses_delta else None
        self.fitted = True
        return self

    def sample(self, n: int) -> pd.DataFrame:
        if not self.fitted:
            raise RuntimeError(f"call fit(df, epsilon{', delta' if self.uses_delta else ''}) before sample(n)")
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"n={n!r}: ask for a whole number of rows >= 1")
        return self._sample(int(n))

    @abstractmethod
    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float | None) -> None:
        """Fit on ``df`` (already validated against ``self.schema``) within (ε, δ); set ``epsilon_spent``."""

    @abstractmethod
    def _sample(self, n: int) -> pd.DataFrame:
        """``n`` synthetic rows with ``self.schema``'s columns."""
