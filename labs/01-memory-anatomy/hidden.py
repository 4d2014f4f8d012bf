"""Hidden tests of lab 01 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden.
"""

from lab_utils.grading.hidden import Hidden, raised


# ---------------------------------------------------------------- q1: bytes per parameter
def probe_q1_every_setup(bytes_per_param):
    out = {}
    for setup in [("adam", "fp32"), ("adam", "mixed"), ("momentum", "fp32"), ("sgd", "fp32")]:
        out[setup] = bytes_per_param(*setup)
    return out


def judge_q1_every_setup(out):
    import torch

    from lab_utils.measure import training_state_bytes

    for (optimizer, precision), opt_cls in [(("adam", "fp32"), torch.optim.Adam),
                                            (("momentum", "fp32"), torch.optim.SGD)]:
        layer = torch.nn.Linear(37, 11, bias=False)
        kwargs = {"momentum": 0.9} if optimizer == "momentum" else {}
        opt = opt_cls(layer.parameters(), lr=0.1, **kwargs)
        layer(torch.randn(3, 37)).sum().backward()
        opt.step()
        measured = training_state_bytes(layer, opt).total - (4 if optimizer == "adam" else 0)  # Adam's step
        got = out[(optimizer, precision)]
        assert got * 37 * 11 == measured, f"{optimizer}/{precision}: {got} B/param, measured {measured / 407}"
    assert out[("adam", "mixed")] == 16, "the ZeRO paper's mixed-precision Adam count is 2 + 2 + 12"
    assert out[("sgd", "fp32")] == 8


def probe_q1_errors(bytes_per_param):
    out = []
    for setup in [("lamb", "fp32"), ("sgd", "mixed"), ("adam", "fp8")]:
        try:
            out.append(bytes_per_param(*setup))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    for got, setup in zip(out, ["lamb/fp32", "sgd/mixed", "adam/fp8"]):
        assert isinstance(got, str) and got.startswith("ValueError"), f"{setup} must raise ValueError, got {got!r}"


# ---------------------------------------------------------------- q2: predicted activation bytes
SMALL = [(1, 3, 5, 1, 4), (7, 10, 24, 3, 4), (16, 32, 8, 6, 4), (5, 9, 12, 2, 2)]
# a GPT-3-sized MLP: 96 blocks of width 49152 -- ~0.9 TB of weights, which no one can build to measure
HUGE = [(4096, 12288, 49152, 96, 2), (2048, 4096, 16384, 40, 4)]


def probe_q2_predictions(saved_activation_bytes_mlp):
    configs = [(1, 3, 5, 1, 4), (7, 10, 24, 3, 4), (16, 32, 8, 6, 4), (5, 9, 12, 2, 2),
               (4096, 12288, 49152, 96, 2), (2048, 4096, 16384, 40, 4)]
    return [saved_activation_bytes_mlp(b, d, w, n, dtype_bytes=e) for b, d, w, n, e in configs]


def judge_q2_small_measured(out):
    import torch

    from lab_utils.fitting.memory import make_mlp
    from lab_utils.measure import saved_activation_bytes

    for got, (batch, d_in, width, depth, e) in zip(out, SMALL):   # measured in fp32, scaled to e bytes
        model = make_mlp(d_in, width, depth, 2)
        with saved_activation_bytes(model) as saved:
            model(torch.randn(batch, d_in))
        assert got == saved.activations * e // 4, \
            f"batch {batch}, d_in {d_in}, width {width}, depth {depth}: measured {saved.activations * e // 4}, got {got}"


def judge_q2_too_big_to_measure(out):
    from lab_utils.fitting.memory import mlp_activation_bytes

    for got, (batch, d_in, width, depth, e) in zip(out[len(SMALL):], HUGE):
        assert not raised(got, "MemoryError", "RuntimeError"), \
            f"this MLP cannot be built to measure it ({got.message[:80]}): predict, do not measure"
        want = mlp_activation_bytes(batch, d_in, width, depth, dtype_bytes=e)
        assert got == want, f"batch {batch}, width {width}, depth {depth}: expected {want} bytes, got {got}"


# ---------------------------------------------------------------- q3: gradient accumulation
def probe_q3_accumulation(accumulate_gradients):
    import torch
    from torch import nn

    out = []
    for seed, n, d, h, c, micro in [(11, 10, 6, 16, 4, 4), (12, 7, 5, 9, 3, 3), (13, 9, 4, 8, 2, 9)]:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, c))
        x, y = torch.randn(n, d), torch.randint(0, c, (n,))
        for p in model.parameters():          # stale gradients must not leak into the result
            p.grad = torch.ones_like(p)
        sizes = []
        model.register_forward_pre_hook(lambda m, args, sizes=sizes: sizes.append(int(args[0].shape[0])))
        accumulate_gradients(model, nn.CrossEntropyLoss(), x, y, micro)
        out.append({"grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
                    "forward_batch_sizes": sizes})
    return out


CASES = [(11, 10, 6, 16, 4, 4), (12, 7, 5, 9, 3, 3), (13, 9, 4, 8, 2, 9)]


def judge_q3_gradient(out):
    import torch
    from torch import nn

    for got, (seed, n, d, h, c, micro) in zip(out, CASES):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, c))
        x, y = torch.randn(n, d), torch.randint(0, c, (n,))
        nn.CrossEntropyLoss()(model(x), y).backward()
        for g, p in zip(got["grads"], model.parameters()):
            assert g is not None, "a parameter has no gradient"
            assert torch.allclose(g, p.grad, atol=1e-6), f"n={n}, micro_batch={micro}: not the full batch's gradient"


def judge_q3_micro_batches(out):
    for got, (_, n, _, _, _, micro) in zip(out, CASES):
        sizes = got["forward_batch_sizes"]
        want = [min(micro, n - s) for s in range(0, n, micro)]
        assert sizes == want, f"n={n}, micro_batch={micro}: the model saw batches of {sizes}, expected {want}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_every_setup, judge_q1_every_setup),
    Hidden("q1", 1, probe_q1_errors, judge_q1_errors, requires=("judge_q1_every_setup",)),
    Hidden("q2", 1, probe_q2_predictions, judge_q2_small_measured, requires=("judge_q2_too_big_to_measure",)),
    Hidden("q2", 1, probe_q2_predictions, judge_q2_too_big_to_measure),
    Hidden("q3", 2, probe_q3_accumulation, judge_q3_gradient, requires=("judge_q3_micro_batches",)),
    Hidden("q3", 1, probe_q3_accumulation, judge_q3_micro_batches, requires=("judge_q3_gradient",)),
]
