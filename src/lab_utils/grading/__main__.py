"""``python -m lab_utils.grading build|grade|prove``: the labs' command line (``make labs``, ``make grade``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab_utils.grading.build import build
from lab_utils.grading.grade import grade_folder
from lab_utils.grading.prove import prove_grader
from lab_utils.grading.report import write_report


def lab_dirs(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        out += [p] if list(p.glob("*.ipynb")) else \
            sorted(d for d in p.iterdir() if d.is_dir() and list(d.glob("*.ipynb")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_utils.grading", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="the student notebook and grading bundle of every lab (or one)")
    p_build.add_argument("labs", nargs="+", help="a lab folder, or labs/ for all of them")
    p_grade = sub.add_parser("grade", help="grade a folder of submissions into a CSV gradebook and a report")
    p_grade.add_argument("lab", help="the lab folder, e.g. labs/01-memory-anatomy")
    p_grade.add_argument("submissions", help="folder of .ipynb submissions")
    p_grade.add_argument("--out", default="gradebook.csv")
    p_grade.add_argument("--timeout", type=float, default=300, help="seconds per notebook")
    p_grade.add_argument("--jobs", type=int, default=None, help="submissions at a time (default: one per core)")
    p_prove = sub.add_parser("prove", help="check that each lab's grader tells right from wrong")
    p_prove.add_argument("labs", nargs="+")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        for d in lab_dirs(args.labs):
            b = build(d)
            print(f"{d.name}: student notebook {b.student_notebook}, grading bundle {b.grading_root}, "
                  f"{b.total:g} points")
        return 0
    if args.cmd == "grade":
        b = build(args.lab)
        grades = grade_folder(args.submissions, b, args.timeout, args.jobs, args.out)
        for g in grades:
            print(f"{g.submission}: {g.total:g}/{b.total:g} ({g.status})")
        report = write_report(grades, b, Path(args.out))
        print(f"gradebook written to {args.out}; instructor report {report}")
        return 0
    bad = 0
    for d in lab_dirs(args.labs):
        proof = prove_grader(d)
        print(f"{d.name}: {'OK' if proof.ok else 'FAILED'}")
        for k, g in proof.grades.items():
            print(f"  {k:>34}: {g.scores} {g.status} {g.seconds:.0f}s")
        for f in proof.failures:
            print(f"  FAIL: {f}")
        bad += not proof.ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
