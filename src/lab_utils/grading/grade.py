"""Grade submissions: run each in its sandbox, judge its plain results here, in parallel.

:func:`grade_submission` is the whole path of one notebook: a result folder on the host, the
runner (:mod:`lab_utils.grading.runner`) inside bubblewrap (:mod:`lab_utils.grading.sandbox`) with
the job on its standard input, a wall-clock limit that kills the whole process group, then
:func:`judge` — in this process, where no student code ran — on the decoded results. A notebook that
hangs, crashes or floods its output scores what its finished probes earned (usually 0) with status
``timeout``/``crashed``; the batch goes on.

:func:`grade_folder` grades a folder with one worker per core (each submission single-threaded and
isolated) and writes the gradebook CSV; :mod:`lab_utils.grading.report` summarises it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab_utils.grading.build import LabBuild
from lab_utils.grading.hidden import Hidden, decode
from lab_utils.grading.sandbox import bwrap_command, limits, require_bwrap, scratch_dir

MEMORY_LIMIT = 8 * 2**30   # address space per submission: torch reserves a lot of virtual memory
FILE_LIMIT = 256 * 2**20


@dataclass
class Grade:
    submission: str
    scores: dict[str, float]
    status: str = "ok"          # ok | timeout | crashed
    seconds: float = 0.0
    detail: str = ""
    failed: dict[str, str] = field(default_factory=dict)   # hidden test -> why it failed
    cell_errors: list[str] = field(default_factory=list)   # cells that raised, one line each

    @property
    def total(self) -> float:
        return sum(self.scores.values())


# Judges rebuild their references with global RNGs (torch.manual_seed, np.random.seed); grade_folder
# grades submissions in threads, so judges take turns: interleaved, one judge's seed would feed another's
# draws and a right answer could be marked wrong (seen: lab 01's solution losing q3 under prove).
_JUDGE_LOCK = threading.Lock()


def judge(results: dict, hidden: tuple[Hidden, ...], points: dict[str, float]) -> tuple[dict, dict]:
    """Scores per question and failure reasons per test, from the probes' plain results.

    A test earns its points when its judge passes on the decoded result and so do the tests it
    ``requires``. Judges run one at a time in this process (``_JUDGE_LOCK``)."""
    failed = {}
    with _JUDGE_LOCK:
        _run_judges(results, hidden, failed)
    scores = {q: 0.0 for q in points}
    for t in hidden:
        missing = [r for r in t.requires if r in failed]
        if t.name not in failed and missing:
            failed[t.name] = f"passes, but earns its points only with {', '.join(missing)}"
        if t.name not in failed:
            scores[t.question] += t.points
    return scores, failed


def _run_judges(results: dict, hidden: tuple[Hidden, ...], failed: dict) -> None:
    for t in hidden:
        if t.probe_name not in results:
            failed[t.name] = "not run: the submission stopped before this probe"
            continue
        try:
            t.judge(decode(results[t.probe_name]))
        except AssertionError as exc:
            failed[t.name] = f"wrong: {str(exc)[:300]}"
        except Exception as exc:  # noqa: BLE001 - a result the judge cannot read earns nothing
            failed[t.name] = f"unreadable result ({type(exc).__name__}: {str(exc)[:200]})"


def _job(b: LabBuild) -> str:
    probes = {t.probe_name: {"name": t.probe_name, "source": t.probe_source(), "arguments": t.arguments,
                             "timeout": t.timeout} for t in b.hidden}
    probes = list(probes.values())
    return json.dumps({"notebook": "/job/submission.ipynb", "out": "/out/result.json", "probes": probes})


def grade_submission(notebook: str | Path, b: LabBuild, timeout: float = 120, threads: int = 1,
                     bwrap: str | None = None) -> Grade:
    """Grade one notebook in its own sandbox within ``timeout`` seconds (see the module docstring)."""
    notebook = Path(notebook).resolve()
    bwrap = bwrap or require_bwrap()
    out = scratch_dir()
    t0 = time.monotonic()
    status, detail, cell_errors = "ok", "", []
    try:
        cmd = bwrap_command(bwrap, b.grading_root, notebook, out,
                            [sys.executable, "-m", "lab_utils.grading.runner"], threads)
        with open(out / "log.txt", "w") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True,
                                    preexec_fn=limits(MEMORY_LIMIT, FILE_LIMIT))
            try:
                proc.communicate(_job(b), timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                status, detail = "timeout", f"killed after the {timeout:.0f} s limit"
        result = out / "result.json"
        try:
            report = json.loads(result.read_text()) if result.exists() else None
            probes = report["probes"] if report else {}
        except (ValueError, KeyError, TypeError):
            report, probes = None, {}
        if report is None and status == "ok":
            tail = (out / "log.txt").read_text(errors="replace")[-1500:]
            status, detail = "crashed", f"exit code {proc.returncode}, no results; last output:\n{tail}"
        elif report and report.get("cell_errors"):
            cell_errors = [str(e) for e in report["cell_errors"]][:50]
            detail = "\n".join(cell_errors)[:3000]
        scores, failed = judge(probes, b.hidden, b.points)
        return Grade(notebook.name, scores, status, time.monotonic() - t0, detail, failed, cell_errors)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def submissions_in(folder: str | Path) -> list[Path]:
    subs = sorted(p for p in Path(folder).iterdir() if p.suffix == ".ipynb")
    if not subs:
        raise ValueError(f"no .ipynb submissions in {folder}")
    return subs


def grade_folder(folder: str | Path, b: LabBuild, timeout: float = 120, jobs: int | None = None,
                 csv: str | Path | None = None, timeouts: dict[str, float] | None = None) -> list[Grade]:
    """Grade every ``*.ipynb`` in ``folder``, ``jobs`` at a time (default: one per core);
    ``timeouts`` overrides the limit of some submissions, by file name."""
    subs = submissions_in(folder)
    bwrap = require_bwrap()
    jobs = jobs or os.cpu_count() or 1
    limits = {p: (timeouts or {}).get(p.name, timeout) for p in subs}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(lambda p: grade_submission(p, b, limits[p], bwrap=bwrap), subs))
    if csv:
        write_gradebook(grades, b, csv)
    return grades


def write_gradebook(grades: list[Grade], b: LabBuild, csv: str | Path) -> None:
    qs = list(b.points)
    lines = [",".join(["submission", *qs, "total", "max", "status"])]
    for g in grades:
        lines.append(",".join([g.submission, *(f"{g.scores[q]:g}" for q in qs), f"{g.total:g}",
                               f"{b.total:g}", g.status]))
    Path(csv).write_text("\n".join(lines) + "\n")
