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
from dataclasses import dataclass

import torch

from mmgan.base.registry import check_choice, check_int
from mmgan.norms import Order, dual, grad_norm, holder_maximizer
from mmgan.penalties import input_gradient

Classifier = Callable[[torch.Tensor], torch.Tensor]

#: Margin orders p supported throughout (their duals are the paper's gradient norms).
MARGIN_ORDERS: tuple[float, ...] = (1.0, 2.0, math.inf)
#: Rows per call of f inside :func:`boundary_distance` (rounded up to whole blocks of the B points):
#: activations of about this many rows stay in the CPU cache, which makes a search of Table 1's 35
#: stacked classifiers about 2.5x faster than one call on all rows (``benchmarks/table1.py``).
SEARCH_BLOCK_ROWS = 16_384


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


@dataclass
class BoundarySearch:
    """Result of :func:`boundary_distance` for a batch of points.

    Attributes:
        distance: (B,) L^p distance from each x to ``point``; ``inf`` where no
            boundary point was found. Each reported point lies on {f = 0} up to
            the bisection precision, so ``distance`` is an upper bound on the
            true margin (up to that precision): a search can overestimate the
            margin (a local minimum) but not underestimate it.
        point: (B, ...) the boundary point found, same shape as x.
        converged: (B,) True where the search met its stopping rule before
            ``max_steps``: |f| < tol and the distance changed by less than
            ``rtol`` (relative) over the last ``window`` steps.
        steps: number of optimisation steps taken.
    """

    distance: torch.Tensor
    point: torch.Tensor
    converged: torch.Tensor
    steps: int


def _smooth_norm(u: torch.Tensor, p: float, eps: float = 1e-3, tau: float = 2e-3) -> torch.Tensor:
    """Differentiable surrogate of ‖u‖_p per row (u is in units of the Taylor margin, so O(1)).

    p = 2 is exact; p = 1 uses Σ sqrt(u_i² + ε²); p = ∞ a log-sum-exp smooth
    maximum of sqrt(u_i² + ε²) with temperature τ (bias at most τ·log D).
    """
    if p == 2.0:
        return torch.linalg.vector_norm(u, ord=2, dim=1)
    magnitude = torch.sqrt(u * u + eps * eps)
    if p == 1.0:
        return magnitude.sum(1)
    return tau * torch.logsumexp(magnitude / tau, dim=1)


def _bisect_on_ray(f: Classifier, x: torch.Tensor, delta: torch.Tensor, sign0: torch.Tensor,
                   iterations: int = 24) -> torch.Tensor:
    """Scale t ≥ 0 with f(x + t·δ) = 0 (to 2^-iterations relative precision), inf if not bracketed.

    Looks for a sign change of f against ``sign0`` (the sign of f(x)) at
    t ∈ {1, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10}, then bisects inside the first bracket.
    """
    n = x.shape[0]
    lo = torch.zeros(n, dtype=x.dtype, device=x.device)
    hi = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    previous = torch.zeros_like(lo)
    with torch.no_grad():
        for t in (1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0):
            crossed = (torch.sign(f(x + t * delta)) != sign0) & torch.isinf(hi)
            lo = torch.where(crossed, previous, lo)
            hi = torch.where(crossed, torch.full_like(hi, t), hi)
            previous = torch.where(torch.isinf(hi), torch.full_like(previous, t), previous)
        found = torch.isfinite(hi)
        hi_f = torch.where(found, hi, lo)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi_f)
            same = torch.sign(f(x + mid[:, None] * delta)) == sign0
            lo = torch.where(same, mid, lo)
            hi_f = torch.where(same, hi_f, mid)
    return torch.where(found, hi_f, torch.full_like(hi_f, math.inf))


@dataclass
class _Landing:
    distance: torch.Tensor  # (N,) L^p length of the landed step, inf if no sign change was found
    delta: torch.Tensor  # (N, D) the landed step (zero where not found)


def _land(f: Classifier, x: torch.Tensor, delta: torch.Tensor, sign0: torch.Tensor, p: float) -> _Landing:
    """Move x along the ray x + tδ to the boundary (bisection); report the step and its length."""
    t = _bisect_on_ray(f, x, delta, sign0)
    found = torch.isfinite(t)
    step = torch.where(found, t, torch.zeros_like(t))[:, None] * delta
    distance = torch.where(found, torch.linalg.vector_norm(step, ord=p, dim=1), torch.full_like(t, math.inf))
    return _Landing(distance=distance, delta=step)


def _steps_to_other_class(x: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor | None,
                          k: int, pool: int = 4096) -> list[torch.Tensor]:
    """Steps from each point to its k nearest (L²) points with the opposite sign of f, within its group.

    Points without such a neighbour get a zero step (no crossing, so no candidate).
    Without groups, neighbours are searched among at most ``pool`` points of the batch.
    """
    if k <= 0 or x.shape[0] < 2:
        return []
    n = x.shape[0]
    group = torch.zeros(n, dtype=torch.long, device=x.device) if groups is None else groups.to(x.device).long()
    steps = [torch.zeros_like(x) for _ in range(k)]
    for g in torch.unique(group):
        members = (group == g).nonzero(as_tuple=True)[0]
        candidates = members if members.numel() <= pool else members[torch.randperm(members.numel())[:pool]]
        for chunk in members.split(2048):
            dist = torch.cdist(x[chunk], x[candidates])
            same = torch.sign(scores[chunk])[:, None] == torch.sign(scores[candidates])[None, :]
            dist = dist.masked_fill(same, math.inf)
            kk = min(k, candidates.numel())
            values, index = dist.topk(kk, dim=1, largest=False)
            for j in range(kk):
                ok = torch.isfinite(values[:, j])[:, None]
                steps[j][chunk] = torch.where(ok, x[candidates[index[:, j]]] - x[chunk], torch.zeros_like(x[chunk]))
    return steps


def _polish(f: Classifier, x: torch.Tensor, delta: torch.Tensor, distance: torch.Tensor,
            sign0: torch.Tensor, p: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential linearised projections from boundary points x + δ (monotone in distance).

    Linearise f at the current boundary point z, project x onto that tangent
    hyperplane in L^p (the closed form of §3 / App. D.4), land on the boundary
    along the new ray, and keep the result only where it is closer. Near a
    smooth boundary this converges much faster than first-order steps, and for
    p ∈ {1, ∞} it moves straight to the corners of the L^p ball.
    """
    for _ in range(steps):
        z = x + delta
        _, a = input_gradient(f, z, create_graph=False)
        a = a.detach()
        gap = ((x - z) * a).sum(1) / grad_norm(a, dual(p)).clamp_min(torch.finfo(x.dtype).tiny)
        target = -gap[:, None] * holder_maximizer(a, p)
        cand = _land(f, x, target, sign0, p)
        better = cand.distance < distance * (1 - 1e-9)
        if not bool(better.any()):
            break
        distance = torch.where(better, cand.distance, distance)
        delta = torch.where(better[:, None], cand.delta, delta)
    return delta, distance


def boundary_distance(
    f: Classifier,
    x: torch.Tensor,
    p: Order,
    tol: float = 0.01,
    max_steps: int = 400,
    restarts: int = 8,
    lr: float = 0.02,
    window: int = 25,
    rtol: float = 1e-3,
    decay: float = 0.7,
    polish_steps: int = 8,
    seed: int = 0,
    data_restarts: int = 2,
    groups: torch.Tensor | None = None,
    block_rows: int = SEARCH_BLOCK_ROWS,
) -> BoundarySearch:
    """L^p distance from each x to the boundary {f = 0} by an augmented-Lagrangian search (App. A).

    Solves ``min ‖δ‖_p s.t. f(x + δ) = 0`` for every row of x at once:

    1. **Start** from the Taylor step of §3 (restart 0), from steps twice as
       long in random directions, drawn in opposite pairs (restarts 1 …
       ``restarts`` − 1), and from the steps to the ``data_restarts`` nearest
       points of the batch that f puts in the other class (the segment to such
       a point must cross the boundary; with ``groups``, only points of the
       same group count, e.g. the points scored by the same model). Each start
       is moved along its ray onto the boundary where it crosses.
    2. **Augmented Lagrangian** (Hestenes, 1969): Adam steps on
       ``N_p(δ/s) + μ·c + ρ/2·c²`` with ``c = f(x + δ) / (s·‖∇f(x)‖_q)``, a
       constraint in units of the Taylor margin s, and ``N_p`` a smooth
       surrogate of the L^p norm (exact for p = 2, see ``_smooth_norm``);
       every ``window`` steps the multiplier is updated, ``μ ← μ + ρ·c``,
       the penalty ρ doubles (up to 1e3) and the step size shrinks by ``decay``.
    3. **Stop** a search when |f(x + δ)| < ``tol`` (the paper's criterion)
       and ‖δ‖_p changed by less than ``rtol`` over the last ``window`` steps.
    4. **Land exactly on the boundary**: bisect f along the ray x + tδ, so the
       reported point is feasible and its distance an upper bound; keep the
       shortest over restarts and over the last iterate and the best feasible
       iterate seen.
    5. **Polish** with ``polish_steps`` sequential linearised projections
       (``_polish``), accepted only where they shorten the distance.

    Works for any differentiable f on any input shape, provided samples are
    independent (no batch-coupled layers). ``p`` ∈ {1, 2, ∞}. f is always
    called on ``k·B`` rows for some k: the B points repeated k times (one block
    per restart), which lets a batch of M stacked models map row blocks to
    models (see :meth:`mmgan.mlp.BatchedMLP.flat`); ``block_rows`` bounds the
    rows of one call (whole blocks of B rows, at least one): it changes the speed,
    and at most the rounding of f's matrix products (Table 1's searches give
    the same numbers bit for bit, see ``benchmarks/table1.py``).
    """
    check_choice(p, MARGIN_ORDERS, "p")
    p = float(p)
    check_int(max_steps, "max_steps", minimum=1)
    check_int(restarts, "restarts", minimum=1)
    check_int(window, "window", minimum=1)
    check_int(polish_steps, "polish_steps", minimum=0)
    check_int(data_restarts, "data_restarts", minimum=0)
    check_int(block_rows, "block_rows", minimum=1)
    if groups is not None and groups.shape != (x.shape[0],):
        raise ValueError(f"groups must have shape ({x.shape[0]},), got {tuple(groups.shape)}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    shape = x.shape
    n = shape[0]
    x0 = x.detach().reshape(n, -1)
    flat_f = _blockwise(lambda z: _scores(f, z.reshape((-1,) + tuple(shape[1:]))), n, block_rows)

    out0, grad0 = input_gradient(flat_f, x0, create_graph=False)
    out0, grad0 = out0.detach(), grad0.detach()
    gnorm = grad_norm(grad0, dual(p)).clamp_min(torch.finfo(x0.dtype).tiny)
    taylor = -(out0 / gnorm)[:, None] * holder_maximizer(grad0, p)
    taylor_size = torch.linalg.vector_norm(taylor, dim=1, keepdim=True).clamp(1e-8, 1e8)
    taylor = torch.where(torch.isfinite(taylor), taylor, torch.zeros_like(taylor))

    gen = torch.Generator(device="cpu").manual_seed(seed)
    starts = [taylor]
    for r in range(1, restarts):
        if r % 2 == 1:  # a new random direction ...
            direction = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
            direction = direction / torch.linalg.vector_norm(direction, dim=1, keepdim=True).clamp_min(1e-12)
        else:  # ... and its opposite (antithetic pairs cover symmetric boundaries)
            direction = -direction
        starts.append(2.0 * taylor_size * direction)
    starts += _steps_to_other_class(x0, out0, groups, data_restarts)
    restarts = len(starts)
    X = x0.repeat(restarts, 1)
    sign0 = torch.sign(out0).repeat(restarts)
    G = gnorm.repeat(restarts)
    # Land every start on the boundary along its ray; these points are the first candidates and
    # set the per-search scale S (the landed L2 length), in which the optimisation runs.
    landed = _land(flat_f, X, torch.cat(starts), sign0, p)
    S = torch.linalg.vector_norm(landed.delta, dim=1).clamp_min(1e-12)
    S = torch.where(torch.isfinite(landed.distance), S, taylor_size.repeat(restarts, 1)[:, 0])[:, None]
    found = torch.isfinite(landed.distance)[:, None]
    u = (torch.where(found, landed.delta, torch.cat(starts)) / S).requires_grad_(True)
    mu = torch.zeros(X.shape[0], dtype=X.dtype, device=X.device)
    rho = 10.0
    optimizer = torch.optim.Adam([u], lr=lr)

    best_delta = torch.zeros_like(X)
    best_norm = torch.full((X.shape[0],), math.inf, dtype=X.dtype, device=X.device)
    done = torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)
    history = torch.full((X.shape[0],), math.inf, dtype=X.dtype, device=X.device)
    steps = 0
    for step in range(1, max_steps + 1):
        steps = step
        delta = S * u
        value = flat_f(X + delta)
        c = value / (S[:, 0] * G)  # constraint in units of the search scale
        objective = _smooth_norm(u, p) + mu * c + 0.5 * rho * c * c
        optimizer.zero_grad()
        objective.masked_fill(done, 0.0).sum().backward()
        with torch.no_grad():
            norm = torch.linalg.vector_norm(delta, ord=p, dim=1)
            feasible = value.abs() < tol
            better = feasible & (norm < best_norm)
            best_norm = torch.where(better, norm, best_norm)
            best_delta = torch.where(better[:, None], delta, best_delta)
            u.grad.masked_fill_(done[:, None], 0.0)
        optimizer.step()
        if step % window == 0:
            with torch.no_grad():
                stalled = (history - norm).abs() <= rtol * norm
                done |= feasible & stalled
                history = norm
                mu = mu + rho * c.detach()
                rho = min(2 * rho, 1e3)
                for group in optimizer.param_groups:
                    group["lr"] = max(group["lr"] * decay, lr * 1e-3)
            if bool(done.all()):
                break

    with torch.no_grad():
        final = (S * u).detach()
        best_dist, best_point = landed.distance, X + torch.where(
            torch.isfinite(landed.distance)[:, None], landed.delta, torch.zeros_like(X))
        for delta in (final, torch.where(torch.isfinite(best_norm)[:, None], best_delta, final)):
            cand = _land(flat_f, X, delta, sign0, p)
            better = cand.distance < best_dist
            best_dist = torch.where(better, cand.distance, best_dist)
            best_point = torch.where(better[:, None], X + cand.delta, best_point)
    polished, best_dist = _polish(flat_f, X, best_point - X, best_dist, sign0, p, polish_steps)
    with torch.no_grad():
        best_point = X + polished
        dist_r = best_dist.reshape(restarts, n)
        winner = dist_r.argmin(0)
        index = winner * n + torch.arange(n, device=X.device)
        distance = best_dist[index]
        point = best_point[index].reshape(shape)
        converged = done.reshape(restarts, n).any(0) & torch.isfinite(distance)
    return BoundarySearch(distance=distance, point=point, converged=converged, steps=steps)


def _blockwise(f: Classifier, points: int, block_rows: int = SEARCH_BLOCK_ROWS) -> Classifier:
    """f evaluated on k·B rows in slices of whole blocks of ``points`` = B rows, about ``block_rows`` each.

    Every slice is itself a valid input of f (the B points repeated j times, see
    :func:`boundary_distance`); rows are scored independently, so only the memory traffic
    changes, and the rounding where a matrix-product kernel depends on the number of rows.
    Inputs of at most ``block_rows`` rows go to f in one call.
    """
    size = max(1, block_rows // points) * points

    def blocked(z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] <= size:
            return f(z)
        return torch.cat([f(part) for part in z.split(size)])
    return blocked


def _scores(f: Classifier, x: torch.Tensor) -> torch.Tensor:
    out = f(x)
    return out[:, 0] if out.dim() == 2 and out.shape[1] == 1 else out


def boundary_distances(
    f: Classifier, x: torch.Tensor, orders: tuple[Order, ...] = MARGIN_ORDERS, **search: object
) -> dict[float, BoundarySearch]:
    """:func:`boundary_distance` for several orders p, sharing the boundary points found.

    Every point found by any of the searches lies on {f = 0}, so each is a
    candidate for every order: for each p the result is the candidate closest
    in L^p. Besides being at least as good as the separate searches, this makes
    the estimates consistent with ‖r‖₁ ≥ ‖r‖₂ ≥ ‖r‖_∞: for every sample the
    L^1 distance is at least the L^2 distance, which is at least the L^∞ one,
    as holds for the true distances.
    """
    searches = {float(p): boundary_distance(f, x, p, **search) for p in orders}
    return pool_boundary_points(x, searches)


def pool_boundary_points(x: torch.Tensor, searches: dict[float, BoundarySearch]) -> dict[float, BoundarySearch]:
    """For each order p, the closest in L^p of the boundary points that the searches of all orders found.

    The pooling step of :func:`boundary_distances`, separate so that searches run
    elsewhere (one order per process, see :mod:`mmgan.table1_workers`) pool the same way.
    """
    n = x.shape[0]
    candidates = torch.stack([s.point.reshape(n, -1) for s in searches.values()])  # (P, B, D)
    found = torch.stack([torch.isfinite(s.distance) for s in searches.values()])  # (P, B)
    offsets = candidates - x.detach().reshape(1, n, -1)
    pooled = {}
    for p, own in searches.items():
        dist = torch.linalg.vector_norm(offsets, ord=p, dim=2).masked_fill(~found, math.inf)
        best = dist.argmin(0)
        index = torch.arange(n, device=x.device)
        pooled[p] = BoundarySearch(distance=dist[best, index], point=candidates[best, index].reshape(x.shape),
                                   converged=own.converged, steps=own.steps)
    return pooled
