import pytest
import torch
from torch import nn

from lab_utils.fitting.memory import (
    accumulated_gradients,
    bytes_per_parameter,
    full_batch_gradients,
    make_mlp,
    max_batch_that_fits,
    mlp_activation_bytes,
    training_memory_formula,
)
from lab_utils.measure import saved_activation_bytes, training_state_bytes


def test_conventions():
    assert sum(bytes_per_parameter("adam", "fp32")) == 16
    assert sum(bytes_per_parameter("adam", "mixed")) == 16
    assert bytes_per_parameter("adam", "mixed")[2] == 12  # ZeRO's K
    assert sum(bytes_per_parameter("adam", "mixed-hf")) == 18
    assert training_memory_formula(int(7.5e9), "adam", "mixed").total == 120 * 10**9
    with pytest.raises(ValueError, match="no memory convention"):
        bytes_per_parameter("lamb", "fp8")


def test_formula_matches_measured_adam_state():
    torch.manual_seed(0)
    m = make_mlp(12, 20, 3, 5)
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(4, 12)).sum().backward()
    opt.step()
    n = sum(p.numel() for p in m.parameters())
    pred = training_memory_formula(n, "adam", "fp32", num_param_tensors=len(list(m.parameters())))
    assert training_state_bytes(m, opt).as_dict() == pred.as_dict()


@pytest.mark.parametrize("batch,depth", [(1, 1), (7, 3), (16, 5)])
def test_activation_formula_matches_measurement(batch, depth):
    m = make_mlp(10, 24, depth, 3)
    with saved_activation_bytes(m) as s:
        m(torch.randn(batch, 10))
    assert s.activations == mlp_activation_bytes(batch, 10, 24, depth)


@pytest.mark.parametrize("micro", [1, 3, 8, 24])
def test_gradient_accumulation_equals_full_batch(micro):
    torch.manual_seed(1)
    m = make_mlp(6, 16, 2, 4)
    x, y = torch.randn(24, 6), torch.randint(0, 4, (24,))
    full = full_batch_gradients(m, nn.CrossEntropyLoss(), x, y)
    acc = accumulated_gradients(m, nn.CrossEntropyLoss(), x, y, micro)
    for a, b in zip(full, acc):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_unscaled_accumulation_would_be_wrong():
    # guards the b_i / B scaling: summing un-scaled micro-batch means is 4x too large
    torch.manual_seed(2)
    m = make_mlp(6, 8, 1, 2)
    x, y = torch.randn(16, 6), torch.randint(0, 2, (16,))
    full = full_batch_gradients(m, nn.CrossEntropyLoss(), x, y)
    m.zero_grad()
    for i in range(0, 16, 4):
        nn.CrossEntropyLoss()(m(x[i:i + 4]), y[i:i + 4]).backward()
    assert not torch.allclose(full[0], m[0].weight.grad)
    torch.testing.assert_close(full[0] * 4, m[0].weight.grad, rtol=1e-5, atol=1e-6)


def test_bad_input():
    m = make_mlp(4, 4, 1, 2)
    with pytest.raises(ValueError, match="micro_batch must be between 1"):
        accumulated_gradients(m, nn.CrossEntropyLoss(), torch.randn(4, 4), torch.zeros(4).long(), 0)
    with pytest.raises(ValueError):
        make_mlp(4, 4, 0, 2)
    assert max_batch_that_fits(1000, 200, 100) == 8
    assert max_batch_that_fits(100, 200, 10) == 0
