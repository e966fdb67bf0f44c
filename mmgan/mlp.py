"""Fully connected ReLU classifiers, one network or many trained side by side.

:class:`BatchedMLP` holds the weights of M independent networks stacked along a
leading model axis and evaluates all of them with batched matrix products, so
M training runs (configurations × seeds of Table 1) cost one Python loop. The
loss of each model depends only on its own slice of the weights, and Adam acts
elementwise, so optimising the sum of the M losses with one Adam is the same
computation as M separate runs (tested).
"""

from __future__ import annotations

import math

import torch

from mmgan.base.registry import check_int


class BatchedMLP(torch.nn.Module):
    """M independent MLPs ``dim → width → … → width → 1`` with ReLU activations.

    ``layers`` counts the linear layers (the paper's "4 layers": three hidden
    layers of ``width`` units and a linear output). Weights use PyTorch's
    default ``nn.Linear`` initialisation, drawn per model from ``seeds[m]``
    so that models sharing a seed start from identical weights.
    """

    def __init__(self, seeds: list[int], dim: int, width: int = 64, layers: int = 4,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        check_int(dim, "dim", minimum=1)
        check_int(width, "width", minimum=1)
        check_int(layers, "layers", minimum=1)
        if not seeds:
            raise ValueError("seeds must name at least one model")
        sizes = [dim] + [width] * (layers - 1) + [1]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        per_model = [self._init(seed, sizes, dtype) for seed in seeds]
        for layer in range(layers):
            self.weights.append(torch.nn.Parameter(torch.stack([m[layer][0] for m in per_model])))
            self.biases.append(torch.nn.Parameter(torch.stack([m[layer][1] for m in per_model])))

    @classmethod
    def from_weights(cls, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> BatchedMLP:
        """The stacked models whose layer l has weights ``weights[l]`` (M, in, out) and biases (M, out).

        Used to rebuild models in another process, or to join parts trained apart
        (``torch.cat`` of each layer along the model dimension).
        """
        if not weights or len(weights) != len(biases):
            raise ValueError("weights and biases need one tensor per layer, as many of each")
        model = cls([0] * weights[0].shape[0], weights[0].shape[1], weights[0].shape[2], len(weights),
                    dtype=weights[0].dtype)
        with torch.no_grad():
            for mine, theirs in zip(list(model.weights) + list(model.biases), list(weights) + list(biases)):
                if mine.shape != theirs.shape:
                    raise ValueError(f"layer of shape {tuple(theirs.shape)} where {tuple(mine.shape)} was expected")
                mine.copy_(theirs)
        return model.to(weights[0].device)

    def layers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Detached (weights, biases) of every layer: what :meth:`from_weights` takes."""
        return [w.detach() for w in self.weights], [b.detach() for b in self.biases]

    @staticmethod
    def _init(seed: int, sizes: list[int], dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed)
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default (kaiming_uniform with a = sqrt(5))
            w = (torch.rand(fan_in, fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            b = (torch.rand(fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            params.append((w.to(dtype), b.to(dtype)))
        return params

    @property
    def n_models(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of every model on its own points: (M, N, dim) → (M, N)."""
        if x.dim() != 3 or x.shape[0] != self.n_models:
            raise ValueError(f"expected points of shape ({self.n_models}, N, dim), got {tuple(x.shape)}")
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if i < last:
                h = torch.relu(h)
        return h.squeeze(-1)

    def flat(self, points_per_model: int):
        """View the M models as one classifier on (K·M·N, dim) → (K·M·N,).

        The rows are K blocks of M·N rows; within a block, rows
        ``m·N … (m+1)·N − 1`` are scored by model m. This is the layout that
        :func:`mmgan.margins.boundary_distance` produces when it repeats a
        model-major batch once per restart.
        """
        m, n = self.n_models, points_per_model

        def f(x: torch.Tensor) -> torch.Tensor:
            k = x.shape[0] // (m * n)
            if k * m * n != x.shape[0]:
                raise ValueError(f"expected a multiple of {m}·{n} rows, got {x.shape[0]}")
            per_model = x.reshape(k, m, n, -1).transpose(0, 1).reshape(m, k * n, -1)
            return self(per_model).reshape(m, k, n).transpose(0, 1).reshape(-1)
        return f

    def model(self, index: int) -> torch.nn.Module:
        """A standalone ``nn.Sequential`` copy of model ``index`` (for plotting and checks)."""
        layers: list[torch.nn.Module] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            linear = torch.nn.Linear(w.shape[1], w.shape[2], dtype=w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w[index].T)
                linear.bias.copy_(b[index])
            layers.append(linear)
            if i < last:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)
