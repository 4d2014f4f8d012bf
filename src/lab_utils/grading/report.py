"""The instructor's report beside the gradebook: per-question summary and the score distribution.

For each question: mean and median points, how many submissions earned full, partial and no marks,
and the hidden test that failed most often with its most common reason (what to revisit in class);
the submissions that timed out or crashed. Written as Markdown (``<gradebook>.report.md``) with a PNG
of the score histograms (``<gradebook>.scores.png``) via :func:`lab_utils.plot.score_histograms`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from lab_utils.grading.build import LabBuild
from lab_utils.grading.grade import Grade


def question_summary(grades: list[Grade], b: LabBuild) -> list[dict]:
    rows = []
    for q, top in b.points.items():
        pts = [g.scores[q] for g in grades]
        tests = [t.name for t in b.hidden if t.question == q]
        fails = Counter(name for g in grades for name in g.failed if name in tests)
        worst, count = fails.most_common(1)[0] if fails else ("", 0)
        reasons = Counter(g.failed[worst].split(":")[0] + ": " + g.failed[worst].split(":", 1)[-1][:80].strip()
                          for g in grades if worst in g.failed)
        rows.append({"question": q, "points": top, "mean": statistics.fmean(pts), "median": statistics.median(pts),
                     "full": sum(p == top for p in pts), "partial": sum(0 < p < top for p in pts),
                     "zero": sum(p == 0 for p in pts), "most failed test": worst, "failed by": count,
                     "most common reason": reasons.most_common(1)[0][0] if reasons else ""})
    return rows


def write_report(grades: list[Grade], b: LabBuild, gradebook: Path) -> Path:
    """``<gradebook>.report.md`` and ``<gradebook>.scores.png``; returns the Markdown file's path."""
    import matplotlib

    matplotlib.use("agg")
    from lab_utils.plot import score_histograms

    rows = question_summary(grades, b)
    out = gradebook.with_suffix(".report.md")
    png = gradebook.with_suffix(".scores.png")
    totals = [g.total for g in grades]
    lines = [f"# {b.lab_dir.name}: {len(grades)} submissions", "",
             f"Total: mean {statistics.fmean(totals):.2f} / {b.total:g}, median {statistics.median(totals):g}; "
             f"timed out {sum(g.status == 'timeout' for g in grades)}, crashed {sum(g.status == 'crashed' for g in grades)}.",
             "", f"![score distribution]({png.name})", "",
             "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    trouble = [g for g in grades if g.status != "ok"]
    if trouble:
        lines += ["", "## Submissions that did not finish", ""]
        lines += [f"- {g.submission}: {g.status} ({g.detail.splitlines()[0] if g.detail else ''})" for g in trouble]
    out.write_text("\n".join(lines) + "\n")
    fig = score_histograms({"total": totals, **{q: [g.scores[q] for g in grades] for q in b.points}},
                           {"total": b.total, **b.points}, title=b.lab_dir.name)
    fig.savefig(png, dpi=100)
    return out
