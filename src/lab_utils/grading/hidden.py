"""Hidden tests as *probe* + *judge* pairs, and the plain data that passes between them.

A hidden test is split where the student's code ends:

* ``probe(student_fn, ...)`` runs **in the sandbox**, in the process that ran the submission: it calls
  the student's functions on inputs the public tests and the chapter never show and returns what
  they produced — numbers, strings, lists, dicts, NumPy arrays, tensors. Its parameters name the
  student's objects, as otter's test functions do. It must be self-contained (imports inside), as
  its source is all that enters the sandbox.
* ``judge(out)`` runs **in the grading process**, where no student code ever ran, on ``out``: the
  probe's result after a round trip through :func:`encode` / :func:`decode` (plain JSON: the student's
  objects never leave the sandbox). It asserts with trusted tools and references, so a submission that
  monkeypatches ``torch.allclose`` or ``assert`` helpers changes nothing here.

A probe that raises sends :class:`Raised` (exception type name and message) to its judge: a test
that asks for a ``ValueError`` checks ``out == Raised("ValueError", …)`` via :func:`raised`.

A lab's hidden tests live in ``labs/NN-topic/hidden.py`` as ``HIDDEN = [Hidden(...), ...]``; that
file never goes into the student's bundle nor into the sandbox.
"""

from __future__ import annotations

import base64
import importlib.util
import inspect
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_RESULT_BYTES = 64 * 2**20  # a probe result larger than this is refused, not parsed


@dataclass(frozen=True)
class Hidden:
    """One hidden test: ``points`` of ``question`` when ``judge(decode(probe(...)))`` passes."""

    question: str
    points: float
    probe: Callable[..., Any]
    judge: Callable[[Any], None]
    timeout: float = 60.0  # seconds for the probe inside the sandbox
    # judges (by name) that must pass too for this test to earn its points: a question's side checks
    # (errors raised, edge cases) are worth nothing when its core claim is wrong
    requires: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The test's name: its judge's (several tests may share one probe)."""
        return self.judge.__name__

    @property
    def probe_name(self) -> str:
        return self.probe.__name__

    @property
    def arguments(self) -> list[str]:
        """The student's objects the probe takes, by name."""
        return list(inspect.signature(self.probe).parameters)

    def probe_source(self) -> str:
        return textwrap.dedent(inspect.getsource(self.probe))


@dataclass(frozen=True)
class Raised:
    """What a probe sends when the student's code raised: the exception's type name and message."""

    type: str
    message: str = ""


def raised(out: Any, *types: str) -> bool:
    """True when the probe's call raised one of the exception ``types`` (by name)."""
    return isinstance(out, Raised) and out.type in types


def no_error(out: Any, what: str = "") -> None:
    """A judge's first check: the student's code did not raise while ``what`` was probed (the judge
    cannot read a result that is not there)."""
    if isinstance(out, Raised):
        raise AssertionError(f"{what + ': ' if what else ''}your code raised {out.type}: {out.message[:300]}")


def load_hidden(lab_dir: str | Path) -> list[Hidden]:
    """``HIDDEN`` from ``lab_dir/hidden.py`` (the instructor's file), checked for shape."""
    path = Path(lab_dir) / "hidden.py"
    if not path.exists():
        raise ValueError(f"{lab_dir} has no hidden.py: write its hidden tests as HIDDEN = [Hidden(...)]"
                         " (see lab_utils.grading.hidden)")
    spec = importlib.util.spec_from_file_location(f"_hidden_{Path(lab_dir).name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = list(module.HIDDEN)
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two hidden tests share a judge: {names}")
    for t in tests:
        unknown = set(t.requires) - set(names)
        if unknown:
            raise ValueError(f"{path}: {t.name} requires unknown tests {sorted(unknown)}")
        if not t.arguments:
            raise ValueError(f"{path}: probe {t.name} takes no student object; name them as parameters")
    return tests


# ----------------------------------------------------------------------------- plain data
def encode(value: Any) -> Any:
    """``value`` as JSON-able plain data; tensors and arrays by dtype, shape and raw bytes."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else {"__float__": repr(value)}
    if isinstance(value, Raised):
        return {"__raised__": [value.type, value.message[:500]]}
    if isinstance(value, (list, tuple)):
        items = [encode(v) for v in value]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    kind = type(value).__module__.split(".")[0]
    if kind == "numpy":
        import numpy as np

        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError("object arrays are not plain data")
        if arr.ndim == 0 and not isinstance(value, np.ndarray):
            return encode(arr.item())
        return {"__ndarray__": [arr.dtype.str, list(arr.shape), _b64(np.ascontiguousarray(arr).tobytes())]}
    if kind == "torch":
        import torch

        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu").contiguous()
            return {"__tensor__": [str(t.dtype).removeprefix("torch."), list(t.shape), _b64(t.numpy().tobytes())]}
    raise TypeError(f"a probe returned a {type(value).__name__}: return numbers, strings, lists, dicts, "
                    "tuples, NumPy arrays or tensors")


def decode(data: Any) -> Any:
    """The inverse of :func:`encode`, building fresh objects (nothing from the sandbox survives)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        raise ValueError(f"not plain data: {str(data)[:200]}")
    (tag, body), = data.items()
    if tag == "__tuple__":
        return tuple(decode(v) for v in body)
    if tag == "__dict__":
        return {_hashable(decode(k)): decode(v) for k, v in body}
    if tag == "__float__":
        return float(body)
    if tag == "__raised__":
        return Raised(str(body[0]), str(body[1]))
    if tag in ("__ndarray__", "__tensor__"):
        import numpy as np

        dtype, shape, raw = body
        np_dtype = np.dtype(dtype) if tag == "__ndarray__" else _torch_numpy_dtype(dtype)
        arr = np.frombuffer(base64.b64decode(raw), dtype=np_dtype).reshape(shape).copy()
        if tag == "__ndarray__":
            return arr
        import torch

        return torch.from_numpy(arr)
    raise ValueError(f"not plain data: {str(data)[:200]}")


def dumps(value: Any) -> str:
    return json.dumps(encode(value))


def loads(text: str) -> Any:
    if len(text) > MAX_RESULT_BYTES:
        raise ValueError(f"a probe result of {len(text)} bytes is over the {MAX_RESULT_BYTES} limit")
    return decode(json.loads(text))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _torch_numpy_dtype(name: str):
    import numpy as np

    table = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int64": np.int64,
             "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}
    if name not in table:
        raise ValueError(f"tensor dtype {name} is not plain data here: convert it to float32 in the probe")
    return table[name]
