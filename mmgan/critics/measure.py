"""Margins of trained GAN critics in image space (chapter "Margins of GAN critics").

The paper argues (§4) that penalising ‖∇f‖_q enlarges the critic's L^p margins with
p = dual(q), and that the L^∞ penalty, by enlarging L¹ margins, makes better GANs. It
measures margins only on the 2-D swiss roll. Here a critic f of a committed CPU study,
in eval mode (BatchNorm with its running statistics, so f is piecewise linear and treats
each image on its own), is a classifier of images with a threshold t, and the L^p margin
of an image x is its L^p distance to the level set {f = t} (eq. 3 with f − t).

Thresholds (:data:`THRESHOLDS`), each a boundary {f = t} between the two classes:

* ``relativistic``: the paper's own boundary for relativistic average critics (App. C.1):
  a real image x is measured against the mean score of the generated images,
  t = mean f(fakes), and a generated image against the mean score of the reals,
  t = mean f(reals); it is the primary definition for the RaHinge critics of Table 3;
* ``zero``: t = 0, the boundary the hinge losses aim at (real above +1, fake below −1);
* ``midpoint``: t = (mean f(reals) + mean f(fakes)) / 2 over the measured images, our own
  second view. A WGAN critic is defined up to a constant (its loss is unchanged when f
  shifts), so 0 means nothing for it; the midpoint between its average real and fake
  scores does.

An image is *correct* when it lies on its class's side of its boundary (a real image above,
a generated one below); its *signed* margin is its distance to the boundary, negative when
it is on the wrong side (:func:`mmgan.critics.report.per_critic`).

Per image and order p ∈ {1, 2, ∞}, three numbers bracket or approximate the distance:

* ``upper``: :func:`mmgan.margins.boundary_distances` (augmented Lagrangian search,
  pooled over orders). Its boundary point is checked here: f − t changes sign between x
  and the point pushed 0.1% further along the same ray (``sign_change``), so the distance
  is an upper bound of the true margin wherever the check passes.
* ``lower``: |f(x) − t| / Lip_p(f), a certified lower bound, with Lip_p the product of
  the layers' operator norms (:func:`lipschitz_bound`). It is loose (the product ignores
  how layers align) but needs no search and cannot be wrong.
* ``certified``: a certified lower bound by linear bound propagation (CROWN,
  :func:`mmgan.critics.certify.certified_radius`): the largest radius, found by bisection below the
  best upper bound, on which f − t provably keeps its sign. Much tighter than ``lower``.
* ``taylor``: the first-order margin |f(x) − t| / ‖∇f(x)‖_dual(p) of §3, neither bound.

:func:`minimum_norm_attack` adds an independent upper bound from foolbox's FMN attack
(Pintor et al., 2021), when foolbox is installed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmgan.base.manifest import record_in_manifest
from mmgan.base.processes import available_cores, run_tasks
from mmgan.base.randomness import normal
from mmgan.base.registry import check_choice, check_int, lookup
from mmgan.base.results import (
    atomic_write_text,
    environment,
    read_csv,
    read_json,
    results_root,
    shown_path,
)
from mmgan.base.run_folder import CHECKPOINT, snapshot_path
from mmgan.critics.certify import certified_radius
from mmgan.critics.report import primary_threshold
from mmgan.exact import parameter_dtype
from mmgan.gan.data import load_images
from mmgan.gan.models import Flatten, kept_statistics
from mmgan.gan.tables import STUDIES, cell_name, study_source, table_configs, table_folder
from mmgan.gan.trained import NETWORKS, TrainedGAN, export_networks, load_run, rerun_advice, weights_file
from mmgan.margins import MARGIN_ORDERS, boundary_distances, taylor_margin
from mmgan.penalties import input_gradient

THRESHOLDS: tuple[str, ...] = ("relativistic", "zero", "midpoint")
#: Settings of the boundary search for images (fewer restarts than Table 1: 256+ dimensions, few points).
SEARCH: dict[str, Any] = dict(restarts=2, data_restarts=2, max_steps=150, polish_steps=4, tol=1e-3)


def measurement_images(run: TrainedGAN, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images and ``n`` generated images (eval-mode generator, noise from ``seed``).

    The CPU studies train on every image of their data set, so there are no held-out reals.
    """
    check_int(n, "n", minimum=1)
    config = run.config
    images = load_images(config.dataset, config.image_size, config.channels, config.data_root)
    gen = torch.Generator().manual_seed(seed)
    reals = images[torch.randperm(images.shape[0], generator=gen)[:n]].to(parameter_dtype(run.critic))
    with torch.no_grad():
        fakes = run.generator(normal((n, config.z_dim), gen))
    return reals, fakes


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


def class_thresholds(real_scores: torch.Tensor, fake_scores: torch.Tensor, rule: str) -> tuple[float, float]:
    """The boundary values (t for the real images, t for the generated ones) of a threshold rule
    (:data:`THRESHOLDS`, see the module docstring)."""
    check_choice(rule, THRESHOLDS, "threshold")
    real_mean, fake_mean = float(real_scores.mean()), float(fake_scores.mean())
    if rule == "relativistic":
        return fake_mean, real_mean
    t = 0.0 if rule == "zero" else 0.5 * (real_mean + fake_mean)
    return t, t


def measure_critic(critic: nn.Sequential, reals: torch.Tensor, fakes: torch.Tensor, threshold: str = "midpoint",
                   orders: Sequence[float] = MARGIN_ORDERS, search: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per (image, order p): score, threshold t of its boundary, and the upper / Taylor / lower margins
    of f − t; the images that share a boundary value are searched together."""
    x = torch.cat([reals, fakes]).to(parameter_dtype(critic))
    with torch.no_grad():
        scores = critic(x)
    t_real, t_fake = class_thresholds(scores[: len(reals)], scores[len(reals):], threshold)
    per_image = torch.tensor([t_real] * len(reals) + [t_fake] * len(fakes), dtype=torch.float64)
    rows = []
    for t in dict.fromkeys((t_real, t_fake)):
        chosen = torch.nonzero(per_image == t).flatten()

        def f(z: torch.Tensor, t: float = t) -> torch.Tensor:
            return critic(z) - t

        found = boundary_distances(f, x[chosen], tuple(orders), **{**SEARCH, **(search or {})})
        for p, result in found.items():
            lower = (scores[chosen] - t).abs() / lipschitz_bound(critic, tuple(x.shape[1:]), p)
            taylor = taylor_margin(f, x[chosen], p)
            sign_ok = _sign_change(f, x[chosen], result.point)
            for j, i in enumerate(chosen.tolist()):
                rows.append({"image": "real" if i < len(reals) else "fake", "index": i % len(reals), "p": p,
                             "score": float(scores[i]), "threshold": t, "side": "above" if scores[i] > t else "below",
                             "upper": float(result.distance[j]), "taylor": float(taylor[j]), "lower": float(lower[j]),
                             "sign_change": bool(sign_ok[j]), "converged": bool(result.converged[j])})
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



def study_runs(table: str, root: Path | str | None = None, cells: Sequence[str] | None = None) -> pd.DataFrame:
    """The runs of a table's committed CPU study (:data:`mmgan.gan.table_specs.STUDIES`) under ``root`` (default:
    ``gan/`` of the results root): cell, seed, folder; ``cells`` keeps those cells only (for a replicate that
    retrained some cells of a study)."""
    lookup(STUDIES, str(table), "table (a committed study)")
    root = Path(root) if root is not None else results_root() / "gan"
    source, overrides = study_source(str(table))
    if cells is not None:
        overrides = {**overrides, "cells": list(cells)}
    runs, base = table_configs(source, "cpu", **overrides)
    folder = table_folder(source, "cpu", base, root)
    return pd.DataFrame([{"cell": cell_name(loss, q, g), "loss": loss, "q": q, "g": g, "seed": seed,
                          "folder": str(folder / f"{cell_name(loss, q, g)}-s{seed}")} for loss, q, g, seed in runs])


#: Bisection steps of the CROWN certificate: it is exact to the best upper bound / 2^CERTIFY_STEPS, rounded down.
CERTIFY_STEPS = 10


def certify_rows(critic: nn.Sequential, x: torch.Tensor, rows: pd.DataFrame,
                 steps: int = CERTIFY_STEPS) -> np.ndarray:
    """The ``certified`` column for one critic's measured rows (images ``x`` = reals then fakes, as measured),
    below each row's best upper bound (estimator or FMN), one bisection per (threshold value, order p)."""
    with torch.no_grad():
        scores = critic(x.to(parameter_dtype(critic))).double().flatten().cpu().numpy()
    certified = np.full(len(rows), np.nan)
    for (t, p), group in rows.groupby(["threshold", "p"], sort=False):
        at = rows.index.get_indexer(group.index)
        where = image_positions(group, len(x) // 2)
        if not np.allclose(group["score"].to_numpy(), scores[where], rtol=1e-4, atol=1e-4):
            raise ValueError("the images to certify are not those measured: their critic scores differ")
        upper = np.minimum(group["upper"].to_numpy(), group["fmn"].fillna(np.inf).to_numpy())
        certified[at] = certified_radius(critic, x[torch.from_numpy(where)], float(t), float(p),
                                         torch.from_numpy(upper), steps).cpu().numpy()
    return certified


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


def measure_run(folder: str, images: int, thresholds: Sequence[str], fmn_steps: int,
                search: dict[str, Any] | None = None, iteration: int | None = None) -> pd.DataFrame:
    """Every margin of one run's final critic, or of its snapshot at ``iteration`` (a task of
    :func:`measure_study`), with the run's FDDs (``fdd_at_iteration``: at the measured weights)."""
    run = load_run(folder, iteration)
    reals, fakes = measurement_images(run, images)
    x = torch.cat([reals, fakes])
    frames = []
    for threshold in thresholds:
        frame = measure_critic(run.critic, reals, fakes, threshold, search=search).assign(threshold_rule=threshold)
        frame["fmn"] = math.nan
        if fmn_steps:
            for (t, p), group in frame.groupby(["threshold", "p"], sort=False):
                where = torch.from_numpy(image_positions(group, len(reals)))
                frame.loc[group.index, "fmn"] = minimum_norm_attack(run.critic, x[where], float(t), p,
                                                                    fmn_steps).double().numpy()
        frame["certified"] = certify_rows(run.critic, x, frame)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    training = load_images(run.config.dataset, run.config.image_size, run.config.channels, run.config.data_root)
    nearest = {p: nearest_training_distance(fakes, training, p).numpy() for p in MARGIN_ORDERS}
    out["nn_distance"] = [nearest[p][i] if image == "fake" else math.nan
                          for p, image, i in zip(out["p"], out["image"], out["index"])]
    for name, value in batchnorm_views(run.critic, reals, fakes).items():
        out[name] = value
    out["final_fdd"], out["lowest_fdd"] = run.summary["final"], run.summary["lowest"]
    out["first_fdd"] = run.summary["history"][0][1] if run.summary.get("history") else math.nan
    out["iteration"] = run.summary["iterations"] if iteration is None else iteration
    out["fdd_at_iteration"] = dict(map(tuple, run.summary.get("history", []))).get(int(out["iteration"].iloc[0]),
                                                                                  math.nan)
    return out


def measure_study(table: str, images: int = 32, thresholds: Sequence[str] = THRESHOLDS, fmn_steps: int = 1000,
                  workers: int = 1, root: Path | str | None = None, runs: int | None = None,
                  search: dict[str, Any] | None = None, progress: bool = False,
                  iterations: Sequence[int | None] = (None,), cells: Sequence[str] | None = None) -> pd.DataFrame:
    """Margins of every critic of a table's study: one task per run and iteration, over ``workers`` processes.

    ``runs`` keeps the first few runs only (the chapter's quick check); ``iterations`` lists
    the weights measured per run: ``None`` for the final ones, a number for a snapshot; ``cells`` keeps those
    cells of the study only.
    """
    check_int(images, "images", minimum=1)
    check_int(fmn_steps, "fmn_steps", minimum=0)
    for threshold in thresholds:
        check_choice(threshold, THRESHOLDS, "threshold")
    plan = study_runs(table, root, cells)
    if runs is not None:
        plan = plan.head(check_int(runs, "runs", minimum=1))
    for folder in plan["folder"]:  # every run's weights exist, before any task starts
        for iteration in iterations:
            if iteration is None:
                weights_file(folder)
            elif not snapshot_path(folder, iteration).is_file():
                raise FileNotFoundError(f"{folder} has no snapshot of iteration {iteration}: "
                                        f"{rerun_advice(folder, iteration)}")
    jobs = [(row, iteration) for _, row in plan.iterrows() for iteration in iterations]
    tasks = [(measure_run, (row["folder"], images, tuple(thresholds), fmn_steps, search, iteration))
             for row, iteration in jobs]
    results = run_tasks(tasks, workers, desc="critics" if progress else None)
    frames = [result.assign(**row[["cell", "loss", "q", "g", "seed"]].to_dict())
              for result, (row, _) in zip(results, jobs)]
    return pd.concat(frames, ignore_index=True)


#: Where the committed measurements live: ``<root>/table<N>.csv`` and ``table<N>.json`` (final critics),
#: ``table<N>-training.csv`` / ``.json`` (critics along training, :data:`ALONG_TRAINING`), under the results
#: root (:func:`mmgan.base.results.results_root`).
MEASUREMENTS = "critic_margins"
ALONG_TRAINING = "-training"


def save_measurements(frame: pd.DataFrame, table: str, meta: dict[str, Any], root: Path | str | None = None,
                      kind: str = "") -> Path:
    """Write ``<root>/table<N><kind>.csv`` and its ``.json`` atomically and record both in ``root``'s manifest
    (:func:`mmgan.base.manifest.record_in_manifest`: committed measurements are checked wherever they are read)."""
    root = Path(root) if root is not None else results_root() / MEASUREMENTS
    path = root / f"table{table}{kind}.csv"
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.7g"))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str))
    record_in_manifest(root, [path, path.with_suffix(".json")])
    return path


def load_measurements(table: str, root: Path | str | None = None,
                      kind: str = "") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The committed measurements of a table (``kind``: "" or :data:`ALONG_TRAINING`) and their meta data
    (settings, wall time, environment)."""
    path = (Path(root) if root is not None else results_root() / MEASUREMENTS) / f"table{table}{kind}.csv"
    remedy = f"measure them with `mmgan critic-margins {table}" + \
        (" --along-training ITERATION ...`" if kind else "`")
    frame = read_csv(path, remedy, dtype={"cell": str, "loss": str, "q": str, "g": str, "image": str})
    missing = sorted({"cell", "seed", "p", "image", "upper", "lower", "taylor", "fmn", "threshold_rule"} - set(frame))
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; {remedy}")
    return frame, read_json(path.with_suffix(".json"), remedy)


def default_thresholds(table: str, root: Path | str | None = None) -> tuple[str, ...]:
    """The boundaries a study's critics are measured at: its primary one
    (:func:`mmgan.critics.report.primary_threshold`) and our real/fake midpoint."""
    losses = study_runs(table, root)["loss"].unique()
    return tuple(dict.fromkeys((primary_threshold(list(losses)), "midpoint")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mmgan critic-margins",
        description="Measure the margins of the critics of a table's committed study and write them to "
                    "OUT/table<N>.csv and .json (recorded in OUT's manifest).")
    parser.add_argument("table", help=f"a table with a committed study: {', '.join(STUDIES)}")
    parser.add_argument("--images", type=int, default=32, help="real and generated images per critic (default 32)")
    parser.add_argument("--fmn-steps", dest="fmn_steps", type=int, default=1000, help="0: no FMN cross-check")
    parser.add_argument("--thresholds", nargs="+", choices=THRESHOLDS,
                        help="default: the study's primary boundary and the midpoint")
    parser.add_argument("--workers", type=int, default=available_cores(),
                        help="CPU processes (default: the available cores)")
    parser.add_argument("--root", type=Path, help="folder of the GAN tables (default: results/gan of this checkout)")
    parser.add_argument("--out", type=Path,
                        help="folder of the measurements (default: results/critic_margins of this checkout)")
    parser.add_argument("--cells", nargs="+", help="these cells of the study only (default: all)")
    parser.add_argument("--runs", type=int, metavar="N",
                        help="the first N runs only: a quick check of the command, not a study")
    parser.add_argument("--export-networks", dest="export", action="store_true",
                        help=f"write {NETWORKS} beside each run's checkpoint.pt (to commit them) and stop")
    parser.add_argument("--along-training", dest="along", type=int, nargs="+", metavar="ITERATION",
                        help="measure the study's snapshots at these iterations and its end, at its primary "
                             "boundary only")
    args = parser.parse_args(argv)
    check_int(args.images, "--images", minimum=1)
    check_int(args.workers, "--workers", minimum=1)
    check_int(args.fmn_steps, "--fmn-steps", minimum=0)
    root = args.root if args.root is not None else results_root() / "gan"
    out = args.out if args.out is not None else results_root() / MEASUREMENTS
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the measurements")
    print(f"runs under {root}; measurements to {out}", file=sys.stderr)
    if args.runs is not None:
        check_int(args.runs, "--runs", minimum=1)
    if args.export:
        for folder in map(Path, study_runs(args.table, root, args.cells)["folder"]):
            if (folder / NETWORKS).is_file() and not (folder / CHECKPOINT).is_file():
                print(f"{folder / NETWORKS}: kept already (committed with the study; no checkpoint.pt to export "
                      "from)")
            else:
                print(f"wrote {export_networks(folder)}")
        return 0
    started = time.perf_counter()
    thresholds = tuple(args.thresholds or default_thresholds(args.table, root))
    if args.along:
        thresholds, iterations = thresholds[:1], [*args.along, None]
    else:
        iterations = [None]
    frame = measure_study(args.table, args.images, thresholds, args.fmn_steps, args.workers, root,
                          runs=args.runs, progress=True, iterations=iterations, cells=args.cells)
    meta = {"table": args.table, "cells": args.cells, "runs_measured": args.runs, "images": args.images,
            "fmn_steps": args.fmn_steps,
            "search": SEARCH,
            "thresholds": list(thresholds), "iterations": iterations, "runs": shown_path(root),
            "certify_steps": CERTIFY_STEPS, "workers": args.workers, "seconds": time.perf_counter() - started,
            "environment": environment(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = save_measurements(frame, args.table, meta, out, ALONG_TRAINING if args.along else "")
    print(path, f"{meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
