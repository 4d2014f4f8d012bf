"""Hidden tests of lab 01 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden.
"""

from lab_utils.grading.hidden import Hidden, raised

# ---------------------------------------------------------------- q1: bytes per parameter
MEASURED = [("adagrad", "fp32"), ("rmsprop", "bf16"), ("adamw", "bf16"), ("momentum", "fp16"),
            ("adam", "fp32"), ("rmsprop", "fp32")]


def probe_q1_measured_setups(bytes_per_param):
    setups = [("adagrad", "fp32"), ("rmsprop", "bf16"), ("adamw", "bf16"), ("momentum", "fp16"),
              ("adam", "fp32"), ("rmsprop", "fp32")]
    return [bytes_per_param(opt, weights) for opt, weights in setups]


def judge_q1_measured_setups(out):
    """Each answer against a real PyTorch optimizer's state, measured after one step."""
    import torch

    from lab_utils.measure import training_state_bytes

    classes = {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adamw": torch.optim.AdamW,
               "adam": torch.optim.Adam, "momentum": torch.optim.SGD}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    for got, (optimizer, weights) in zip(out, MEASURED):
        layer = torch.nn.Linear(37, 11, bias=False).to(dtypes[weights])
        opt = classes[optimizer](layer.parameters(), lr=0.01, **({"momentum": 0.9} if optimizer == "momentum" else {}))
        layer.weight.grad = torch.ones_like(layer.weight)
        opt.step()
        step = sum(t.nbytes for t in opt.state[layer.weight].values() if t.numel() == 1)  # the scalar counter
        measured = (training_state_bytes(layer, opt).total - step) / layer.weight.numel()
        assert got == measured, f"{optimizer} with {weights} weights: measured {measured:g} B/param, got {got!r}"


def probe_q1_master_weights(bytes_per_param):
    return [bytes_per_param("adam", "fp16", master=True), bytes_per_param("momentum", "bf16", master=True),
            bytes_per_param("adagrad", "bf16", master=True), bytes_per_param("sgd", "fp16", master=True)]


def judge_q1_master_weights(out):
    # 16-bit weights and gradients, an fp32 master copy, fp32 states: the ZeRO paper's 2 + 2 + K count
    want = [2 + 2 + 4 + 8, 2 + 2 + 4 + 4, 2 + 2 + 4 + 4, 2 + 2 + 4]
    assert out == want, f"with an fp32 master copy: expected {want} B/param for adam, momentum, adagrad, sgd; got {out}"


def probe_q1_errors(bytes_per_param):
    out = []
    for args in [("lamb", "fp32", False), ("adam", "fp8", False), ("adam", "fp32", True)]:
        try:
            out.append(bytes_per_param(*args))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    for got, setup in zip(out, ["lamb/fp32", "adam/fp8", "adam/fp32 with an fp32 master"]):
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


# ---------------------------------------------------------------- q4: measure, and say why
ACTIVATIONS = [("GELU", 3, 5, 12, 3), ("Tanh", 6, 7, 10, 2), ("SiLU", 2, 9, 20, 4), ("Sigmoid", 5, 4, 6, 1)]


def probe_q4_measured(measure_saved_bytes):
    from torch import nn

    cases = [("GELU", 3, 5, 12, 3), ("Tanh", 6, 7, 10, 2), ("SiLU", 2, 9, 20, 4), ("Sigmoid", 5, 4, 6, 1)]
    return [measure_saved_bytes(getattr(nn, name), b, d, w, n) for name, b, d, w, n in cases]


def _grader_measurement(name, batch, d_in, width, depth):
    import torch
    from torch import nn

    from lab_utils.measure import saved_activation_bytes

    layers = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), getattr(nn, name)()]
    model = nn.Sequential(*layers, nn.Linear(width, 2))
    with saved_activation_bytes(model) as s:
        model(torch.randn(batch, d_in))
    return s.activations


def judge_q4_saved(out):
    for got, case in zip(out, ACTIVATIONS):
        want = _grader_measurement(*case)
        assert isinstance(got, dict) and got.get("saved") == want, f"{case}: the grader measured {want} B, got {got!r}"


def judge_q4_extra_per_block(out):
    for got, (name, b, d, w, n) in zip(out, ACTIVATIONS):
        want = (_grader_measurement(name, b, d, w, n) - _grader_measurement("ReLU", b, d, w, n)) // n
        assert got.get("extra_per_block") == want, f"{name}: extra bytes per block measured {want}, got {got!r}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_measured_setups, judge_q1_measured_setups, requires=("judge_q1_master_weights",)),
    Hidden("q1", 0.5, probe_q1_master_weights, judge_q1_master_weights, requires=("judge_q1_measured_setups",)),
    Hidden("q1", 0.5, probe_q1_errors, judge_q1_errors,
           requires=("judge_q1_measured_setups", "judge_q1_master_weights")),
    Hidden("q2", 1, probe_q2_predictions, judge_q2_small_measured, requires=("judge_q2_too_big_to_measure",)),
    Hidden("q2", 1, probe_q2_predictions, judge_q2_too_big_to_measure),
    Hidden("q3", 2, probe_q3_accumulation, judge_q3_gradient, requires=("judge_q3_micro_batches",)),
    Hidden("q3", 1, probe_q3_accumulation, judge_q3_micro_batches, requires=("judge_q3_gradient",)),
    Hidden("q4", 1, probe_q4_measured, judge_q4_saved, requires=("judge_q4_extra_per_block",)),
    Hidden("q4", 1, probe_q4_measured, judge_q4_extra_per_block, requires=("judge_q4_saved",)),
]
