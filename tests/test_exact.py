import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from mmgan import exact


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_hyperplane_closed_form_agrees_with_linear_program(p):
    gen = torch.Generator().manual_seed(5)
    w, x = torch.randn(4, generator=gen), torch.randn(7, 4, generator=gen)
    closed = exact.hyperplane_distance(x, w, 0.3, p)
    numeric = exact.hyperplane_distance_linprog(x.numpy(), w.numpy(), 0.3, p)
    np.testing.assert_allclose(closed.numpy(), numeric, rtol=1e-7, atol=1e-10)


def test_segment_distance_matches_dense_sampling():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=gen)
    a, b = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    t = torch.linspace(0, 1, 20_001)
    for p in (1, 2, math.inf):
        exact_d = exact.segment_distance(x, a, b, p)
        points = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]  # (M, T, d)
        dense = torch.linalg.vector_norm(x[:, None, None, :] - points[None], ord=p, dim=-1).min(-1).values
        assert torch.all(exact_d <= dense + 1e-12)  # exact minimum is never above a sampled one
        torch.testing.assert_close(exact_d, dense, atol=1e-3, rtol=0)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_polyline_distance_to_circle(p):
    theta = torch.linspace(0, 2 * math.pi, 40_001)
    circle = torch.stack([theta.cos(), theta.sin()], 1)
    x = torch.tensor([[2.0, 0.0], [0.0, -0.25], [3.0, 4.0]])
    got = exact.polyline_distance(x, circle, p, chunk=7000)
    if p == 2:  # radial projection
        expected = [1.0, 0.75, 4.0]
    elif p == 1:  # (2, 0) and (0, -1/4): radial projection is optimal for L^1 too
        expected = [1.0, 0.75, None]
    else:  # L^inf from (0, -1/4): the box first touches where sin θ = cos θ − 1/4
        theta_star = brentq(lambda t: math.sin(t) - math.cos(t) + 0.25, 0.0, 1.0)
        expected = [1.0, math.sin(theta_star), None]
    for value, target in zip(got.tolist(), expected):
        if target is not None:
            assert value == pytest.approx(target, abs=1e-8)


def test_orders_validated():
    with pytest.raises(ValueError, match="valid choices"):
        exact.hyperplane_distance(torch.ones(1, 2), torch.ones(2), 0.0, 3)
