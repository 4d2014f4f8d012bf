"""pytest plugin: nbval's executions of the chapters become the site's, so `make test` runs each once.

nbval executes every notebook (the check); Jupyter Book would then execute the same notebooks again
to render the site. With this plugin (``pytest -p tests.nbval_record --nbval-record-cache DIR``) each
notebook that nbval ran completely and that passed is written, with the outputs nbval collected from
the kernel (figures included), into the jupyter-cache at ``DIR`` — the cache the site build of the
same scale profile reads (``_build/.jupyter_cache/ci`` for ``make test``). The site build then finds
every chapter cached and executes nothing.

A notebook is not recorded (the site build would execute it itself) when any of its cells failed, was
skipped (``# NBVAL_SKIP``: the site would run it, so its outputs would be missing) or was not run
(``-k``, ``-x``, an interrupted run). ``--nbval-record-under PATH`` (repeatable) records only the
notebooks under those folders (``make nbval`` records ``book/``; the lab masters are not in the site).

The cache key is jupyter-cache's own: the notebook's code cells and kernelspec, so the recorded entry
is exactly the one ``jupyter-book build`` (execute_notebooks: cache) looks up for the same file.
"""

from __future__ import annotations

import copy
import platform
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

_CACHE_OPT = "--nbval-record-cache"


@dataclass
class _Notebook:
    path: Path
    outputs: dict[int, list] = field(default_factory=dict)  # code cell number -> outputs
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def pytest_addoption(parser):
    group = parser.getgroup("nbval_record", "record nbval's executions into a jupyter-cache")
    group.addoption(
        _CACHE_OPT,
        metavar="DIR",
        default=None,
        help="write each notebook that nbval executed completely and without failure, with its "
        "outputs, into the jupyter-cache at DIR (what `jupyter-book build` with "
        "execute_notebooks: cache reads)",
    )
    group.addoption(
        "--nbval-record-under",
        metavar="PATH",
        action="append",
        default=[],
        help="record only notebooks under PATH (repeatable; default: every notebook)",
    )


def _is_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "cell_num")


class Recorder:
    def __init__(self, config):
        self.config = config
        self.cache_dir = Path(config.getoption(_CACHE_OPT)).resolve()
        self.under = [Path(p).resolve() for p in config.getoption("--nbval-record-under")]
        self.running: dict[str, _Notebook] = {}
        self.recorded: list[str] = []
        self.not_recorded: list[str] = []

    def _wanted(self, path: Path) -> bool:
        return not self.under or any(path.is_relative_to(u) for u in self.under)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if not _is_cell(item):
            return
        path = Path(str(item.parent.fspath)).resolve()
        if not self._wanted(path):
            return
        nb = self.running.setdefault(item.parent.nodeid, _Notebook(path))
        report = outcome.get_result()
        if report.failed:
            nb.problems.append(f"cell {item.cell_num} failed ({report.when})")
        elif report.skipped:
            nb.problems.append(f"cell {item.cell_num} was skipped")
        elif call.when == "call":
            # nbval keeps the outputs it read from the kernel's iopub channel on the item
            nb.outputs[item.cell_num] = copy.deepcopy(list(item.test_outputs or []))
            nb.seconds += call.duration

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        yield
        # the notebook is done when its last cell item has run (its teardown stopped the kernel)
        if _is_cell(item) and (nextitem is None or nextitem.parent is not item.parent):
            nb = self.running.pop(item.parent.nodeid, None)
            if nb is not None:
                self._record(nb)

    def _record(self, run: _Notebook) -> None:
        rel = _relative(run.path)
        nb = nbformat.read(run.path, as_version=4)  # the file as the site build reads it
        code = [c for c in nb.cells if c.cell_type == "code"]
        missing = [i for i in range(len(code)) if i not in run.outputs]
        problems = list(run.problems)
        if missing and not problems:
            problems.append(f"cells {missing} were not run")
        if problems:
            self.not_recorded.append(f"{rel}: {'; '.join(problems[:3])}")
            return
        for count, (cell, outputs) in enumerate(zip(code, (run.outputs[i] for i in range(len(code)))), 1):
            cell.execution_count = count
            cell.outputs = [nbformat.from_dict(dict(o)) for o in outputs]
            for out in cell.outputs:
                if out.output_type == "execute_result":
                    out.execution_count = count
        # nbval runs the kernel of this environment (--nbval-current-env): say so as Jupyter does
        from ipykernel.ipkernel import IPythonKernel

        nb.metadata["language_info"] = {**IPythonKernel.language_info, "version": platform.python_version()}
        nbformat.validate(nb)

        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        cache = get_cache(str(self.cache_dir))
        record = cache.cache_notebook_bundle(
            CacheBundleIn(nb, str(run.path), data={"execution_seconds": run.seconds}),
            check_validity=True,  # execution counts 1, 2, 3 ... on every code cell
            overwrite=True,
        )
        figures = sum(
            1 for c in code for o in c.outputs if "image/png" in o.get("data", {})
        )
        self.recorded.append(f"{rel} (cache ID {record.pk}, {run.seconds:.0f} s, {figures} figure(s))")

    def pytest_terminal_summary(self, terminalreporter):
        for nb in self.running.values():  # notebooks whose last cell never ran
            self.not_recorded.append(f"{_relative(nb.path)}: not run to its end")
        if not (self.recorded or self.not_recorded):
            return
        tr = terminalreporter
        tr.section(f"nbval executions recorded into {_relative(self.cache_dir)}", sep="-")
        for line in self.recorded:
            tr.line(f"recorded: {line}")
        for line in self.not_recorded:
            tr.line(f"NOT recorded (the site build will execute it): {line}")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def pytest_configure(config):
    if config.getoption(_CACHE_OPT):
        config.pluginmanager.register(Recorder(config), "nbval_record_recorder")
