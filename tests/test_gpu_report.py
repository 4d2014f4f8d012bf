import json

import pytest

from lab_utils.gpu_report import chapter_result, gpu_runtime_sentence, load_report


def _report(**over):
    rep = {"schema": 1, "date": "2026-12-01", "gpu": "NVIDIA H200", "gpu_count": 1, "scale": "gpu",
           "allow_cpu": False,
           "chapters": [{"chapter": "single_gpu", "status": "pass", "wall_s": 186.0, "limit_s": 240},
                        {"chapter": "zero", "status": "timeout", "wall_s": 150.2, "limit_s": 150,
                         "limit_hit": True},
                        {"chapter": "dp_synth", "status": "fail", "wall_s": 12.0, "limit_s": 120},
                        {"chapter": "checkpointing", "status": "pass", "wall_s": 41.0, "limit_s": 120}]}
    rep.update(over)
    return rep


@pytest.fixture
def report_file(tmp_path):
    path = tmp_path / "reports" / "gpu_check.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_report()))
    return path


def test_measured_sentence_from_a_report_file(report_file):
    rep = load_report(report_file)
    assert rep["gpu"] == "NVIDIA H200" and rep["_path"] == str(report_file)
    assert chapter_result("zero", rep)["status"] == "timeout" and chapter_result("nope", rep) is None
    assert gpu_runtime_sentence("single_gpu", path=report_file) == (
        "On one NVIDIA H200 this chapter ran in 3.1 min at the gpu scale "
        "(measured 2026-12-01, reports/gpu_check.json)")
    assert "ran in 41 s" in gpu_runtime_sentence("checkpointing", report=rep)


def test_limit_hit_and_unmeasured_chapters(report_file):
    rep = load_report(report_file)
    assert gpu_runtime_sentence("zero", report=rep) == (
        "On one NVIDIA H200 this chapter needed more than its 2.5 min limit at the gpu scale "
        "(GPU check of 2026-12-01, reports/gpu_check.json)")
    # a failed run is no measurement; an absent chapter neither
    for chapter in ("dp_synth", "pipelines"):
        assert gpu_runtime_sentence(chapter, 2, "the CPU run time scaled by the matmul speed-up", report=rep) == (
            "On one GPU: not measured yet — an estimate of about 2 min, from the CPU run time scaled by the "
            "matmul speed-up")
    assert gpu_runtime_sentence("pipelines", report=rep) == "On one GPU: not measured yet"


def test_no_report_and_cpu_only_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_report(tmp_path / "missing.json") is None
    cpu = _report(allow_cpu=True, gpu_count=0, gpu="none (CPU run)")
    assert gpu_runtime_sentence("single_gpu", 1.5, "a guess", report=cpu).startswith("On one GPU: not measured yet")
    assert gpu_runtime_sentence("single_gpu", 1.5, "a guess", report={}) == (
        "On one GPU: not measured yet — an estimate of about 1.5 min, from a guess")


def test_default_lookup_walks_up_from_the_chapter_folder(report_file, monkeypatch):
    chapter_dir = report_file.parent.parent / "book" / "single_gpu"
    chapter_dir.mkdir(parents=True)
    monkeypatch.chdir(chapter_dir)
    monkeypatch.setenv("LAB_GPU_REPORT", str(report_file.parent / "absent.json"))
    assert load_report()["_path"] == str(report_file)


def test_bad_input_gets_a_clear_error(tmp_path):
    bad = tmp_path / "gpu_check.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable GPU-check report"):
        load_report(bad)
    bad.write_text("[]")
    with pytest.raises(ValueError, match="no 'chapters'"):
        load_report(bad)
    with pytest.raises(ValueError, match="pass both"):
        gpu_runtime_sentence("zero", estimate_min=3)
    with pytest.raises(ValueError, match="> 0"):
        gpu_runtime_sentence("zero", 0, "nothing", report={})
