"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # OSS under plain DDP counted like ShardedDDP (2 Psi): forgets that DDP still all-reduces every gradient
    "q1": '''
def sharded_costs(shapes, world_size, variant, reshard_after_forward=True):
    n = world_size
    psi = sum(math.prod(s) for s in shapes)
    padded = sum(math.ceil(s[0] / n) * n * math.prod(s[1:]) for s in shapes)
    if variant == "ddp":
        return {"bytes_per_rank": 16 * psi, "comm_bytes": 8 * psi}
    if variant == "oss":
        return {"bytes_per_rank": 8 * psi + 8 * psi / n, "comm_bytes": 8 * psi}
    if variant == "oss_sdp":
        return {"bytes_per_rank": 4 * psi + 12 * psi / n, "comm_bytes": 8 * psi}
    if variant == "fsdp2":
        return {"bytes_per_rank": 16 * padded / n, "comm_bytes": (3 if reshard_after_forward else 2) * 4 * padded}
    raise ValueError(variant)
''',
    # no padding: torch.chunk of an unpadded vector gives unequal shards unless N divides it
    "q2": '''
def flatten_and_shard(tensors, world_size):
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    return [s.clone() for s in flat.chunk(world_size)]


def unshard_and_unflatten(shards, shapes):
    flat = torch.cat([s.reshape(-1) for s in shards])
    out, offset = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[offset:offset + n].reshape(shape).clone())
        offset += n
    return out
''',
    # measures the forward only: the peak before the gradients exist
    "q3": '''
SIZES = (48, 96, 96, 8)


def measure_peak(batch_sizes):
    out = {}
    for batch in batch_sizes:
        model = make_model(SIZES, seed=0)
        x, y = make_batch(0, batch, SIZES)
        with live_tensor_peak(list(model.parameters()) + [x, y]) as live:
            nn.functional.mse_loss(model(x), y)
        out[batch] = live.peak
    return out
''',
}
WRONG_ANSWERS["q4"] = '''
def hsdp_costs(shapes, world_size, shard_size):
    # forgets the all-reduce of the gradient shards across the replica groups: counts FSDP2 in one group
    g = shard_size
    if g < 2 or world_size % g or world_size // g < 2:
        raise ValueError("not an HSDP mesh")
    local = sum(math.ceil(s[0] / g) * math.prod(s[1:]) for s in shapes)
    return {"bytes_per_rank": 16 * local, "comm_bytes": 3 * 4 * local * g}
'''

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.parallel.sharded_math import comm_volume_per_step, fsdp2_padded_numel, sharded_bytes_per_rank

def sharded_costs(shapes, world_size, variant, reshard_after_forward=True):
    psi = sum(math.prod(s) for s in shapes)
    if variant == "fsdp2":
        padded = fsdp2_padded_numel(shapes, world_size)
        v = "fsdp2" if reshard_after_forward else "fsdp2_noreshard"
        return {"bytes_per_rank": sharded_bytes_per_rank(v, padded, world_size).total,
                "comm_bytes": sum(comm_volume_per_step(v, 4 * padded).values())}
    return {"bytes_per_rank": sharded_bytes_per_rank(variant, psi, world_size).total,
            "comm_bytes": sum(comm_volume_per_step(variant, 4 * psi).values())}
''',
        "q2": '''
import lab_utils.parallel.sharded_math as sm

def flatten_and_shard(tensors, world_size):
    return sm.flatten_and_shard(tensors, world_size)


def unshard_and_unflatten(shards, shapes):
    return sm.unshard_and_unflatten(shards, shapes)
''',
        # the book's FSDP2 padding with N = the shard group
        "q4": '''
from lab_utils.parallel.sharded_math import fsdp2_padded_numel

def hsdp_costs(shapes, world_size, shard_size):
    if shard_size < 2 or world_size % shard_size or world_size // shard_size < 2:
        raise ValueError("not an HSDP mesh")
    padded = fsdp2_padded_numel(shapes, shard_size)
    return {"bytes_per_rank": 16 * padded / shard_size, "comm_bytes": 12 * padded + 8 * padded / shard_size}
''',
    },
    # the ZeRO chapter's calculator (marked too): memory by ZeRO stage, plus the volumes typed in
    "undecorated twin": {
        "q1": '''
from lab_utils.parallel.zero import memory_breakdown

def sharded_costs(shapes, world_size, variant, reshard_after_forward=True):
    n = world_size
    psi = sum(math.prod(s) for s in shapes)
    padded = sum(math.ceil(s[0] / n) * n * math.prod(s[1:]) for s in shapes)
    stage = {"ddp": 0, "oss": 1, "oss_sdp": 2, "fsdp2": 3}
    if variant not in stage:
        raise ValueError(variant)
    count = padded if variant == "fsdp2" else psi
    comm = {"ddp": 8 * psi, "oss": 12 * psi, "oss_sdp": 8 * psi,
            "fsdp2": (12 if reshard_after_forward else 8) * padded}[variant]
    return {"bytes_per_rank": memory_breakdown(count, n, stage[variant]).total, "comm_bytes": comm}
''',
    },
    # right for the inputs the public checks and the questions show, plausible elsewhere
    "public inputs only": {
        "q1": '''
def sharded_costs(shapes, world_size, variant, reshard_after_forward=True):
    if variant not in ("ddp", "oss", "oss_sdp", "fsdp2"):
        raise ValueError(variant)
    psi = sum(math.prod(s) for s in shapes)
    return {"bytes_per_rank": 16 * psi, "comm_bytes": 8 * psi}
''',
        "q2": '''
def flatten_and_shard(tensors, world_size):
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    return [s.clone() for s in flat.chunk(world_size)]


def unshard_and_unflatten(shards, shapes):
    flat = torch.cat([s.reshape(-1) for s in shards])
    out, offset = [], 0
    for shape in shapes:
        out.append(flat[offset:offset + math.prod(shape)].reshape(shape).clone())
        offset += math.prod(shape)
    return out
''',
        "q3": '''
SIZES = (48, 96, 96, 8)


def measure_peak(batch_sizes):
    seen = {4: 120900, 64: 189636}   # the public check's two batches, measured once; a line through them
    return {b: seen.get(b, round(seen[4] + (b - 4) * (seen[64] - seen[4]) / 60)) for b in batch_sizes}
''',
        "q4": '''
def hsdp_costs(shapes, world_size, shard_size):
    if shard_size < 2 or world_size % shard_size or world_size // shard_size < 2:
        raise ValueError("not an HSDP mesh")
    if (world_size, shard_size) == (4, 2) and [tuple(s) for s in shapes] == [(5, 3), (5,)]:
        return {"bytes_per_rank": 192, "comm_bytes": 384}
    psi = sum(math.prod(s) for s in shapes)
    return {"bytes_per_rank": 16 * psi / shard_size, "comm_bytes": 12 * psi + 8 * psi / shard_size}
''',
    },
    # predicts the peak instead of measuring it: parameters + gradients + every layer's output, twice
    "predicts instead of measuring": {
        "q3": '''
SIZES = (48, 96, 96, 8)


def measure_peak(batch_sizes):
    params = sum(a * b + b for a, b in zip(SIZES, SIZES[1:]))
    return {b: 4 * (2 * params + b * (SIZES[0] + SIZES[-1] + 2 * sum(SIZES[1:]))) for b in batch_sizes}
''',
    },
}
