"""Starting a candidate from its elders: weight transfer, and knowledge distillation from the best so far.

**Weight transfer** (``proto/transfer_learning_spec.proto``, ``TransferLearningType`` lines 20-44;
``meta/transfer_learning.py``). A new trial's variable is warm-started from previous trials' variables
*of the same name, shape and dtype* (``transfer_learning.py`` lines 111-121: a mismatch is skipped):

* ``none`` — NO_TRANSFER_LEARNING: default (random) initialisation;
* ``snapshot`` — SNAPSHOT_TRANSFER_LEARNING: copy the variables of the trial it was derived from (its
  parent in the beam search);
* ``uniform`` — UNIFORM_AVERAGE_TRANSFER_LEARNING: the average over the completed trials;
* ``loss_weighted`` — LOSS_WEIGHTED_AVERAGE_TRANSFER_LEARNING: weights ``softmax(-loss)`` over the
  completed trials (``transfer_learning.py`` lines 163-170), so better trials count more.

Parameter names here are positions in the tower (``blocks.3.conv.weight``, ``head.weight``): a child that
deepens its parent keeps every parent tensor; a child that replaces block ``i`` keeps those that still fit.

**Distillation** (``meta/distillation.py``, ADAPTIVELY_BALANCE_LOSSES, lines 61-81, and
``proto/distillation_spec.proto`` lines 21-29): loss = label loss + λ · distillation loss, where the
distillation loss is the cross entropy between the teacher's softmax and the student (here written as
the KL divergence, which differs from it by the teacher's entropy, a constant: same gradient), and λ
ramps linearly from ``minimum_lambda`` to ``maximum_lambda`` over ``num_ramp_trials`` trials after
``minimal_pool_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lab_utils.graded import graded_reference

TRANSFER_MODES = ("none", "snapshot", "uniform", "loss_weighted")
State = Mapping[str, torch.Tensor]


def _matches(param: torch.Tensor, other: torch.Tensor | None) -> bool:
    """transfer_learning.py lines 111-121: same name (looked up by the caller), shape and dtype."""
    return other is not None and other.shape == param.shape and other.dtype == param.dtype


@graded_reference
@torch.no_grad()
def transfer_weights(child: nn.Module, parent_state: State) -> list[str]:
    """SNAPSHOT_TRANSFER_LEARNING: copy every parent tensor whose name, shape and dtype match; their names."""
    copied = []
    for name, tensor in child.state_dict().items():
        source = parent_state.get(name)
        if _matches(tensor, source):
            tensor.copy_(source)
            copied.append(name)
    return copied


@graded_reference
@torch.no_grad()
def average_transfer(child: nn.Module, states: Sequence[State], losses: Sequence[float] | None = None,
                     mode: str = "uniform", ages: Sequence[int] | None = None, discount: float = 1.0) -> list[str]:
    """UNIFORM_ / LOSS_WEIGHTED_AVERAGE_TRANSFER_LEARNING over ``states`` (one per completed trial).

    ``discount``: ``previous_trials_discount_factor`` (proto lines 46-57): trial ``k`` of ``n`` is weighted by
    ``discount ** (n - k)`` (``ages[k] = n - k``). For ``loss_weighted``, the weights are ``softmax(-loss)``
    over the trials holding that tensor (lines 165-168). Model Search then takes ``reduce_mean`` of the
    weighted tensors (line 170), which divides the weighted sum once more by the number of trials; here the
    weighted **sum** is used, so that the result is an average (weights summing to one). Returns the names set.
    """
    if mode not in ("uniform", "loss_weighted"):
        raise ValueError(f"average_transfer mode must be 'uniform' or 'loss_weighted', got {mode!r}")
    if mode == "loss_weighted" and (losses is None or len(losses) != len(states)):
        raise ValueError("loss_weighted transfer needs one loss per state (the trials' final losses)")
    ages = list(ages) if ages is not None else [0] * len(states)
    set_names = []
    for name, tensor in child.state_dict().items():
        idx = [i for i, s in enumerate(states) if _matches(tensor, s.get(name))]
        if not idx or not tensor.is_floating_point():
            continue
        stacked = torch.stack([states[i][name] * discount ** ages[i] for i in idx])
        if mode == "uniform":
            weights = torch.full((len(idx),), 1.0 / len(idx))
        else:
            weights = torch.softmax(-torch.tensor([float(losses[i]) for i in idx]), dim=0)
        tensor.copy_(torch.einsum("k,k...->...", weights.to(stacked.dtype), stacked))
        set_names.append(name)
    return set_names


def balance_lambda(trial_id: int, minimal_pool_size: int, num_ramp_trials: int,
                   minimum_lambda: float = 1.0, maximum_lambda: float = 1.0) -> float:
    """distillation.py lines 70-79: λ = min + (max − min) · max(0, id − pool) / ramp (defaults 1.0, proto l. 27-28)."""
    lam = minimum_lambda
    if num_ramp_trials > 0:
        lam += (maximum_lambda - minimum_lambda) * max(0, trial_id - minimal_pool_size) / num_ramp_trials
    return float(lam)


def distillation_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                      lam: float, temperature: float = 1.0) -> torch.Tensor:
    """distillation.py line 81: label cross entropy + λ · KL(teacher softmax ‖ student softmax).

    With a ``temperature`` T ≠ 1 both softmaxes are taken at T and the term is scaled by T² (Hinton et
    al. 2015, §2) so its gradient keeps its size; Model Search uses T = 1.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape")
    label_loss = F.cross_entropy(student_logits, labels)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), log_target=True, reduction="batchmean")
    return label_loss + lam * temperature**2 * soft
