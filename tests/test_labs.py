"""Every lab's grader must tell right from wrong (labs/*/: master notebook, hidden.py, wrong_answers.py)."""

from pathlib import Path

import pytest

from lab_utils.grading.prove import prove_grader

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted(d for d in (ROOT / "labs").iterdir() if d.is_dir() and list(d.glob("*.ipynb")))


def test_there_are_labs():
    assert LABS, "labs/ has no lab"


@pytest.mark.parametrize("lab", LABS, ids=lambda d: d.name)
def test_grader_tells_right_from_wrong(lab):
    # crashing, hanging and file-deleting submissions test the batch grader, which every lab shares:
    # proving that once (with the first lab) saves a whole time limit of wall clock per other lab
    proof = prove_grader(lab, misbehaving=lab == LABS[0])
    summary = "\n".join(f"{k}: {g.scores} {g.status} {g.failed}" for k, g in proof.grades.items())
    assert proof.ok, "\n".join(proof.failures) + "\n" + summary
