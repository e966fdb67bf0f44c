"""Dual norms and per-sample gradient norms (paper §3.2 and App. B).

Naming convention used throughout the project: a *gradient norm* is named by
its order ``q``; the *margin* it controls is measured in the dual order
``p = dual(q)`` (§3.2: ``1/p + 1/q = 1``). The released code named its flags
after the margin (``--l1_margin`` penalised the ∞-norm of the gradient), which
caused its own bugs; here every function takes the gradient-norm order ``q``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mmgan.base.registry import Registry, format_choices

Order = float | int


def _check_order(p: object, parameter: str) -> float:
    """Validate a norm order p ≥ 1 (``math.inf`` allowed) and return it as float."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p):
        raise ValueError(
            f"{parameter} must be a number p >= 1 or float('inf'), got {p!r}"
        )
    if p < 1:
        raise ValueError(
            f"{parameter} must satisfy p >= 1 (norms with p < 1 are not norms "
            f"and have no dual), got {p!r}"
        )
    return float(p)


@dataclass(frozen=True)
class GradNorm:
    """A gradient norm q of eq. 6, as registered in :data:`NORMS`.

    Attributes:
        name: its one spelling everywhere: config files, run folders, cell names, tables (``'1'``, ``'2'``,
            ``'inf'``, ``'smax'``); the text committed ``summary.json`` files hold, so folder keys do not move.
        order: the order as a number (``math.inf`` for ∞), or None where the norm is no L^q norm (smooth max).
        compute: ``(flat, beta) -> (B,)``, the per-sample norm of gradients flattened to (B, D); ``beta`` is the
            smooth maximum's inverse temperature (ignored by the others).
        released: the released code's variant of ``compute`` (see :func:`grad_norm`), or None where it was right.
    """

    name: str
    order: float | None
    compute: Callable[[torch.Tensor, float], torch.Tensor]
    released: Callable[[torch.Tensor, float], torch.Tensor] | None = None


#: What every function taking a gradient norm accepts: a :class:`GradNorm`, its name or its order as a number.
GradNormOrder = GradNorm | str | float | int


def _check_norm(name: str, entry: GradNorm) -> None:
    """A registered norm is named by its order's text (``order_text`` must give the name back) and computes."""
    if entry.name != name:
        raise ValueError(f"gradient norm registered as {name!r} carries the name {entry.name!r}")
    if entry.order is not None:
        _check_order(entry.order, f"order of gradient norm {name!r}")
        if f"{entry.order:g}" != name:
            raise ValueError(f"gradient norm of order {entry.order!r} must be registered as {entry.order:g}, "
                             f"not {name!r}")
    for what in ("compute", "released"):
        if what == "compute" or entry.released is not None:
            if not callable(getattr(entry, what)):
                raise TypeError(f"gradient norm {name!r}: {what} must be callable (flat, beta) -> (B,)")


#: The gradient norms q by name: L^1, L^2, L^∞ and the smooth maximum of App. B (a new one: one entry).
NORMS: Registry[GradNorm] = Registry("gradient norm q", GradNorm, _check_norm, {
    # L^1 written out: several times faster than vector_norm(ord=1) on CPU
    "1": GradNorm("1", 1.0, lambda flat, beta: flat.abs().sum(dim=1)),
    "2": GradNorm("2", 2.0, lambda flat, beta: torch.linalg.vector_norm(flat, ord=2.0, dim=1)),
    # amax splits the subgradient evenly between tied entries; the release: the signed max (no absolute value)
    "inf": GradNorm("inf", math.inf, lambda flat, beta: flat.abs().amax(dim=1),
                    released=lambda flat, beta: flat.max(dim=1).values),
    # the release: one smooth max pooled over every signed entry of the batch, used for every sample
    "smax": GradNorm("smax", None, lambda flat, beta: smooth_max(flat.abs(), dim=1, beta=beta),
                     released=lambda flat, beta: smooth_max(flat.reshape(-1), dim=0, beta=beta).expand(flat.shape[0])),
})


def gradient_norm(q: object) -> GradNorm:
    """The registered gradient norm ``q`` names: a :class:`GradNorm`, its name (``'inf'``) or its order as a
    number (``math.inf``, ``2``); ``ValueError`` naming every registered one otherwise (never a fallback)."""
    name = q.name if isinstance(q, GradNorm) else q
    if isinstance(q, (int, float)) and not isinstance(q, bool) and not math.isnan(q):
        name = f"{float(q):g}"
    if isinstance(name, str) and name in NORMS:
        return NORMS[name]
    raise ValueError(f"unknown gradient norm q={q!r}; valid choices: {format_choices(NORMS)}")


def released_norms() -> list[str]:
    """The names of the norms the released code computed otherwise (``as_released`` changes those only)."""
    return [name for name, norm in NORMS.items() if norm.released is not None]


def order_text(q: object) -> str:
    """The name of a gradient norm (:func:`gradient_norm`) for labels and keys: ``'1'``, ``'2'``, ``'inf'`` …"""
    return gradient_norm(q).name


def dual(p: Order) -> float:
    """Return the Hölder conjugate q of p, i.e. ``1/p + 1/q = 1`` (§3.2).

    ``dual(1) == inf``, ``dual(2) == 2``, ``dual(inf) == 1``; ``dual`` is an
    involution on [1, ∞]. Raises ``ValueError`` for p < 1, NaN or non-numbers.
    """
    p = _check_order(p, "p")
    if p == 1.0:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1.0)


def smooth_max(values: torch.Tensor, dim: int = -1, beta: float = 1.0) -> torch.Tensor:
    """Smooth maximum of App. B: ``sum_i v_i exp(beta v_i) / sum_i exp(beta v_i)``.

    With ``beta = 1`` this is the paper's formula. It is a softmax-weighted mean,
    so it always lies between the mean and the maximum of ``values`` and tends to
    the maximum as ``beta → ∞``. Computed stably through ``softmax``.
    """
    weights = torch.softmax(beta * values, dim=dim)
    return (weights * values).sum(dim=dim)


def grad_norm(
    grad: torch.Tensor,
    q: GradNormOrder,
    as_released: bool = False,
    beta: float = 1.0,
) -> torch.Tensor:
    """Per-sample norm of a gradient, reduced over all non-batch dimensions.

    Args:
        grad: tensor of shape (batch, ...), e.g. ∇ₓf(x) for 2-D points or images.
        q: a registered norm (:func:`gradient_norm`: ``'1'``, ``'2'``, ``'inf'``, ``'smax'`` or their
            orders ``1``, ``2``, ``math.inf``). ``'smax'`` is the smooth
            maximum of App. B taken over the *absolute values* ``|g_i|`` of one
            sample's gradient, a smooth under-estimate of ``‖g‖_∞``.
        as_released: reproduce the released code instead of the correct norm
            (see ``shared/notes/official-code.md``). Its inverted
            ``--l1_margin_no_abs`` flag left ``grad_abs = grad`` (no absolute
            value) in every run of ``experiments.sh``, so for ``q = inf`` the
            release used the signed maximum ``max_i g_i``, and for ``'smax'`` one
            scalar ``Σ g exp(βg) / Σ exp(βg)`` pooled over every entry of the
            whole batch of *signed* gradients, used for every sample (the runs
            set ``--smoothmax 1``, i.e. β = 1). Not defined for ``q ∈ {1, 2}``
            (the release was correct there).
        beta: inverse temperature of the smooth maximum (``'smax'`` only).

    Returns:
        Tensor of shape (batch,). The 2-norm is computed without rescaling, so
        entries below about 1e-154 (float64) or 1e-19 (float32) underflow to a
        zero contribution, harmless for penalties of norms near 1.
    """
    if grad.dim() < 1 or grad.shape[0] == 0:
        raise ValueError(
            f"grad must have a leading batch dimension of size >= 1, got shape "
            f"{tuple(grad.shape)}"
        )
    norm = gradient_norm(q)
    flat = grad.reshape(grad.shape[0], -1)
    if not as_released:
        return norm.compute(flat, beta)
    if norm.released is None:
        raise ValueError(f"as_released=True only changes the norms the released code computed otherwise "
                         f"({format_choices(released_norms())}); got q={q!r}")
    return norm.released(flat, beta)


def lp_norm(v: torch.Tensor, p: Order) -> torch.Tensor:
    """Per-sample L^p norm of ``v`` (batch, ...) for any order p ≥ 1 (incl. inf).

    Used for distances (‖x − y‖_p) where any order is meaningful; gradient norms
    go through :func:`grad_norm`, which takes the registered norms (:data:`NORMS`) only.
    """
    p = _check_order(p, "p")
    return torch.linalg.vector_norm(v.reshape(v.shape[0], -1), ord=p, dim=1)


def holder_maximizer(g: torch.Tensor, p: Order) -> torch.Tensor:
    """Unit-L^p direction ``v`` with ``g·v = ‖g‖_q`` (equality in Hölder, §3.2).

    For each sample (rows of ``g``, any trailing shape) returns the maximiser of
    ``g·v`` over ``‖v‖_p ≤ 1``: ``g/‖g‖₂`` for p = 2, ``sign(g)`` for p = ∞,
    and a signed one-hot vector on the largest ``|g_i|`` for p = 1 (the first
    one on ties). For 1 < p < ∞, ``v_i ∝ sign(g_i) |g_i|^(q-1)``. It is the
    direction in which a first-order model of ``f`` changes fastest per unit
    of L^p distance, so ``x - f(x) / ‖g‖_q · v`` is the Taylor estimate of the
    closest boundary point (App. D.4). Zero rows give a zero direction.
    """
    p = _check_order(p, "p")
    flat = g.reshape(g.shape[0], -1)
    if p == 1.0:
        index = flat.abs().argmax(dim=1, keepdim=True)
        v = torch.zeros_like(flat).scatter(1, index, flat.gather(1, index).sign())
    elif math.isinf(p):
        v = flat.sign()
    else:
        q = dual(p)
        powered = flat.sign() * flat.abs().pow(q - 1.0)
        scale = torch.linalg.vector_norm(flat, ord=q, dim=1, keepdim=True).pow(q - 1.0)
        v = torch.where(scale > 0, powered / scale.clamp_min(torch.finfo(flat.dtype).tiny), 0.0)
    return v.reshape(g.shape)
