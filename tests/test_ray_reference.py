"""The ray-casting reference for L^p distances (eq. 3) against distances known in closed form."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from mmgan import exact
from mmgan.table1.ray_reference import RayReference, lp_sphere_directions, ray_distance

ORDERS = [1, 2, math.inf]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run this file on one intra-op thread: its tensors are small, and on a busy two-core machine
    OpenMP threads waiting for each other made it many times slower than a single thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hyperplane(dim: int, seed: int = 3, n: int = 24):
    """A random affine classifier w·z + b and points spread on both sides of its zero set."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    b = 0.4
    x = 1.5 * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return (lambda z: z @ w + b), w, b, x


def mlp(dim: int, width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, width, dtype=torch.float64), nn.ReLU(),
                         nn.Linear(width, width, dtype=torch.float64), nn.ReLU(),
                         nn.Linear(width, 1, dtype=torch.float64))


def bisection_width(radius: float, steps: int = 32, bisection_steps: int = 40) -> float:
    return radius / steps * 2.0 ** -bisection_steps


# --- directions -------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("p", ORDERS)
def test_directions_have_unit_lp_norm_and_contain_the_ball_vertices(dim, p):
    u = lp_sphere_directions(50, dim, p)
    extra = {1: 2 * dim, 2: 0, math.inf: 2**dim + (2 * dim if dim == 2 else 12)}[p]
    assert u.shape == (50 + extra, dim) and u.dtype == torch.float64
    torch.testing.assert_close(torch.linalg.vector_norm(u, ord=p, dim=1), torch.ones(len(u), dtype=torch.float64))
    torch.testing.assert_close(u, lp_sphere_directions(50, dim, p))  # deterministic
    if p == 1:
        vertices = torch.cat([torch.eye(dim), -torch.eye(dim)])
    elif p == math.inf:
        vertices = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0])] * dim)  # corners
    else:
        return
    for v in vertices:
        assert (u - v).abs().amax(1).min() < 1e-12, v


def test_fibonacci_lattice_is_well_spread():
    n = 1024
    u = lp_sphere_directions(n, 3, 2)
    spacing = math.sqrt(4 * math.pi / n)  # side of a cell of equal area
    probes = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    probes = probes / probes.norm(dim=1, keepdim=True)
    covering = torch.acos((probes @ u.T).amax(1).clamp(-1, 1)).max()
    separation = torch.acos((u @ u.T).fill_diagonal_(-1).amax(1).clamp(-1, 1)).min()
    assert covering < 0.8 * spacing and separation > 0.8 * spacing


def test_circle_directions_are_evenly_spaced():
    u = lp_sphere_directions(12, 2, 2)
    angles = torch.atan2(u[:, 1], u[:, 0])
    torch.testing.assert_close(torch.remainder(angles, 2 * math.pi),
                               2 * math.pi * torch.arange(12, dtype=torch.float64) / 12, atol=1e-12, rtol=0)


def test_directions_reject_other_dimensions():
    with pytest.raises(ValueError, match=r"dim=4.*\(2, 3\)"):
        lp_sphere_directions(10, 4, 2)
    with pytest.raises(ValueError, match="n must be"):
        lp_sphere_directions(0, 3, 2)
    with pytest.raises(ValueError, match="invalid p"):
        lp_sphere_directions(10, 3, 3)


# --- distances known in closed form -----------------------------------------------------------


@pytest.mark.parametrize("p", [1, math.inf])
def test_hyperplane_l1_and_linf_are_exact_through_the_vertex_directions(p):
    # |f(x)| / |w·u| is smallest over the unit L^p ball at a vertex (±e_i for L^1, a corner for L^∞),
    # so even 8 lattice directions give the exact distance once the vertices are included.
    f, w, b, x = hyperplane(3)
    assert (f(x) > 0).any() and (f(x) < 0).any()
    result = ray_distance(f, x, p, n_directions=8, radius=10.0)
    truth = exact.hyperplane_distance(x, w, b, p)
    torch.testing.assert_close(result.distance, truth, rtol=1e-9, atol=2 * bisection_width(10.0))
    np.testing.assert_allclose(result.distance.numpy(), truth.numpy(), rtol=1e-3)


def test_hyperplane_l2_within_one_percent_with_a_few_thousand_directions():
    f, w, b, x = hyperplane(3)
    result = ray_distance(f, x, 2, n_directions=2048, radius=10.0)
    rel = (result.distance - exact.hyperplane_distance(x, w, b, 2)) / exact.hyperplane_distance(x, w, b, 2)
    assert rel.max() <= 0.01, rel.max()


@pytest.mark.parametrize("p", ORDERS)
def test_minimum_over_rays_is_an_upper_bound(p):
    f, w, b, x = hyperplane(3, seed=8)
    truth = exact.hyperplane_distance(x, w, b, p)
    for n in (5, 64):
        result = ray_distance(f, x, p, n_directions=n, radius=20.0)
        assert torch.isfinite(result.distance).all()
        assert (result.distance >= truth - 1e-12).all()
    if p == 2:  # no vertex directions: the coarse set is strictly above
        assert (ray_distance(f, x, p, n_directions=5, radius=20.0).distance > truth * (1 + 1e-6)).any()


def test_sphere_l2_distance_inside_and_outside():
    center, r = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), 1.0
    f = lambda z: r - torch.linalg.vector_norm(z - center, dim=1)  # noqa: E731
    gen = torch.Generator().manual_seed(2)
    direction = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    length = torch.linspace(0.1, 2.5, 30, dtype=torch.float64)  # from deep inside to well outside
    x = center + length[:, None] * direction
    assert (length < r).sum() >= 10 and (length > r).sum() >= 10
    result = ray_distance(f, x, 2, n_directions=2048, radius=3.0)
    truth = (r - length).abs()
    rel = (result.distance - truth) / truth
    assert rel.max() <= 0.01 and rel.min() >= -1e-9, (rel.min(), rel.max())


@pytest.fixture(scope="module")
def mlp_2d():
    """A random 2-D ReLU MLP, points in [-1.5, 1.5]², and its zero set traced once on an 8 × 8 box.

    The reference for each p is then ``exact.distance_to_zero_set_2d`` without retracing: the
    minimum of ``exact.polyline_distance`` over the traced polylines.
    """
    net = mlp(2, 16, seed=1)
    x = 3 * torch.rand(60, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) - 1.5
    return net, x, exact.zero_set_2d(net, (-4.0, -4.0), (4.0, 4.0))


@pytest.mark.parametrize("p", ORDERS)
def test_relu_mlp_in_2d_matches_the_traced_zero_set(mlp_2d, p):
    net, x, lines = mlp_2d
    reference = torch.stack([exact.polyline_distance(x, line, p) for line in lines]).min(0).values
    result = ray_distance(net, x, p, n_directions=512, radius=2.5)  # rays stay inside the traced box
    assert torch.isfinite(reference).all() and torch.isfinite(result.distance).all()
    rel, mask = exact.relative_errors(result.distance.numpy(), reference.numpy())
    assert mask.all()
    assert np.mean(np.abs(rel) <= 0.01) >= 0.95, np.sort(np.abs(rel))[-5:]
    assert rel.min() >= -0.01  # the rays are an upper bound; the traced reference is within its grid error


# --- what is returned -------------------------------------------------------------------------


@pytest.mark.parametrize("p", ORDERS)
def test_returned_points_lie_on_the_zero_set(p):
    net = mlp(3, 16, seed=0)
    x = torch.rand(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5
    radius = 3.0
    result = ray_distance(net, x, p, n_directions=128, radius=radius)
    assert isinstance(result, RayReference) and torch.isfinite(result.distance).all()
    width = bisection_width(radius)
    before = x + (result.distance - width)[:, None] * result.direction
    sign0 = torch.sign(net(x)[:, 0])
    assert (torch.sign(net(result.point)[:, 0]) != sign0).all()  # f has changed sign at the point ...
    assert (torch.sign(net(before)[:, 0]) == sign0).all()  # ... but not a bisection width before it
    assert net(result.point).abs().max() < 1e-9
    torch.testing.assert_close(torch.linalg.vector_norm(result.direction, ord=p, dim=1), torch.ones(12))
    torch.testing.assert_close(torch.linalg.vector_norm(result.point - x, ord=p, dim=1), result.distance)


def test_no_crossing_within_the_radius_gives_inf_and_nan():
    f, w, b, _ = hyperplane(3)
    x = torch.stack([-b * w / (w @ w) + 5 * w / w.norm(), -b * w / (w @ w) + 0.5 * w / w.norm()])  # distance 5, 0.5
    result = ray_distance(f, x, 2, n_directions=1024, radius=torch.tensor([1.0, 1.0]))
    assert math.isinf(result.distance[0])
    assert torch.isnan(result.direction[0]).all() and torch.isnan(result.point[0]).all()
    assert 0.5 <= result.distance[1] < 0.505 and torch.isfinite(result.point[1]).all()
    per_point = ray_distance(f, x, 2, n_directions=64, radius=torch.tensor([6.0, 1.0]))
    assert torch.isfinite(per_point.distance).all()


def test_point_on_the_zero_set_has_distance_within_the_bisection_width():
    f, w, b, _ = hyperplane(3)
    x = (-b * w / (w @ w))[None]
    assert f(x).item() == pytest.approx(0.0, abs=1e-15)
    assert ray_distance(f, x, 2, n_directions=16, radius=1.0).distance.item() <= bisection_width(1.0) + 1e-15


def test_explicit_directions_in_other_dimensions_and_module_dtype():
    f, w, b, x = hyperplane(5, n=6)
    eye = torch.eye(5, dtype=torch.float64)
    result = ray_distance(f, x, 1, directions=torch.cat([eye, -eye]) * 3.0, radius=50.0)  # rescaled to unit L^1
    torch.testing.assert_close(result.distance, exact.hyperplane_distance(x, w, b, 1), rtol=1e-9, atol=1e-12)
    net32 = mlp(3, 8, seed=0).to(torch.float32)
    out = ray_distance(net32, torch.zeros(2, 3, dtype=torch.float64), 2, n_directions=32, radius=5.0)
    assert out.distance.dtype == torch.float32 and out.point.dtype == torch.float32


def test_small_chunks_give_the_same_result():
    net = mlp(3, 8, seed=2)
    x = torch.rand(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
    whole = ray_distance(net, x, math.inf, n_directions=16, radius=4.0)
    pieces = ray_distance(net, x, math.inf, n_directions=16, radius=4.0, chunk=7)  # blocks of one point, 7 rows a call
    assert torch.isfinite(whole.distance).all()
    torch.testing.assert_close(pieces.distance, whole.distance, rtol=0, atol=0)
    torch.testing.assert_close(pieces.point, whole.point, rtol=0, atol=0)


def test_invalid_inputs_name_the_parameter():
    f, _, _, x = hyperplane(3, n=4)
    cases = [
        (dict(p=3), "p"),
        (dict(radius=0.0), "radius"),
        (dict(radius=-1.0), "radius"),
        (dict(radius=math.inf), "radius"),
        (dict(radius=torch.ones(3)), "radius"),
        (dict(steps=0), "steps"),
        (dict(bisection_steps=0), "bisection_steps"),
        (dict(chunk=0), "chunk"),
        (dict(n_directions=0), "n_directions"),
        (dict(directions=torch.ones(4, 2)), "directions"),
        (dict(directions=torch.zeros(4, 3)), "directions"),
    ]
    for change, name in cases:
        kwargs = dict(p=2, radius=1.0, n_directions=8) | change
        with pytest.raises(ValueError, match=name):
            ray_distance(f, x, **kwargs)
    for bad_x in (x[0], x[:0]):
        with pytest.raises(ValueError, match="x must"):
            ray_distance(f, bad_x, 2, radius=1.0)
    with pytest.raises(ValueError, match="directions"):  # no default directions in 5-D
        ray_distance(lambda z: z.sum(1), torch.zeros(2, 5), 2, radius=1.0)
    with pytest.raises(ValueError, match="f must"):
        ray_distance(lambda z: z, x, 2, radius=1.0, n_directions=8)
