import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from lab_utils.measure import (
    count_flops,
    fmt_bytes,
    peak_cuda_memory,
    saved_activation_bytes,
    time_it,
    training_state_bytes,
    unique_storage_bytes,
)


def test_linear_adam_bytes_by_hand():
    torch.manual_seed(0)
    layer = nn.Linear(10, 5)  # 50 weights + 5 biases = 55 fp32 = 220 bytes
    opt = torch.optim.Adam(layer.parameters())
    assert training_state_bytes(layer, opt).as_dict() == {
        "params": 220, "grads": 0, "optimizer_states": 0, "total": 220}
    layer(torch.randn(3, 10)).sum().backward()
    opt.step()
    # Adam: exp_avg + exp_avg_sq (2 x 220) + one 4-byte float32 step per parameter tensor (2 tensors)
    assert training_state_bytes(layer, opt).as_dict() == {
        "params": 220, "grads": 220, "optimizer_states": 448, "total": 888}


def test_sgd_momentum_and_half_precision():
    layer = nn.Linear(8, 8, bias=False).half()  # 64 fp16 = 128 bytes
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer.weight.grad = torch.ones_like(layer.weight)
    opt.step()
    b = training_state_bytes(layer, opt)
    assert (b.params, b.grads, b.optimizer_states) == (128, 128, 128)


def test_views_and_shared_storage_count_once():
    base = torch.zeros(100)
    assert unique_storage_bytes([base, base[:10], base.view(10, 10)]) == 400
    tied = nn.Linear(4, 4, bias=False)
    assert training_state_bytes([tied.weight, tied.weight]).params == 64


def test_saved_activations_of_known_mlp():
    # Linear saves its input, ReLU its output (shared with the next Linear's input)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(8, 16)
    with saved_activation_bytes(m) as s:
        loss = m(x).sum()
    assert s.activations == 8 * (16 + 32 + 32) * 4
    # weights are saved to form the input gradient; the first layer's is not (x needs no gradient)
    assert s.params == (32 * 32 + 4 * 32) * 4
    loss.backward()


def test_saved_activations_with_checkpointing():
    torch.manual_seed(0)
    layers = []
    for _ in range(16):
        layers += [nn.Linear(32, 32), nn.ReLU()]
    m = nn.Sequential(*layers)
    x = torch.randn(4, 32)
    unit = 4 * 32 * 4
    with saved_activation_bytes(m) as full:
        m(x).sum()
    with saved_activation_bytes(m) as ckpt:
        checkpoint_sequential(m, 4, x, use_reentrant=False).sum()
    assert full.activations == 17 * unit
    # 3 checkpointed segments keep only their inputs; the last one runs normally (its input + 4 ReLU outputs)
    assert ckpt.activations == (3 + 1 + 4) * unit


def test_time_it_and_errors():
    t = time_it(lambda: sum(range(1000)), warmup=1, repeats=3)
    assert len(t.times) == 3 and t.median > 0 and t.spread >= 0
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_it(lambda: None, repeats=0)


def test_flops_of_a_matmul():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_peak_memory_is_none_on_cpu():
    with peak_cuda_memory("cpu") as peak:
        torch.ones(10)
    assert peak.peak is None and peak.increase is None


def test_fmt_bytes():
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(3 * 1024**2) == "3.00 MiB"
