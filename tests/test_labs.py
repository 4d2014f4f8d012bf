"""Every lab's grader must tell right from wrong (labs/*/: master notebook + wrong_answers.py)."""

from pathlib import Path

import nbformat
import pytest

from lab_utils.graded import ReferenceDisabledError, graded_reference
from lab_utils.grading import Grade, LabBuild, answer_cells, prove_grader, write_gradebook

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted(d for d in (ROOT / "labs").iterdir() if d.is_dir() and list(d.glob("*.ipynb")))


def test_there_are_labs():
    assert LABS, "labs/ has no lab"


@pytest.mark.parametrize("lab", LABS, ids=lambda d: d.name)
def test_grader_tells_right_from_wrong(lab):
    # crashing, hanging and file-deleting submissions test the batch grader, which every lab shares:
    # proving that once (with the first lab) saves a whole time limit of wall clock per other lab
    proof = prove_grader(lab, misbehaving=lab == LABS[0])
    summary = "\n".join(f"{k}: {g.scores} {g.status}" for k, g in proof.grades.items())
    assert proof.ok, "\n".join(proof.failures) + "\n" + summary


def test_references_switch_off_while_grading(monkeypatch):
    @graded_reference
    def answer() -> int:
        return 42

    assert answer() == 42
    monkeypatch.setenv("LAB_GRADING", "1")
    with pytest.raises(ReferenceDisabledError, match="implement it yourself"):
        answer()
    assert not hasattr(answer, "__wrapped__")


def test_lab_utils_references_are_guarded(monkeypatch):
    from lab_utils.fitting import memory

    monkeypatch.setenv("LAB_GRADING", "1")
    with pytest.raises(ReferenceDisabledError):
        memory.bytes_per_parameter("adam", "fp32")


def test_answer_cells_map_questions(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("def f(): ...", metadata={"tags": ["otter_answer_cell"]}),
                nbformat.v4.new_code_cell('grader.check("q1")'),
                nbformat.v4.new_code_cell("def g(): ...", metadata={"tags": ["otter_answer_cell"]}),
                nbformat.v4.new_code_cell('grader.check("q2")')]
    assert answer_cells(nb) == {"q1": 1, "q2": 3}


def test_gradebook_csv(tmp_path):
    b = LabBuild(tmp_path, tmp_path, tmp_path, tmp_path, {"q1": 2.0, "q2": 3.0})
    grades = [Grade("alice.ipynb", {"q1": 2.0, "q2": 1.5}), Grade("bob.ipynb", {"q1": 0.0, "q2": 0.0}, "timeout")]
    write_gradebook(grades, b, tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_text().splitlines() == [
        "submission,q1,q2,total,max,status", "alice.ipynb,2,1.5,3.5,5,ok", "bob.ipynb,0,0,0,5,timeout"]
