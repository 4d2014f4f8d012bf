"""Network in Network (Lin, Chen & Yan 2013, arXiv:1312.4400) for CIFAR-10-shaped input.

Sec. 3.1: an *mlpconv* layer is a convolution followed by 1x1 convolutions (a small MLP
shared over positions); Sec. 3.2: *global average pooling* of one feature map per class
replaces the fully connected classifier; Sec. 4.2 (CIFAR-10): three mlpconv layers with
spatial pooling and dropout between them. The channel sizes (192-160-96, 192-192-192,
192-192-10) are those of the authors' released CIFAR-10 model, as in the NiN gradient
checkpointing notebook this book's chapter discusses. ReLUs are not in-place here so
that any child of the ``nn.Sequential`` can start a checkpointed segment.
"""

from __future__ import annotations

import torch
from torch import nn


def mlpconv(c_in: int, channels: tuple[int, int, int], kernel_size: int) -> list[nn.Module]:
    """Sec. 3.1: ``kernel_size`` conv then two 1x1 convs ("cascaded cross channel pooling"), each + ReLU."""
    c1, c2, c3 = channels
    return [
        nn.Conv2d(c_in, c1, kernel_size, padding=kernel_size // 2), nn.ReLU(),
        nn.Conv2d(c1, c2, 1), nn.ReLU(),
        nn.Conv2d(c2, c3, 1), nn.ReLU(),
    ]


def nin_cifar10(num_classes: int = 10, dropout: float = 0.5, seed: int = 0) -> nn.Sequential:
    """The CIFAR-10 NiN as one flat ``nn.Sequential`` (24 children), input ``(N, 3, 32, 32)``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        return _nin(num_classes, dropout)


def _nin(num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        *mlpconv(3, (192, 160, 96), 5),
        nn.MaxPool2d(3, stride=2, padding=1), nn.Dropout(dropout),
        *mlpconv(96, (192, 192, 192), 5),
        nn.AvgPool2d(3, stride=2, padding=1), nn.Dropout(dropout),
        *mlpconv(192, (192, 192, num_classes), 3),
        nn.AdaptiveAvgPool2d(1),  # Sec. 3.2 global average pooling
        nn.Flatten(),
    )
