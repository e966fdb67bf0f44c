"""Lipschitz constants versus gradient bounds (§5.2.1, App. D.1).

For differentiable f on a convex set and any p ≥ 1 with dual q,

    f is K-Lipschitz w.r.t. ‖·‖_p   ⟺   sup_x ‖∇f(x)‖_q ≤ K.

The paper pairs the L^p Lipschitz constant with ‖∇f‖_p instead. That pairing
is an equivalence only for p = 2; for p > 2 only "Lipschitz ⟹ ‖∇f‖_p ≤ K"
survives (because ‖·‖_p ≤ ‖·‖_q there), and for p < 2 only the converse.
The functions here measure both sides on sampled points.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mmgan.norms import GradNormOrder, Order, grad_norm, holder_maximizer, lp_norm
from mmgan.penalties import input_gradient

Function = Callable[[torch.Tensor], torch.Tensor]


def _scores(f: Function, x: torch.Tensor) -> torch.Tensor:
    out = f(x)
    return out[:, 0] if out.dim() == 2 and out.shape[1] == 1 else out


@torch.no_grad()
def lipschitz_ratios(f: Function, x: torch.Tensor, y: torch.Tensor, p: Order) -> torch.Tensor:
    """|f(x) − f(y)| / ‖x − y‖_p for each pair of rows (each a lower bound on K_p)."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return (_scores(f, x) - _scores(f, y)).abs() / lp_norm(x - y, p)


def gradient_norms(f: Function, x: torch.Tensor, q: GradNormOrder) -> torch.Tensor:
    """‖∇f(x)‖_q at each point (B,)."""
    _, grad = input_gradient(f, x, create_graph=False)
    return grad_norm(grad.detach(), q)


def steepest_pairs(f: Function, x: torch.Tensor, p: Order, h: float = 1e-3) -> torch.Tensor:
    """Partners y = x + h·v*, v* the unit-L^p Hölder maximiser of ∇f(x).

    Along v* the ratio |f(y) − f(x)| / ‖y − x‖_p tends to ‖∇f(x)‖_q as h → 0,
    so these pairs probe the Lipschitz constant where random pairs rarely do.
    """
    _, grad = input_gradient(f, x, create_graph=False)
    return x.detach() + h * holder_maximizer(grad.detach(), p)
