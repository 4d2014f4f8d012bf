"""The GPU check's machinery, without a GPU: the no-CUDA failure and the report writer on synthetic results.

(The chapters themselves are not run here: nbval runs them in `make test`; the GPU check runs them on the
GPU machine.)
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab_utils.gpu_report import gpu_runtime_sentence, load_report

REPO = Path(__file__).resolve().parents[1]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure on a machine without CUDA")


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_no_cuda
def test_shell_script_fails_clearly_without_cuda(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_DIR=str(tmp_path / "scratch"))
    res = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "gpu_check: FAILED - no CUDA GPU is visible to torch" in res.stderr
    assert "CONTRIBUTING.md" in res.stderr
    assert not (tmp_path / "scratch").exists()  # it stopped before installing anything


@needs_no_cuda
def test_python_script_fails_clearly_without_cuda(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "no CUDA GPU is visible" in res.stderr and "make test" in res.stderr
    assert not list(tmp_path.iterdir())  # no report


def test_limits_fit_the_ten_minute_budget():
    gc = _gpu_check()
    assert sum(gc.LIMITS_S.values()) <= gc.DEFAULT_BUDGET_S <= 570  # leaves a minute for install and start-up
    runs = gc.discover(REPO)
    chapters = {r["chapter"] for r in runs}
    assert {"single_gpu", "checkpointing", "zero", "dp_synth", "gpu_tests"} <= chapters
    assert chapters <= set(gc.LIMITS_S), "give every chapter its own limit in scripts/gpu_check.py LIMITS_S"
    many = [{"chapter": f"c{i}", "limit_s": 120} for i in range(8)]
    assert sum(r["limit_s"] for r in gc.fit_limits(many, 540)) <= 540


def _synthetic_results():
    return [
        {"chapter": "single_gpu", "kind": "notebook", "path": "book/single_gpu/fitting_large_models.ipynb",
         "limit_s": 60, "wall_s": 41.3, "limit_hit": False, "returncode": 0, "status": "pass",
         "peak_gpu_allocated_bytes": 3 * 1024**3, "peak_gpu_used_bytes": 4 * 1024**3, "error": None},
        {"chapter": "zero", "kind": "notebook", "path": "book/zero/zero.ipynb", "limit_s": 150, "wall_s": 150.4,
         "limit_hit": True, "returncode": None, "status": "timeout", "peak_gpu_allocated_bytes": None,
         "peak_gpu_used_bytes": 9 * 1024**3, "error": "hit its 150 s limit; last output:\nstep 7"},
        {"chapter": "gpu_tests", "kind": "pytest", "path": "tests/gpu", "limit_s": 90, "wall_s": 30.0,
         "limit_hit": False, "returncode": 0, "status": "pass", "peak_gpu_allocated_bytes": 2 * 1024**3,
         "peak_gpu_used_bytes": None, "error": None,
         "tests": {"tests": 6, "failures": 0, "errors": 0, "skipped": 1, "passed": 5,
                   "skip_reasons": ["test_two_ranks: needs 2 GPUs"]}},
    ]


def test_report_writer_and_reader_on_synthetic_results(tmp_path):
    gc = _gpu_check()
    facts = {"cuda_available": True, "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_count": 1,
             "gpu_memory_bytes": 80 * 1024**3, "torch": "2.11.0+cu128", "cuda": "12.8", "cudnn": 91002,
             "python": "3.12.3", "cpu_cores": 16, "driver": "570.86", "packages": {"deepspeed": "0.19.8"}}
    report = gc.build_report(_synthetic_results(), facts, scale="gpu", budget_s=540,
                             started="2026-12-01T10:00:00+00:00", finished="2026-12-01T10:04:00+00:00",
                             commit="abc1234")
    js, md = gc.write_report(report, tmp_path / "reports")
    data = json.loads(js.read_text())
    assert data["gpu"] == "NVIDIA H100 80GB HBM3" and data["torch"] == "2.11.0+cu128" and data["cuda"] == "12.8"
    assert data["date"] == "2026-12-01" and data["passed"] is False and data["limits_hit"] == ["zero"]
    assert data["total_wall_s"] == pytest.approx(221.7)
    assert [c["chapter"] for c in data["chapters"]] == ["single_gpu", "zero", "gpu_tests"]
    text = md.read_text()
    assert "NVIDIA H100 80GB HBM3" in text and "torch 2.11.0+cu128, CUDA 12.8" in text
    assert "| `single_gpu` (book/single_gpu/fitting_large_models.ipynb) | pass | 41.3 s | 1.0 min | 3.00 GiB" in text
    assert "timeout (limit hit)" in text and "Limits hit: `zero`." in text
    assert "5 passed, 0 failed, 1 skipped" in text and "test_two_ranks: needs 2 GPUs" in text
    assert "## `zero`: timeout" in text and "**FAILED**" in text
    # the reader the chapters use
    rep = load_report(js)
    assert gpu_runtime_sentence("single_gpu", report=rep) == (
        "On one NVIDIA H100 80GB HBM3 this chapter ran in 41 s at the gpu scale "
        "(measured 2026-12-01, reports/gpu_check.json)")
    assert "needed more than its 2.5 min limit" in gpu_runtime_sentence("zero", report=rep)


def test_cpu_machinery_run_is_labelled(tmp_path):
    gc = _gpu_check()
    report = gc.build_report(_synthetic_results()[:1], {"cuda_available": False, "torch": "2.14.1"}, scale="ci",
                             budget_s=540, started="2026-12-01T10:00:00+00:00",
                             finished="2026-12-01T10:01:00+00:00", allow_cpu=True)
    assert report["passed"] is True and report["gpu"].startswith("none (CPU run")
    assert "not a GPU measurement" in gc.render_markdown(report)
    assert gpu_runtime_sentence("single_gpu", report=report) == "On one GPU: not measured yet"


def test_junit_counts(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" skipped="1">'
                   '<testcase name="a"/><testcase name="b"><failure message="x"/></testcase>'
                   '<testcase name="c"><skipped message="needs 2 GPUs"/></testcase></testsuite></testsuites>')
    counts = _gpu_check().parse_junit(xml)
    assert counts["passed"] == 1 and counts["failures"] == 1 and counts["skip_reasons"] == ["c: needs 2 GPUs"]
