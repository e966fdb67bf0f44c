import math

import numpy as np
import pytest
import torch
from helpers import LinearCritic, small_mlp
from scipy.optimize import linprog

from mmgan import margins, norms

P_CHOICES = [1, 2, math.inf]


def lp_distance_to_hyperplane_by_lp(x: np.ndarray, w: np.ndarray, b: float, p: float) -> float:
    """min ‖r‖_p s.t. w·(x + r) + b = 0, solved as a linear program (p ∈ {1, ∞})."""
    d = len(x)
    target = -(w @ x + b)
    if p == 1:  # r = r⁺ − r⁻, minimise Σ r⁺ + r⁻
        res = linprog(np.ones(2 * d), A_eq=np.concatenate([w, -w])[None], b_eq=[target], bounds=(0, None))
        return res.fun
    # p = ∞: minimise t with −t ≤ r_i ≤ t
    c = np.r_[np.zeros(d), 1.0]
    A_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None], b_eq=[target],
                  bounds=[(None, None)] * d + [(0, None)])
    return res.fun


@pytest.mark.parametrize("p", P_CHOICES)
@pytest.mark.parametrize("shape", [(2,), (5,), (3, 2, 2)])
def test_taylor_margin_is_exact_for_affine_f(p, shape):
    critic = LinearCritic(shape, seed=len(shape))
    x = torch.randn((6,) + shape)
    w, b = critic.w.detach().reshape(-1), critic.b.item()
    closed_form = (x.reshape(6, -1) @ w + b).abs() / norms.grad_norm(w[None], norms.dual(p))
    torch.testing.assert_close(margins.taylor_margin(critic, x, p), closed_form)
    boundary = margins.taylor_boundary_point(critic, x, p)
    torch.testing.assert_close(critic(boundary), torch.zeros(6), atol=1e-10, rtol=0)
    torch.testing.assert_close(norms.lp_norm(boundary - x, p), closed_form)
    if p != 2:
        by_lp = [lp_distance_to_hyperplane_by_lp(xi, w.numpy(), b, p) for xi in x.reshape(6, -1).numpy()]
        np.testing.assert_allclose(closed_form.numpy(), by_lp, rtol=1e-7, atol=1e-9)


def test_taylor_margin_error_vanishes_near_a_curved_boundary():
    """f = ‖x‖² − 1: exact L² margin |r − 1|, Taylor |r² − 1| / 2r, relative error |1 − r| / 2r."""
    f = lambda x: x.pow(2).sum(1) - 1  # noqa: E731
    radii = torch.tensor([3.0, 2.0, 1.5, 1.1, 1.01, 0.9, 0.5])
    x = torch.stack([radii * math.cos(0.3), radii * math.sin(0.3)], 1)
    taylor = margins.taylor_margin(f, x, 2)
    exact = (radii - 1).abs()
    torch.testing.assert_close(taylor, (radii**2 - 1).abs() / (2 * radii))
    rel = (taylor - exact).abs() / exact
    torch.testing.assert_close(rel, (1 - radii).abs() / (2 * radii))
    assert rel[4] < 0.01 < rel[0]


def test_geometric_margin_is_signed_taylor_margin():
    f = small_mlp(2)
    x = torch.randn(10, 2)
    y = torch.tensor([1, -1] * 5)
    geo = margins.geometric_margin(f, x, y, 2)
    torch.testing.assert_close(geo.abs(), margins.taylor_margin(f, x, 2))
    torch.testing.assert_close(torch.sign(geo), torch.sign(y * f(x)[:, 0]).detach())


def test_margin_bad_inputs():
    f = small_mlp(2)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"invalid p=3; valid choices: 1.0, 2.0, inf"):
        margins.taylor_margin(f, x, 3)
    with pytest.raises(ValueError, match="y must have shape"):
        margins.geometric_margin(f, x, torch.ones(3), 2)
    with pytest.raises(ValueError, match="labels"):
        margins.geometric_margin(f, x, torch.tensor([1, 0, 1, -1]), 2)


def test_zero_gradient_gives_infinite_margin():
    f = lambda x: torch.ones(x.shape[0]) + 0 * x.sum(1)  # noqa: E731
    assert torch.isinf(margins.taylor_margin(f, torch.randn(3, 2), 2)).all()
