"""The search space: building blocks for 1-D sequences, an architecture spec as plain data, a builder.

Model Search describes a candidate as a list of block types (``model_search/block_builder.py``,
``BlockType``; the configs list the ``blocks_to_use``, e.g. ``configs/cnn_config.pbtxt`` lines 7-39:
``FIXED_CHANNEL_CONVOLUTION_16``, ``RESNET_3X3``, ``DILATED_CONVOLUTION_2``, ``MAX_POOLING_3X3``,
``FIXED_OUTPUT_FULLY_CONNECTED_128``, ...). A tower is those blocks applied in order, then a logits layer
(``architecture/architecture_utils.py``). Here the blocks work on (batch, channels, time) tensors —
spectrogram frames or image columns — and the head averages over time before its linear logits layer
(global average pooling, the usual keyword-spotting head).

A spec is JSON (``{"blocks": ["CONV3_16", "MAXPOOL2"]}``): workers receive it, the store keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# ----------------------------------------------------------------------------------------- blocks


class Conv(nn.Module):
    """Convolution over time + ReLU (FIXED_CHANNEL_CONVOLUTION_*, DILATED_CONVOLUTION_*)."""

    def __init__(self, c_in: int, c_out: int, k: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class SeparableConv(nn.Module):
    """Depthwise convolution over time, then a pointwise (1x1) one to ``c_out`` channels, + ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.depthwise = nn.Conv1d(c_in, c_in, k, padding=k // 2, groups=c_in)
        self.pointwise = nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.pointwise(self.depthwise(x)))


class Residual(nn.Module):
    """RESNET_3X3 in 1-D: x + conv(relu(conv(x))), keeping the channel count."""

    def __init__(self, c: int, k: int = 3):
        super().__init__()
        self.conv1 = nn.Conv1d(c, c, k, padding=k // 2)
        self.conv2 = nn.Conv1d(c, c, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class Dense(nn.Module):
    """FIXED_OUTPUT_FULLY_CONNECTED_* applied to every frame (a 1x1 convolution) + ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.fc = nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class GRUBlock(nn.Module):
    """A GRU over time (Model Search's RNN towers), returning its output sequence as channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.gru = nn.GRU(c_in, c_out, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x.transpose(1, 2))[0].transpose(1, 2)


# name -> (factory(c_in) -> module, out_channels(c_in), time stride)
BlockFactory = tuple[Callable[[int], nn.Module], Callable[[int], int], int]
BLOCKS: dict[str, BlockFactory] = {
    "CONV3_16": (lambda c: Conv(c, 16, 3), lambda c: 16, 1),
    "CONV3_32": (lambda c: Conv(c, 32, 3), lambda c: 32, 1),
    "CONV5_16": (lambda c: Conv(c, 16, 5), lambda c: 16, 1),
    "CONV5_32": (lambda c: Conv(c, 32, 5), lambda c: 32, 1),
    "DILATED3_32": (lambda c: Conv(c, 32, 3, dilation=2), lambda c: 32, 1),
    "SEPCONV5_32": (lambda c: SeparableConv(c, 32, 5), lambda c: 32, 1),
    "RESNET3": (lambda c: Residual(c), lambda c: c, 1),
    "MAXPOOL2": (lambda c: nn.MaxPool1d(2), lambda c: c, 2),
    "AVGPOOL2": (lambda c: nn.AvgPool1d(2), lambda c: c, 2),
    "DENSE_32": (lambda c: Dense(c, 32), lambda c: 32, 1),
    "GRU_32": (lambda c: GRUBlock(c, 32), lambda c: 32, 1),
}
BLOCK_NAMES: tuple[str, ...] = tuple(BLOCKS)


@dataclass(frozen=True)
class ArchSpec:
    """A candidate architecture as plain data: the block names, applied in order."""

    blocks: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ValueError("an ArchSpec needs at least one block, e.g. ArchSpec(('CONV3_16',))")
        unknown = [b for b in self.blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"unknown block(s) {unknown}: use names from BLOCK_NAMES = {list(BLOCK_NAMES)}")

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def to_json(self) -> str:
        return json.dumps({"blocks": list(self.blocks)})

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
            raise ValueError(f'a spec is JSON like {{"blocks": ["CONV3_16"]}}, got {text!r}')
        return cls(tuple(data["blocks"]))

    def __str__(self) -> str:
        return " > ".join(self.blocks)


class Tower(nn.Module):
    """The blocks of a spec in order, global average pooling over time, a linear logits layer."""

    def __init__(self, blocks: Sequence[nn.Module], channels: int, n_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=2))


def check_buildable(spec: ArchSpec, length: int) -> None:
    """Raise a clear ``ValueError`` when the spec's pooling blocks shrink ``length`` frames below 1."""
    n = length
    for i, name in enumerate(spec.blocks):
        n //= BLOCKS[name][2]
        if n < 1:
            raise ValueError(f"{spec}: block {i} ({name}) pools {length} frames down to 0; "
                             f"use at most {max(0, length.bit_length() - 1)} pooling blocks for this input")


def is_buildable(spec: ArchSpec, length: int) -> bool:
    try:
        check_buildable(spec, length)
    except ValueError:
        return False
    return True


def build_model(spec: ArchSpec, in_channels: int, length: int, n_classes: int) -> Tower:
    """spec -> ``nn.Module`` taking (batch, in_channels, length) and returning (batch, n_classes) logits."""
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"build_model takes an ArchSpec (ArchSpec.from_json(text) for JSON), got {type(spec)}")
    check_buildable(spec, length)
    modules, c = [], in_channels
    for name in spec.blocks:
        make, out_channels, _ = BLOCKS[name]
        modules.append(make(c))
        c = out_channels(c)
    return Tower(modules, c, n_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
