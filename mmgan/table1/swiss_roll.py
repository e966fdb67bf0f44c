"""The two-class swiss roll of §4.2 / Table 1.

The paper cites Marsland (2015) and says only that one class is the swiss roll
and the other the roll scaled by 1.5. Everything else is our choice, exposed as
a parameter:

* the roll is Marsland's (and scikit-learn's): angle ``t = 1.5π(1 + 2u)``,
  ``u ~ U[0, 1]``, so t ∈ [1.5π, 4.5π]; the 2-D roll is ``(t cos t, t sin t)``
  (radius 4.7 to 14.1) and the 3-D roll adds a height ``h ~ U[0, 21]`` as the
  middle coordinate: ``(t cos t, h, t sin t)``;
* class +1 is the roll, class −1 is the same construction with every
  coordinate multiplied by 1.5 (so the two spirals interleave but never cross);
* ``noise`` adds isotropic Gaussian noise (in raw units) before scaling;
* ``scale`` multiplies all coordinates at the end: a number, or the name of one
  of the conventions a practitioner would plausibly have applied to the roll
  (:data:`SCALE_CONVENTIONS`), each reduced to one isotropic factor computed
  from a large noise-free sample of the two-class data (a shift does not change
  distances, so only the factor matters for margins):

  ``raw``           1: the roll's own coordinates (up to about 21 in 2-D, 31 in 3-D)
  ``standardized``  1 / pooled standard deviation of all coordinates (unit variance)
  ``maxabs``        1 / largest absolute coordinate (the data fill [-1, 1])
  ``unitrange``     1 / widest coordinate range (the data fit in a unit box, as min-max scaling)

Margins are distances in input units while a gradient penalty fixes a
gradient norm of 1, so the scale decides the size of the margins (Table 1).
"""

from __future__ import annotations

import math
from functools import cache

import torch

from mmgan.base.registry import check_choice, check_int

#: Pass as ``scale`` to standardise the coordinates (see the module docstring).
STANDARDIZED = "standardized"
#: Named coordinate scales (see the module docstring), in decreasing size of the factor.
SCALE_CONVENTIONS: tuple[str, ...] = ("raw", STANDARDIZED, "maxabs", "unitrange")

HEIGHT = 21.0
CLASS_2_FACTOR = 1.5


def _roll(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    if dim == 2:
        return torch.stack([t * t.cos(), t * t.sin()], 1)
    h = HEIGHT * torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.stack([t * t.cos(), h, t * t.sin()], 1)


@cache
def scale_factor(convention: str, dim: int) -> float:
    """The factor of a named scale convention (:data:`SCALE_CONVENTIONS`), from 400k noise-free points."""
    check_choice(convention, SCALE_CONVENTIONS, "scale")
    if convention == "raw":
        return 1.0
    x, _ = swiss_roll(200_000, scale=1.0, dim=dim, noise=0.0, seed=12345)
    if convention == STANDARDIZED:
        return float(1.0 / x.std())
    if convention == "maxabs":
        return float(1.0 / x.abs().max())
    return float(1.0 / (x.max(0).values - x.min(0).values).max())


def standardizing_factor(dim: int) -> float:
    """1 / pooled std of all coordinates of the noise-free two-class roll (400k points)."""
    return scale_factor(STANDARDIZED, dim)


def swiss_roll(
    n: int,
    scale: float | str = 1.0,
    dim: int = 2,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n`` points of each class of the two-class swiss roll.

    Args:
        n: points per class (the result holds 2n points, class +1 first).
        scale: coordinate multiplier > 0, or a name in :data:`SCALE_CONVENTIONS`.
        dim: 2 (planar spiral) or 3 (spiral × height).
        noise: standard deviation of Gaussian noise added in raw units (≥ 0).
        seed: seed of the generator; the same seed gives the same points.

    Returns:
        ``(x, y)``: float64 points (2n, dim) and labels (2n,) in {+1, −1}.
    """
    check_int(n, "n", minimum=1)
    check_choice(dim, (2, 3), "dim")
    check_int(seed, "seed")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    if isinstance(scale, str) and scale in SCALE_CONVENTIONS:
        factor = scale_factor(scale, dim)
    elif isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0:
        factor = float(scale)
    else:
        raise ValueError(f"scale must be a number > 0 or one of {list(SCALE_CONVENTIONS)}, got {scale!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([_roll(n, dim, gen), CLASS_2_FACTOR * _roll(n, dim, gen)])
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    y = torch.cat([torch.ones(n), -torch.ones(n)]).to(torch.float64)
    return factor * x, y
