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
