"""What the last GPU check measured, for the chapters' *Run time* lines.

``make gpu-check`` (``scripts/gpu_check.sh`` on a CUDA machine) runs every chapter at the ``gpu``
scale and commits ``reports/gpu_check.json``. :func:`load_report` reads that file and
:func:`gpu_runtime_sentence` turns one chapter's entry into a sentence; a chapter the report
does not have gets an explicitly labelled estimate instead, with the basis the caller gives.

>>> gpu_runtime_sentence("single_gpu")  # doctest: +SKIP
'On one NVIDIA H200 this chapter ran in 3.1 min at the gpu scale (measured 2026-12-01, reports/gpu_check.json)'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT = Path("reports") / "gpu_check.json"


def _candidates() -> list[Path]:
    """Where the report may be: $LAB_GPU_REPORT, up from the cwd, then the repository around this package."""
    out = []
    if os.environ.get("LAB_GPU_REPORT"):
        out.append(Path(os.environ["LAB_GPU_REPORT"]))
    here = Path.cwd().resolve()
    out += [d / REPORT for d in (here, *here.parents)]
    out.append(Path(__file__).resolve().parents[2] / REPORT)  # src/lab_utils/ -> repository root
    return out


def load_report(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The committed GPU-check report (``reports/gpu_check.json``) as a dict, or ``None`` if there is none.

    ``path`` names a report file; without it the report is looked for in ``$LAB_GPU_REPORT``, in
    ``reports/`` of the current folder and its parents (a chapter runs in ``book/<chapter>/``), then
    in the repository this package was installed from. The dict gains ``"_path"``: the file it came from.
    """
    paths = [Path(path)] if path is not None else _candidates()
    for p in paths:
        if p.is_file():
            try:
                report = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{p} is not a readable GPU-check report ({e}); "
                                 "rerun `bash scripts/gpu_check.sh` on the GPU machine") from e
            if not isinstance(report, dict) or "chapters" not in report:
                raise ValueError(f"{p} has no 'chapters': not a report written by scripts/gpu_check.py")
            report["_path"] = str(p)
            return report
    return None


def chapter_result(chapter: str, report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report's entry for ``chapter`` (its ``book/`` folder name, e.g. ``"zero"``), or ``None``."""
    if not report:
        return None
    for entry in report.get("chapters", []):
        if entry.get("chapter") == chapter:
            return entry
    return None


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _display_path(report: dict[str, Any]) -> str:
    p = Path(report.get("_path", REPORT))
    parts = p.parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 and parts[-2] == "reports" else str(p)


def gpu_runtime_sentence(chapter: str, estimate_min: float | None = None, basis: str | None = None,
                         report: dict[str, Any] | None = None, path: str | os.PathLike | None = None) -> str:
    """One sentence on the chapter's GPU run time: measured if the GPU check has it, else the estimate.

    Measured: "On one NVIDIA H200 this chapter ran in 3.1 min at the gpu scale (measured 2026-12-01,
    reports/gpu_check.json)". Not measured (no report, chapter absent, a CPU-only report, or the run
    failed): "On one GPU: not measured yet — an estimate of about 2 min, from <basis>". A chapter that
    hit its time limit is said to have needed more than the limit.
    """
    if (estimate_min is None) != (basis is None):
        raise ValueError("pass both estimate_min and basis (what the estimate rests on), or neither")
    if estimate_min is not None and estimate_min <= 0:
        raise ValueError(f"estimate_min must be > 0 minutes, got {estimate_min}")
    if report is None:
        report = load_report(path)
    entry = chapter_result(chapter, report)
    measured_on_gpu = bool(report) and not report.get("allow_cpu") and report.get("gpu_count", 1) >= 1
    if entry is not None and measured_on_gpu:
        gpu, date, where = report.get("gpu", "GPU"), report.get("date", "?"), _display_path(report)
        scale = report.get("scale", "gpu")
        if entry.get("status") == "pass" and entry.get("wall_s") is not None:
            return (f"On one {gpu} this chapter ran in {_minutes(entry['wall_s'])} at the {scale} scale "
                    f"(measured {date}, {where})")
        if entry.get("status") == "timeout" or entry.get("limit_hit"):
            return (f"On one {gpu} this chapter needed more than its {_minutes(entry['limit_s'])} limit "
                    f"at the {scale} scale (GPU check of {date}, {where})")
    if estimate_min is None:
        return "On one GPU: not measured yet"
    return f"On one GPU: not measured yet — an estimate of about {estimate_min:g} min, from {basis}"
