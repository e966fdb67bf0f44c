"""Training gradient-penalised classifiers with eq. 6 (Table 1, App. A), many at once.

Each model m minimises, on minibatches of the two-class data,

    mean softplus(−y f_m(x)) + λ_m · mean g_m(‖∇ₓ f_m(x̂)‖_{q_m})

i.e. eq. 6 with the cross-entropy margin loss L(z) = log(1 + e^{−z}). Models
differ in (g, q, λ) and in their seed; all are trained in one loop on a
:class:`mmgan.mlp.BatchedMLP`. Models that share a seed also share their
initial weights, minibatches and interpolation weights, so the rows of
Table 1 are compared on identical data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from mmgan.base.registry import check_choice, check_int
from mmgan.losses import margin_loss
from mmgan.mlp import BatchedMLP
from mmgan.norms import order_text
from mmgan.penalties import ZERO_CENTRED_PENALTIES, batched_gradient_penalty

#: Where the penalty of eq. 6 is evaluated: the minibatch points (eq. 6 as written)
#: or interpolates between the two classes (as WGAN-GP and the paper's GANs do).
CLASSIFIER_PENALTY_POINTS: tuple[str, ...] = ("data", "interpolates")


@dataclass(frozen=True)
class PenaltySpec:
    """One row of Table 1: penalty shape g and gradient norm q (both None: no penalty).

    ``zero_centred`` names one of :data:`mmgan.penalties.ZERO_CENTRED_PENALTIES` instead: g(z) = z², q = 2
    at the points of class +1 (``r1``, the "real" class), of class −1 (``r2``) or both (``r1+r2``), each
    class's mean kept apart (see :func:`zero_centred`).
    """

    g: str | None
    q: float | None
    zero_centred: str | None = None

    def __post_init__(self) -> None:
        if self.zero_centred is not None:
            check_choice(self.zero_centred, tuple(ZERO_CENTRED_PENALTIES), "zero_centred")
            if (self.g, self.q) != ("zero_centered", 2.0):
                raise ValueError(f"a zero-centred penalty ({self.zero_centred!r}) is g='zero_centered', q=2; "
                                 f"got g={self.g!r}, q={self.q!r} (use zero_centred(name))")

    @property
    def label(self) -> str:
        if self.zero_centred is not None:
            return self.zero_centred
        if self.g is None:
            return "none"
        return f"{self.g}-q{order_text(self.q)}"


def zero_centred(name: str) -> PenaltySpec:
    """The row of the zero-centred penalty ``name`` (``r1``, ``r2`` or ``r1+r2``)."""
    return PenaltySpec("zero_centered", 2.0, name)


@dataclass
class TrainingLog:
    """Training curves, one column per model: arrays of shape (n_logs, n_models)."""

    iteration: np.ndarray
    loss: np.ndarray
    penalty: np.ndarray
    accuracy: np.ndarray
    grad_norm: np.ndarray


def train_penalized_classifiers(
    model: BatchedMLP,
    specs: list[PenaltySpec],
    seed_index: list[int],
    data: list[tuple[torch.Tensor, torch.Tensor]],
    iterations: int,
    stream_seeds: list[int] | None = None,
    lam: float | Sequence[float] = 10.0,
    batch_size: int = 256,
    lr: float = 5e-5,
    penalty_at: str = "data",
    log_every: int = 100,
    progress: bool = True,
) -> TrainingLog:
    """Train every model of ``model`` on its seed's data set with Adam (in place).

    Args:
        model: M stacked networks.
        specs: penalty of each model (length M).
        seed_index: which data set / random stream each model uses (length M).
        data: per seed, ``(x, y)`` training points with labels ±1 (class +1 first
            is not required). Minibatches hold ``batch_size / 2`` points of each class.
        iterations: Adam steps.
        stream_seeds: seed of the minibatch / interpolation random stream of each
            data set (default 0, 1, …). A model trained alone with the same
            stream seed sees exactly the same minibatches as in a batch of models.
        lam: penalty weight λ (the paper: 10), or one weight per model.
        batch_size: points per minibatch (even).
        lr: Adam learning rate (the paper: 5e-5).
        penalty_at: one of :data:`CLASSIFIER_PENALTY_POINTS`.
        log_every: record the curves every this many iterations (and at the end).
        progress: show a progress bar.
    """
    m = model.n_models
    if not (len(specs) == len(seed_index) == m):
        raise ValueError(f"specs and seed_index must have one entry per model ({m})")
    check_int(iterations, "iterations", minimum=1)
    check_int(batch_size, "batch_size", minimum=2)
    check_int(log_every, "log_every", minimum=1)
    check_choice(penalty_at, CLASSIFIER_PENALTY_POINTS, "penalty_at")
    if batch_size % 2:
        raise ValueError(f"batch_size must be even (half from each class), got {batch_size}")
    dtype = model.weights[0].dtype
    device = model.weights[0].device
    half = batch_size // 2
    positives = torch.stack([x[y > 0][: min(int((y > 0).sum()) for _, y in data)] for x, y in data]).to(device, dtype)
    negatives = torch.stack([x[y < 0][: min(int((y < 0).sum()) for _, y in data)] for x, y in data]).to(device, dtype)
    seeds = torch.tensor(seed_index, device=device)
    lams = [lam] * m if isinstance(lam, (int, float)) else list(lam)
    if len(lams) != m:
        raise ValueError(f"lam must be a number or one weight per model ({m}), got {len(lams)}")
    lam_m = torch.tensor([0.0 if s.g is None else w for s, w in zip(specs, lams)], device=device, dtype=dtype)
    q_m = [2.0 if s.q is None else float(s.q) for s in specs]
    g_m = ["ls" if s.g is None else s.g for s in specs]
    class_weights = _zero_centred_weights(specs, penalty_at, device, dtype)
    ce = margin_loss("sgan")
    stream_seeds = list(range(len(data))) if stream_seeds is None else stream_seeds
    if len(stream_seeds) != len(data):
        raise ValueError(f"stream_seeds needs one seed per data set ({len(data)}), got {len(stream_seeds)}")
    gens = [torch.Generator().manual_seed(10_000 + s) for s in stream_seeds]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    logs: dict[str, list[np.ndarray]] = {k: [] for k in ("loss", "penalty", "accuracy", "grad_norm")}
    logged_at: list[int] = []

    for it in tqdm(range(1, iterations + 1), disable=not progress, desc="training", mininterval=2.0):
        idx_pos = torch.stack([torch.randint(positives.shape[1], (half,), generator=g) for g in gens]).to(device)
        idx_neg = torch.stack([torch.randint(negatives.shape[1], (half,), generator=g) for g in gens]).to(device)
        xp = torch.gather(positives, 1, idx_pos[..., None].expand(-1, -1, positives.shape[2]))[seeds]
        xn = torch.gather(negatives, 1, idx_neg[..., None].expand(-1, -1, negatives.shape[2]))[seeds]
        x = torch.cat([xp, xn], 1)  # (M, B, d)
        y = torch.cat([torch.ones(half, device=device, dtype=dtype), -torch.ones(half, device=device, dtype=dtype)])
        if penalty_at == "data":  # one forward pass serves the loss and the penalty
            gp = batched_gradient_penalty(model, x, q_m, g_m)
            scores = gp.scores
        else:
            u = torch.stack([torch.rand(half, 1, generator=g, dtype=dtype) for g in gens]).to(device)[seeds]
            scores = model(x)
            gp = batched_gradient_penalty(model, u * xp + (1 - u) * xn, q_m, g_m)
        penalty = gp.penalty if class_weights is None else _class_means(gp.grad_norm.pow(2), class_weights, gp.penalty)
        data_term = ce(y * scores).mean(1)
        optimizer.zero_grad(set_to_none=True)
        (data_term + lam_m * penalty).sum().backward()
        optimizer.step()
        if it % log_every == 0 or it == iterations:
            with torch.no_grad():
                logged_at.append(it)
                logs["loss"].append(data_term.detach().cpu().numpy())
                logs["penalty"].append(penalty.detach().cpu().numpy())
                logs["accuracy"].append((scores.detach() * y > 0).to(dtype).mean(1).cpu().numpy())
                logs["grad_norm"].append(gp.grad_norm.detach().mean(1).cpu().numpy())
            if not all(np.isfinite(v[-1]).all() for v in logs.values()):
                raise FloatingPointError(f"non-finite loss or penalty at iteration {it}; lower lr or lam")
    return TrainingLog(iteration=np.array(logged_at), **{k: np.stack(v) for k, v in logs.items()})


def _zero_centred_weights(specs: list[PenaltySpec], penalty_at: str, device: torch.device,
                          dtype: torch.dtype) -> torch.Tensor | None:
    """(M, 2) weights of the two class means in each model's penalty: (1, 0) for R1, (0, 1) for R2, (1, 1) for
    R1 + R2, and NaN for the models whose penalty is eq. 6's mean over the points; ``None`` without any
    zero-centred model. Zero-centred models need ``penalty_at='data'`` (their points are the minibatch's)."""
    if all(spec.zero_centred is None for spec in specs):
        return None
    if penalty_at != "data":
        raise ValueError(f"zero-centred penalties (r1, r2, r1+r2) are evaluated at the data points; "
                         f"use penalty_at='data', got {penalty_at!r}")
    rows = [[float("nan")] * 2 if s.zero_centred is None
            else [float(at in ZERO_CENTRED_PENALTIES[s.zero_centred]) for at in ("real", "fake")] for s in specs]
    return torch.tensor(rows, device=device, dtype=dtype)


def _class_means(squared_norms: torch.Tensor, weights: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Each model's penalty: the weighted sum of the class means of ‖∇f‖₂² (first half of the minibatch: class +1,
    "real"; second half: class −1) for the zero-centred models, ``penalty`` for the others."""
    half = squared_norms.shape[1] // 2
    means = torch.stack([squared_norms[:, :half].mean(1), squared_norms[:, half:].mean(1)], 1)  # (M, 2)
    zero_centred = (means * torch.nan_to_num(weights)).sum(1)
    return torch.where(torch.isnan(weights[:, 0]), penalty, zero_centred)
