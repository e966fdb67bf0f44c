"""Margins of a classifier f: the first-order (Taylor) margin of §3.2 / App. D.4.

For a point x the L^p margin (eq. 3) is the L^p distance from x to the
decision boundary {f = 0}. Linearising f at x gives

    γ_p(x) ≈ |f(x)| / ‖∇ₓ f(x)‖_q,   1/p + 1/q = 1,

exact for affine f. The geometric margin replaces |f(x)| by y·f(x), so it is
negative for misclassified points.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mmgan.norms import Order, dual, grad_norm, holder_maximizer
from mmgan.penalties import input_gradient
from mmgan.registry import check_choice

Classifier = Callable[[torch.Tensor], torch.Tensor]

#: Margin orders p supported throughout (their duals are the paper's gradient norms).
MARGIN_ORDERS: tuple[float, ...] = (1.0, 2.0, math.inf)


def _first_order(f: Classifier, x: torch.Tensor, p: Order) -> tuple[torch.Tensor, torch.Tensor]:
    check_choice(p, MARGIN_ORDERS, "p")
    out, grad = input_gradient(f, x, create_graph=False)
    return out.detach(), grad.detach()


def taylor_margin(f: Classifier, x: torch.Tensor, p: Order) -> torch.Tensor:
    """First-order L^p distance from each x to {f = 0}: |f(x)| / ‖∇f(x)‖_dual(p).

    Args:
        f: classifier mapping (B, ...) to (B,) or (B, 1); samples must be independent.
        x: points, shape (B, ...).
        p: margin order, one of 1, 2, math.inf.

    Returns:
        Tensor (B,); ``inf`` where the gradient vanishes and f ≠ 0.
    """
    out, grad = _first_order(f, x, p)
    return out.abs() / grad_norm(grad, dual(p))


def geometric_margin(f: Classifier, x: torch.Tensor, y: torch.Tensor, p: Order) -> torch.Tensor:
    """Signed first-order margin y·f(x) / ‖∇f(x)‖_dual(p) (§3.2), labels y ∈ {−1, +1}."""
    y = torch.as_tensor(y, dtype=x.dtype, device=x.device)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("y must contain only the labels +1 (class 1, real) and -1 (class 2, fake)")
    out, grad = _first_order(f, x, p)
    return y * out / grad_norm(grad, dual(p))


def taylor_boundary_point(f: Classifier, x: torch.Tensor, p: Order) -> torch.Tensor:
    """The closest point of the linearised boundary (App. D.4): x − f(x)/‖∇f‖_q · v*.

    ``v*`` is the unit-L^p Hölder maximiser of the gradient
    (:func:`mmgan.norms.holder_maximizer`); ‖result − x‖_p equals
    :func:`taylor_margin`. For affine f this is an exact closest boundary point.
    """
    out, grad = _first_order(f, x, p)
    step = out / grad_norm(grad, dual(p))
    direction = holder_maximizer(grad, p)
    return x.detach() - step.reshape((-1,) + (1,) * (x.dim() - 1)) * direction
