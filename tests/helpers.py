"""Small models with known input gradients, shared by the tests."""

from __future__ import annotations

import torch


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
