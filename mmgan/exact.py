"""Exact L^p distances used as independent references for margins (eq. 3).

Nothing here uses gradients or the Taylor expansion: hyperplane distances come
from a closed form or a linear program, curve distances from exact
point-to-segment distances on a polyline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog

from mmgan.base.registry import check_choice, check_int
from mmgan.norms import Order, dual

EXACT_ORDERS: tuple[float, ...] = (1.0, 2.0, math.inf)


def hyperplane_distance(x: torch.Tensor, w: torch.Tensor, b: float, p: Order) -> torch.Tensor:
    """Closed-form L^p distance from rows of x to {z : w·z + b = 0}: |w·x + b| / ‖w‖_q."""
    check_choice(p, EXACT_ORDERS, "p")
    w = w.reshape(-1)
    return (x.reshape(x.shape[0], -1) @ w + b).abs() / torch.linalg.vector_norm(w, ord=dual(p))


def hyperplane_distance_linprog(x: np.ndarray, w: np.ndarray, b: float, p: Order) -> np.ndarray:
    """The same distance by solving min ‖r‖_p s.t. w·(x + r) + b = 0 numerically.

    p = 1 and p = ∞ are linear programs (scipy's HiGHS); p = 2 is the
    least-norm solution of one linear equation (a pseudo-inverse).
    """
    check_choice(p, EXACT_ORDERS, "p")
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    w = np.asarray(w, dtype=float).reshape(-1)
    d = w.size
    out = np.empty(len(x))
    for i, xi in enumerate(x):
        target = -(w @ xi + b)
        if p == 2:
            out[i] = np.linalg.norm(np.linalg.pinv(w[None]) @ np.array([target]))
        elif p == 1:  # r = r⁺ − r⁻ with r± ≥ 0; minimise Σ r⁺ + r⁻
            res = linprog(np.ones(2 * d), A_eq=np.r_[w, -w][None], b_eq=[target], bounds=(0, None))
            out[i] = res.fun
        else:  # minimise t subject to −t ≤ r_j ≤ t
            a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
            res = linprog(np.r_[np.zeros(d), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * d),
                          A_eq=np.r_[w, 0.0][None], b_eq=[target], bounds=[(None, None)] * d + [(0, None)])
            out[i] = res.fun
    return out


def _segment_candidates(c: torch.Tensor, d: torch.Tensor, p: float) -> torch.Tensor:
    """Parameters t ∈ [0, 1] among which min_t ‖c − t d‖_p is attained (p ∈ {1, ∞}).

    ‖c − t d‖_p is convex and piecewise linear in t for p ∈ {1, ∞}, so its
    minimum over [0, 1] lies at an end point or a kink: where a coordinate
    vanishes (t = c_i / d_i) or, for p = ∞, where two coordinates have equal
    magnitude (t = (c_i ∓ c_j) / (d_i ∓ d_j)).
    """
    pieces = [torch.zeros_like(c[..., :1]), torch.ones_like(c[..., :1]), c / d]
    if math.isinf(p):
        n = c.shape[-1]
        for i in range(n):
            for j in range(i + 1, n):
                for sign in (1.0, -1.0):
                    pieces.append(((c[..., i] - sign * c[..., j]) / (d[..., i] - sign * d[..., j]))[..., None])
    t = torch.cat(pieces, dim=-1)
    return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, 1.0)


def segment_distance(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, p: Order) -> torch.Tensor:
    """Exact L^p distance from points x (N, d) to segments [a, b] (M, d): (N, M)."""
    check_choice(p, EXACT_ORDERS, "p")
    c = x[:, None, :] - a[None, :, :]  # (N, M, d)
    d = (b - a)[None, :, :].expand_as(c)
    if p == 2:
        length2 = (d * d).sum(-1).clamp_min(torch.finfo(d.dtype).tiny)
        t = ((c * d).sum(-1) / length2).clamp(0.0, 1.0)[..., None]
        return torch.linalg.vector_norm(c - t * d, ord=2, dim=-1)
    t = _segment_candidates(c, d, p)  # (N, M, K)
    residual = c[..., None, :] - t[..., None] * d[..., None, :]  # (N, M, K, d)
    return torch.linalg.vector_norm(residual, ord=p, dim=-1).min(-1).values


def polyline_distance(x: torch.Tensor, vertices: torch.Tensor, p: Order, chunk: int = 4096,
                      pair_chunk: int = 1 << 20) -> torch.Tensor:
    """Exact L^p distance from points x (N, d) to the polyline through ``vertices`` (M + 1, d).

    The polyline is open; repeat the first vertex at the end for a closed curve.
    For a polyline inscribed in a smooth curve, the distance to the curve differs
    by at most the largest chord-to-arc gap (the sagitta, ≈ κh²/8 for chord length
    h and curvature κ) times the constant relating ‖·‖_p to ‖·‖₂ in d dimensions.

    The L² distances to all segments are cheap; for p ∈ {1, ∞} the exact
    computation then runs only on the (point, segment) pairs that can hold the
    minimum: since ‖r‖₂ ≤ ‖r‖₁ ≤ √d‖r‖₂ and ‖r‖₂/√d ≤ ‖r‖_∞ ≤ ‖r‖₂, those are the
    segments within √d times the point's smallest L² distance.
    """
    a, b = vertices[:-1], vertices[1:]
    l2 = torch.cat([segment_distance(x, a[s:s + chunk], b[s:s + chunk], 2.0) for s in range(0, a.shape[0], chunk)], 1)
    if float(p) == 2.0:
        return l2.min(dim=1).values
    radius = math.sqrt(x.shape[1]) * l2.min(dim=1).values * (1 + 1e-9) + 1e-12
    point_index, segment_index = (l2 <= radius[:, None]).nonzero(as_tuple=True)
    best = torch.full((x.shape[0],), math.inf, dtype=x.dtype)
    for s in range(0, point_index.shape[0], pair_chunk):
        pi, si = point_index[s:s + pair_chunk], segment_index[s:s + pair_chunk]
        c = x[pi] - a[si]
        d = b[si] - a[si]
        t = _segment_candidates(c, d, float(p))
        residual = c[:, None, :] - t[..., None] * d[:, None, :]
        dist = torch.linalg.vector_norm(residual, ord=float(p), dim=-1).min(-1).values
        best = best.scatter_reduce(0, pi, dist, reduce="amin")
    return best


def zero_set_2d(
    f, lower: tuple[float, float], upper: tuple[float, float], resolution: int = 1024,
    refine_steps: int = 30, chunk: int = 1 << 14,
) -> list[torch.Tensor]:
    """The zero level set of a 2-D classifier as polylines whose vertices lie on it.

    f is evaluated on a ``resolution`` × ``resolution`` grid over the box
    [lower, upper]; marching squares (contourpy) finds the grid edges where f
    changes sign, and each crossing is then refined by ``refine_steps``
    bisections of f along its grid edge, so every vertex is on {f = 0} to
    within ``h·2^-refine_steps`` (h the grid spacing). Consecutive vertices are
    joined by straight segments. For a ReLU network f is affine within each
    linear region, so a segment lies exactly on the boundary unless a kink of
    the boundary falls inside its grid cell; the distance from any point to
    these polylines therefore differs from the distance to {f = 0} by at most
    the cell diagonal √2·h, and by much less in practice. Components smaller
    than a cell can be missed.
    """
    import contourpy

    check_int(resolution, "resolution", minimum=8)
    xs = torch.linspace(lower[0], upper[0], resolution, dtype=torch.float64)
    ys = torch.linspace(lower[1], upper[1], resolution, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (res_y, res_x)
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    values = _grid_scores(f, grid, chunk)
    z = values.reshape(resolution, resolution).numpy()
    lines = contourpy.contour_generator(xs.numpy(), ys.numpy(), z).lines(0.0)
    hx, hy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    return [_refine_on_grid_edges(f, torch.as_tensor(line, dtype=torch.float64), xs, ys, hx, hy, refine_steps)
            for line in lines if len(line) >= 2]


@torch.no_grad()
def _grid_scores(f, grid: torch.Tensor, chunk: int) -> torch.Tensor:
    """f on every grid point, ``chunk`` points at a time (float64 scores).

    A ReLU MLP given as ``nn.Sequential`` of ``Linear`` and ``ReLU`` layers (what
    :meth:`mmgan.mlp.BatchedMLP.model` returns) is evaluated layer by layer with
    in-place ReLUs, which gives the same numbers as ``f`` about 1.5x faster on a CPU.
    """
    layers = _relu_mlp_layers(f)
    if layers is None:
        return torch.cat([_eval(f, grid[i:i + chunk]) for i in range(0, grid.shape[0], chunk)])
    dtype = layers[0][0].dtype
    values = []
    for i in range(0, grid.shape[0], chunk):
        h = grid[i:i + chunk].to(dtype)
        for index, (weight_t, bias) in enumerate(layers):
            h = torch.addmm(bias, h, weight_t)
            if index < len(layers) - 1:
                h.relu_()
        values.append(h[:, 0].to(torch.float64))
    return torch.cat(values)


def _relu_mlp_layers(f) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """(Wᵀ, b) of each layer when f is Linear, ReLU, …, Linear (one output); else None."""
    if not isinstance(f, torch.nn.Sequential) or len(f) % 2 != 1:
        return None
    modules = list(f)
    linear, relus = modules[0::2], modules[1::2]
    if not all(type(m) is torch.nn.Linear and m.bias is not None for m in linear):
        return None
    if not all(type(m) is torch.nn.ReLU for m in relus) or linear[-1].out_features != 1:
        return None
    return [(m.weight.detach().T, m.bias.detach()) for m in linear]


def _eval(f, points: torch.Tensor) -> torch.Tensor:
    out = f(points.to(parameter_dtype(f)))
    out = out[:, 0] if out.dim() == 2 else out
    return out.to(torch.float64)


def parameter_dtype(f) -> torch.dtype:
    if isinstance(f, torch.nn.Module):
        for parameter in f.parameters():
            return parameter.dtype
    return torch.get_default_dtype()


def _refine_on_grid_edges(f, line: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
                          hx: float, hy: float, steps: int) -> torch.Tensor:
    """Bisect each contour vertex along the grid edge it was interpolated on."""
    ix = (line[:, 0] - xs[0]) / hx
    iy = (line[:, 1] - ys[0]) / hy
    on_vertical = (ix - ix.round()).abs() < 1e-6  # x on a grid line: the edge runs along y
    lo = line.clone()
    hi = line.clone()
    lo[on_vertical, 1] = ys[0] + iy[on_vertical].floor().clamp(0, len(ys) - 2) * hy
    hi[on_vertical, 1] = lo[on_vertical, 1] + hy
    lo[~on_vertical, 0] = xs[0] + ix[~on_vertical].floor().clamp(0, len(xs) - 2) * hx
    hi[~on_vertical, 0] = lo[~on_vertical, 0] + hx
    with torch.no_grad():
        f_lo, f_hi = _eval(f, lo), _eval(f, hi)
        valid = torch.sign(f_lo) != torch.sign(f_hi)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            f_mid = _eval(f, mid)
            same = torch.sign(f_mid) == torch.sign(f_lo)
            lo = torch.where(same[:, None], mid, lo)
            f_lo = torch.where(same, f_mid, f_lo)
            hi = torch.where(same[:, None], hi, mid)
    return torch.where(valid[:, None], 0.5 * (lo + hi), line)


def relative_errors(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimate − reference) / reference where both are finite and the reference is positive, and that mask."""
    both = np.isfinite(estimate) & np.isfinite(reference) & (reference > 0)
    return (estimate[both] - reference[both]) / reference[both], both


def distance_to_zero_set_2d(
    f, x: torch.Tensor, p: Order, lower: tuple[float, float], upper: tuple[float, float],
    resolution: int = 1024,
) -> torch.Tensor:
    """Reference L^p distance from 2-D points to {f = 0} inside a box (see :func:`zero_set_2d`)."""
    check_choice(p, EXACT_ORDERS, "p")
    return polylines_distance(x, zero_set_2d(f, lower, upper, resolution), p)


def polylines_distance(x: torch.Tensor, lines: list[torch.Tensor], p: Order) -> torch.Tensor:
    """L^p distance from 2-D points to the nearest of several polylines (inf when there is none), float64."""
    if not lines:
        return torch.full((x.shape[0],), math.inf, dtype=torch.float64)
    x = x.to(torch.float64)
    return torch.stack([polyline_distance(x, line, p) for line in lines]).min(0).values


def error_text(value: Any, floor: float = 1e-12) -> str:
    """An error magnitude for display: ``'< 1e-12'`` at or below ``floor``, else ``'3.2e-05'``.

    Differences at the level of floating-point rounding depend on the CPU and
    the BLAS code path; printing them as a bound keeps executed notebooks
    comparable across machines (nbval) without hiding real errors.
    """
    number = float(value.item() if hasattr(value, "item") else value)
    return f"< {floor:.0e}" if abs(number) <= floor else f"{number:.1e}"
