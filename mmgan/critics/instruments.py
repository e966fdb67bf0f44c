"""The instruments that measure one critic's margins in image space (:mod:`mmgan.critics.measure` runs them
over the images and critics of a study).

The L^p margin of an image x is its L^p distance to the level set {f = t} (eq. 3 with f − t), f the critic in
one of its views (:mod:`mmgan.critics.held_batch`) and t the boundary value of its rule
(:mod:`mmgan.critics.thresholds`). Per image and order p ∈ {1, 2, ∞}, several numbers bracket or approximate
the distance:

* ``upper``: :func:`mmgan.margins.boundary_distances` (augmented Lagrangian search,
  pooled over orders). Its boundary point is checked here: f − t changes sign between x
  and the point pushed 0.1% further along the same ray (``sign_change``), so the distance
  is an upper bound of the true margin wherever the check passes.
* ``lower``: |f(x) − t| / Lip_p(f), a certified lower bound, with Lip_p the product of
  the layers' operator norms (:func:`lipschitz_bound`), eval view only (NaN in train mode:
  the batch statistics are not a layer with an operator norm). Loose but needs no search.
* ``certified``: a certified lower bound by linear bound propagation (CROWN,
  :func:`mmgan.critics.certify.certified_radius`): the largest radius, found by bisection below the
  best upper bound, on which f − t provably keeps its sign. In train mode the certificate is of
  the held-batch function itself, sound: the batch statistics are bounded over the ball, not
  frozen (:mod:`mmgan.critics.certify`).
* ``taylor``: the first-order margin |f(x) − t| / ‖∇f(x)‖_dual(p) of §3, neither bound.

:func:`minimum_norm_attack` adds an independent upper bound from foolbox's FMN attack
(Pintor et al., 2021), when foolbox is installed.

**Soundness** (``--soundness K``, :mod:`mmgan.critics.soundness`): on K critics of the study
(a seeded draw), every certificate is recomputed without the cap at the upper bound
(``certified_uncapped``) and a projected-gradient search looks for a flip of f − t inside that
ball, the critic evaluated in float64 as the certificate is (``violation``; expected never true);
the count goes to the meta data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmgan.base.registry import check_choice
from mmgan.critics import soundness
from mmgan.critics import thresholds as threshold_rules
from mmgan.critics.certify import certified_radius
from mmgan.critics.held_batch import MODES, critic_view
from mmgan.exact import parameter_dtype
from mmgan.gan.models import Flatten, kept_statistics
from mmgan.margins import MARGIN_ORDERS, boundary_distances, taylor_margin
from mmgan.penalties import input_gradient

#: Settings of the boundary search for images (fewer restarts than Table 1: 256+ dimensions, few points).
SEARCH: dict[str, Any] = dict(restarts=2, data_restarts=2, max_steps=150, polish_steps=4, tol=1e-3)
#: Bisection steps of the CROWN certificate: it is exact to the best upper bound / 2^CERTIFY_STEPS, rounded down.
CERTIFY_STEPS = 10


def nearest_training_distance(images: torch.Tensor, training: torch.Tensor, p: float,
                              chunk: int = 512) -> torch.Tensor:
    """Per image, its L^p distance to the nearest training image: the scale against which a generated image's
    margin is read (a margin shrinks when the images it is measured at move closer to the data)."""
    check_choice(p, MARGIN_ORDERS, "p")
    flat = images.flatten(1).double()
    best = torch.full((len(images),), math.inf, dtype=torch.float64)
    for start in range(0, len(training), chunk):
        block = training[start:start + chunk].flatten(1).double().to(flat.device)
        distance = torch.linalg.vector_norm(flat[:, None, :] - block[None, :, :], ord=float(p), dim=2)
        best = torch.minimum(best, distance.min(1).values.cpu())
    return best


def _p_norm(row_max: float, column_max: float, p: float) -> float:
    """‖W‖_{p→p} from the largest absolute row and column sums: exact for p = 1, ∞; √(‖W‖₁‖W‖_∞) ≥ ‖W‖₂."""
    return {1.0: column_max, math.inf: row_max}.get(p, math.sqrt(row_max * column_max))


def _layer_norm(layer: nn.Module, shape: tuple[int, ...], p: float) -> tuple[float, tuple[int, ...]]:
    """Operator norm ‖layer‖_{p→p} (an upper bound for p = 2) and the output shape (C, H, W) of one layer."""
    if isinstance(layer, nn.Conv2d):
        weight = layer.weight.detach().abs().double()
        ones = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
        rows = nn.functional.conv2d(ones, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        (columns,) = torch.autograd.grad(rows.sum(), ones)  # column sums of |W| as a matrix
        return _p_norm(float(rows.detach().max()), float(columns.max()), p), tuple(rows.shape[1:])
    if isinstance(layer, nn.BatchNorm2d):
        scale = layer.weight.detach().double() / torch.sqrt(layer.running_var.double() + layer.eps)
        return float(scale.abs().max()), shape
    if isinstance(layer, nn.LeakyReLU | nn.ReLU):
        return 1.0, shape  # |σ(a) − σ(b)| ≤ |a − b| element-wise: 1-Lipschitz in every L^p
    if isinstance(layer, Flatten | nn.Flatten):
        return 1.0, (math.prod(shape),)
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().abs().double()
        return _p_norm(float(weight.sum(1).max()), float(weight.sum(0).max()), p), (layer.out_features,)
    raise TypeError(f"no Lipschitz bound for a {type(layer).__name__} layer")


def lipschitz_bound(critic: nn.Sequential, input_shape: tuple[int, ...], p: float) -> float:
    """Lip_p: |f(x) − f(y)| ≤ Lip_p ‖x − y‖_p for a critic in eval mode, one scalar output per image.

    The product over layers of ‖W‖_{p→p} (exact maximum column sum for p = 1, row sum for
    p = ∞, and √(‖W‖₁‖W‖_∞) ≥ ‖W‖₂ for p = 2); the scalar output is measured with |·|,
    which every L^p norm of a one-entry vector equals.
    """
    check_choice(p, MARGIN_ORDERS, "p")
    bound, shape = 1.0, tuple(input_shape)
    for layer in critic:
        norm, shape = _layer_norm(layer, shape, float(p))
        bound *= norm
    return bound


def _sign_change(f, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """True where f(x) and f at the boundary point pushed 0.1% further along its ray have opposite signs."""
    with torch.no_grad():
        beyond = x + 1.001 * (point - x)
        return torch.sign(f(x)) != torch.sign(f(beyond))


def measure_critic(critic: nn.Sequential, reals: torch.Tensor, fakes: torch.Tensor, threshold: str = "midpoint",
                   orders: Sequence[float] = MARGIN_ORDERS, search: dict[str, Any] | None = None, *,
                   values: threshold_rules.Threshold | None = None, mode: str = "eval",
                   mates: torch.Tensor | None = None, points: dict | None = None) -> pd.DataFrame:
    """One row per (image, order p): score, threshold t of its boundary, and the upper / Taylor / lower margins
    of f − t; the images that share a boundary value are searched together.

    ``values``: the rule's population thresholds (:class:`mmgan.critics.thresholds.Threshold`); without them the
    thresholds are those of the measured images themselves (``threshold_in_sample``). ``mode``: the view
    (:data:`MODES`); train mode needs ``mates`` (2n, b − 1, ...), the batch mates of ``cat([reals, fakes])``.
    ``points``: a dict that receives, per (t, p), the positions searched and the boundary points found.
    """
    check_choice(threshold, threshold_rules.RULES, "threshold")
    check_choice(mode, MODES, "mode")
    x = torch.cat([reals, fakes]).to(parameter_dtype(critic))
    if mode == "train" and (mates is None or mates.shape[0] != x.shape[0]):
        raise ValueError("train mode needs the batch mates of every measured image (MeasurementSet.mates)")
    view = critic_view(critic, mode, mates)
    with torch.no_grad():
        scores = view(x)
    in_sample = threshold_rules.boundary_values(threshold, float(scores[: len(reals)].mean()),
                                                float(scores[len(reals):].mean()))
    if values is None:
        t_real, t_fake, se_real, se_fake = *in_sample, math.nan, math.nan
    else:
        t_real, t_fake, se_real, se_fake = values.real, values.fake, values.real_se, values.fake_se
    per_image = torch.tensor([t_real] * len(reals) + [t_fake] * len(fakes), dtype=torch.float64)
    rows = []
    for t in dict.fromkeys((t_real, t_fake)):
        chosen = torch.nonzero(per_image == t).flatten()
        chosen_view = critic_view(critic, mode, None if mates is None else mates[chosen])

        def f(z: torch.Tensor, t: float = t, chosen_view: nn.Module = chosen_view) -> torch.Tensor:
            return chosen_view(z) - t

        found = boundary_distances(f, x[chosen], tuple(orders), **{**SEARCH, **(search or {})})
        for p, result in found.items():
            if points is not None:
                points[(t, p)] = (chosen, result.point.detach())
            if mode == "eval":
                lower = (scores[chosen] - t).abs() / lipschitz_bound(critic, tuple(x.shape[1:]), p)
            else:
                lower = torch.full((len(chosen),), math.nan)
            taylor = taylor_margin(f, x[chosen], p)
            sign_ok = _sign_change(f, x[chosen], result.point)
            for j, i in enumerate(chosen.tolist()):
                real = i < len(reals)
                rows.append({"image": "real" if real else "fake", "index": i % len(reals), "p": p,
                             "score": float(scores[i]), "threshold": t, "side": "above" if scores[i] > t else "below",
                             "upper": float(result.distance[j]), "taylor": float(taylor[j]), "lower": float(lower[j]),
                             "sign_change": bool(sign_ok[j]), "converged": bool(result.converged[j]), "mode": mode,
                             "threshold_se": se_real if real else se_fake,
                             "threshold_in_sample": in_sample[0] if real else in_sample[1]})
    frame = pd.DataFrame(rows)
    rank = frame.assign(order=frame["p"].map({p: k for k, p in enumerate(orders)}), fake=frame["image"] == "fake")
    return frame.loc[rank.sort_values(["order", "fake", "index"]).index].reset_index(drop=True)


def image_positions(rows: pd.DataFrame, reals: int) -> np.ndarray:
    """Where each measured row's image sits in ``torch.cat([reals, fakes])``."""
    return rows["index"].to_numpy() + np.where(rows["image"].to_numpy() == "fake", reals, 0)


def _l2_fmn_attack() -> type:
    """foolbox 3.3.4's L² FMN attack with its projection repaired.

    Its ``project`` scales the perturbation by ``min(1, norms / norms)``, which is always 1 (and takes the norm of
    the image, not of the perturbation), so the L² attack never pulls its perturbation back into the ε-ball and
    stops wherever its first steps land (on a linear critic, 1.6–2× the exact distance). The repaired projection
    scales the perturbation x − x0 to L² norm at most ε, as the FMN algorithm (Pintor et al., 2021) prescribes.
    """
    import eagerpy as ep
    import foolbox
    from foolbox.devutils import atleast_kd, flatten

    class RepairedL2FMNAttack(foolbox.attacks.L2FMNAttack):
        def project(self, x: ep.Tensor, x0: ep.Tensor, epsilon: ep.Tensor) -> ep.Tensor:
            norms = ep.maximum(flatten(x - x0).norms.l2(axis=-1), 1e-12)
            return x0 + (x - x0) * atleast_kd(ep.minimum(1, epsilon / norms), x.ndim)

    return RepairedL2FMNAttack


def minimum_norm_attack(critic: nn.Sequential, x: torch.Tensor, threshold: float, p: float,
                        steps: int = 1000) -> torch.Tensor:
    """Distances found by foolbox's FMN attack on the two-class classifier sign(f − t) (an upper bound); the L²
    attack with its projection repaired (:func:`_l2_fmn_attack`).

    Raises ``ImportError`` with the install command when foolbox is missing.
    """
    try:
        import foolbox
    except ImportError as error:
        raise ImportError("the FMN cross-check needs foolbox: pip install foolbox==3.3.4") from error
    check_choice(p, MARGIN_ORDERS, "p")

    class TwoLogits(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            s = critic(z) - threshold
            return torch.stack([-s, s], 1)

    attacks = {1.0: foolbox.attacks.L1FMNAttack, 2.0: _l2_fmn_attack(), math.inf: foolbox.attacks.LInfFMNAttack}
    model = foolbox.PyTorchModel(TwoLogits().eval(), bounds=(float(x.min()) - 10, float(x.max()) + 10))
    with torch.no_grad():
        labels = (critic(x) > threshold).long()
    _, adversarial, success = attacks[float(p)](steps=steps)(model, x, labels, epsilons=None)
    distance = torch.linalg.vector_norm((adversarial - x).flatten(1), ord=float(p), dim=1)
    return torch.where(success, distance, torch.full_like(distance, math.inf))


def certify_rows(critic: nn.Sequential, x: torch.Tensor, rows: pd.DataFrame,
                 steps: int = CERTIFY_STEPS, mates: torch.Tensor | None = None) -> np.ndarray:
    """The ``certified`` column for one critic's measured rows (images ``x`` = reals then fakes, as measured),
    below each row's best upper bound (estimator or FMN), one bisection per (threshold value, order p); with
    ``mates`` (the batch mates of ``x``), of the train-mode critic."""
    x = x.to(parameter_dtype(critic))
    with torch.no_grad():
        view = critic_view(critic, "eval" if mates is None else "train", mates)
        scores = view(x).double().flatten().cpu().numpy()
    certified = np.full(len(rows), np.nan)
    for (t, p), group in rows.groupby(["threshold", "p"], sort=False):
        at = rows.index.get_indexer(group.index)
        where = image_positions(group, len(x) // 2)
        if not np.allclose(group["score"].to_numpy(), scores[where], rtol=1e-4, atol=1e-4):
            raise ValueError("the images to certify are not those measured: their critic scores differ")
        upper = np.minimum(group["upper"].to_numpy(), group["fmn"].fillna(np.inf).to_numpy())
        index = torch.from_numpy(where)
        certified[at] = certified_radius(critic, x[index], float(t), float(p), torch.from_numpy(upper), steps,
                                         mates=None if mates is None else mates[index]).cpu().numpy()
    return certified


def check_soundness(critic: nn.Sequential, x: torch.Tensor, rows: pd.DataFrame, points: dict,
                    steps: int = CERTIFY_STEPS, mates: torch.Tensor | None = None) -> pd.DataFrame:
    """``certified_uncapped`` (the certificate with its bisection not capped at the best upper bound) and
    ``violation`` (a flip of f − t, in float64, found inside that ball) for one critic's measured rows
    (:mod:`mmgan.critics.soundness`); ``points``: the boundary points of :func:`measure_critic`, the search's
    first starts."""
    x = x.to(parameter_dtype(critic))
    out = pd.DataFrame({"certified_uncapped": np.nan, "violation": False}, index=rows.index)
    for (t, p), group in rows.groupby(["threshold", "p"], sort=False):
        where = image_positions(group, len(x) // 2)
        index = torch.from_numpy(where)
        chosen, found = points[(t, p)]
        slot = {int(position): k for k, position in enumerate(chosen.tolist())}
        starts = found[torch.tensor([slot[int(position)] for position in where])]
        upper = torch.from_numpy(np.minimum(group["upper"].to_numpy(), group["fmn"].fillna(np.inf).to_numpy()))
        group_mates = None if mates is None else mates[index]
        uncapped = certified_radius(critic, x[index], float(t), float(p), upper, steps, mates=group_mates,
                                    expand=True)
        violated = soundness.violations(critic, x[index], float(t), float(p), uncapped, points=starts,
                                        mates=group_mates)
        out.loc[group.index, "certified_uncapped"] = uncapped.cpu().numpy()
        out.loc[group.index, "violation"] = violated.cpu().numpy()
    return out


def batchnorm_views(critic: nn.Sequential, reals: torch.Tensor, fakes: torch.Tensor) -> dict[str, float]:
    """The critic as it is measured (eval mode: BatchNorm with its running statistics) and as the generator trained
    against it (train mode: each batch normalised with its own statistics): the mean L² input-gradient norm at
    interpolates between the reals and the fakes (the penalty's points; equal weights u = 1/2) and the mean real
    minus mean fake score, in each mode. The critic's buffers are left as they were."""
    between = (0.5 * (reals + fakes)).to(parameter_dtype(critic))
    out = {}
    was_training = critic.training
    try:
        with kept_statistics(critic):
            for mode in ("eval", "train"):
                critic.train(mode == "train")
                _, grad = input_gradient(critic, between, create_graph=False)
                out[f"grad_norm_{mode}"] = float(grad.flatten(1).norm(dim=1).mean())
                with torch.no_grad():
                    out[f"score_gap_{mode}"] = float(critic(reals.to(between.dtype)).mean()
                                                     - critic(fakes.to(between.dtype)).mean())
    finally:
        critic.train(was_training)
    return out
