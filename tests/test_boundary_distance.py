"""The margin estimator against distances known by an independent route."""

import math

import pytest
import torch

from mmgan import exact, margins

ORDERS = [1.0, 2.0, math.inf]
theta = torch.linspace(0, 2 * math.pi, 20_001, dtype=torch.float64)
s = torch.linspace(-4, 4, 40_001, dtype=torch.float64)
CURVES = {
    # f, dense polyline of {f = 0}, sample points
    "circle": (lambda z: z.pow(2).sum(1) - 1, torch.stack([theta.cos(), theta.sin()], 1),
               lambda g: 1.2 * torch.randn(60, 2, generator=g, dtype=torch.float64)),
    "parabola": (lambda z: z[:, 1] - z[:, 0] ** 2, torch.stack([s, s**2], 1),
                 lambda g: 0.8 * torch.randn(60, 2, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.5])),
    "hyperplane": (lambda z: z @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.3,
                   torch.tensor([[-40.0, -19.85], [40.0, 20.15]], dtype=torch.float64),
                   lambda g: 2 * torch.randn(60, 2, generator=g, dtype=torch.float64)),
}


@pytest.mark.parametrize("p", ORDERS)
@pytest.mark.parametrize("curve", list(CURVES))
def test_matches_brute_force_within_one_percent_and_never_below(curve, p):
    f, polyline, sampler = CURVES[curve]
    x = sampler(torch.Generator().manual_seed(11))
    result = margins.boundary_distance(f, x, p)
    truth = exact.polyline_distance(x, polyline, p)
    rel = (result.distance - truth) / truth
    assert rel.abs().max() <= 0.01, rel.abs().max()
    assert rel.min() >= -0.01
    assert result.converged.all()
    torch.testing.assert_close(f(result.point), torch.zeros(60, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.vector_norm(result.point - x, ord=p, dim=1), result.distance)


def test_converged_is_false_when_the_budget_runs_out():
    f = CURVES["parabola"][0]
    x = torch.tensor([[0.3, 2.0], [1.0, -1.0]], dtype=torch.float64)
    result = margins.boundary_distance(f, x, 2, max_steps=3, window=25)
    assert not result.converged.any()
    assert result.steps == 3
    full = margins.boundary_distance(f, x, 2)
    assert full.converged.all() and torch.isfinite(full.distance).all()
    # whatever was found within the small budget is feasible, hence not below the full search
    found = torch.isfinite(result.distance)
    assert (result.distance[found] >= full.distance[found] - 1e-9).all()


def test_works_on_image_shaped_inputs():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    f = lambda z: (z * w).flatten(1).sum(1) - 0.5  # noqa: E731
    x = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64)
    for p in ORDERS:
        result = margins.boundary_distance(f, x, p, restarts=2)
        torch.testing.assert_close(result.distance, exact.hyperplane_distance(x, w, -0.5, p), rtol=1e-4, atol=1e-9)
        assert result.point.shape == x.shape


def test_pooled_distances_obey_the_norm_order_per_sample():
    f, _, sampler = CURVES["parabola"]
    x = sampler(torch.Generator().manual_seed(5))
    pooled = margins.boundary_distances(f, x, restarts=4, max_steps=100)
    d1, d2, dinf = (pooled[p].distance for p in ORDERS)
    assert (d1 >= d2).all() and (d2 >= dinf).all()
    for p in ORDERS:  # pooling never makes an estimate worse
        alone = margins.boundary_distance(f, x, p, restarts=4, max_steps=100).distance
        assert (pooled[p].distance <= alone + 1e-12).all()


def test_bad_arguments():
    f = CURVES["circle"][0]
    x = torch.zeros(2, 2, dtype=torch.float64) + 0.1
    with pytest.raises(ValueError, match="valid choices"):
        margins.boundary_distance(f, x, 3)
    with pytest.raises(ValueError, match="max_steps"):
        margins.boundary_distance(f, x, 2, max_steps=0)
    with pytest.raises(ValueError, match="tol"):
        margins.boundary_distance(f, x, 2, tol=0)


def test_search_in_row_blocks_gives_the_same_result_and_calls_f_on_whole_blocks():
    parabola, _, sampler = CURVES["parabola"]
    x = sampler(torch.Generator().manual_seed(5))  # 60 points, scored one row at a time by f
    sizes = []

    def f(z):
        sizes.append(z.shape[0])
        return parabola(z)
    for p in ORDERS:
        one_call = margins.boundary_distance(parabola, x, p, restarts=4, max_steps=60, block_rows=10**6)
        sizes.clear()
        blocked = margins.boundary_distance(f, x, p, restarts=4, max_steps=60, block_rows=130)
        assert max(sizes) == 120 and all(size % 60 == 0 for size in sizes)  # whole blocks of the 60 points
        for name in ("distance", "point", "converged"):
            assert torch.equal(getattr(blocked, name), getattr(one_call, name)), (p, name)
    with pytest.raises(ValueError, match="block_rows"):
        margins.boundary_distance(parabola, x, 2, block_rows=0)
