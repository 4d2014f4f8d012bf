import time
import tracemalloc

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from lab_utils.measure import (
    count_flops,
    fmt_bytes,
    free_memory_bytes,
    interleaved_times,
    live_feature_map_bytes,
    peak_cuda_memory,
    release_cached_memory,
    saved_activation_bytes,
    time_it,
    tracemalloc_peak,
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
    with pytest.raises(ValueError, match="'cpu', 'cuda' and 'mps'"):
        time_it(lambda: None, device="meta")


def test_time_it_synchronises_mps_around_every_repeat(monkeypatch):
    log = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: log.append("sync"))
    t = time_it(lambda: log.append("fn"), warmup=1, repeats=3, device="mps")
    # the warm-up call is not timed; each timed call is preceded and followed by a synchronize
    assert log == ["fn"] + ["sync", "fn", "sync"] * 3
    assert t.device == "mps" and len(t.times) == 3
    log.clear()
    time_it(lambda: log.append("fn"), warmup=1, repeats=3, device="cpu")
    assert log == ["fn"] * 4, "the CPU needs no synchronisation"


def test_interleaved_times_alternate_and_measure():
    order = []
    steps = {"slow": lambda: (order.append("slow"), time.sleep(0.02)), "fast": lambda: order.append("fast")}
    times = interleaved_times(steps, repeats=3)
    assert order == ["slow", "fast"] * 4  # one warm-up round, then 3 timed rounds
    assert [len(t.times) for t in times.values()] == [3, 3]
    assert times["slow"].median >= 0.02 > min(times["fast"].times)
    with pytest.raises(ValueError, match="at least one step"):
        interleaved_times({}, repeats=3)


def test_tracemalloc_sees_python_objects_not_tensors():
    objects = tracemalloc_peak(lambda: [object() for _ in range(100_000)])
    tensor = tracemalloc_peak(lambda: torch.ones(1024, 1024))  # 4 MiB of storage
    assert objects > 1_000_000 and tensor < 64 * 1024
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:  # already tracing: the peak is taken relative to now, and tracing stays on
        keep = [object() for _ in range(100_000)]
        assert tracemalloc_peak(lambda: None) < 64 * 1024 and tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    del keep


def _chain(n, width=8):
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(n)])


def test_live_feature_maps_of_plain_and_checkpointed_chains():
    m, x = _chain(4), torch.randn(2, 8)
    a = 2 * 8 * 4  # bytes of one feature map
    with live_feature_map_bytes(m) as plain:
        m(x).sum().backward()
    assert plain.peak == 5 * a  # a_0 .. a_4 all kept until backward
    assert plain.samples[-1] == a  # backward freed all but the input x, which the test holds

    with live_feature_map_bytes(m) as one:
        checkpoint(m, x, use_reentrant=False).sum().backward()
    # the forward holds a_0 and two maps in flight; recomputing the segment brings back a_1 .. a_4
    assert max(one.samples[:8]) == 3 * a and one.peak == 5 * a

    def two_segments(x):
        x = checkpoint(m[:2], x, use_reentrant=False)
        return checkpoint(m[2:], x, use_reentrant=False)

    with live_feature_map_bytes(m) as ck:
        two_segments(x).sum().backward()
    # stored a_0, a_2; recomputing the last segment brings back a_3, a_4: Chen et al.'s 2 + 2
    assert ck.peak == 4 * a
    with pytest.raises(ValueError, match="no children"):
        with live_feature_map_bytes(nn.ReLU()):
            pass
    assert not m[0]._forward_hooks and not m[0]._forward_pre_hooks  # hooks removed


def test_free_and_release_memory_on_cpu():
    free = free_memory_bytes("cpu")
    assert free is None or free > 0
    release_cached_memory("cpu")


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


def test_interface_bytes_sent_reads_the_transmit_column(tmp_path):
    from lab_utils.measure import interface_bytes_sent

    net_dev = tmp_path / "dev"
    net_dev.write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        "    lo:  111 2 0 0 0 0 0 0  999 3 0 0 0 0 0 0\n"
        "  eth0: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n")
    assert interface_bytes_sent("lo", net_dev) == 999
    assert interface_bytes_sent("eth0", net_dev) == 7
    assert interface_bytes_sent("lo", tmp_path / "missing") is None
    with pytest.raises(ValueError, match="no network interface 'wlan9'"):
        interface_bytes_sent("wlan9", net_dev)
