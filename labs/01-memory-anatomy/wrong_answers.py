"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # forgets Adam's second moment: 4 + 4 + 4 = 12 bytes for fp32 Adam
    "q1": '''
def bytes_per_param(optimizer: str, precision: str) -> int:
    table = {("sgd", "fp32"): 8, ("momentum", "fp32"): 12, ("adam", "fp32"): 12, ("adam", "mixed"): 16}
    if (optimizer, precision) not in table:
        raise ValueError(f"unknown setup {optimizer}/{precision}")
    return table[(optimizer, precision)]
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
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.fitting.memory import bytes_per_parameter

def bytes_per_param(optimizer, precision):
    return sum(bytes_per_parameter(optimizer, precision))
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
    # one backward over the whole batch: the right .grad, without holding one micro-batch at a time
    "full batch instead of accumulation": {
        "q3": '''
def accumulate_gradients(model, loss_fn, x, y, micro_batch):
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
''',
    },
    # right for the inputs the public checks use, and nothing else
    "public inputs only": {
        "q1": '''
def bytes_per_param(optimizer, precision):
    if (optimizer, precision) == ("sgd", "fp32"):
        return 8
    raise ValueError(optimizer)
''',
        "q2": '''
def saved_activation_bytes_mlp(batch, d_in, width, depth, dtype_bytes=4):
    return {(4, 8, 16, 2): 4 * (8 + 2 * 16) * 4}.get((batch, d_in, width, depth), 0)
''',
    },
}
