"""Mark the book's reference implementations that a lab asks students to write.

A lab grades a student's own version of some ``lab_utils`` functions. Those references (and their
*twins*: other functions that return the same answer under another name) are marked with
:func:`graded_reference`. The marker changes nothing when the book runs; the grading build of
``lab_utils`` (:func:`lab_utils.grading.build.grading_package`) **deletes** every marked function,
and every module that imports one, so an answer that calls them fails while it is graded. (An
earlier guard raised while an environment variable was set: student code could reset the variable
or dig the original out of the wrapper's closure. Code that is not there cannot be reached.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
MARKER = "graded_reference"


def graded_reference(fn: F) -> F:
    """Mark ``fn`` as a reference a lab grades (removed from the grading build; unchanged here)."""
    fn.__graded_reference__ = True  # type: ignore[attr-defined]
    return fn
