"""Inside the sandbox: run a submission's code cells, then the probes, and write their plain results.

``python -m lab_utils.grading.runner`` reads a job from standard input (JSON: the notebook's path,
the probes' sources, the result path), so nothing hidden is ever a file the submission could open,
nor a command-line argument it could read from ``/proc``. The cells run in one IPython shell, as in
a kernel (magics work, an error in one cell does not stop the next), without the otter cells
(``grader = otter.Notebook(...)``, ``grader.check(...)``, the export): grading does not need them.
Then each probe gets the student's objects it names and its own time limit (``SIGALRM``); its
result, or the exception it raised, goes through :func:`lab_utils.grading.hidden.encode`. Results are
written after every probe, so a submission killed by the overall time limit keeps the ones before.

Nothing here is trusted: the student's code shares this process and could forge the result file.
It can only forge *claims* (numbers for inputs it did not choose), which the judge checks outside.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

OTTER_CELL_STARTS = ("grader.check", "grader.export", "import otter", "grader = otter.")


class ProbeTimeout(Exception):
    pass


def code_cells(notebook_path: str) -> list[str]:
    """The submission's code cells, minus the otter plumbing cells."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if code and code[0].lstrip().startswith(OTTER_CELL_STARTS):
            continue
        cells.append(cell.source)
    return cells


def run_cells(shell, cells: list[str]) -> list[str]:
    """Run each cell as a kernel would; the errors, one line each, for the grader's feedback."""
    errors = []
    for i, src in enumerate(cells):
        result = shell.run_cell(src, store_history=False)
        err = result.error_in_exec or result.error_before_exec
        if err is not None:
            errors.append(f"cell {i}: {type(err).__name__}: {str(err)[:300]}")
    return errors


def run_probe(probe: dict, user_ns: dict) -> Any:
    """Call one probe on the student's objects, within its time limit; a Raised on error."""
    from lab_utils.grading.hidden import Raised

    missing = [a for a in probe["arguments"] if a not in user_ns]
    if missing:
        return Raised("NameError", f"the notebook defines no {', '.join(missing)}")
    scope: dict = {}
    exec(compile(probe["source"], f"<probe {probe['name']}>", "exec"), scope)
    fn = scope[probe["name"]]

    def on_alarm(signum, frame):
        raise ProbeTimeout(f"over its {probe['timeout']:.0f} s limit")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(probe["timeout"]))
    try:
        return fn(*(user_ns[a] for a in probe["arguments"]))
    except BaseException as exc:  # noqa: BLE001 - whatever the student's code raised is the result
        return Raised(type(exc).__name__, str(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> int:
    job = json.loads(sys.stdin.read())
    os.environ.setdefault("MPLBACKEND", "agg")
    from IPython.core.interactiveshell import InteractiveShell

    from lab_utils.grading.hidden import Raised, encode

    shell = InteractiveShell.instance()
    report: dict = {"cell_errors": run_cells(shell, code_cells(job["notebook"])), "probes": {}}

    def write() -> None:
        tmp = job["out"] + ".part"
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, job["out"])

    write()
    for probe in job["probes"]:
        value = run_probe(probe, shell.user_ns)
        try:
            report["probes"][probe["name"]] = encode(value)
        except (TypeError, ValueError) as exc:
            report["probes"][probe["name"]] = encode(Raised("TypeError", str(exc)))
        write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
