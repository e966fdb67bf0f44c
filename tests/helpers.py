"""Small models with known input gradients and a tiny GAN configuration, shared by the tests."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from mmgan.gan.config import GANConfig


def tiny_gan(**changes) -> GANConfig:
    """A GAN run of seconds on digits at 16 px (width 4, batch 8, 4 iterations, FDD every 2)."""
    values = dict(dataset="digits", image_size=16, channels=1, width=4, batch_size=8, iterations=4, metric="fdd",
                  metric_samples=64, metric_every=2, checkpoint_every=2, log_every=2, device="cpu")
    return dataclasses.replace(GANConfig(**values), **changes).validate()


class LinearCritic(torch.nn.Module):
    """f(x) = w·flatten(x) + b, whose input gradient is w everywhere."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn((), generator=gen, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1) + self.b


def small_mlp(dim: int, seed: int = 0, width: int = 16) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(dim, width), torch.nn.Tanh(),
        torch.nn.Linear(width, width), torch.nn.Tanh(),
        torch.nn.Linear(width, 1),
    ).double()


class Payload:
    """Unpickling this runs ``touch <marker>``: what a shared file could do to whoever loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
