"""Switch off the book's reference implementations while a lab is graded.

Labs ask students to write functions that ``lab_utils`` also contains. The references are
marked with :func:`graded_reference`; when the grader runs a submission it sets
``LAB_GRADING=1`` and they raise, so an answer that just calls them earns nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

GRADING_ENV = "LAB_GRADING"
F = TypeVar("F", bound=Callable)


class ReferenceDisabledError(RuntimeError):
    """Raised by a lab_utils reference function while a lab is being graded."""


def graded_reference(fn: F) -> F:
    """Mark a lab_utils function that a lab asks students to write: it raises while grading."""

    @functools.wraps(fn)
    def reference(*args, **kwargs):
        if os.environ.get(GRADING_ENV) == "1":
            raise ReferenceDisabledError(
                f"{fn.__module__}.{fn.__name__} is switched off while labs are graded: "
                "implement it yourself instead of calling the book's reference")
        return fn(*args, **kwargs)

    del reference.__wrapped__  # no back door to the original while grading
    return reference  # type: ignore[return-value]
