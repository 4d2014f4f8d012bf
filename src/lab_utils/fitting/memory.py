"""Memory anatomy of training, and gradient accumulation.

Training keeps four kinds of tensors alive (Rajbhandari et al. 2020, *ZeRO*, §3;
Sohoni et al. 2019, *Low-memory neural network training*):

* **weights** Ψ parameters, ``p`` bytes each;
* **gradients**, one per weight;
* **optimizer states** — Adam (Kingma & Ba 2015, Alg. 1) keeps the first and second
  moments m and v; mixed precision also keeps an fp32 master copy of the weights;
* **activations** saved by the forward pass for the backward pass — these grow with
  the batch size, the others do not.

:func:`bytes_per_parameter` and :func:`training_memory_formula` give the model;
``lab_utils.measure.training_state_bytes`` measures real tensors to check it.
:func:`mlp_activation_bytes` predicts what ``lab_utils.measure.saved_activation_bytes``
measures for the chapter's MLP. :func:`accumulated_gradients` is gradient accumulation
(Goyal et al. 2017 use the same identity for large-batch SGD): the mean loss over a
batch is the mean of the micro-batch means, so summing ``loss_i · b_i / B`` over
micro-batches gives exactly the large batch's gradient with a fraction of the activations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lab_utils.graded import graded_reference
from lab_utils.measure import TrainingBytes

# bytes per parameter: (weights, gradients, optimizer states)
_CONVENTIONS: dict[tuple[str, str], tuple[int, int, int]] = {
    ("sgd", "fp32"): (4, 4, 0),
    ("momentum", "fp32"): (4, 4, 4),            # one velocity buffer
    ("adam", "fp32"): (4, 4, 8),                # m and v in fp32
    # ZeRO §3.1: fp16 weights + fp16 grads + (fp32 master weights, m, v) = 2 + 2 + 12 = 16
    ("adam", "mixed"): (2, 2, 12),
    # Hugging Face "model memory anatomy": fp32 + fp16 weights (6), fp32 grads (4), m and v (8) = 18
    ("adam", "mixed-hf"): (6, 4, 8),
    # the rest of the site's calculator (lab_utils.fitting.calculator): mixed precision keeps the fp32
    # master copy (4) beside SGD's nothing / momentum (4); 8-bit Adam (Dettmers et al. 2022) stores m and
    # v in 1 byte each (its per-block fp32 scales, 8 bytes per 2048 values, are left out); "bf16" is pure
    # bf16 training: weights, gradients and optimizer states all 2 bytes, no master copy
    ("sgd", "mixed"): (2, 2, 4),
    ("momentum", "mixed"): (2, 2, 8),
    ("adam8bit", "fp32"): (4, 4, 2),
    ("adam8bit", "mixed"): (2, 2, 6),
    ("sgd", "bf16"): (2, 2, 0),
    ("momentum", "bf16"): (2, 2, 2),
    ("adam", "bf16"): (2, 2, 4),
    ("adam8bit", "bf16"): (2, 2, 2),
}


@graded_reference
def bytes_per_parameter(optimizer: str = "adam", precision: str = "fp32") -> tuple[int, int, int]:
    """``(weight, gradient, optimizer-state)`` bytes per parameter for a training setup.

    ``precision="mixed"`` is the ZeRO paper's convention (16 bytes/param, K = 12);
    ``"mixed-hf"`` is the 18 bytes/param count of Hugging Face's memory-anatomy guide.
    """
    key = (optimizer.lower(), precision.lower())
    if key not in _CONVENTIONS:
        known = ", ".join(f"{o}/{p}" for o, p in _CONVENTIONS)
        raise ValueError(f"no memory convention for optimizer={optimizer!r}, precision={precision!r}; "
                         f"known: {known}")
    return _CONVENTIONS[key]


def training_memory_formula(num_params: int, optimizer: str = "adam", precision: str = "fp32",
                            num_param_tensors: int = 0) -> TrainingBytes:
    """Bytes of weights, gradients and optimizer states for ``num_params`` parameters.

    PyTorch's Adam also keeps a 4-byte ``step`` counter per parameter *tensor*; pass
    ``num_param_tensors`` to include it (it matters only for tiny models).
    """
    if num_params < 0:
        raise ValueError(f"num_params must be >= 0, got {num_params}")
    w, g, o = bytes_per_parameter(optimizer, precision)
    step_bytes = 4 * num_param_tensors if optimizer.lower() == "adam" else 0
    return TrainingBytes(w * num_params, g * num_params, o * num_params + step_bytes)


def make_mlp(d_in: int, width: int, depth: int, d_out: int) -> nn.Sequential:
    """``depth`` hidden blocks of ``Linear → ReLU`` and a final ``Linear`` head."""
    if min(d_in, width, d_out) < 1 or depth < 1:
        raise ValueError("make_mlp needs d_in, width, d_out >= 1 and depth >= 1")
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


@graded_reference
def mlp_activation_bytes(batch: int, d_in: int, width: int, depth: int, dtype_bytes: int = 4,
                         input_requires_grad: bool = False) -> int:
    """Activations the :func:`make_mlp` network saves for backward, in bytes.

    Each ``Linear`` saves its input (to form ∂L/∂W = δᵀx); each ``ReLU`` saves its output
    (its derivative is ``out > 0``), which is also the next ``Linear``'s input — one tensor.
    The input batch ``x`` is saved by the first ``Linear``: B·(d_in + depth·width) elements.
    (``input_requires_grad`` changes nothing: x is saved either way.)
    """
    if min(batch, d_in, width, depth, dtype_bytes) < 1:
        raise ValueError("batch, d_in, width, depth and dtype_bytes must all be >= 1")
    return batch * (d_in + depth * width) * dtype_bytes


def full_batch_gradients(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor
                         ) -> list[torch.Tensor]:
    """Gradients of ``loss_fn(model(x), y)`` (mean reduction) over the whole batch."""
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


@graded_reference
def accumulated_gradients(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
                          micro_batch: int) -> list[torch.Tensor]:
    """Gradient accumulation: the same gradient as :func:`full_batch_gradients`, in micro-batches.

    With a mean-reduced loss, L = Σ_i (b_i / B) · L_i over micro-batches i of size b_i, so
    each micro-batch's loss is scaled by b_i / B before ``backward`` adds into ``.grad``.
    Only one micro-batch's activations are alive at a time.
    """
    batch = x.shape[0]
    if not 1 <= micro_batch <= batch:
        raise ValueError(f"micro_batch must be between 1 and the batch size {batch}, got {micro_batch}")
    model.zero_grad(set_to_none=True)
    for start in range(0, batch, micro_batch):
        xb, yb = x[start:start + micro_batch], y[start:start + micro_batch]
        (loss_fn(model(xb), yb) * (xb.shape[0] / batch)).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def max_batch_that_fits(budget_bytes: int, state_bytes: int, activation_bytes_per_sample: int) -> int:
    """Largest batch whose activations fit next to the training state in ``budget_bytes``."""
    if activation_bytes_per_sample <= 0:
        raise ValueError("activation_bytes_per_sample must be > 0")
    free = budget_bytes - state_bytes
    return max(0, free // activation_bytes_per_sample)
