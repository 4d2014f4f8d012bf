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
