"""Grading throughput: a class of generated submissions of one lab, sandboxed, one per core.

Goal (issue #17): 200 submissions of one lab in <= 20 minutes on 2 cores. The submissions are the lab's
solution, untouched student notebook and planted wrong answers, cycled to ``--n``; all are graded by
``lab_utils.grading.grade.grade_folder`` exactly as ``make grade`` does. Side by side, in the same run,
the named peer: ``otter run`` on a few of the same notebooks, one at a time (the loop ``make grade`` used
before the sandbox; it runs only the notebook's public tests now, so it is a lower bound on its cost).

    .venv/bin/python benchmarks/grading_throughput.py --lab labs/01-memory-anatomy --n 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat

from lab_utils.grading.build import build
from lab_utils.grading.grade import grade_folder
from lab_utils.grading.prove import _load, _variant, answer_cells


def generate(b, lab: Path, folder: Path, n: int) -> list[Path]:
    """``n`` submissions: the solution, the untouched notebook and each wrong answer, in turn."""
    solution = nbformat.read(b.solution_notebook, as_version=4)
    student = nbformat.read(b.student_notebook, as_version=4)
    cells = answer_cells(solution)
    kinds = [("solution", solution, {}), ("untouched", student, {})]
    kinds += [(f"wrong-{q}", solution, {cells[q]: src}) for q, src in _load(lab, "WRONG_ANSWERS").items()]
    paths = []
    for i in range(n):
        name, nb, replace = kinds[i % len(kinds)]
        paths.append(_variant(nb, folder / f"student{i:03d}-{name}.ipynb", replace=replace))
    return paths


def otter_peer(b, paths: list[Path], timeout: float) -> float:
    """Seconds per submission for ``otter run`` (one at a time, in a scratch folder)."""
    zips = sorted((b.solution_notebook.parent).glob("*.zip"))
    t0 = time.monotonic()
    for p in paths:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(zips[-1]), "-o", tmp,
                            str(p)], capture_output=True, timeout=timeout, cwd=tmp)
    return (time.monotonic() - t0) / len(paths)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lab", default="labs/01-memory-anatomy")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--peer", type=int, default=4, help="submissions graded by the otter-run peer")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    lab = Path(args.lab).resolve()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="grading_bench_") as tmp:
        tmp = Path(tmp)
        b = build(lab, tmp / "dist")
        subs = tmp / "submissions"
        subs.mkdir()
        paths = generate(b, lab, subs, args.n)
        t0 = time.monotonic()
        grades = grade_folder(subs, b, timeout=args.timeout, jobs=cores)
        wall = time.monotonic() - t0
        peer = otter_peer(b, paths[:args.peer], args.timeout) if args.peer else float("nan")
    per = wall / args.n
    for200 = per * 200 / 60
    status = {s: sum(g.status == s for g in grades) for s in ("ok", "timeout", "crashed")}
    print(f"{date.today()}  {lab.name}: {args.n} submissions graded in {wall / 60:.1f} min on {cores} cores "
          f"({per:.1f} s each in wall clock; statuses {status})")
    print(f"200 submissions: {for200:.1f} min {'(measured)' if args.n == 200 else '(extrapolated from this n)'}; "
          f"goal <= 20 min: {'met' if for200 <= 20 else 'not met'}")
    print(f"peer, otter run one at a time: {peer:.1f} s per submission, i.e. {peer * 200 / 60:.1f} min for 200; "
          f"sandboxed parallel grading is {peer / per:.1f}x its throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main())
