"""Graded labs on otter-grader: build, grade a folder of submissions, prove the grader discriminates.

A lab is a folder ``labs/NN-topic/`` with one *master* notebook in otter-grader's assign format
(solutions between ``# BEGIN SOLUTION``/``# END SOLUTION``, public and hidden tests per question)
and ``wrong_answers.py``: for every question, a plausible wrong answer cell (a missing term, an
off-by-one) that the hidden tests must catch.

* :func:`build` — ``otter assign``: the student notebook (public tests only, shipped as files so it
  works on Colab) and the autograder zip (all tests) in ``labs/NN-topic/dist/``.
* :func:`grade_submission` / :func:`grade_folder` — ``otter run`` on each notebook in a subprocess,
  in a scratch folder, with a time limit, ``LAB_GRADING=1`` (which switches off the references
  marked ``lab_utils.graded.graded_reference`` in ``lab_utils``), never stopping the batch for one bad notebook.
  ``otter grade`` needs Docker; this is the loop that replaces it.
* :func:`prove_grader` — the checks CI runs for every lab: solution 100%, untouched student
  notebook 0, each planted wrong answer loses its question's points, and a batch holding crashing,
  hanging and file-deleting submissions grades the rest right within the time limits.

Command line: ``python -m lab_utils.grading build|grade|prove ...`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from lab_utils.graded import GRADING_ENV


# ----------------------------------------------------------------------------- build
@dataclass(frozen=True)
class LabBuild:
    lab_dir: Path
    student_notebook: Path
    solution_notebook: Path
    autograder_zip: Path
    points: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.points.values())


def master_notebook(lab_dir: Path) -> Path:
    nbs = [p for p in Path(lab_dir).glob("*.ipynb")]
    if len(nbs) != 1:
        raise ValueError(f"{lab_dir} must hold exactly one master notebook, found {[p.name for p in nbs]}")
    return nbs[0]


def build(lab_dir: str | Path, out_dir: str | Path | None = None, timeout: float = 600) -> LabBuild:
    """Run ``otter assign`` on the lab's master notebook (its solutions are tested while grading is on)."""
    lab_dir = Path(lab_dir).resolve()
    master = master_notebook(lab_dir)
    out = Path(out_dir).resolve() if out_dir else lab_dir / "dist"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, GRADING_ENV: "1"}
    proc = subprocess.run([sys.executable, "-m", "otter", "assign", "--no-pdfs", str(master), str(out)],
                          cwd=lab_dir, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign failed for {master}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    zips = sorted((out / "autograder").glob("*.zip"))
    if not zips:
        raise RuntimeError(f"otter assign made no autograder zip in {out / 'autograder'}")
    points = {}
    for test_file in sorted((out / "autograder" / "tests").glob("*.py")):
        line = next(ln for ln in test_file.read_text().splitlines() if ln.startswith("points = "))
        points[test_file.stem] = float(line.split("=", 1)[1])
    points = dict(sorted(points.items(), key=lambda kv: _question_order(kv[0])))
    return LabBuild(lab_dir, out / "student" / master.name, out / "autograder" / master.name, zips[-1], points)


def _question_order(name: str) -> tuple:
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else 0, name)


# ----------------------------------------------------------------------------- grade
@dataclass
class Grade:
    submission: str
    scores: dict[str, float]
    status: str = "ok"          # ok | timeout | crashed
    seconds: float = 0.0
    detail: str = ""

    @property
    def total(self) -> float:
        return sum(self.scores.values())


def grade_submission(notebook: str | Path, build_: LabBuild, timeout: float = 120) -> Grade:
    """Grade one notebook with ``otter run`` in a scratch folder, with a time limit.

    The submission's code runs in a subprocess (its own process group, killed whole at the
    time limit) whose working directory is a fresh scratch folder holding a copy of the notebook.
    A notebook that hangs or kills its interpreter scores 0 with status ``timeout``/``crashed``;
    one whose cells raise loses the points of the tests those errors break.
    """
    notebook = Path(notebook)
    zeros = {q: 0.0 for q in build_.points}
    scratch = Path(tempfile.mkdtemp(prefix="lab_grade_"))
    t0 = time.monotonic()
    try:
        sub = scratch / "submission"
        sub.mkdir()
        shutil.copy(notebook, sub / notebook.name)
        out = scratch / "results"
        out.mkdir()
        cmd = [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(build_.autograder_zip),
               "-o", str(out), notebook.name]
        env = {**os.environ, GRADING_ENV: "1", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(cmd, cwd=sub, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Grade(notebook.name, zeros, "timeout", time.monotonic() - t0,
                         f"killed after the {timeout:.0f} s limit")
        results = out / "results.json"
        if not results.exists():
            return Grade(notebook.name, zeros, "crashed", time.monotonic() - t0,
                         f"exit code {proc.returncode}, no results; last output:\n{log[-1500:]}")
        scores = dict(zeros)
        for test in json.loads(results.read_text())["tests"]:
            if test.get("name") in scores and test.get("score") is not None:
                scores[test["name"]] = float(test["score"])
        return Grade(notebook.name, scores, "ok", time.monotonic() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def grade_folder(folder: str | Path, build_: LabBuild, timeout: float = 120, jobs: int = 2,
                 csv: str | Path | None = None) -> list[Grade]:
    """Grade every ``*.ipynb`` (and ``*.zip`` otter export) in ``folder``; write a CSV gradebook."""
    subs = sorted(p for p in Path(folder).iterdir() if p.suffix in (".ipynb", ".zip"))
    if not subs:
        raise ValueError(f"no .ipynb or .zip submissions in {folder}")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(lambda p: grade_submission(p, build_, timeout), subs))
    if csv:
        write_gradebook(grades, build_, csv)
    return grades


def write_gradebook(grades: list[Grade], build_: LabBuild, csv: str | Path) -> None:
    qs = list(build_.points)
    lines = [",".join(["submission", *qs, "total", "max", "status"])]
    for g in grades:
        lines.append(",".join([g.submission, *(f"{g.scores[q]:g}" for q in qs), f"{g.total:g}",
                               f"{build_.total:g}", g.status]))
    Path(csv).write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------ prove the grader
@dataclass
class Proof:
    lab: str
    grades: dict[str, Grade]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def load_wrong_answers(lab_dir: Path) -> dict[str, str]:
    path = lab_dir / "wrong_answers.py"
    if not path.exists():
        raise ValueError(f"{lab_dir} has no wrong_answers.py: every question needs a planted wrong answer")
    spec = importlib.util.spec_from_file_location(f"_wrong_{lab_dir.name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.WRONG_ANSWERS)


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Question name → index of its answer cell (the last solution/answer cell before ``grader.check``)."""
    found, last = {}, None
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and ({"otter_answer_cell", "otter_assign_solution_cell"} & set(tags)):
            last = i
        src = cell.source.strip() if cell.cell_type == "code" else ""
        if src.startswith("grader.check(") and last is not None:
            found[src.split('"')[1]] = last
            last = None
    return found


def _variant(nb: nbformat.NotebookNode, path: Path, replace: dict[int, str] | None = None,
             insert_after: tuple[int, str] | None = None) -> Path:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for i, src in (replace or {}).items():
        nb.cells[i].source = src
    if insert_after:
        i, src = insert_after
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(src))
    nbformat.write(nb, path)
    return path


def prove_grader(lab_dir: str | Path, timeout: float | None = None, jobs: int = 2,
                 misbehaving: bool = True) -> Proof:
    """Build the lab and check that its grader tells right from wrong (see the module docstring).

    ``misbehaving``: also put crashing, hanging and file-deleting submissions into the batch. That
    proves :func:`grade_folder`'s isolation, which does not depend on the lab; the test suite does it
    for one lab (the hanging submission costs a whole time limit of wall clock per lab).
    """
    lab_dir = Path(lab_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="lab_prove_") as tmp:
        tmp = Path(tmp)
        b = build(lab_dir, tmp / "dist")
        proof = Proof(lab_dir.name, {})
        fail = proof.failures.append
        solution = nbformat.read(b.solution_notebook, as_version=4)
        student = nbformat.read(b.student_notebook, as_version=4)
        cells = answer_cells(solution)
        wrong = load_wrong_answers(lab_dir)
        if set(cells) != set(b.points):
            fail(f"answer cells found for {sorted(cells)} but the questions are {sorted(b.points)}")
        for q in b.points:
            if q not in wrong:
                fail(f"wrong_answers.py has no planted wrong answer for {q}")

        for f in (b.student_notebook.parent / "tests").glob("*.py"):
            if "hidden=True" in f.read_text():
                fail(f"the student's copy of {f.name} contains hidden tests")
        if "BEGIN SOLUTION" in b.student_notebook.read_text():
            fail("the student notebook contains a solution")

        subs = tmp / "submissions"
        subs.mkdir()
        name = b.solution_notebook.name
        first = min(cells.values())
        t0 = time.monotonic()
        sol = grade_submission(_variant(solution, subs / f"a-solution-{name}"), b, timeout or 600)
        limit = timeout or max(45.0, 3 * (time.monotonic() - t0))
        _variant(student, subs / f"b-untouched-{name}")
        for q, src in wrong.items():
            if q in cells:
                _variant(solution, subs / f"c-wrong-{q}-{name}", replace={cells[q]: src})
        if misbehaving:
            _misbehaving_variants(solution, subs, name, first)
        sentinel = tmp / "instructor-file.txt"
        sentinel.write_text("must survive grading")
        (subs / sol.submission).unlink()
        grades = [sol, *grade_folder(subs, b, timeout=limit, jobs=jobs, csv=tmp / "gradebook.csv")]
        proof.grades = {g.submission.split(f"-{name}")[0]: g for g in grades}
        _check_grades(proof, b, wrong, limit if misbehaving else None)
        if not sentinel.exists():
            fail("a submission deleted a file outside its scratch folder")
        book = (tmp / "gradebook.csv").read_text().splitlines()
        if len(book) != len(grades):  # header + every submission but the solution graded first
            fail(f"the gradebook has {len(book) - 1} rows for {len(grades) - 1} submissions")
        return proof


def _misbehaving_variants(solution: nbformat.NotebookNode, subs: Path, name: str, first: int) -> None:
    """A crashing, a hanging and a file-deleting copy of the solution, into the batch folder ``subs``."""
    _variant(solution, subs / f"d-crashing-{name}", insert_after=(first, "import os\nos._exit(3)"))
    # a hang that sleeps: the time limit kills it exactly as it kills a busy loop, and it leaves
    # the core to the rest of the batch (a busy loop held one of 2 cores for the whole limit)
    _variant(solution, subs / f"e-hanging-{name}", insert_after=(first, "import time\nwhile True:\n    time.sleep(1)"))
    _variant(solution, subs / f"f-deleting-{name}", insert_after=(
        first, "import os\nfor f in os.listdir('.'):\n    if os.path.isfile(f):\n        os.remove(f)"))


def _check_grades(proof: Proof, b: LabBuild, wrong: dict[str, str], limit: float | None) -> None:
    """Solution full marks, untouched zero, each wrong answer loses only its own question; with a
    ``limit``, the misbehaving submissions scored zero with the right status within the limit."""
    fail, G = proof.failures.append, proof.grades
    if G["a-solution"].total != b.total:
        fail(f"the solution scores {G['a-solution'].scores}, not full marks {b.points} "
             f"({G['a-solution'].status}: {G['a-solution'].detail[-500:]})")
    if G["b-untouched"].total != 0:
        fail(f"the untouched student notebook scores {G['b-untouched'].scores}: some test passes by accident")
    for q in wrong:
        g = G.get(f"c-wrong-{q}")
        if g is None:
            continue
        if g.scores[q] >= b.points[q]:
            fail(f"the planted wrong answer for {q} still gets {g.scores[q]}/{b.points[q]}")
        others = {k: v for k, v in g.scores.items() if k != q and v != b.points[k]}
        if others:
            fail(f"the planted wrong answer for {q} also cost other questions: {others}")
    if limit is None:
        return
    if G["d-crashing"].status != "crashed" or G["d-crashing"].total != 0:
        fail(f"a notebook that kills its interpreter got {G['d-crashing']}")
    if G["e-hanging"].status != "timeout" or G["e-hanging"].total != 0:
        fail(f"a hanging notebook got {G['e-hanging']}")
    if G["e-hanging"].seconds > limit + 30:
        fail(f"the hanging notebook took {G['e-hanging'].seconds:.0f} s, limit {limit:.0f} s")


# ------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_utils.grading", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="otter assign every lab (or one) into its dist/ folder")
    p_build.add_argument("labs", nargs="+", help="a lab folder, or labs/ for all of them")
    p_grade = sub.add_parser("grade", help="grade a folder of submissions into a CSV gradebook")
    p_grade.add_argument("lab", help="the lab folder, e.g. labs/01-memory-anatomy")
    p_grade.add_argument("submissions", help="folder of .ipynb (or otter .zip) submissions")
    p_grade.add_argument("--out", default="gradebook.csv")
    p_grade.add_argument("--timeout", type=float, default=300, help="seconds per notebook")
    p_grade.add_argument("--jobs", type=int, default=2)
    p_prove = sub.add_parser("prove", help="check that each lab's grader tells right from wrong")
    p_prove.add_argument("labs", nargs="+")
    args = parser.parse_args(argv)

    def lab_dirs(paths: list[str]) -> list[Path]:
        out = []
        for p in map(Path, paths):
            out += sorted(d for d in p.iterdir() if d.is_dir() and list(d.glob("*.ipynb"))) \
                if not list(p.glob("*.ipynb")) else [p]
        return out

    if args.cmd == "build":
        for d in lab_dirs(args.labs):
            b = build(d)
            print(f"{d.name}: student notebook {b.student_notebook}, autograder {b.autograder_zip}, "
                  f"{b.total:g} points")
    elif args.cmd == "grade":
        b = build(args.lab)
        grades = grade_folder(args.submissions, b, args.timeout, args.jobs, args.out)
        for g in grades:
            print(f"{g.submission}: {g.total:g}/{b.total:g} ({g.status})")
        print(f"gradebook written to {args.out}")
    else:
        bad = 0
        for d in lab_dirs(args.labs):
            proof = prove_grader(d)
            print(f"{d.name}: {'OK' if proof.ok else 'FAILED'}")
            for k, g in proof.grades.items():
                print(f"  {k:>14}: {g.scores} {g.status} {g.seconds:.0f}s")
            for f in proof.failures:
                print(f"  FAIL: {f}")
            bad += not proof.ok
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
