"""Gradient penalties g(‖∇ₓ C(x̂)‖_q) of eq. 6 (§4.1) and WGAN-GP (§2.4).

``g`` shapes (all functions of the gradient norm z):

==================  ===============  =========================================
name                g(z)             enforces (softly)
==================  ===============  =========================================
``ls``              (z − 1)²         ‖∇f‖_q ≈ 1 (WGAN-GP's "GP-1")
``hinge``           max(0, z − 1)    ‖∇f‖_q ≤ 1 (the paper's proposal)
``squared_hinge``   max(0, z − 1)²   ‖∇f‖_q ≤ 1 (Petzka et al.)
``zero_centered``   z²               ‖∇f‖_q ≈ 0 ("GP-0"; R1 when at='real')
``kkt``             z² − 1           the §4.1 "standard choice": with a KKT
                                     multiplier λ, ‖∇f‖_q² ≤ 1 or = 1
==================  ===============  =========================================

The zero-centred penalties that GAN practice kept after the paper are the
``zero_centered`` shape at the data of one class, with q = 2 (Mescheder et al.,
2018; Huang et al., 2024): R1 = γ/2 · E_P ‖∇f(x)‖₂² at real samples, R2 the same at
fake samples, and R3GAN's R1 + R2 (:data:`ZERO_CENTRED_PENALTIES`,
:func:`zero_centred_penalty`). In eq. 6 terms: g(z) = z², q = 2, λ = γ/2, at the
real points, the fake points, or both (each class's mean kept apart).

The penalty is evaluated at points x̂ chosen by ``at``: random interpolates
``u·x_real + (1 − u)·x_fake`` with one ``u ~ U[0, 1]`` per sample (WGAN-GP and
the paper's GAN runs), the real or the fake samples, or all data points (both
classes, as written in eq. 6). :func:`batched_gradient_penalty` evaluates the
penalty of M stacked models (each with its own q and g) at given points.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import torch
import torch.nn.functional as F

from mmgan.base.randomness import uniform
from mmgan.base.registry import Registry, check_choice, lookup
from mmgan.norms import GradNormOrder, grad_norm

PenaltyShape = Callable[[torch.Tensor], torch.Tensor]
_Choice = TypeVar("_Choice")



@dataclass(frozen=True)
class Shape:
    """A penalty shape of eq. 6, as registered in :data:`PENALTY_SHAPES`: ``g`` and its label in the book's
    figures (matplotlib text)."""

    g: PenaltyShape
    label: str


def _check_shape(name: str, shape: Shape) -> None:
    if not callable(shape.g):
        raise TypeError(f"penalty shape {name!r}: g must be callable")


#: Penalty shapes g(z) of eq. 6, z being a gradient norm (a new one: one entry).
PENALTY_SHAPES: Registry[Shape] = Registry("g", Shape, _check_shape, {
    "ls": Shape(lambda z: (z - 1.0).pow(2), r"LS: $(z-1)^2$"),
    "hinge": Shape(lambda z: F.relu(z - 1.0), r"hinge: $\max(0, z-1)$"),
    "squared_hinge": Shape(lambda z: F.relu(z - 1.0).pow(2), r"squared hinge: $\max(0, z-1)^2$"),
    "zero_centered": Shape(lambda z: z.pow(2), r"zero-centred: $z^2$"),
    "kkt": Shape(lambda z: z.pow(2) - 1.0, r"KKT: $z^2-1$"),
})

#: Where the penalty can be evaluated.
PENALTY_POINTS: tuple[str, ...] = ("interpolates", "real", "fake", "data")


def penalty_shape(name: str) -> PenaltyShape:
    """Return the penalty shape ``g`` registered under ``name``."""
    return PENALTY_SHAPES[name].g


def penalty_points(
    real: torch.Tensor,
    fake: torch.Tensor,
    at: str = "interpolates",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points x̂ at which the penalty is evaluated (detached from both inputs).

    ``interpolates`` draws one ``u ~ U[0, 1]`` per sample, shaped (B, 1, ..., 1)
    so it works for any input shape; ``data`` concatenates real and fake. The
    weights are drawn on ``generator``'s device (a CPU generator works for CUDA
    batches, see :mod:`mmgan.base.randomness`).
    """
    check_choice(at, PENALTY_POINTS, "at")
    real, fake = real.detach(), fake.detach()
    if at == "real":
        return real
    if at == "fake":
        return fake
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            "real and fake must have the same per-sample shape, got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if at == "data":
        return torch.cat([real, fake])
    if real.shape[0] != fake.shape[0]:
        raise ValueError(
            "interpolates pair the i-th real with the i-th fake sample; real and "
            f"fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    u_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    u = uniform(u_shape, generator, real.device, real.dtype)
    return u * real + (1.0 - u) * fake


def input_gradient(
    critic: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    create_graph: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic outputs (B,) and their gradients ∇ₓC(x) (shape of x).

    The gradient of the summed outputs equals the per-sample gradients as long
    as the critic treats samples independently (true for every model here
    except a critic with BatchNorm in training mode, where samples interact).
    With ``create_graph=True`` the result can be differentiated again with
    respect to the critic's parameters (double backward).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = critic(x)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (x.shape[0],):
            raise ValueError(
                f"critic must return shape (batch,) or (batch, 1), got {tuple(out.shape)}"
            )
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph)
    return out, grad


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    q: GradNormOrder = 2,
    g: str = "ls",
    at: str = "interpolates",
    *,
    as_released: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean over x̂ of ``g(‖∇ₓ̂ critic(x̂)‖_q)`` — the penalty term of eq. 6.

    Multiply by λ and add to :func:`mmgan.losses.critic_loss`. Differentiable
    with respect to the critic's parameters; works for any input shape.

    Args:
        critic: maps (B, ...) to (B,) or (B, 1).
        real, fake: batches of the same per-sample shape.
        q: gradient norm, one of ``1, 2, math.inf, 'smax'`` (margin p = dual(q)).
        g: penalty shape, a key of :data:`PENALTY_SHAPES`.
        at: where to evaluate, one of :data:`PENALTY_POINTS`.
        as_released: use the released code's signed max (q = inf) or batch-pooled
            smooth max (q = 'smax'); see :func:`mmgan.norms.grad_norm`.
        generator: optional RNG for the interpolation weights (any device).
    """
    shape = penalty_shape(g)
    x_hat = penalty_points(real, fake, at, generator)
    _, grad = input_gradient(critic, x_hat, create_graph=True)
    return shape(grad_norm(grad, q, as_released=as_released)).mean()


#: The zero-centred penalties: name → the points ``at`` whose means are summed (R1: real, R2: fake).
ZERO_CENTRED_PENALTIES: dict[str, tuple[str, ...]] = {
    "r1": ("real",),
    "r2": ("fake",),
    "r1+r2": ("real", "fake"),
}
#: γ of Mescheder et al. (2018)'s experiments and of StyleGAN's FFHQ runs (R1 = γ/2 · E‖∇f‖₂²).
DEFAULT_GAMMA = 10.0


def zero_centred_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    which: str = "r1",
    gamma: float = DEFAULT_GAMMA,
) -> torch.Tensor:
    """γ/2 · Σ over the chosen classes of E ‖∇ₓ critic(x)‖₂² — R1, R2 or R1 + R2.

    Eq. 6's penalty with g(z) = z² (``zero_centered``), q = 2 and λ = γ/2, evaluated at
    the real samples (R1, Mescheder et al., 2018), the fake ones (R2) or both, each
    class averaged on its own (R3GAN, Huang et al., 2024). For a linear critic
    f(x) = w·x + b, R1 = R2 = γ/2 · ‖w‖₂². Differentiable with respect to the critic's
    parameters.
    """
    points = lookup(ZERO_CENTRED_PENALTIES, which, "which (zero-centred penalty)")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0 (γ = 0 is no penalty, not {which.upper()}), "
                         f"got {gamma!r}")
    total = sum(gradient_penalty(critic, real, fake, q=2, g="zero_centered", at=at) for at in points)
    return 0.5 * gamma * total


class BatchedPenalty(NamedTuple):
    """Result of :func:`batched_gradient_penalty` for M models evaluated on B points each.

    Attributes:
        penalty: (M,) mean over the points of g_m(‖∇ₓ f_m(x̂)‖_{q_m}).
        grad_norm: (M, B) the gradient norms ‖∇ₓ f_m(x̂_i)‖_{q_m}.
        scores: (M, B) the critic outputs f_m(x̂_i), in the same graph (reuse them
            instead of a second forward pass when x̂ are the training points).
    """

    penalty: torch.Tensor
    grad_norm: torch.Tensor
    scores: torch.Tensor


def per_model(value: _Choice | Sequence[_Choice], n_models: int, parameter: str) -> list[_Choice]:
    """One choice for every model: ``value`` repeated, or ``value`` itself if it is a sequence of M."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value] * n_models
    if len(value) != n_models:
        raise ValueError(
            f"{parameter} must be one value or a sequence of one per model ({n_models}), got {len(value)}"
        )
    return list(value)


@functools.lru_cache(maxsize=256)
def _choice_index(pattern: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(which distinct choice, which model) index tensors of a mixed pack on ``device``, built once per pattern and
    device: built at every step, ``torch.tensor`` would copy them from the host and wait for the copy."""
    return (torch.tensor(pattern, device=device), torch.arange(len(pattern), device=device))


def _select(choices: list[_Choice], compute: Callable[[_Choice], torch.Tensor]) -> torch.Tensor:
    """Row m of ``compute(choices[m])``, computing each (M, B) tensor once per distinct choice."""
    distinct = list(dict.fromkeys(choices))
    if len(distinct) == 1:
        return compute(distinct[0])
    stacked = torch.stack([compute(c) for c in distinct])  # (K, M, B)
    return stacked[_choice_index(tuple(distinct.index(c) for c in choices), stacked.device)]


def batched_gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    x_hat: torch.Tensor,
    q: GradNormOrder | Sequence[GradNormOrder] = 2,
    g: str | Sequence[str] = "ls",
    *,
    create_graph: bool = True,
) -> BatchedPenalty:
    """The penalty term of eq. 6 (§4.1) for M independent critics at once.

    Model m's penalised objective is ``E L(y f_m(x)) + λ_m E g_m(‖∇ₓ f_m(x̂)‖_{q_m})``;
    this returns the second expectation, estimated on model m's points
    ``x_hat[m]``, for every m. The critic is differentiated once, through the
    sum of all M·B scores: model m's score at point i depends on ``x_hat[m, i]``
    only (models do not share inputs and each network treats its points
    independently), so the gradient of the sum with respect to ``x_hat[m, i]``
    is exactly ∇ₓ f_m(x̂_i). Model by model the result equals
    :func:`gradient_penalty` with ``at='real'`` and ``real = x_hat[m]``.

    Args:
        critic: M stacked models, (M, B, ...) → (M, B), e.g. :class:`mmgan.mlp.BatchedMLP`.
        x_hat: (M, B, ...) penalty points, chosen by the caller (data points or
            interpolates); detached, so only the critic's parameters get gradients.
        q: gradient norm (see :func:`mmgan.norms.grad_norm`) of all models, or one per model.
        g: penalty shape (a key of :data:`PENALTY_SHAPES`) of all models, or one per model.
        create_graph: keep the graph of ∇ₓ f so the penalty can be differentiated with
            respect to the critic's parameters (double backward).
    """
    if x_hat.dim() < 3:
        raise ValueError(f"x_hat must have shape (models, batch, ...), got {tuple(x_hat.shape)}")
    n_models = x_hat.shape[0]
    q_m, g_m = per_model(q, n_models, "q"), per_model(g, n_models, "g")
    shapes = {name: penalty_shape(name) for name in dict.fromkeys(g_m)}
    x_hat = x_hat.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = critic(x_hat)
        if scores.shape != x_hat.shape[:2]:
            raise ValueError(
                f"critic must map {tuple(x_hat.shape)} to {tuple(x_hat.shape[:2])}, got {tuple(scores.shape)}"
            )
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=create_graph)
    flat = grad.flatten(0, 1)  # (M·B, ...): one row per (model, point)
    norms = _select(q_m, lambda order: grad_norm(flat, order).reshape(scores.shape))
    penalty = _select(g_m, lambda name: shapes[name](norms)).mean(1)
    return BatchedPenalty(penalty, norms, scores)
