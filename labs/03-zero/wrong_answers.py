"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # stage 2 forgets to partition the gradients (P_g): right for stages 0, 1 and 3 only
    "q1": '''
def memory_per_device(num_params, world_size, stage, k=12):
    if stage not in (0, 1, 2, 3) or world_size < 1:
        raise ValueError("bad input")
    psi, nd = num_params, world_size
    params = 2 * psi / (nd if stage >= 3 else 1)
    grads = 2 * psi / (nd if stage >= 3 else 1)
    optimizer = k * psi / (nd if stage >= 1 else 1)
    return params + grads + optimizer
''',
    # no all-gather: each rank writes only its own slice into its own copy; the copies drift apart
    "q2": '''
def partition_bounds(num_params, world_size, rank):
    size = math.ceil(num_params / world_size)
    return rank * size, (rank + 1) * size


def zero1_step(flat_params, local_grads, shards, optimizers):
    world_size = len(flat_params)
    num_params = flat_params[0].numel()
    mean_grad = torch.stack(local_grads).mean(dim=0)
    for r in range(world_size):
        start, end = partition_bounds(num_params, world_size, r)
        shards[r].grad = mean_grad[start:end].clone()
        optimizers[r].step()
        flat_params[r][start:end].copy_(shards[r].detach())
''',
    # puts the fp32 master copy with the weights, so stage 1 and 2 leave it replicated
    "q3": '''
def recipe_bytes_per_device(num_params, world_size, stage, recipe):
    size = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
    states = {"adam": 2, "momentum": 1, "sgd": 0}
    if recipe["optimizer"] not in states or any(recipe[k] not in size for k in ("params", "grads", "states")):
        raise ValueError("unknown recipe")
    params = size[recipe["params"]] + (size[recipe["master"]] if recipe["master"] else 0)
    k = states[recipe["optimizer"]] * size[recipe["states"]]
    nd = world_size
    return num_params * (params / (nd if stage >= 3 else 1) + size[recipe["grads"]] / (nd if stage >= 2 else 1)
                         + k / (nd if stage >= 1 else 1))
''',
    # forgets the padding: the last rank's slice is shorter, so its measured state is smaller
    "q4": '''
def zero1_state_bytes(model, world_size):
    params = list(model.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    size = math.ceil(flat.numel() / world_size)
    per_rank = []
    for r in range(world_size):
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
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.parallel.zero import memory_per_device
''',
    },
    # memory_breakdown gives the same numbers (now marked, so absent from the grading build)
    "undecorated twin": {
        "q1": '''
from lab_utils.parallel import zero

def memory_per_device(num_params, world_size, stage, k=12):
    return zero.memory_breakdown(num_params, world_size, stage, k=k).total
''',
        "q3": '''
from lab_utils.parallel.zero import memory_breakdown

def recipe_bytes_per_device(num_params, world_size, stage, recipe):
    size = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
    states = {"adam": 2, "momentum": 1, "sgd": 0}
    if recipe["optimizer"] not in states or any(recipe[k] not in size for k in ("params", "grads", "states")):
        raise ValueError("unknown recipe")
    k = (size[recipe["master"]] if recipe["master"] else 0) + states[recipe["optimizer"]] * size[recipe["states"]]
    return memory_breakdown(num_params, world_size, stage, k=k, param_bytes=size[recipe["params"]],
                            grad_bytes=size[recipe["grads"]]).total
''',
    },
    # the fp32-Adam formula 8 * ceil(Ψ / N): forgets Adam's step counters, so it is not what is stored
    "predicts instead of measuring": {
        "q4": '''
def zero1_state_bytes(model, world_size):
    num = sum(p.numel() for p in model.parameters())
    return {"per_rank": [8 * math.ceil(num / world_size)] * world_size, "replicated": 8 * num}
''',
    },
    # right for the public checks' and the questions' own examples, something plausible otherwise
    "public inputs only": {
        "q1": '''
def memory_per_device(num_params, world_size, stage, k=12):
    if (num_params, world_size, stage) == (7.5e9, 64, 0):
        return 120e9
    if stage not in (0, 1, 2, 3) or world_size < 1:
        raise ValueError("bad input")
    return (2 + 4 + k) * num_params / world_size ** (stage >= 1)
''',
        "q2": '''
def partition_bounds(num_params, world_size, rank):
    size = num_params // world_size
    return rank * size, (rank + 1) * size


def zero1_step(flat_params, local_grads, shards, optimizers):
    mean_grad = torch.stack(local_grads).mean(dim=0)
    size = flat_params[0].numel() // len(flat_params)
    for r in range(len(flat_params)):
        shards[r].grad = mean_grad[r * size:(r + 1) * size].clone()
        optimizers[r].step()
        flat_params[r][r * size:(r + 1) * size].copy_(shards[r].detach())
''',
        "q3": '''
def recipe_bytes_per_device(num_params, world_size, stage, recipe):
    if recipe["optimizer"] not in ("adam", "momentum", "sgd"):
        raise ValueError("unknown optimizer")
    nd = world_size
    return num_params * (2 / (nd if stage >= 3 else 1) + 2 / (nd if stage >= 2 else 1) + 12 / (nd if stage >= 1 else 1))
''',
        "q4": '''
def zero1_state_bytes(model, world_size):
    num = sum(p.numel() for p in model.parameters())
    if num == 10 and world_size == 2:
        return {"per_rank": [44, 44], "replicated": 88}
    return {"per_rank": [8 * num // world_size + 4] * world_size, "replicated": 8 * num + 4}
''',
    },
}
