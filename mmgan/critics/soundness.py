"""Is a certificate sound? A search for a flip inside each certified ball.

A certified margin r of an image x (:func:`mmgan.critics.certify.certified_radius`) claims
that f − t keeps its sign on the whole ball B_p(x, r). The chapter's certificates are
bisected below the best known boundary point, so they can never exceed it, and comparing
them with it could never catch an unsound one. The check here does not lean on that cap:

1. the certificate is recomputed **uncapped** (``expand``: the bisection's end doubles while
   CROWN still proves the ball), so an unsound CROWN would certify a ball that reaches past
   a boundary point;
2. inside that ball, a projected-gradient search (:func:`flip_search`) minimises
   sign(f(x) − t)·(f(z) − t) over z ∈ B_p(x, r), from the known boundary points (pulled into
   the ball along their rays), from the first-order step to the ball's surface and from
   random points; every iterate is projected back onto the ball (L² and L^∞ by scaling and
   clipping, L¹ by the sort-based projection of Duchi et al., 2008). The scores are computed
   in float64 on a float64 copy of the critic, so a flip is not an artefact of rounding.

A **violation** is a point of the ball where f − t, evaluated in float64, has lost its sign: it
would prove the certificate wrong. The count is expected to be 0.

Why float64, and why a known boundary point closer than r is not by itself a violation: the
certificate is a claim about the network's function computed exactly (CROWN runs in float64 on
the weights), while the searches and FMN run the critic in float32, whose scores differ from it
by rounding (~1e-6 of a score of 8). Where an image lies within ~1e-3 of its boundary (a
margin of ~5e-4 in L²), that rounding moves the float32 boundary by a fraction of a percent of
the distance, and a float32 boundary point can lie just inside a sound float64 certificate
while the float64 critic keeps its sign there. Such points are used as starts of the search
and judged by the float64 critic like every other point.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from mmgan.base.registry import check_choice, check_int
from mmgan.critics.held_batch import HeldBatchCritic
from mmgan.margins import MARGIN_ORDERS
from mmgan.norms import holder_maximizer

#: The search inside each ball: projected steps per start, random starts (besides the known points and the
#: first-order step), first step size as a share of the radius (it decays linearly to a hundredth of it).
FLIP_SEARCH: dict[str, float] = dict(steps=100, random_starts=2, step_share=0.25)


def project_l1(delta: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Each row of ``delta`` (B, n) projected onto the L¹ ball of its ``radius`` (Duchi et al., 2008)."""
    norms = delta.abs().sum(1)
    outside = norms > radius
    magnitude = delta.abs()
    ordered = magnitude.sort(1, descending=True).values
    cumulative = ordered.cumsum(1) - radius[:, None]
    index = torch.arange(1, delta.shape[1] + 1, dtype=delta.dtype, device=delta.device)
    positive = ordered - cumulative / index > 0
    count = positive.sum(1).clamp_min(1)
    theta = cumulative.gather(1, (count - 1)[:, None]) / count[:, None].to(delta.dtype)
    shrunk = delta.sign() * (magnitude - theta.clamp_min(0)).clamp_min(0)
    return torch.where(outside[:, None], shrunk, delta)


def project(delta: torch.Tensor, radius: torch.Tensor, p: float) -> torch.Tensor:
    """Each row of ``delta`` (B, n) projected onto B_p(0, radius[i])."""
    if p == math.inf:
        return torch.maximum(torch.minimum(delta, radius[:, None]), -radius[:, None])
    if p == 2.0:
        norms = torch.linalg.vector_norm(delta, dim=1).clamp_min(1e-300)
        return delta * (radius / norms).clamp(max=1.0)[:, None]
    return project_l1(delta, radius)


def _ascent(gradient: torch.Tensor, p: float) -> torch.Tensor:
    """The steepest unit step for the L^p norm (a maximiser of ⟨g, v⟩ over ‖v‖_p ≤ 1)."""
    return holder_maximizer(gradient, p)


def float64_view(critic: nn.Module) -> nn.Module:
    """A float64 copy of a critic (or of a held-batch critic, mates included), for exact-enough scoring."""
    copied = copy.deepcopy(critic).double()
    if isinstance(copied, HeldBatchCritic):
        copied.prefix = copied.prefix.double()
        copied.moments = tuple(m.double() if torch.is_tensor(m) else m for m in copied.moments)
    return copied


def flip_search(f: nn.Module, x: torch.Tensor, threshold: float | torch.Tensor, p: float, radius: torch.Tensor,
                points: torch.Tensor | None = None, steps: int | None = None, random_starts: int | None = None,
                step_share: float | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Search B_p(x[i], radius[i]) for a point where f − threshold has lost the sign it has at x[i].

    ``f``: a float64 critic view (:func:`float64_view`) taking k·B rows; ``threshold``: a number or one per
    image; ``points``: known boundary points (B, ...) to start from (pulled into the ball along their rays);
    ``steps``, ``random_starts``, ``step_share``: default :data:`FLIP_SEARCH`'s (read at each call).
    Returns (flipped (B,) bool, the lowest sign-adjusted score found (B,): negative where flipped).
    """
    check_choice(p, MARGIN_ORDERS, "p")
    p = float(p)
    steps = int(FLIP_SEARCH["steps"]) if steps is None else steps
    random_starts = int(FLIP_SEARCH["random_starts"]) if random_starts is None else random_starts
    step_share = float(FLIP_SEARCH["step_share"]) if step_share is None else step_share
    check_int(steps, "steps", minimum=1)
    check_int(random_starts, "random_starts", minimum=0)
    n = x.shape[0]
    x0 = x.detach().double().flatten(1)
    radius = radius.detach().double().to(x0.device)
    t = torch.as_tensor(threshold, dtype=torch.float64, device=x0.device).expand(n)
    shape = (-1, *x.shape[1:])
    with torch.no_grad():
        sign = torch.sign(f(x0.reshape(shape)).double().flatten() - t)
    z0 = x0.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(f(z0.reshape(shape)).sum(), z0)
    starts = [-(sign * radius)[:, None] * _ascent(gradient, p)]  # the first-order step to the surface
    if points is not None:
        starts.append(project(points.detach().double().flatten(1) - x0, radius, p))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(random_starts):
        direction = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0.device)
        starts.append(project(direction * radius[:, None], radius, p))
    k = len(starts)
    origin, ball, signs, level = x0.repeat(k, 1), radius.repeat(k), sign.repeat(k), t.repeat(k)
    delta = torch.cat(starts)
    best = torch.full((k * n,), math.inf, dtype=torch.float64, device=x0.device)
    for step in range(steps + 1):
        delta = delta.detach().requires_grad_(True)
        value = signs * (f((origin + delta).reshape(shape)).double().flatten() - level)
        best = torch.minimum(best, value.detach())
        if step == steps:
            break
        (gradient,) = torch.autograd.grad(value.sum(), delta)
        size = step_share * (1 - 0.99 * step / steps) * ball
        delta = project(delta.detach() - size[:, None] * _ascent(gradient, p), ball, p)
    lowest = best.reshape(k, n).amin(0)
    return lowest <= 0, lowest


def violations(critic: nn.Module, x: torch.Tensor, threshold: float | torch.Tensor, p: float,
               certified: torch.Tensor, points: torch.Tensor | None = None, mates: torch.Tensor | None = None,
               **search: float) -> torch.Tensor:
    """Per image, whether its certified ball B_p(x, ``certified``) is violated: a point of it where the critic,
    evaluated in float64, has f − t of the other sign (:func:`flip_search`, started from the known boundary
    ``points`` among others; on the train-mode critic with ``mates``, else the eval-mode one)."""
    f = float64_view(critic if mates is None else HeldBatchCritic(critic, mates))
    flipped, _ = flip_search(f, x, threshold, p, certified, points, **search)
    return flipped

