"""Hidden tests of lab 03 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. Every input here
is new: the public tests, the questions and the chapter (Figure 1's 7.5 B on 64 GPUs, Table 1's model
sizes and DP degrees) use others.
"""

from lab_utils.grading.hidden import Hidden

# ---------------------------------------------------------------- q1: bytes per device per stage
Q1_CASES = [(3.3e9, 24, 0, 12), (3.3e9, 24, 1, 12), (3.3e9, 24, 2, 12), (3.3e9, 24, 3, 12),
            (50e9, 12, 2, 12), (2e11, 96, 1, 12), (9e8, 5, 3, 12), (6000, 3, 1, 6), (6000, 3, 2, 20),
            (4.2e10, 1, 3, 12), (4.2e10, 1, 0, 12), (123457, 7, 2, 12)]


def probe_q1_stages(memory_per_device):
    cases = [(3.3e9, 24, 0, 12), (3.3e9, 24, 1, 12), (3.3e9, 24, 2, 12), (3.3e9, 24, 3, 12),
             (50e9, 12, 2, 12), (2e11, 96, 1, 12), (9e8, 5, 3, 12), (6000, 3, 1, 6), (6000, 3, 2, 20),
             (4.2e10, 1, 3, 12), (4.2e10, 1, 0, 12), (123457, 7, 2, 12)]
    return [float(memory_per_device(psi, nd, stage, k=k)) for psi, nd, stage, k in cases]


def judge_q1_stages(out):
    from lab_utils.parallel.zero import memory_breakdown

    for got, (psi, nd, stage, k) in zip(out, Q1_CASES, strict=True):
        want = memory_breakdown(psi, nd, stage, k=k).total
        assert abs(got - want) <= 1e-9 * want, f"Ψ={psi:g}, N_d={nd}, stage {stage}, K={k}: expected {want:.6g}, got {got:.6g}"


def probe_q1_errors(memory_per_device):
    out = []
    for args in [(2e9, 6, 5), (2e9, 6, -2), (2e9, 0, 2), (2e9, -4, 0)]:
        try:
            out.append(repr(memory_per_device(*args)))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
        except Exception as exc:  # noqa: BLE001 - the wrong exception is a wrong answer
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def judge_q1_errors(out):
    for got, args in zip(out, [(2e9, 6, 5), (2e9, 6, -2), (2e9, 0, 2), (2e9, -4, 0)], strict=True):
        assert got.startswith("ValueError"), f"memory_per_device{args} must raise ValueError, got {got[:80]}"


# ---------------------------------------------------------------- q2: ZeRO-1 partition and step
Q2_BOUNDS = [(13, 5), (6, 4), (3, 2), (100, 7), (48, 6), (1, 3)]
Q2_STEPS = [(11, 3, 0.05), (9, 4, 0.2), (5, 2, 0.01), (17, 5, 0.1)]


def probe_q2_bounds(partition_bounds):
    return {(n, ws): [tuple(int(v) for v in partition_bounds(n, ws, r)) for r in range(ws)]
            for n, ws in [(13, 5), (6, 4), (3, 2), (100, 7), (48, 6), (1, 3)]}


def judge_q2_bounds(out):
    import math

    for n, ws in Q2_BOUNDS:
        size = math.ceil(n / ws)
        want = [(r * size, (r + 1) * size) for r in range(ws)]
        assert out[(n, ws)] == want, f"{n} parameters over {ws} ranks (padded to {size * ws}): expected {want}, " \
                                     f"got {out[(n, ws)]}"


def probe_q2_steps(partition_bounds, zero1_step):
    import math

    import torch
    from torch import nn

    out = []
    for num_params, ws, lr in [(11, 3, 0.05), (9, 4, 0.2), (5, 2, 0.01), (17, 5, 0.1)]:
        g = torch.Generator().manual_seed(1000 + num_params)
        init = torch.randn(num_params, generator=g)
        padded = math.ceil(num_params / ws) * ws
        size = padded // ws
        flat = [torch.zeros(padded) for _ in range(ws)]
        for f in flat:
            f[:num_params] = init
        shards = [nn.Parameter(flat[r][r * size:(r + 1) * size].clone()) for r in range(ws)]
        opts = [torch.optim.Adam([s], lr=lr, betas=(0.8, 0.95)) for s in shards]
        ids = [id(f) for f in flat]
        steps = []
        for _ in range(3):
            local = [torch.randn(num_params, generator=g) for _ in range(ws)]
            zero1_step(flat, [torch.cat([x, torch.zeros(padded - num_params)]) for x in local], shards, opts)
            steps.append(torch.stack([f.detach().clone() for f in flat]))
        out.append({"steps": steps, "in_place": [id(f) for f in flat] == ids,
                    "state_numel": [int(o.state[s]["exp_avg"].numel()) if s in o.state else 0
                                    for o, s in zip(opts, shards)]})
    return out


def judge_q2_steps(out):
    import math

    import torch
    from torch import nn

    for got, (num_params, ws, lr) in zip(out, Q2_STEPS, strict=True):
        g = torch.Generator().manual_seed(1000 + num_params)
        init = torch.randn(num_params, generator=g)
        ref = nn.Parameter(init.clone())
        opt = torch.optim.Adam([ref], lr=lr, betas=(0.8, 0.95))
        size = math.ceil(num_params / ws)
        assert got["in_place"], "update every rank's flat_params tensor in place (copy_), do not replace them"
        for step, flats in enumerate(got["steps"]):
            ref.grad = torch.stack([torch.randn(num_params, generator=g) for _ in range(ws)]).mean(0)
            opt.step()
            for r in range(ws):
                assert torch.allclose(flats[r][:num_params], ref.detach(), atol=1e-6), \
                    f"{num_params} parameters on {ws} ranks: rank {r} differs from Adam on the mean gradient " \
                    f"after step {step}"
        assert got["state_numel"] == [size] * ws, \
            f"each rank's Adam must keep state for its own slice of {size} only, got sizes {got['state_numel']}"


# ---------------------------------------------------------------- q3: a recipe the chapter does not tabulate
Q3_RECIPES = {
    # bf16 weights, fp32 gradients, fp32 master, 8-bit Adam moments
    "bf16/fp32-grads/8bit-adam": {"params": "bf16", "grads": "fp32", "master": "fp32", "optimizer": "adam",
                                  "states": "int8"},
    # bf16 weights and gradients, fp32 master, SGD momentum in fp32
    "bf16/momentum": {"params": "bf16", "grads": "bf16", "master": "fp32", "optimizer": "momentum",
                      "states": "fp32"},
    # pure bf16: no master copy, Adam moments in bf16
    "pure-bf16-adam": {"params": "bf16", "grads": "bf16", "master": None, "optimizer": "adam", "states": "bf16"},
    # fp32 everything, plain SGD: no optimizer state at all
    "fp32-sgd": {"params": "fp32", "grads": "fp32", "master": None, "optimizer": "sgd", "states": "fp32"},
    # fp8 weights, bf16 gradients, fp32 master, Adam in fp32
    "fp8/bf16-grads/adam": {"params": "fp8", "grads": "bf16", "master": "fp32", "optimizer": "adam",
                            "states": "fp32"},
}
Q3_SIZES = [(2.7e9, 16), (7e10, 40), (5000, 3), (1.3e9, 1)]
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
STATES = {"adam": 2, "momentum": 1, "sgd": 0}


def probe_q3_recipes(recipe_bytes_per_device):
    recipes = {
        "bf16/fp32-grads/8bit-adam": {"params": "bf16", "grads": "fp32", "master": "fp32", "optimizer": "adam",
                                      "states": "int8"},
        "bf16/momentum": {"params": "bf16", "grads": "bf16", "master": "fp32", "optimizer": "momentum",
                          "states": "fp32"},
        "pure-bf16-adam": {"params": "bf16", "grads": "bf16", "master": None, "optimizer": "adam",
                           "states": "bf16"},
        "fp32-sgd": {"params": "fp32", "grads": "fp32", "master": None, "optimizer": "sgd", "states": "fp32"},
        "fp8/bf16-grads/adam": {"params": "fp8", "grads": "bf16", "master": "fp32", "optimizer": "adam",
                                "states": "fp32"},
    }
    return {(name, psi, nd, stage): float(recipe_bytes_per_device(psi, nd, stage, dict(recipe)))
            for name, recipe in recipes.items() for psi, nd in [(2.7e9, 16), (7e10, 40), (5000, 3), (1.3e9, 1)]
            for stage in range(4)}


def judge_q3_recipes(out):
    from lab_utils.parallel.zero import memory_breakdown

    for name, r in Q3_RECIPES.items():
        k = (BYTES[r["master"]] if r["master"] else 0) + STATES[r["optimizer"]] * BYTES[r["states"]]
        for psi, nd in Q3_SIZES:
            for stage in range(4):
                want = memory_breakdown(psi, nd, stage, k=k, param_bytes=BYTES[r["params"]],
                                        grad_bytes=BYTES[r["grads"]]).total
                got = out[(name, psi, nd, stage)]
                assert abs(got - want) <= 1e-9 * want, \
                    f"recipe {r}, Ψ={psi:g}, N_d={nd}, stage {stage}: expected {want:.6g} bytes, got {got:.6g}"


def probe_q3_errors(recipe_bytes_per_device):
    out = []
    base = {"params": "bf16", "grads": "bf16", "master": "fp32", "optimizer": "adam", "states": "fp32"}
    for change in [{"optimizer": "lion9"}, {"states": "fp64x"}, {"params": "int3"}]:
        try:
            out.append(repr(recipe_bytes_per_device(1e9, 8, 1, {**base, **change})))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
        except Exception as exc:  # noqa: BLE001
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def judge_q3_errors(out):
    for got, change in zip(out, ["optimizer lion9", "states fp64x", "params int3"], strict=True):
        assert got.startswith("ValueError"), f"an unknown {change} must raise ValueError, got {got[:80]}"


# ---------------------------------------------------------------- q4: measured optimizer state per rank
Q4_CASES = [([9, 6, 4], 4), ([5, 11, 3, 2], 3), ([12, 7], 5)]


def probe_q4_measure(zero1_state_bytes):
    import torch
    from torch import nn

    out = []
    for widths, ws in [([9, 6, 4], 4), ([5, 11, 3, 2], 3), ([12, 7], 5)]:
        torch.manual_seed(sum(widths))
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        got = zero1_state_bytes(nn.Sequential(*layers), ws)
        out.append({"per_rank": [int(v) for v in got["per_rank"]], "replicated": int(got["replicated"])})
    return out


def _measured_q4(widths, ws):
    import math

    import torch
    from torch import nn

    from lab_utils.measure import training_state_bytes

    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers)
    params = list(model.parameters())
    num = sum(p.numel() for p in params)
    size = math.ceil(num / ws)
    flat = torch.zeros(size * ws)
    flat[:num] = torch.cat([p.detach().flatten() for p in params])
    per_rank = []
    for r in range(ws):
        shard = nn.Parameter(flat[r * size:(r + 1) * size].clone())
        opt = torch.optim.Adam([shard])
        shard.grad = torch.ones_like(shard)
        opt.step()
        per_rank.append(training_state_bytes([shard], opt).optimizer_states)
    opt = torch.optim.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return {"per_rank": per_rank, "replicated": training_state_bytes(model, opt).optimizer_states}


def judge_q4_measured(out):
    for got, (widths, ws) in zip(out, Q4_CASES, strict=True):
        want = _measured_q4(widths, ws)
        assert got == want, f"Linear widths {widths} on {ws} ranks: measured {want}, got {got}"


HIDDEN = [
    Hidden("q1", 2, probe_q1_stages, judge_q1_stages),
    Hidden("q1", 1, probe_q1_errors, judge_q1_errors, requires=("judge_q1_stages",)),
    Hidden("q2", 1, probe_q2_bounds, judge_q2_bounds, requires=("judge_q2_steps",)),
    Hidden("q2", 2, probe_q2_steps, judge_q2_steps, requires=("judge_q2_bounds",)),
    Hidden("q3", 2, probe_q3_recipes, judge_q3_recipes),
    Hidden("q3", 1, probe_q3_errors, judge_q3_errors, requires=("judge_q3_recipes",)),
    Hidden("q4", 2, probe_q4_measure, judge_q4_measured),
]
