"""The critic as trained: train-mode BatchNorm, with each measured image's batch held fixed.

During training a critic with BatchNorm never scores an image on its own: each forward pass
normalises a class-pure batch (``batch_size`` reals, or ``batch_size`` generated images) with
that batch's own mean and (biased) variance per channel (:func:`mmgan.gan.train.training_iteration`).
Its running statistics are used only in eval mode, which no training step sees.

To measure the margin of one image x of the train-mode critic, its batch is fixed: x and
b − 1 *batch mates* (the other images of its class-pure batch of the training batch size b).
The mates are held where they are, and the critic's score of x is read as a function of x
alone, f(x) = critic_train([x, mates])[x]. The batch statistics are recomputed with x in the
batch, so they move with x (each BatchNorm channel's mean and variance contain x's 1/b share):
this is the critic as trained, its gradient through the batch statistics included, and the
boundary {f = t} is that of this function of x.

:class:`HeldBatchCritic` computes it for many images at once, each with its own mates: the
layers before the first BatchNorm see the mates' fixed images, so their activations (and
their per-channel sums) are computed once; only x is carried through the network (and the
mates too, while another BatchNorm follows). It takes k·B rows (the B measured images
repeated k times), as :func:`mmgan.margins.boundary_distance` calls its classifier; row r is
image r mod B.

:func:`class_batches` forms the batches: the measured images of a class, in order, in blocks
of b; an incomplete last block is filled with further images of the same class (``pool``),
which are mates only, never measured.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmgan.base.registry import check_choice, check_int

#: The two views of a BatchNorm critic: ``train`` (batch statistics, the critic as trained, primary) and
#: ``eval`` (running statistics: each image scored on its own).
MODES: tuple[str, ...] = ("train", "eval")
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def batchnorm_positions(critic: nn.Sequential) -> list[int]:
    """Indices of the critic's BatchNorm layers."""
    return [k for k, layer in enumerate(critic) if isinstance(layer, BATCHNORMS)]


def class_batches(images: torch.Tensor, batch_size: int, pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch mates of each image of one class, and its batch's number.

    ``images`` (n, ...) are cut, in order, into blocks of ``batch_size``; the last block, if
    incomplete, is filled from ``pool`` (images of the same class that are not measured).
    Returns ``mates`` (n, batch_size − 1, ...), the other members of each image's batch in
    batch order, and ``batch`` (n,), the block of each image.
    """
    check_int(batch_size, "batch_size", minimum=1)
    n = images.shape[0]
    missing = -n % batch_size
    if pool.shape[0] < missing:
        raise ValueError(f"{n} images in batches of {batch_size} need {missing} more images of their class to fill "
                         f"the last batch; the pool has {pool.shape[0]}")
    blocks = torch.cat([images, pool[:missing].to(images)]).reshape(-1, batch_size, *images.shape[1:])
    position = torch.arange(n) % batch_size
    batch = torch.arange(n) // batch_size
    others = torch.stack([torch.cat([torch.arange(j), torch.arange(j + 1, batch_size)]) for j in range(batch_size)])
    mates = blocks[batch[:, None], others[position]]
    return mates, batch


def group_batchnorm(layer: nn.BatchNorm1d | nn.BatchNorm2d, h: torch.Tensor, mate_mean: torch.Tensor,
                    mate_m2: torch.Tensor, mate_count: int) -> torch.Tensor:
    """Train-mode BatchNorm of each row of ``h`` within its own batch: the row and mates whose activations have,
    per channel, mean ``mate_mean`` (R, C) and sum of squared deviations ``mate_m2`` (R, C) over ``mate_count``
    values. The statistics are pooled exactly (Chan et al.'s update); the variance is the biased one, as
    BatchNorm normalises with."""
    dims = tuple(range(2, h.dim()))
    own = math.prod(h.shape[2:]) if dims else 1
    own_mean = h.mean(dims) if dims else h
    own_m2 = (h - own_mean.reshape(*own_mean.shape, *[1] * len(dims))).square().sum(dims) if dims \
        else torch.zeros_like(h)
    total = mate_count + own
    delta = own_mean - mate_mean
    mean = mate_mean + delta * (own / total)
    var = (mate_m2 + own_m2 + delta.square() * (mate_count * own / total)) / total
    shape = (*mean.shape, *[1] * len(dims))
    out = (h - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + layer.eps)
    if layer.affine:
        out = out * layer.weight.reshape(1, -1, *[1] * len(dims)) + layer.bias.reshape(1, -1, *[1] * len(dims))
    return out


def channel_moments(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per row and channel of ``values`` (R, M, C, ...) (M images per row): mean, sum of squared deviations, count."""
    dims = (1, *range(3, values.dim()))
    count = values.shape[1] * math.prod(values.shape[3:])
    mean = values.mean(dims)
    m2 = (values - mean.reshape(mean.shape[0], 1, mean.shape[1], *[1] * (values.dim() - 3))).square().sum(dims)
    return mean, m2, count


class HeldBatchCritic(nn.Module):
    """f(x) = the train-mode critic's score of x in the batch [x, mates of x], the mates held fixed.

    ``mates``: (B, b − 1, ...) for B images; called on k·B rows, row r is scored with the mates of image
    r mod B. The critic's running statistics are neither used nor changed; without BatchNorm f is the critic.
    """

    def __init__(self, critic: nn.Sequential, mates: torch.Tensor) -> None:
        super().__init__()
        if mates.dim() < 2:
            raise ValueError(f"mates must have shape (images, batch_size - 1, ...), got {tuple(mates.shape)}")
        self.critic = critic
        self.images = mates.shape[0]
        self.positions = batchnorm_positions(critic)
        layers = list(critic)
        if self.positions:
            first = self.positions[0]
            with torch.no_grad():
                h = mates.flatten(0, 1).to(next(critic.parameters()).dtype)
                for layer in layers[:first]:
                    h = layer(h)
            self.prefix = h.unflatten(0, mates.shape[:2])  # the mates' activations entering the first BatchNorm
            self.moments = channel_moments(self.prefix)

    @property
    def batch_size(self) -> int:
        return self.prefix.shape[1] + 1 if self.positions else 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows = z.shape[0]
        if rows % self.images:
            raise ValueError(f"a held-batch critic of {self.images} images takes a multiple of {self.images} rows, "
                             f"got {rows}")
        if not self.positions:
            return self.critic(z)
        layers = list(self.critic)
        first, last = self.positions[0], self.positions[-1]
        image = torch.arange(rows, device=z.device) % self.images
        h = z
        for layer in layers[:first]:
            h = layer(h)
        mates = self.prefix[image] if last > first else None  # carried while another BatchNorm follows
        for k in range(first, len(layers)):
            layer = layers[k]
            if isinstance(layer, BATCHNORMS):
                if mates is None:  # a single BatchNorm: the mates' statistics are fixed, only x is normalised
                    mean, m2, count = self.moments
                    h = group_batchnorm(layer, h, mean[image], m2[image], count)
                else:  # each row's whole batch is normalised: a later BatchNorm needs the mates' activations
                    both = torch.cat([h[:, None], mates], 1)
                    mean, m2, count = channel_moments(both)
                    normalised = _normalise(layer, both.flatten(0, 1), mean.repeat_interleave(both.shape[1], 0),
                                            m2.repeat_interleave(both.shape[1], 0), count)
                    both = normalised.unflatten(0, both.shape[:2])
                    h, mates = both[:, 0], (both[:, 1:] if k < last else None)
            else:
                h = layer(h)
                if mates is not None:
                    mates = layer(mates.flatten(0, 1)).unflatten(0, mates.shape[:2])
        return h


def _normalise(layer: nn.BatchNorm1d | nn.BatchNorm2d, h: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor,
               count: int) -> torch.Tensor:
    """BatchNorm of the rows of ``h`` with given per-row channel statistics (mean, sum of squares over count)."""
    extra = [1] * (h.dim() - 2)
    out = (h - mean.reshape(*mean.shape, *extra)) / torch.sqrt(m2.reshape(*m2.shape, *extra) / count + layer.eps)
    if layer.affine:
        out = out * layer.weight.reshape(1, -1, *extra) + layer.bias.reshape(1, -1, *extra)
    return out


def critic_view(critic: nn.Sequential, mode: str, mates: torch.Tensor | None = None) -> nn.Module:
    """The critic as a function of each image alone: itself in eval mode (running statistics), a
    :class:`HeldBatchCritic` on ``mates`` in train mode."""
    check_choice(mode, MODES, "mode")
    if mode == "eval":
        if critic.training:
            raise ValueError("the eval view needs the critic in eval mode (BatchNorm with its running statistics)")
        return critic
    if mates is None:
        raise ValueError("the train view needs each image's batch mates (class_batches)")
    return HeldBatchCritic(critic, mates)
