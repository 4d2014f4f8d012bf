"""The data pipeline and the small classifier that stands for a dataset's racial system.

Khan & Fu (2021, method) train one classifier per dataset and use its predictions on faces from
elsewhere as that dataset's racial system. Here:

* :class:`FaceDataset` — a ``torch.utils.data.Dataset`` of face images and category labels with
  torchvision transforms. It takes the synthetic images as an ``(n, H, W, 3)`` uint8 array **or a list of
  image file paths** (opened with PIL): pointed at a real dataset's aligned crops and label file
  (FairFace's ``fairface_label_train.csv``: ``file``, ``race``; UTKFace's file names
  ``age_gender_race_date.jpg``; BFW ships a CSV data table of image paths and
  attributes) it is the same pipeline, with ``size`` raised;
* :class:`SmallCNN` — three conv blocks and a linear head, torchvision-style (enough for 32×32 cartoons;
  real faces want a deeper network, e.g. a torchvision ResNet);
* :func:`train_classifier`, :func:`predict` — plain Adam training through a ``DataLoader``;
* :class:`ImageLabeler` — renders :class:`~lab_utils.fairness.faces.FaceTraits` and classifies them, so a
  trained classifier can be probed with counterfactual traits like an annotator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lab_utils.fairness.faces import FaceTraits, render_faces

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def face_transform(size: int | None = None, train: bool = False):
    """torchvision (v2) transforms on a ``(3, H, W)`` uint8 image: resize (only when ``size`` is given, e.g.
    for real photos), a random horizontal flip when training, scale to [0, 1] and normalise."""
    from torchvision.transforms import v2

    steps = [v2.Resize((size, size), antialias=True)] if size else []
    if train:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


class FaceDataset(Dataset):
    """Face images (uint8 ``(n, H, W, 3)`` array or image paths) and integer labels, with a transform."""

    def __init__(self, images: np.ndarray | Sequence[str | Path], labels: Sequence[int] | None = None,
                 transform=None) -> None:
        n = len(images)
        if labels is not None and len(labels) != n:
            raise ValueError(f"{n} images but {len(labels)} labels: give one label per image")
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"images must be an (n, H, W, 3) uint8 array, got {images.dtype} {images.shape}")
            images = torch.from_numpy(images).permute(0, 3, 1, 2)   # (n, 3, H, W), no copy
        self.images = images
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.transform = transform or face_transform()

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, i: int) -> torch.Tensor:
        item = self.images[i]
        if isinstance(item, (str, Path)):      # a real dataset's file: decode with PIL
            from PIL import Image

            with Image.open(item) as im:
                return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        return item

    def __getitem__(self, i: int):
        x = self.transform(self._image(i))
        return x if self.labels is None else (x, self.labels[i])


class SmallCNN(nn.Module):
    """conv(3→w)-pool, conv(w→2w)-pool, conv(2w→4w)-pool, linear (w = ``width``; 8: about 7 k parameters)."""

    def __init__(self, n_classes: int, size: int = 32, width: int = 8) -> None:
        super().__init__()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*block(3, width), *block(width, 2 * width), *block(2 * width, 4 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * (size // 8) ** 2, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(images: np.ndarray, labels: Sequence[int], n_classes: int, epochs: int = 2,
                     batch_size: int = 64, lr: float = 3e-3, device: torch.device | str = "cpu",
                     seed: int = 0, width: int = 8) -> SmallCNN:
    """Train a :class:`SmallCNN` on ``images`` / ``labels`` (cross-entropy, Adam), seeded."""
    torch.manual_seed(seed)
    device = torch.device(device)
    model = SmallCNN(n_classes, images.shape[1], width).to(device)
    data = FaceDataset(images, labels, face_transform(train=True))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted category index of each image (eval mode, no flip)."""
    device = next(model.parameters()).device
    model.eval()
    loader = DataLoader(FaceDataset(images, None, face_transform()), batch_size=batch_size)
    return torch.cat([model(x.to(device)).argmax(1).cpu() for x in loader]).numpy()


class ImageLabeler:
    """``traits -> category indices`` through the pixels: render, then classify with ``model``."""

    def __init__(self, model: nn.Module, size: int = 32) -> None:
        self.model, self.size = model, size

    def __call__(self, traits: FaceTraits) -> np.ndarray:
        return predict(self.model, render_faces(traits, self.size))
