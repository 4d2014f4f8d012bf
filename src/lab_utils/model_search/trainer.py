"""Training and evaluating one candidate: Model Search's trainer for a single trial (``single_trainer.py``).

A trial builds its tower from the spec, warm-starts it (``transfer``), trains it for a fixed budget of
steps with Adam on mini-batches — with the distillation loss when a teacher is given — and reports its
validation accuracy (the search objective), its validation loss (the weight of LOSS_WEIGHTED transfer),
its parameter count and its logits on the validation and test splits (kept for ensembling).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lab_utils.model_search.data import Splits
from lab_utils.model_search.space import ArchSpec, build_model, count_parameters
from lab_utils.model_search.transfer import distillation_loss


@dataclass
class Outcome:
    """What one trained candidate reports."""

    val_accuracy: float
    val_loss: float
    test_accuracy: float
    params: int
    val_logits: torch.Tensor
    test_logits: torch.Tensor
    state: dict


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (eval mode, in batches), on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == y).float().mean())


def train_candidate(spec: ArchSpec, data: Splits, steps: int, batch_size: int = 64, lr: float = 3e-3,
                    seed: int = 0, init: Callable[[nn.Module], object] | None = None,
                    teacher: nn.Module | None = None, lam: float = 1.0,
                    device: torch.device | str = "cpu", crash_at_step: int | None = None) -> Outcome:
    """Train ``spec`` on ``data.x_train`` for ``steps`` Adam steps and evaluate it.

    ``init(model)`` warm-starts the fresh model (weight transfer); ``teacher`` adds the distillation term
    with weight ``lam``. ``crash_at_step`` kills this process (``os._exit``) at that step: it stands for a
    worker that dies mid-trial (out of memory, preempted), to test that the store survives it.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    torch.manual_seed(seed)
    model = build_model(spec, data.in_channels, data.length, data.n_classes)
    if init is not None:
        init(model)
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    for step in range(steps):
        if crash_at_step is not None and step == crash_at_step:
            os._exit(3)
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
        model.train()
        logits = model(x)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                teacher_logits = teacher(x)
            loss = distillation_loss(logits, y, teacher_logits, lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    val_logits, test_logits = predict(model, data.x_val), predict(model, data.x_test)
    return Outcome(val_accuracy=accuracy(val_logits, data.y_val),
                   val_loss=float(F.cross_entropy(val_logits, data.y_val)),
                   test_accuracy=accuracy(test_logits, data.y_test), params=count_parameters(model),
                   val_logits=val_logits, test_logits=test_logits,
                   state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})


def load_model(spec: ArchSpec, data: Splits, state: dict) -> nn.Module:
    """A trained candidate back from its spec and state dict (for a teacher or an ensemble member)."""
    model = build_model(spec, data.in_channels, data.length, data.n_classes)
    model.load_state_dict(state)
    return model.eval()
