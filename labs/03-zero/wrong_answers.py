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
    # uses Hugging Face's 18 bytes/parameter (fp32 gradients) instead of the paper's 16
    "q3": '''
def largest_model(gpu_bytes, world_size, stage):
    nd = world_size
    per_param = {0: 2 + 4 + 12, 1: 2 + 4 + 12 / nd, 2: 2 + (4 + 12) / nd, 3: (2 + 4 + 12) / nd}[stage]
    return math.floor(gpu_bytes / per_param + 1e-9)
''',
}
