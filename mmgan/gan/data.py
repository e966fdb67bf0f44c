"""Image data sets for the GAN experiments, all returned as float tensors in [−1, 1], (N, C, H, W).

* ``cifar10``: torchvision's CIFAR-10 training set (50k images, 32 px) from
  ``root``; downloaded only when ``download=True`` (needs network), otherwise a
  missing copy raises ``FileNotFoundError`` saying where it is expected.
* ``cat``: a folder of pre-cropped cat faces (the CAT data set of Zhang et al.,
  2008). The paper's code crops each face with the annotated landmarks (a square
  around the eyes and mouth, enlarged), keeps crops of at least the target size,
  and resizes them to 64 px (or 32 px); this loader expects such crops, takes
  every image file below ``root`` and resizes it to ``image_size``.
* ``digits``: scikit-learn's bundled handwritten digits (1797 images of 8×8),
  upsampled to ``image_size``; works offline everywhere.
* ``shapes``: a generated data set of coloured discs and squares on a dark
  background; works offline everywhere, any size.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmgan.base.registry import Registry, check_int

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _to_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1]."""
    return images * 2 - 1


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def _channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return images.mean(1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]} channels to {channels}")


def digits(image_size: int = 32, channels: int = 1, root: str | None = None) -> torch.Tensor:
    """scikit-learn's 1797 digits, grey levels 0–16 scaled to [−1, 1] and resized (bilinear)."""
    from sklearn.datasets import load_digits

    check_int(image_size, "image_size", minimum=8)
    raw = torch.as_tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0
    return _to_range(_channels(_resize(raw, image_size), channels))


def shapes(image_size: int = 32, channels: int = 3, root: str | None = None, n: int = 4096,
           seed: int = 0) -> torch.Tensor:
    """n images each holding one disc or square of random colour, size and position."""
    check_int(image_size, "image_size", minimum=8)
    check_int(n, "n", minimum=1)
    gen = torch.Generator().manual_seed(seed)
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centre = 0.25 + 0.5 * torch.rand(n, 2, generator=gen)
    radius = 0.12 + 0.18 * torch.rand(n, generator=gen)
    square = torch.rand(n, generator=gen) < 0.5
    colour = 0.3 + 0.7 * torch.rand(n, channels, generator=gen)
    dx = (xx[None] - centre[:, 0, None, None]).abs()
    dy = (yy[None] - centre[:, 1, None, None]).abs()
    disc = dx ** 2 + dy ** 2 <= radius[:, None, None] ** 2
    box = torch.maximum(dx, dy) <= radius[:, None, None] * 0.85
    mask = torch.where(square[:, None, None], box, disc).float()
    images = 0.08 + mask[:, None] * (colour[:, :, None, None] - 0.08)
    return _to_range(images)


def cifar10(image_size: int = 32, channels: int = 3, root: str | None = None, download: bool = False) -> torch.Tensor:
    """The CIFAR-10 training set through torchvision (50,000 images)."""
    import torchvision

    if root is None:
        raise ValueError("cifar10 needs data_root: the folder that holds (or will hold) cifar-10-batches-py")
    try:
        data = torchvision.datasets.CIFAR10(root=str(root), train=True, download=download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(
            f"CIFAR-10 was not found under {root!r} (expected {Path(root) / 'cifar-10-batches-py'}). "
            "Download it once with download=True on a machine with network access, or copy the "
            "extracted cifar-10-batches-py folder there.") from error
    images = torch.as_tensor(np.asarray(data.data), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    return _to_range(_channels(_resize(images, image_size), channels))


def cat(image_size: int = 64, channels: int = 3, root: str | None = None) -> torch.Tensor:
    """Every image below ``root`` (pre-cropped cat faces), resized to ``image_size``."""
    from PIL import Image, UnidentifiedImageError

    if root is None or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the CAT data set was not found: data_root={root!r} must be a folder of pre-cropped cat faces "
            "(see mmgan.gan.data for the preprocessing)")
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) below data_root={root!r}")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB" if channels == 3 else "L")
                array = np.asarray(rgb, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
        tensor = torch.as_tensor(array)
        tensor = tensor.permute(2, 0, 1) if tensor.dim() == 3 else tensor[None]
        images.append(_resize(tensor[None], image_size)[0])
    return _to_range(torch.stack(images))


#: What a data set's loader takes (as keywords): the image size, the channels and the data's folder (or None).
LOADER_ARGUMENTS = ("image_size", "channels", "root")


def _check_loader(name: str, loader: Callable[..., torch.Tensor]) -> None:
    """A loader takes :data:`LOADER_ARGUMENTS` as keywords."""
    missing = [arg for arg in LOADER_ARGUMENTS if arg not in inspect.signature(loader).parameters]
    if missing:
        raise TypeError(f"the loader of data set {name!r} lacks the keyword arguments {missing}")


#: The data sets by name, each its loader: a new one is one entry.
DATASETS: Registry[Callable[..., torch.Tensor]] = Registry("dataset", Callable, _check_loader, {
    "digits": digits, "shapes": shapes, "cifar10": cifar10, "cat": cat})


def load_images(name: str, image_size: int, channels: int, root: str | None = None) -> torch.Tensor:
    """Load a data set by name (see :data:`DATASETS`) as (N, channels, size, size) in [−1, 1]."""
    return DATASETS[name](image_size=image_size, channels=channels, root=root)
