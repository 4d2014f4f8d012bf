"""Build a lab: the student's notebook (``otter assign``) and the grading bundle.

``labs/NN-topic/`` holds the master notebook (otter's assign format: solutions and **public** tests,
which the student's copy carries for ``grader.check``) and ``hidden.py`` (the hidden tests, probe +
judge pairs: :mod:`lab_utils.grading.hidden`). :func:`build` writes into ``dist/``:

* ``student/``: the notebook without solutions, its public tests (works offline and on Colab);
* ``autograder/``: otter's solution notebook in the student's format (what a perfect submission is);
* ``grading/``: ``lab_utils/``, the grading build without graded references
  (:mod:`lab_utils.grading.package`), ``hidden.py`` and ``points.json``. The sandbox mounts only
  ``grading/lab_utils``; ``hidden.py`` stays with the grader.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lab_utils.grading.hidden import Hidden, load_hidden
from lab_utils.grading.package import GradingPackage, check_grading_package, grading_package


@dataclass(frozen=True)
class LabBuild:
    lab_dir: Path
    student_notebook: Path
    solution_notebook: Path
    grading_root: Path          # holds the grading build's lab_utils/
    hidden: tuple[Hidden, ...]
    points: dict[str, float]    # question -> points (the sum of its hidden tests' points)

    @property
    def total(self) -> float:
        return sum(self.points.values())


def master_notebook(lab_dir: Path) -> Path:
    nbs = list(Path(lab_dir).glob("*.ipynb"))
    if len(nbs) != 1:
        raise ValueError(f"{lab_dir} must hold exactly one master notebook, found {[p.name for p in nbs]}")
    return nbs[0]


def question_points(master: Path) -> dict[str, float]:
    """``name: qN`` / ``points: P`` of each ``# BEGIN QUESTION`` raw cell of the master notebook."""
    nb = json.loads(master.read_text())
    points = {}
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION"):
            name = re.search(r"^name:\s*(\S+)", src, re.M).group(1)
            points[name] = float(re.search(r"^points:\s*([\d.]+)", src, re.M).group(1))
    return points


def check_points(master: Path, hidden: list[Hidden]) -> dict[str, float]:
    """Every question's points are exactly those of its hidden tests."""
    stated = question_points(master)
    earned: dict[str, float] = {}
    for t in hidden:
        earned[t.question] = earned.get(t.question, 0.0) + t.points
    if stated != earned:
        raise ValueError(f"{master.name} gives the questions {stated} points but hidden.py's tests add up "
                         f"to {earned}: make them agree")
    return stated


def build(lab_dir: str | Path, out_dir: str | Path | None = None, package: GradingPackage | None = None,
          timeout: float = 600) -> LabBuild:
    """``otter assign`` the master into ``out/student``; the grading bundle into ``out/grading``."""
    lab_dir = Path(lab_dir).resolve()
    master = master_notebook(lab_dir)
    hidden = load_hidden(lab_dir)
    points = check_points(master, hidden)
    out = Path(out_dir).resolve() if out_dir else lab_dir / "dist"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "otter", "assign", "--no-pdfs", str(master), str(out)],
                          cwd=lab_dir, env=dict(os.environ), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign failed for {master}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    grading = out / "grading"
    grading.mkdir()
    package = package or grading_package(grading)
    if package.root != grading:
        shutil.copytree(package.package, grading / "lab_utils")
    problems = check_grading_package(GradingPackage(grading, package.removed_functions), import_modules=False)
    if problems:
        raise RuntimeError(f"the grading build of lab_utils still holds graded references: {problems}")
    shutil.copy(lab_dir / "hidden.py", grading / "hidden.py")
    (grading / "points.json").write_text(json.dumps(points, indent=1))
    # otter's autograder/ keeps the solution notebook in the student's format (our solution submission);
    # its zip is not used to grade
    return LabBuild(lab_dir, out / "student" / master.name, out / "autograder" / master.name, grading,
                    tuple(hidden), points)
