"""The expected-margin-maximisation objective of eq. 6 (§4.1) and its GAN special cases (§5.1).

    min_f  E_{(x,y)~D} [ L(y f(x)) ] + λ E_{x̂} [ g(‖∇ₓ̂ f(x̂)‖_q) ]

Eq. 6 writes both expectations over the data distribution D; GANs evaluate the
penalty at other points (interpolates, §2.4), so the penalty points are an
argument here. With a balanced D (half real, y = +1; half fake, y = −1) the
data term is half of :func:`mmgan.losses.critic_loss`, which sums the two
class means (§5.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mmgan.losses import margin_loss
from mmgan.norms import GradNormOrder, grad_norm
from mmgan.penalties import input_gradient, penalty_shape

#: The (L, g) pairs that §5.1 identifies with known GANs (penalty g = LS as in WGAN-GP).
GAN_AS_MMC: dict[str, str] = {
    "sgan": "Standard GAN: L(z) = softplus(−z) = −log σ(z)",
    "lsgan": "Least-squares GAN: L(z) = (1 − z)²",
    "hinge": "HingeGAN: L(z) = max(0, 1 − z)",
    "wgan": "WGAN-GP with g(z) = (z − 1)²: L(z) = −z",
}


def expected_margin_loss(loss: str, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sample mean of L(y·f(x)), the data term of eq. 6."""
    if scores.shape != y.shape:
        raise ValueError(f"scores and y must have the same shape, got {tuple(scores.shape)} and {tuple(y.shape)}")
    return margin_loss(loss)(y * scores).mean()


def eq6_objective(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    g: str,
    q: GradNormOrder,
    lam: float,
    penalty_x: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 6 estimated on a sample: mean L(y f(x)) + λ · mean g(‖∇f(x̂)‖_q).

    Args:
        f: classifier / critic mapping (B, ...) to (B,) or (B, 1).
        x, y: data points and labels in {−1, +1}.
        loss: margin loss name (:data:`mmgan.losses.MARGIN_LOSSES`).
        g: penalty shape name (:data:`mmgan.penalties.PENALTY_SHAPES`).
        q: gradient norm order.
        lam: penalty weight λ ≥ 0.
        penalty_x: points x̂ for the penalty; the data points ``x`` if omitted
            (eq. 6 as written).
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    shape = penalty_shape(g)
    scores = f(x)
    scores = scores[:, 0] if scores.dim() == 2 and scores.shape[1] == 1 else scores
    data_term = expected_margin_loss(loss, scores, y.to(scores.dtype))
    _, grad = input_gradient(f, x if penalty_x is None else penalty_x, create_graph=True)
    return data_term + lam * shape(grad_norm(grad, q)).mean()
