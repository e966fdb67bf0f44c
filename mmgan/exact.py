"""Exact L^p distances used as independent references for margins (eq. 3).

Nothing here uses gradients or the Taylor expansion: hyperplane distances come
from a closed form or a linear program, curve distances from exact
point-to-segment distances on a polyline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linprog

from mmgan.norms import Order, dual
from mmgan.registry import check_choice

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


def polyline_distance(x: torch.Tensor, vertices: torch.Tensor, p: Order, chunk: int = 4096) -> torch.Tensor:
    """Exact L^p distance from points x (N, d) to the polyline through ``vertices`` (M + 1, d).

    The polyline is open; repeat the first vertex at the end for a closed curve.
    For a polyline inscribed in a smooth curve, the distance to the curve differs
    by at most the largest chord-to-arc gap (the sagitta, ≈ κh²/8 for chord length
    h and curvature κ) times the constant relating ‖·‖_p to ‖·‖₂ in d dimensions.
    Processed in chunks of segments to bound memory.
    """
    a, b = vertices[:-1], vertices[1:]
    best = torch.full((x.shape[0],), math.inf, dtype=x.dtype)
    for start in range(0, a.shape[0], chunk):
        part = segment_distance(x, a[start:start + chunk], b[start:start + chunk], p)
        best = torch.minimum(best, part.min(dim=1).values)
    return best
