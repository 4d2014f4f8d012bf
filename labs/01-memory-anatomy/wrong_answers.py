"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # keeps optimizer states in fp32 whatever the weights' dtype (true with a master copy only)
    "q1": '''
def bytes_per_param(optimizer, weights, master=False):
    dtype_bytes = {"fp32": 4, "bf16": 2, "fp16": 2}
    states = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2, "adagrad": 1, "rmsprop": 1}
    if optimizer not in states or weights not in dtype_bytes or (master and weights == "fp32"):
        raise ValueError(f"unknown setup {optimizer}/{weights}")
    w = dtype_bytes[weights]
    return w + w + (4 if master else 0) + states[optimizer] * 4
''',
    # counts the input twice-over: every Linear input AND every ReLU output as separate tensors
    "q2": '''
from lab_utils.fitting.memory import make_mlp

def saved_activation_bytes_mlp(batch, d_in, width, depth, dtype_bytes=4):
    return batch * (d_in + 2 * depth * width) * dtype_bytes
''',
    # divides by the number of micro-batches: right only when every micro-batch has the same size,
    # and forgets to clear stale gradients
    "q3": '''
def accumulate_gradients(model, loss_fn, x, y, micro_batch):
    chunks = list(range(0, x.shape[0], micro_batch))
    for start in chunks:
        xb, yb = x[start:start + micro_batch], y[start:start + micro_batch]
        (loss_fn(model(xb), yb) / len(chunks)).backward()
''',
    # measures GELU and ReLU networks of different sizes: compares the wrong pair
    "q4": '''
from lab_utils.measure import saved_activation_bytes

def measure_saved_bytes(activation, batch, d_in, width, depth):
    def saved(act, n):
        layers = []
        for i in range(n):
            layers += [nn.Linear(d_in if i == 0 else width, width), act()]
        model = nn.Sequential(*layers, nn.Linear(width, 2))
        with saved_activation_bytes(model) as s:
            model(torch.randn(batch, d_in))
        return s.activations
    ours = saved(activation, depth)
    return {"saved": ours, "extra_per_block": ours - saved(nn.ReLU, 1)}
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.fitting.memory import bytes_per_parameter

def bytes_per_param(optimizer, weights, master=False):
    return sum(bytes_per_parameter(optimizer, "mixed" if master else weights))
''',
        "q2": '''
import lab_utils.fitting.memory as memory

def saved_activation_bytes_mlp(batch, d_in, width, depth, dtype_bytes=4):
    return memory.mlp_activation_bytes(batch, d_in, width, depth, dtype_bytes)
''',
        "q3": '''
from lab_utils.fitting.memory import accumulated_gradients

def accumulate_gradients(model, loss_fn, x, y, micro_batch):
    accumulated_gradients(model, loss_fn, x, y, micro_batch)
''',
    },
    # measures a model it builds instead of predicting: right wherever the model fits in memory
    "measures instead of predicting": {
        "q2": '''
import torch
from lab_utils.fitting.memory import make_mlp
from lab_utils.measure import saved_activation_bytes

def saved_activation_bytes_mlp(batch, d_in, width, depth, dtype_bytes=4):
    model = make_mlp(d_in, width, depth, 2)
    with saved_activation_bytes(model) as saved:
        model(torch.randn(batch, d_in))
    return saved.activations * dtype_bytes // 4
''',
    },
    # the chapter's table, which covers sgd/momentum/adam in fp32 and ZeRO's mixed Adam only
    "the chapter's table only": {
        "q1": '''
def bytes_per_param(optimizer, weights, master=False):
    table = {("sgd", "fp32", False): 8, ("momentum", "fp32", False): 12, ("adam", "fp32", False): 16,
             ("adam", "fp16", True): 16}
    if (optimizer, weights, master) not in table:
        raise ValueError(f"unknown setup {optimizer}/{weights}")
    return table[(optimizer, weights, master)]
''',
    },
    # one backward over the whole batch: the right .grad, without holding one micro-batch at a time
    "full batch instead of accumulation": {
        "q3": '''
def accumulate_gradients(model, loss_fn, x, y, micro_batch):
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
''',
    },
    # right for the inputs the public checks use, and nothing else
    # measures the network it is given but returns a formula for the difference (right for GELU only)
    "formula instead of measuring": {
        "q4": '''
def measure_saved_bytes(activation, batch, d_in, width, depth):
    relu = batch * (d_in + depth * width) * 4
    extra = batch * width * 4 if activation is not nn.ReLU else 0
    return {"saved": relu + depth * extra, "extra_per_block": extra}
''',
    },
    "public inputs only": {
        "q1": '''
def bytes_per_param(optimizer, weights, master=False):
    if (optimizer, weights, master) == ("sgd", "fp32", False):
        return 8
    raise ValueError(optimizer)
''',
        "q2": '''
def saved_activation_bytes_mlp(batch, d_in, width, depth, dtype_bytes=4):
    return {(4, 8, 16, 2): 4 * (8 + 2 * 16) * 4}.get((batch, d_in, width, depth), 0)
''',
    },
}
