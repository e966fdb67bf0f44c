"""Ray-casting reference for L^p distances to the zero set of a classifier (eq. 3).

The L^p margin of eq. 3 is the distance from x to the decision boundary,

    dist_p(x) = min_{z : f(z) = 0} ‖z − x‖_p.

Writing z = x + t·u with ‖u‖_p = 1 and t ≥ 0 turns it into a minimum over
unit directions, dist_p(x) = min_u t*(u), where t*(u) is the first t > 0 at
which f(x + t·u) changes sign relative to f(x). Every first crossing is a
genuine zero of f at L^p distance t from x, so the minimum over a finite set
of rays is an upper bound on dist_p(x) that tends to it as the directions get
denser. Nothing here uses gradients or an optimiser, which makes it a
reference independent of :func:`mmgan.margins.boundary_distance` in any
dimension, including 3-D, where :func:`mmgan.exact.distance_to_zero_set_2d`
does not apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mmgan.base.registry import check_choice, check_int
from mmgan.exact import EXACT_ORDERS, parameter_dtype
from mmgan.margins import Classifier
from mmgan.norms import Order

#: Input dimensions for which :func:`lp_sphere_directions` builds a direction set.
SPHERE_DIMS: tuple[int, ...] = (2, 3)

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


@dataclass
class RayReference:
    """Result of :func:`ray_distance` for N points in d dimensions.

    Attributes:
        distance: (N,) the smallest first-crossing parameter t over all rays,
            i.e. the L^p distance (eq. 3) from x to ``point``; ``inf`` where
            no ray crossed {f = 0} within the search radius.
        direction: (N, d) the unit-L^p direction u of the minimising ray
            (NaN where ``distance`` is inf).
        point: (N, d) ``x + distance · direction``: f has the other sign
            there than at x and changes sign within the bisection width
            before it (NaN where ``distance`` is inf).
    """

    distance: torch.Tensor
    direction: torch.Tensor
    point: torch.Tensor


def lp_sphere_directions(n: int, dim: int, p: Order, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Deterministic, well-spread unit-L^p directions for the rays of eq. 3, shape (K, dim).

    The base set is ``n`` directions spread over the Euclidean sphere: evenly
    spaced angles 2πk/n on the circle for dim = 2, a Fibonacci (golden-spiral)
    lattice for dim = 3. Each is rescaled to unit L^p norm, so the ray
    parameter t equals the L^p distance travelled.

    The vertices of the unit L^p ball are added (K > n for p ∈ {1, ∞}). For a
    hyperplane {w·z + b = 0} the L^p-closest point is reached along a vertex
    of the ball, because the distance along a unit direction u is
    |f(x)| / |w·u| and the linear function w·u is maximised over the ball at a
    vertex:

    * p = 1: the vertices ±e_i; along e_i with i = argmax |w_i| the distance
      is |f(x)| / ‖w‖_∞, the exact L^1 distance.
    * p = ∞: the 2^dim corners (±1, …, ±1); along the corner −sign(f(x))·sign(w)
      the distance is |f(x)| / ‖w‖_1, the exact L^∞ distance.

    A ReLU network's zero set is piecewise linear, so near a face of it the
    same holds, and no finite lattice of other directions would hit these
    vertices exactly. For p = ∞ the edge midpoints of the cube (coordinates in
    {−1, 0, 1} with one zero: ±e_i ± e_j in 3-D, ±e_i in 2-D) are added as
    well: the cube touches a kink (a ridge) of a piecewise-linear boundary
    along an edge, at a place that depends on the kink, so the midpoints only
    densify the edges; the lattice covers the rest.

    Args:
        n: number of base directions, ≥ 1.
        dim: 2 or 3 (for other dimensions pass ``directions`` to
            :func:`ray_distance` explicitly).
        p: 1, 2 or ``math.inf``.
        dtype: floating dtype of the result.
    """
    check_int(n, "n", minimum=1)
    check_choice(p, EXACT_ORDERS, "p")
    if dim not in SPHERE_DIMS:
        raise ValueError(f"invalid dim={dim!r}; lp_sphere_directions supports dim in {SPHERE_DIMS} "
                         "(pass directions to ray_distance for other dimensions)")
    base = _circle(n) if dim == 2 else _fibonacci_sphere(n)
    u = torch.cat([base, _ball_vertices(dim, float(p))])
    return (u / torch.linalg.vector_norm(u, ord=float(p), dim=1, keepdim=True)).to(dtype)


def _circle(n: int) -> torch.Tensor:
    """n unit vectors at the evenly spaced angles 2πk/n, k = 0 … n − 1."""
    angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return torch.stack([angle.cos(), angle.sin()], 1)


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """n unit vectors on a golden-spiral lattice: equal-area bands in z, golden-angle steps in azimuth."""
    i = torch.arange(n, dtype=torch.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = torch.sqrt((1.0 - z * z).clamp_min(0.0))
    phi = _GOLDEN_ANGLE * i
    return torch.stack([r * phi.cos(), r * phi.sin(), z], 1)


def _ball_vertices(dim: int, p: float) -> torch.Tensor:
    """Vertices of the unit L^p ball (p = 1: ±e_i; p = ∞: corners and edge midpoints); none for p = 2."""
    grid = torch.cartesian_prod(*[torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)] * dim)
    nonzero = (grid != 0).sum(1)
    if p == 1.0:
        return grid[nonzero == 1]
    if math.isinf(p):
        return grid[nonzero >= dim - 1]
    return grid[:0]


@torch.no_grad()
def ray_distance(
    f: Classifier,
    x: torch.Tensor,
    p: Order,
    *,
    directions: torch.Tensor | None = None,
    n_directions: int = 4096,
    radius: float | torch.Tensor,
    steps: int = 32,
    bisection_steps: int = 40,
    chunk: int = 1 << 18,
) -> RayReference:
    """L^p distance (eq. 3) from each row of x to {f = 0} by casting rays in many directions.

    For each point x and unit-L^p direction u, f is evaluated at
    t_k = radius·k/steps (k = 1 … steps); the first k at which sign f(x + t_k u)
    differs from sign f(x) brackets a zero in [t_{k−1}, t_k], which is
    bisected ``bisection_steps`` times. The result is the smallest such t over
    all directions. Only the rays whose bracket is the point's earliest one
    can hold that minimum, so a point's scan stops at its earliest bracket
    and only those rays are bisected: a point at distance D costs at most
    about K·(D/radius·steps + 1 + bisection_steps) evaluations of f for K
    directions, rather than K·(steps + bisection_steps).

    Error statement:

    * **Upper bound.** The reported t is the upper end of the final bracket,
      at whose ends f has different signs, so a zero of f lies on the ray at a
      parameter within w = radius / steps · 2^−bisection_steps below it. The
      distance is therefore never below dist_p(x) (up to rounding) and the
      returned point is within L^p distance w of a zero of f.
    * **Directions.** The minimum over finitely many rays exceeds dist_p(x)
      unless a ray points at a closest boundary point; the gap shrinks as the
      directions get denser (see :func:`lp_sphere_directions`, whose L^1 and
      L^∞ vertex directions make hyperplane distances exact).
    * **Missed slivers.** A sign change that enters and leaves between two
      consecutive t_k (a region of the other class thinner than radius/steps
      along the ray) is not seen: that ray reports a later crossing or none.
      Each reported crossing is still a genuine zero, so the result remains an
      upper bound, but it can be loose, or ``inf`` if every ray misses.
    * **Radius.** Zeros farther than ``radius`` are not searched: the
      distance is ``inf`` where no ray crosses within it.

    A point where f(x) = 0 exactly gets a distance within w of 0, and a
    sampled t_k where f is exactly 0 counts as a crossing.

    Args:
        f: a single classifier mapping (M, d) float tensors to (M,) (or
            (M, 1)) scores; rows must be independent. If it is an
            ``nn.Module``, the computation runs in the dtype of its parameters,
            otherwise in the (floating) dtype of x.
        x: points, shape (N, d); the results live on its device.
        p: 1, 2 or ``math.inf``.
        directions: optional (K, d) ray directions, rescaled here to unit L^p
            norm; by default ``lp_sphere_directions(n_directions, d, p)``
            (d ∈ {2, 3}).
        n_directions: base number of default directions, ≥ 1.
        radius: largest t searched, a positive float or an (N,) tensor.
        steps: number of samples t_k per ray, ≥ 1.
        bisection_steps: bisections of each bracket, ≥ 1.
        chunk: largest number of rows passed to f in one call, ≥ 1. It
            bounds memory: points are processed in blocks of
            max(1, chunk // K) for K directions, so the per-block
            (points × directions) arrays hold about max(chunk, K) entries.

    Returns:
        :class:`RayReference` with ``distance`` (N,), ``direction`` and
        ``point`` (N, d).
    """
    check_choice(p, EXACT_ORDERS, "p")
    p = float(p)
    check_int(steps, "steps", minimum=1)
    check_int(bisection_steps, "bisection_steps", minimum=1)
    check_int(chunk, "chunk", minimum=1)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a tensor of shape (N, d) with N >= 1, got {_shape(x)}")
    x = x.detach().to(_work_dtype(f, x))
    u = _unit_directions(directions, n_directions, x, p)
    r = _radius(radius, x)
    block = max(1, chunk // u.shape[0])  # points per block
    nearest = [_nearest_crossing(f, x[s:s + block], u, r[s:s + block], steps, bisection_steps, chunk)
               for s in range(0, x.shape[0], block)]
    distance = torch.cat([t for t, _ in nearest])
    direction = u[torch.cat([index for _, index in nearest])]
    found = torch.isfinite(distance)[:, None]
    nan = torch.full_like(direction, math.nan)
    return RayReference(
        distance=distance,
        direction=torch.where(found, direction, nan),
        point=torch.where(found, x + distance[:, None] * direction, nan),
    )


def _shape(value: object) -> str:
    """A tensor's shape, or the type of anything else, for error messages."""
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _work_dtype(f: Classifier, x: torch.Tensor) -> torch.dtype:
    """The dtype of f's parameters for a module, else x's floating dtype (else the default dtype)."""
    if isinstance(f, torch.nn.Module):
        return parameter_dtype(f)
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def _unit_directions(directions: torch.Tensor | None, n_directions: int, x: torch.Tensor, p: float) -> torch.Tensor:
    """The (K, d) ray directions at unit L^p norm, in x's dtype and on its device."""
    d = x.shape[1]
    if directions is None:
        check_int(n_directions, "n_directions", minimum=1)
        if d not in SPHERE_DIMS:
            raise ValueError(f"default directions exist only for d in {SPHERE_DIMS}; x has d = {d}, "
                             "so pass directions of shape (K, d)")
        return lp_sphere_directions(n_directions, d, p, dtype=x.dtype).to(x.device)
    u = torch.as_tensor(directions, dtype=x.dtype, device=x.device)
    if u.dim() != 2 or u.shape[0] == 0 or u.shape[1] != d:
        raise ValueError(f"directions must have shape (K, {d}) with K >= 1, got {_shape(u)}")
    norm = torch.linalg.vector_norm(u, ord=p, dim=1, keepdim=True)
    if not bool(((norm > 0) & torch.isfinite(norm)).all()):
        raise ValueError("directions must be finite and non-zero in every row")
    return u / norm


def _radius(radius: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The search radius per point, shape (N,), checked to be finite and positive."""
    n = x.shape[0]
    r = torch.as_tensor(radius, dtype=x.dtype, device=x.device)
    if r.dim() == 0:
        r = r.expand(n)
    if r.shape != (n,):
        raise ValueError(f"radius must be a float or a tensor of shape ({n},), got {_shape(r)}")
    if not bool(((r > 0) & torch.isfinite(r)).all()):
        raise ValueError("radius must be finite and > 0 for every point")
    return r


def _scores(f: Classifier, z: torch.Tensor) -> torch.Tensor:
    """f(z) as an (M,) tensor; (M, 1) outputs are squeezed, other shapes rejected."""
    out = f(z)
    m = z.shape[0]
    if out.shape == (m, 1):
        out = out[:, 0]
    if out.shape != (m,):
        raise ValueError(f"f must map ({m}, d) inputs to ({m},) scores, got output shape {tuple(out.shape)}")
    return out


def _nearest_crossing(f: Classifier, x: torch.Tensor, u: torch.Tensor, radius: torch.Tensor, steps: int,
                      bisection_steps: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For a block of points: the smallest crossing parameter t over the rays (inf if none) and its ray's index."""
    sign0 = torch.sign(_scores(f, x))
    earliest, crossed = _earliest_crossings(f, x, u, radius, sign0, steps, chunk)
    t = _bisect_earliest(f, x, u, radius, sign0, earliest, crossed, steps, bisection_steps, chunk)
    return t.min(1)


def _earliest_crossings(f: Classifier, x: torch.Tensor, u: torch.Tensor, radius: torch.Tensor,
                        sign0: torch.Tensor, steps: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's earliest sample index k_min and the rays that first cross {f = 0} there.

    All rays of the points still searching are advanced together to
    t_k = radius·k/steps, k = 1 … steps (``chunk`` rows per call of f). A
    point stops at the first k where any of its rays has sign f(x + t_k u) ≠
    sign f(x): a ray that has not crossed by t_k crosses after t_k, beyond
    every crossing in the bracket [t_{k−1}, t_k], so it cannot hold the
    minimum. Returns k_min (N,), ``steps + 1`` where no ray crossed, and the
    (N, K) mask of the rays crossing in [t_{k_min − 1}, t_{k_min}].
    """
    n, m = x.shape[0], u.shape[0]
    earliest = torch.full((n,), steps + 1, dtype=torch.long, device=x.device)
    crossed = torch.zeros((n, m), dtype=torch.bool, device=x.device)
    for k in range(1, steps + 1):
        active = (earliest > steps).nonzero(as_tuple=True)[0]
        if active.numel() == 0:
            break
        i = active.repeat_interleave(m)
        j = torch.arange(m, device=x.device).repeat(active.numel())
        t = radius[i] * (k / steps)
        signs = torch.cat([torch.sign(_scores(f, x[i[s:s + chunk]] + t[s:s + chunk, None] * u[j[s:s + chunk]]))
                           for s in range(0, i.numel(), chunk)])
        hit = (signs != sign0[i]).reshape(active.numel(), m)
        crossed[active] = hit
        earliest[active[hit.any(1)]] = k
    return earliest, crossed


def _bisect_earliest(f: Classifier, x: torch.Tensor, u: torch.Tensor, radius: torch.Tensor,
                     sign0: torch.Tensor, earliest: torch.Tensor, crossed: torch.Tensor, steps: int,
                     iterations: int, chunk: int) -> torch.Tensor:
    """(N, K) crossing parameters t of the rays in each point's earliest bracket, bisected; inf elsewhere."""
    i, j = crossed.nonzero(as_tuple=True)
    k = earliest[i].to(x.dtype)
    lo, hi = radius[i] * (k - 1) / steps, radius[i] * k / steps
    t = torch.full(crossed.shape, math.inf, dtype=x.dtype, device=x.device)
    for s in range(0, i.shape[0], chunk):
        block = slice(s, s + chunk)
        t[i[block], j[block]] = _bisect(f, x[i[block]], u[j[block]], sign0[i[block]], lo[block], hi[block], iterations)
    return t


def _bisect(f: Classifier, x: torch.Tensor, u: torch.Tensor, sign0: torch.Tensor,
            lo: torch.Tensor, hi: torch.Tensor, iterations: int) -> torch.Tensor:
    """Shrink brackets with sign f(x + lo·u) = sign0 ≠ sign f(x + hi·u); return the upper ends."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        same = torch.sign(_scores(f, x + mid[:, None] * u)) == sign0
        lo = torch.where(same, mid, lo)
        hi = torch.where(same, hi, mid)
    return hi
