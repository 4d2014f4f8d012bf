"""Prove that a lab's grader tells right from wrong, and that its shortcuts score nothing.

:func:`prove_grader` builds the lab and grades, in one batch:

* the solution — the master notebook itself, whose public tests must pass as plain cells — must
  score 100 % with no cell raising; the untouched student notebook 0 on every question;
* each planted wrong answer of ``wrong_answers.py`` (``WRONG_ANSWERS``): loses its question's points
  and no points of the questions outside its submission (see the packing below);
* each shortcut of ``wrong_answers.py`` (``SHORTCUTS = {name: {question: answer cell}}``: calling the
  reference, its undecorated twin, answers right for the public inputs only, measuring instead of
  predicting, …): 0 on every question it replaces, full marks on the others. Shortcuts and wrong
  answers on different questions share a submission (:func:`pack_shortcuts`): each still must score 0
  on its own questions, and the questions no answer of the submission replaces keep full marks, so a
  wrong answer is checked against every question outside its submission (fewer sandboxed runs: a
  submission runs the whole lab). The "calls the reference" shortcut runs
  behind the old guard's back (``LAB_GRADING=0``, originals dug out of wrappers' closures), to show
  there is no guard left to switch off;
* generic shortcuts every lab gets: all wrong answers behind a cell that monkeypatches the test
  tools (``torch.allclose``, NumPy's comparisons, ``math.isclose``, ``AssertionError``) — 0
  everywhere; and a *snooping* notebook whose every solution cell only runs if it can read hidden
  tests or write outside its scratch folder (the lab's folder, its build, the host's ``/tmp``) — 0
  everywhere, and the host folders it tried are checked untouched afterwards;
* optionally (``misbehaving=True``) crashing, hanging and file-deleting submissions: the batch grader
  survives them within the time limit.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from lab_utils.grading.build import LabBuild, build, master_notebook
from lab_utils.grading.grade import Grade, grade_folder

MONKEYPATCH_CELL = """\
import builtins, math
import numpy as np
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
"""

GUARD_CELL = """\
import os, sys, types
os.environ["LAB_GRADING"] = "0"          # the old guard's switch
for mod in [m for name, m in list(sys.modules.items()) if name.startswith("lab_utils.")]:
    for name, fn in list(vars(mod).items()):
        cells = getattr(fn, "__closure__", None) or ()
        inner = [c.cell_contents for c in cells if isinstance(c.cell_contents, types.FunctionType)]
        if isinstance(fn, types.FunctionType) and inner and getattr(fn, "__name__", "") == "reference":
            setattr(mod, name, inner[0])  # the old guard's wrapper kept the original in its closure
"""


def snoop_cell(host_paths: list[Path], markers: list[str],
               tmp_name: str = "written-by-a-submission.txt") -> str:
    """A cell that sets ``LEAK = True`` if it can read hidden material, and tries to write into the host
    folders ``host_paths`` and ``/tmp``, which the grader checks on the host afterwards (inside the sandbox
    ``/tmp`` is private, so writing there is allowed and is no leak; and a host folder under ``/tmp``, such
    as a clone in ``/tmp``, appears inside only as a directory on that private ``/tmp``)."""
    return f"""\
import os
LEAK = False
try:
    open("/tmp/{tmp_name}", "w").write("leak?")
except OSError:
    pass
for target in {[str(p) for p in host_paths]!r}:   # checked on the host afterwards: a host folder under /tmp
    try:                                            # exists in here only on the sandbox's own tmpfs
        with open(os.path.join(target, "written-by-a-submission.txt"), "w") as f:
            f.write("leak")
    except OSError:
        pass
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    if root.count(os.sep) > 8:
        dirs[:] = []
    for name in files:
        if name in ("hidden.py", "wrong_answers.py", "points.json") or name.endswith(".zip"):
            try:
                text = open(os.path.join(root, name), "rb").read(200000)
            except OSError:
                continue
            if any(m.encode() in text for m in {markers!r}):
                LEAK = True
"""


@dataclass
class Proof:
    lab: str
    grades: dict[str, Grade]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _load(lab_dir: Path, name: str) -> dict:
    path = lab_dir / "wrong_answers.py"
    if not path.exists():
        raise ValueError(f"{lab_dir} has no wrong_answers.py: every question needs a planted wrong answer")
    spec = importlib.util.spec_from_file_location(f"_wrong_{lab_dir.name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, name, {}))


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
             insert_before: tuple[int, str] | None = None) -> Path:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for i, src in (replace or {}).items():
        nb.cells[i].source = src
    if insert_before:
        i, src = insert_before
        nb.cells.insert(i, nbformat.v4.new_code_cell(src))
    nbformat.write(nb, path)
    return path


def pack_shortcuts(shortcuts: dict[str, dict[str, str]]) -> list[tuple[list[str], dict[str, str]]]:
    """Planted answers (shortcuts, wrong answers) on different questions share one submission, first fit
    in the given order (each still must score 0 on its own questions, and the questions none of them
    answers keep full marks): fewer sandboxed runs."""
    bins: list[tuple[list[str], dict[str, str]]] = []
    for name, answers in shortcuts.items():
        for names, packed in bins:
            if not set(packed) & set(answers):
                names.append(name)
                packed.update(answers)
                break
        else:
            bins.append(([name], dict(answers)))
    return bins


def _plant(b: LabBuild, lab_dir: Path, subs: Path, host_paths: list[Path],
           tmp_name: str) -> dict[str, set[str]]:
    """Write every planted submission into ``subs``; returns variant → the questions it must lose."""
    solution = nbformat.read(b.solution_notebook, as_version=4)
    cells = answer_cells(solution)
    first = min(cells.values())
    wrong, shortcuts = _load(lab_dir, "WRONG_ANSWERS"), _load(lab_dir, "SHORTCUTS")
    qs = set(b.points)
    lose: dict[str, set[str]] = {"b-untouched": qs}
    _variant(nbformat.read(b.student_notebook, as_version=4), subs / "b-untouched.ipynb")
    planted = {**shortcuts, **{f"wrong {q}": {q: src} for q, src in wrong.items()}}
    for names, answers in pack_shortcuts(planted):
        slug = "s-" + "+".join(n.replace(" ", "-") for n in names)
        guard = (first, GUARD_CELL) if "calls the reference" in names else None
        _variant(solution, subs / f"{slug}.ipynb", replace={cells[q]: s for q, s in answers.items()},
                 insert_before=guard)
        lose[slug] = set(answers)
    _variant(solution, subs / "g-monkeypatched.ipynb", replace={cells[q]: s for q, s in wrong.items()},
             insert_before=(first, MONKEYPATCH_CELL))
    lose["g-monkeypatched"] = set(wrong)
    markers = [t.name for t in b.hidden][:3] + ["WRONG_ANSWERS"]
    gated = {i: "if LEAK:\n" + "\n".join("    " + ln for ln in solution.cells[i].source.splitlines())
             for i in cells.values()}
    _variant(solution, subs / "g-snooping.ipynb", replace=gated,
             insert_before=(first, snoop_cell(host_paths, markers, tmp_name)))
    lose["g-snooping"] = qs
    return lose


def prove_grader(lab_dir: str | Path, timeout: float = 300, jobs: int | None = None,
                 misbehaving: bool = True, hang_limit: float = 20) -> Proof:
    """Build the lab and grade every planted submission in one batch (see the module docstring).

    ``timeout`` is each submission's limit, as in ``make grade``; the hanging submission gets
    ``hang_limit`` so that proving the kill does not hold a core for a whole limit."""
    lab_dir = Path(lab_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="lab_prove_") as tmp:
        tmp = Path(tmp)
        b = build(lab_dir, tmp / "dist")
        proof = Proof(lab_dir.name, {})
        fail = proof.failures.append
        _check_bundle(b, lab_dir, fail)
        subs = tmp / "submissions"
        subs.mkdir()
        # the master notebook as the solution: its public test cells run as plain code, so a public
        # test the solution fails is a cell error (this replaces executing the masters under nbval)
        shutil.copy(master_notebook(lab_dir), subs / "a-solution.ipynb")
        host_paths = [lab_dir, tmp, b.grading_root, Path.cwd()]
        before = {p: sorted(p.rglob("*")) for p in (lab_dir, b.grading_root)}
        # a name of this run's own: concurrent proves must not see each other's file
        host_tmp_file = Path(tempfile.gettempdir()) / f"written-by-a-submission-{tmp.name}.txt"
        lose = _plant(b, lab_dir, subs, host_paths, host_tmp_file.name)
        if misbehaving:
            _misbehaving_variants(b, subs)
        grades = grade_folder(subs, b, timeout=timeout, jobs=jobs, csv=tmp / "gradebook.csv",
                              timeouts={"e-hanging.ipynb": hang_limit})
        proof.grades = {g.submission.removesuffix(".ipynb"): g for g in grades}
        _check_grades(proof, b, lose, hang_limit if misbehaving else None)
        for p, files in before.items():
            if sorted(p.rglob("*")) != files:
                fail(f"a submission changed files in {p}")
        if host_tmp_file.exists():
            fail("a submission wrote into the host's /tmp")
        for p in host_paths:
            if (p / "written-by-a-submission.txt").exists():
                fail(f"a submission wrote into the host folder {p}")
        book = (tmp / "gradebook.csv").read_text().splitlines()
        if len(book) != len(grades) + 1:
            fail(f"the gradebook has {len(book) - 1} rows for {len(grades)} submissions")
        return proof


def _check_bundle(b: LabBuild, lab_dir: Path, fail) -> None:
    wrong = _load(lab_dir, "WRONG_ANSWERS")
    for q in b.points:
        if q not in wrong:
            fail(f"wrong_answers.py has no planted wrong answer for {q}")
    if set(answer_cells(nbformat.read(b.solution_notebook, as_version=4))) != set(b.points):
        fail(f"the solution's answer cells do not match the questions {sorted(b.points)}")
    intro = next((c.source for c in nbformat.read(b.student_notebook, as_version=4).cells
                  if c.cell_type == "markdown"), "")
    stated = re.findall(r"\*\*(\d+(?:\.\d+)?) points\*\*", intro)
    if stated and float(stated[0]) != b.total:
        fail(f"the introduction says **{stated[0]} points** but the questions add up to {b.total:g}")
    student = b.student_notebook.read_text()
    if "BEGIN SOLUTION" in student or "hidden: true" in student:
        fail("the student notebook contains a solution or a hidden test")
    for f in (b.student_notebook.parent / "tests").glob("*.py"):
        if "hidden=True" in f.read_text():
            fail(f"the student's copy of {f.name} contains hidden tests")


def _misbehaving_variants(b: LabBuild, subs: Path) -> None:
    """A crashing, a hanging and a file-deleting copy of the solution, into the batch folder ``subs``."""
    solution = nbformat.read(b.solution_notebook, as_version=4)
    first = min(answer_cells(solution).values())
    _variant(solution, subs / "d-crashing.ipynb", insert_before=(first, "import os\nos._exit(3)"))
    # a hang that sleeps: killed by the time limit like a busy loop, and it leaves the core to the batch
    _variant(solution, subs / "e-hanging.ipynb", insert_before=(first, "import time\nwhile True:\n    time.sleep(1)"))
    _variant(solution, subs / "f-deleting.ipynb", insert_before=(
        first, "import os\nfor f in os.listdir('.'):\n    if os.path.isfile(f):\n        os.remove(f)"))


def _check_grades(proof: Proof, b: LabBuild, lose: dict[str, set[str]], limit: float | None) -> None:
    """Solution full marks; each planted submission loses exactly its questions; misbehaving ones 0."""
    fail, G = proof.failures.append, proof.grades
    if G["a-solution"].total != b.total:
        fail(f"the solution scores {G['a-solution'].scores}, not full marks {b.points} "
             f"({G['a-solution'].status}: {G['a-solution'].failed} {G['a-solution'].detail[-800:]})")
    if G["a-solution"].cell_errors:
        fail(f"cells of the master notebook raise when graded (a public test the solution fails, or a "
             f"setup cell that needs a deleted reference): {G['a-solution'].cell_errors}")
    for name, questions in lose.items():
        g = G[name]
        kept = {q: g.scores[q] for q in questions if g.scores[q] > 0}
        if kept:
            fail(f"{name} still scores {kept} on the question(s) it must lose")
        hurt = {q: g.scores[q] for q in b.points if q not in questions and g.scores[q] != b.points[q]}
        if hurt:
            fail(f"{name} also cost other questions: {hurt} ({g.failed})")
    if limit is None:
        return
    if G["d-crashing"].status != "crashed" or G["d-crashing"].total != 0:
        fail(f"a notebook that kills its interpreter got {G['d-crashing']}")
    if G["e-hanging"].status != "timeout" or G["e-hanging"].total != 0:
        fail(f"a hanging notebook got {G['e-hanging']}")
    if G["e-hanging"].seconds > limit + 30:
        fail(f"the hanging notebook took {G['e-hanging'].seconds:.0f} s, limit {limit:.0f} s")
    if G["f-deleting"].total != b.total:
        fail(f"a notebook that deletes its own working files lost points: {G['f-deleting'].scores}")
