import pytest

from lab_utils.device import Scale, detect_scale, pick_device, require_cuda, setup


def test_scale_choice_and_override():
    assert detect_scale({}, cuda=False).name == "cpu"
    assert detect_scale({}, cuda=True).name == "gpu"
    assert detect_scale({"CI": "true"}, cuda=True).name == "ci"
    assert detect_scale({"CI": "true", "LAB_SCALE": "cpu"}, cuda=False).name == "cpu"
    assert "LAB_SCALE" in detect_scale({"LAB_SCALE": "ci"}, cuda=False).reason


def test_bad_scale_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="LAB_SCALE='huge' is not a scale profile"):
        detect_scale({"LAB_SCALE": "huge"}, cuda=False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        detect_scale({"LAB_SCALE": "gpu"}, cuda=False)
    with pytest.raises(ValueError, match="unknown scale"):
        Scale("big", "")


def test_pick_defaults_cascade():
    assert Scale("ci", "").pick(ci=1, cpu=2, gpu=3) == 1
    assert Scale("gpu", "").pick(ci=1, cpu=2) == 2
    assert Scale("cpu", "").pick(ci=1) == 1


def test_cpu_machine(capsys, monkeypatch):
    monkeypatch.setenv("LAB_SCALE", "ci")
    device, scale = setup()
    assert scale.name == "ci"
    assert "scale=ci (LAB_SCALE is set)" in capsys.readouterr().out
    assert pick_device("cpu").type == "cpu"


def test_missing_gpu_is_a_clear_error():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="ZeRO-Infinity NVMe needs 1 CUDA GPU"):
        require_cuda("ZeRO-Infinity NVMe")
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        pick_device("cuda")
