"""The measurement helpers on a real GPU: CUDA-event timing, and allocator peaks against the byte formulas."""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch import nn

from lab_utils.fitting.memory import make_mlp, mlp_activation_bytes, training_memory_formula
from lab_utils.measure import peak_cuda_memory, saved_activation_bytes, time_it, training_state_bytes

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture
def fp32_matmuls():
    """Full fp32 matmuls (no TF32), restored afterwards."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


def test_time_it_cuda_events_agree_with_perf_counter_on_synchronised_matmul(fp32_matmuls):
    a = torch.randn(4096, 4096, device=CUDA)
    b = torch.randn(4096, 4096, device=CUDA)

    def work():  # ~0.5 TFLOP: tens of ms on an H100 in fp32, so launch overheads are negligible
        for _ in range(4):
            a @ b

    timing = time_it(work, warmup=2, repeats=7, device="cuda")
    assert timing.device == "cuda" and len(timing.times) == 7
    wall = []
    for _ in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        work()
        torch.cuda.synchronize()
        wall.append(time.perf_counter() - t0)
    ratio = timing.median / statistics.median(wall)
    # events time the GPU's work only; perf_counter adds launch and sync latency (microseconds)
    assert 0.8 <= ratio <= 1.1, f"CUDA events {timing} vs perf_counter median {statistics.median(wall):.4f} s"


def _mlp(d_in=1024, width=2048, depth=4, d_out=128):
    torch.manual_seed(0)
    return make_mlp(d_in, width, depth, d_out).to(CUDA)


def _warm_up_cublas():
    """Run the kernels once so cuBLAS's workspace (held by the allocator) exists before measuring."""
    m = make_mlp(16, 16, 2, 8).to(CUDA)
    nn.functional.mse_loss(m(torch.randn(8, 16, device=CUDA)), torch.zeros(8, 8, device=CUDA)).backward()
    torch.optim.Adam(m.parameters()).step()
    del m


def test_allocated_training_state_equals_the_formula_and_training_state_bytes():
    _warm_up_cublas()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 1024, device=CUDA), torch.randn(64, 128, device=CUDA)
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    del x, y
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated() - base
    n = sum(p.numel() for p in model.parameters())
    tensors = len(list(model.parameters()))
    measured = training_state_bytes(model, opt)
    formula = training_memory_formula(n, "adam", "fp32", num_param_tensors=tensors)
    assert measured.as_dict() == formula.as_dict()
    # Adam's 4-byte `step` counters stay on the CPU unless capturable/fused (then each takes one
    # 512-byte block); the GPU holds the rest exactly: every tensor here is a multiple of 512 bytes
    steps_on_gpu = sum(1 for s in opt.state.values() if s["step"].is_cuda)
    assert held == formula.total - 4 * tensors + 512 * steps_on_gpu, (held, formula.total)
    del model, opt


def test_forward_peak_matches_mlp_activation_bytes():
    batch, d_in, width, depth, d_out = 4096, 1024, 2048, 4, 128
    model = _mlp(d_in, width, depth, d_out)
    x0 = torch.randn(8, d_in, device=CUDA)
    nn.functional.mse_loss(model(x0), torch.zeros(8, d_out, device=CUDA)).backward()  # cuBLAS workspace, grads
    x, y = torch.randn(batch, d_in, device=CUDA), torch.randn(batch, d_out, device=CUDA)
    formula = mlp_activation_bytes(batch, d_in, width, depth)
    x_bytes, hidden_bytes, out_bytes = batch * d_in * 4, batch * width * 4, batch * d_out * 4
    with peak_cuda_memory(CUDA) as peak:
        with saved_activation_bytes(model) as saved:
            out = model(x)
        loss = nn.functional.mse_loss(out, y)  # saves `out` and `y` too, outside the MLP's formula
        torch.cuda.synchronize()
        kept = torch.cuda.memory_allocated() - peak.start
    assert saved.activations == formula  # x and every ReLU output, counted on real CUDA tensors
    # What the forward added to the allocator (x and y existed before): the saved activations but x,
    # the output (saved by the loss) and the loss (one 512-byte block) ...
    expected_kept = formula - x_bytes + out_bytes + 512
    assert expected_kept <= kept <= expected_kept + 1024**2, (kept, expected_kept)
    # ... and at the peak, one Linear's pre-activation output lives next to its ReLU's output (plus, at
    # most, a cuBLAS workspace taken for the call: up to 32 MiB on Hopper)
    workspace = 32 * 1024**2
    assert formula - x_bytes <= peak.increase <= formula - x_bytes + hidden_bytes + out_bytes + workspace, (
        peak.increase, formula)
    loss.backward()
