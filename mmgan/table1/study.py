"""Table 1 (§4.2, App. A): expected L^p margins of gradient-penalised classifiers on the swiss roll.

One *variant* of the experiment fixes the data (dimension, coordinate scale),
the network and the training protocol; it trains the 7 rows of Table 1 (no
penalty; g ∈ {LS, hinge} × q ∈ {2, ∞, 1}) for every seed as one batched model,
then measures the L^1, L^2 and L^∞ margins of fresh test points with
:func:`mmgan.margins.boundary_distance` and, in 2-D, checks the estimator
against an exact reference (:func:`mmgan.exact.distance_to_zero_set_2d`).

Its configuration and presets are :mod:`mmgan.table1.variant`; its saved results :mod:`mmgan.table1.files`.
Results are written to ``results/table1/<preset>-<key>/`` (``key`` digests the
configuration) and read back by later runs with the same configuration::

    mmgan table1 --preset paper --dim 2 --scale standardized
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmgan import exact
from mmgan.base.manifest import record_in_manifest
from mmgan.base.processes import available_cores, check_workers, run_tasks
from mmgan.base.results import (
    atomic_write_text,
    environment,
    read_csv,
    results_root,
)
from mmgan.margins import MARGIN_ORDERS, BoundarySearch, boundary_distance, pool_boundary_points
from mmgan.mlp import BatchedMLP
from mmgan.table1.files import (
    PROBE_FILE,
    load_table1,
    result_directory,
    save_table1,
)
from mmgan.table1.ray_reference import ray_distance
from mmgan.table1.swiss_roll import swiss_roll
from mmgan.table1.variant import (
    DEVICES,
    PRESETS,
    ROW_SETS,
    SCALES,
    Table1Config,
    Table1Result,
    make_config,
    model_layout,
    resolve_device,
)
from mmgan.toys.classifiers import (
    CLASSIFIER_PENALTY_POINTS,
    TrainingLog,
    train_penalized_classifiers,
)


def training_data(config: Table1Config) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [swiss_roll(config.n_train, config.scale, config.dim, config.noise, seed=1000 + s)
            for s in config.seeds]


def evaluation_data(config: Table1Config) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fresh test points per seed: ``n_eval`` per class (the paper: 256 of each class)."""
    return [swiss_roll(config.n_eval, config.scale, config.dim, config.noise, seed=2000 + s)
            for s in config.seeds]


def _train_models(config: Table1Config, device: torch.device, workers: int = 1,
                  progress: bool = False) -> tuple[BatchedMLP, TrainingLog]:
    """Train every (row, seed) model of a variant, laid out as :func:`model_layout`.

    With ``workers`` > 1 the models are split into that many contiguous parts, each
    trained in its own process (:func:`mmgan.base.processes.run_tasks`). A model's
    training never touches another model's numbers (its own batch entry of each
    matrix product, element-wise Adam, its seed's data stream), so the parts give
    the weights of training all models together bit for bit (tested).
    """
    parts = np.array_split(np.arange(len(config.specs) * len(config.seeds)), workers)
    tasks = [(_train_part, (config, part.tolist(), str(device), progress and k == 0)) for k, part in enumerate(parts)]
    results = run_tasks(tasks, workers)
    models, logs = [r[0] for r in results], [r[1] for r in results]
    model = BatchedMLP.from_weights(*[[torch.cat(layer) for layer in zip(*kind)]
                                      for kind in zip(*(m.layers() for m in models))])
    log = TrainingLog(iteration=logs[0].iteration, **{name: np.concatenate([getattr(g, name) for g in logs], axis=1)
                                                      for name in ("loss", "penalty", "accuracy", "grad_norm")})
    return model.to(device), log


def _train_part(config: Table1Config, indices: list[int], device: str,
                progress: bool) -> tuple[BatchedMLP, TrainingLog]:
    """Train the models ``indices`` of the variant's layout (a task of :func:`_train_models`)."""
    specs, seed_index = model_layout(config)
    model = BatchedMLP([config.seeds[seed_index[i]] for i in indices], config.dim, config.width,
                       config.layers).to(device)
    log = train_penalized_classifiers(model, [specs[i] for i in indices], [seed_index[i] for i in indices],
                                      training_data(config), config.iterations, stream_seeds=list(config.seeds),
                                      lam=config.lam, batch_size=config.batch_size, lr=config.lr,
                                      penalty_at=config.penalty_at, log_every=config.log_every, progress=progress)
    return model.cpu(), log


def _measure(model: BatchedMLP, seed_index: list[int], config: Table1Config,
             device: torch.device, workers: int = 1, progress: bool = False) -> dict[str, np.ndarray]:
    """Margins of every model on its seed's test points, for p = 1, 2, ∞ (and the 2-D reference).

    The work is a list of independent tasks, spread over ``workers`` processes: the
    boundary search of each order p on all points of all models (pooled here, as
    :func:`mmgan.margins.boundary_distances` does) and the reference of each model.
    """
    evaluation = evaluation_data(config)
    x = torch.stack([evaluation[i][0] for i in seed_index]).to(device, torch.float32)  # (M, N, d)
    y = torch.stack([evaluation[i][1] for i in seed_index]).to(device, torch.float32)
    m, n, _ = x.shape
    with torch.no_grad():
        scores = model(x)
    out: dict[str, np.ndarray] = {
        "x": x.cpu().numpy(), "y": y.cpu().numpy(), "score": scores.cpu().numpy(),
        "orders": np.array(MARGIN_ORDERS),
    }
    layers = model.layers()
    flat_x = x.reshape(m * n, -1)
    # groups: data restarts head for points of the same model only
    search = dict(tol=config.tol, max_steps=config.max_steps, restarts=config.restarts,
                  polish_steps=config.polish_steps, data_restarts=config.data_restarts,
                  groups=torch.arange(m, device=x.device).repeat_interleave(n))
    tasks = [(_search_order, (layers, flat_x, n, p, search)) for p in MARGIN_ORDERS]
    if config.dim == 2:
        box = _reference_box(x)
        tasks += [(_exact_reference, (_model_layers(layers, i), x[i], box, config.exact_resolution)) for i in range(m)]
    results = run_tasks(tasks, workers, desc="margin tasks" if progress else None)
    searches = pool_boundary_points(flat_x, dict(zip(map(float, MARGIN_ORDERS), results[:len(MARGIN_ORDERS)])))
    out["distance"] = np.stack([s.distance.reshape(m, n).cpu().numpy() for s in searches.values()], 1)  # (M, P, N)
    out["converged"] = np.stack([s.converged.reshape(m, n).cpu().numpy() for s in searches.values()], 1)
    out["point"] = np.stack([s.point.reshape(m, n, -1).cpu().numpy() for s in searches.values()], 1)  # (M, P, N, d)
    if config.dim == 2:
        out["exact"] = np.stack(results[len(MARGIN_ORDERS):])
    else:
        extent = 2.0 * float(x.abs().max())
        tasks = [(_ray_reference, (_model_layers(layers, i), x[i], out["distance"][i], extent)) for i in range(m)]
        out["ray"] = np.stack(run_tasks(tasks, workers, desc="ray references" if progress else None))
    return out


def _model_layers(layers: tuple[list[torch.Tensor], list[torch.Tensor]],
                  index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The layers of model ``index`` alone (a one-model stack), to send to a task."""
    return [w[index:index + 1] for w in layers[0]], [b[index:index + 1] for b in layers[1]]


def _search_order(layers: tuple[list[torch.Tensor], list[torch.Tensor]], x: torch.Tensor, points_per_model: int,
                  p: float, search: dict[str, Any]) -> BoundarySearch:
    """:func:`mmgan.margins.boundary_distance` of order p for all points of all models (a task)."""
    return boundary_distance(BatchedMLP.from_weights(*layers).flat(points_per_model), x, p, **search)


#: 3-D ray reference: points per class and model, and directions on the L^p unit sphere.
RAY_POINTS_PER_CLASS = 8
RAY_DIRECTIONS = 2048


def ray_reference_points(n_eval: int) -> np.ndarray:
    """Indices of the test points that get a ray reference: the first few of each class."""
    k = min(RAY_POINTS_PER_CLASS, n_eval)
    return np.concatenate([np.arange(k), n_eval + np.arange(k)])


def _ray_reference(layers: tuple[list[torch.Tensor], list[torch.Tensor]], x: torch.Tensor, distance: np.ndarray,
                   extent: float) -> np.ndarray:
    """(P, N) independent reference distances of one model in 3-D (NaN for points without one).

    :func:`mmgan.table1.ray_reference.ray_distance` casts rays in :data:`RAY_DIRECTIONS` directions
    up to 1.5 × the estimator's distance ``distance`` (P, N) (a boundary point lies there, so
    the true distance is within reach) or, where the estimator found none, up to ``extent``.
    """
    n = x.shape[0]
    index = ray_reference_points(n // 2)
    reference = np.full((len(MARGIN_ORDERS), n), np.nan)
    net = BatchedMLP.from_weights(*layers).model(0).to(x.device)
    for j, p in enumerate(MARGIN_ORDERS):
        estimate = torch.as_tensor(distance[j, index], dtype=torch.float64)
        radius = torch.where(torch.isfinite(estimate), 1.5 * estimate, torch.full_like(estimate, extent))
        found = ray_distance(net, x[index], p, n_directions=RAY_DIRECTIONS, radius=radius.to(x.device))
        reference[j, index] = found.distance.cpu().numpy()
    return reference


def _reference_box(x: torch.Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    """The box the 2-D zero sets are traced in: the test points of all models, padded by a quarter of their extent."""
    x64 = x.detach().cpu().to(torch.float64)
    pad = 0.25 * float(x64.abs().max())
    return ((float(x64[..., 0].min()) - pad, float(x64[..., 1].min()) - pad),
            (float(x64[..., 0].max()) + pad, float(x64[..., 1].max()) + pad))


def _exact_reference(layers: tuple[list[torch.Tensor], list[torch.Tensor]], x: torch.Tensor,
                     box: tuple[tuple[float, float], tuple[float, float]], resolution: int) -> np.ndarray:
    """(P, N) reference distances of one model from its zero set traced on a grid (2-D only, a task)."""
    net = BatchedMLP.from_weights(*layers).model(0).cpu()
    lines = exact.zero_set_2d(net, box[0], box[1], resolution)  # traced once, measured in every order
    return np.stack([exact.polylines_distance(x.detach().cpu(), lines, p).numpy() for p in MARGIN_ORDERS])


def margin_statistics(samples: dict[str, np.ndarray], config: Table1Config) -> pd.DataFrame:
    """Per (row, seed, p): the three expected margins of a classifier, with what qualifies them.

    * ``distance``: mean over test points of the eq. 3 distance to the zero set (the paper's
      "expected L^p margin"; a distance, so never negative);
    * ``signed``: the same distances with misclassified points counted negatively (§3.2's sign);
    * ``correct_only``: the mean distance over correctly classified points only;
    * ``accuracy`` on the test points, ``nonconverged_share`` of the margin searches and
      ``not_found_share`` (points with no boundary point found, e.g. a classifier constant
      around them; left out of the means).
    """
    rows = []
    correct = samples["score"] * samples["y"] > 0  # (M, N)
    models = [(spec, seed) for spec in config.specs for seed in config.seeds]
    for i, (spec, seed) in enumerate(models):
        for j, p in enumerate(MARGIN_ORDERS):
            d = samples["distance"][i, j]
            found = np.isfinite(d)
            kept = found & correct[i]
            rows.append({
                "row": spec.label, "g": spec.g or "none", "q": "none" if spec.q is None else spec.q,
                "seed": seed, "p": p,
                "distance": float(np.mean(d[found])) if found.any() else np.nan,
                "signed": float(np.mean(np.where(correct[i], d, -d)[found])) if found.any() else np.nan,
                "correct_only": float(np.mean(d[kept])) if kept.any() else np.nan,
                "accuracy": float(correct[i].mean()),
                "nonconverged_share": float(1 - samples["converged"][i, j].mean()),
                "not_found_share": float(np.mean(~found)),
            })
    return pd.DataFrame(rows)


def _summarise(config: Table1Config, samples: dict[str, np.ndarray], train_accuracy: np.ndarray) -> pd.DataFrame:
    """summary.csv: :func:`margin_statistics` under the file's column names, plus the training
    accuracy and, in 2-D, the estimator's errors against the exact reference."""
    stats = margin_statistics(samples, config)
    frame = stats.rename(columns={"distance": "distance_mean", "signed": "margin_mean",
                                  "correct_only": "correct_margin_mean", "accuracy": "test_accuracy"})
    frame["train_accuracy"] = np.repeat(train_accuracy, len(MARGIN_ORDERS))
    if "exact" in samples:
        errors = []
        for i in range(samples["distance"].shape[0]):
            for j in range(len(MARGIN_ORDERS)):
                rel, both = exact.relative_errors(samples["distance"][i, j], samples["exact"][i, j])
                errors.append({"exact_median_abs_rel": float(np.median(np.abs(rel))) if both.any() else np.nan,
                               "exact_p95_abs_rel": float(np.quantile(np.abs(rel), 0.95)) if both.any() else np.nan,
                               "exact_min_rel": float(np.min(rel)) if both.any() else np.nan,
                               "exact_unmatched_share": float(1 - both.mean())})
        frame = pd.concat([frame, pd.DataFrame(errors)], axis=1)
    for name in ("dim", "scale", "iterations", "width", "penalty_at", "preset"):
        frame[name] = getattr(config, name)
    return frame


def _curves(config: Table1Config, log) -> pd.DataFrame:
    models = [(spec.label, seed) for spec in config.specs for seed in config.seeds]
    frames = []
    for i, (label, seed) in enumerate(models):
        frames.append(pd.DataFrame({"row": label, "seed": seed, "iteration": log.iteration,
                                    "loss": log.loss[:, i], "penalty": log.penalty[:, i],
                                    "accuracy": log.accuracy[:, i], "grad_norm": log.grad_norm[:, i]}))
    return pd.concat(frames, ignore_index=True)


@torch.no_grad()
def _train_accuracy(model: BatchedMLP, seed_index: list[int], data, device: torch.device) -> np.ndarray:
    """Accuracy of every model on its seed's points ``data`` (training or test points)."""
    x = torch.stack([data[i][0] for i in seed_index]).to(device, torch.float32)
    y = torch.stack([data[i][1] for i in seed_index]).to(device, torch.float32)
    return (model(x) * y > 0).float().mean(1).cpu().numpy()


def run_table1(config: Table1Config, root: Path | str, force: bool = False,
               progress: bool = True, workers: int = 1) -> Table1Result:
    """Train, measure and save one variant, or load it if ``root`` already holds this configuration.

    ``workers`` CPU processes share the work (:func:`_train_models`, :func:`_measure`);
    the results do not depend on their number (with one thread per process).
    """
    config.validate()
    device = resolve_device(config.device)
    check_workers(workers, device)
    directory = result_directory(config, Path(root))
    if not force and (directory / "summary.csv").exists():
        return load_table1(directory)
    torch.manual_seed(0)
    _, seed_index = model_layout(config)
    started = time.perf_counter()
    model, log = _train_models(config, device, workers, progress)
    trained = time.perf_counter()
    samples = _measure(model, seed_index, config, device, workers, progress)
    measured = time.perf_counter()
    summary = _summarise(config, samples, _train_accuracy(model, seed_index, training_data(config), device))
    meta = {"config": dataclasses.asdict(config), "key": config.key(), "environment": environment(),
            "workers": workers, "seconds": {"training": trained - started, "margins": measured - trained},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    result = Table1Result(config, summary, _curves(config, log), samples, model.cpu(), meta, directory)
    save_table1(result, directory)
    return result


def probe_accuracy(config: Table1Config, workers: int = 1) -> pd.DataFrame:
    """Train a variant without measuring margins; held-out accuracy of every (row, seed).

    The cheap half of :func:`run_table1`, used to search for a protocol whose classifiers learn.
    """
    config.validate()
    device = resolve_device(config.device)
    check_workers(workers, device)
    torch.manual_seed(0)
    specs, seed_index = model_layout(config)
    started = time.perf_counter()
    model, _ = _train_models(config, device, workers)
    seconds = time.perf_counter() - started
    accuracy = _train_accuracy(model, seed_index, evaluation_data(config), device)
    return pd.DataFrame({"preset": config.preset, "dim": config.dim, "scale": config.scale, "width": config.width,
                         "lr": config.lr, "iterations": config.iterations, "row": [s.label for s in specs],
                         "seed": [config.seeds[i] for i in seed_index], "held_out_accuracy": accuracy,
                         "seconds": seconds})


#: Settings of the margin search and of the exact reference (not of training).
MARGIN_FIELDS: tuple[str, ...] = ("n_eval", "restarts", "data_restarts", "max_steps", "polish_steps", "tol",
                                  "exact_resolution")


def remeasure(directory: Path | str, root: Path | str, workers: int = 1, **changes: Any) -> Table1Result:
    """Measure the saved networks of a run again with the current estimator (no retraining).

    The training-related configuration and curves are kept; the margin settings
    (:data:`MARGIN_FIELDS`) are those of the current preset unless ``changes`` overrides them.
    The result is saved under the key of the new configuration.
    """
    old = load_table1(directory)
    current = make_config(old.config.preset, dim=old.config.dim, scale=old.config.scale)
    margin_settings = {name: getattr(current, name) for name in MARGIN_FIELDS}
    config = dataclasses.replace(old.config, **{**margin_settings, **changes}).validate()
    device = resolve_device(config.device)
    check_workers(workers, device)
    model = old.model.to(device)
    _, seed_index = model_layout(config)
    started = time.perf_counter()
    samples = _measure(model, seed_index, config, device, workers)
    summary = _summarise(config, samples, _train_accuracy(model, seed_index, training_data(config), device))
    meta = {**old.meta, "config": dataclasses.asdict(config), "key": config.key(), "environment": environment(),
            "seconds": {**old.meta["seconds"], "margins": time.perf_counter() - started},
            "remeasured_from": str(Path(directory).name), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    target = result_directory(config, Path(root))
    result = Table1Result(config, summary, old.curves, samples, model.cpu(), meta, target)
    save_table1(result, target)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mmgan table1",
        description="Train and measure one variant of Table 1 (classifiers on the swiss roll), or load it when "
                    "--root already holds it.")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--dim", type=int, choices=(2, 3))
    parser.add_argument("--scale", choices=SCALES)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--lr", type=float)
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--lam", type=float, help="penalty weight λ of every row (default: the preset's)")
    weight.add_argument("--gamma", type=float,
                        help="with --rows zero_centred: γ of R1/R2 instead of --lam (λ = γ/2)")
    parser.add_argument("--penalty-at", dest="penalty_at", choices=CLASSIFIER_PENALTY_POINTS)
    parser.add_argument("--rows", choices=sorted(ROW_SETS), help="which penalties to train (default: Table 1's)")
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--workers", type=int,
                        help="CPU processes sharing the work (default: the available cores with --device cpu, else 1)")
    parser.add_argument("--root", type=Path,
                        help="folder of the Table 1 variants (default: results/table1 of this checkout)")
    parser.add_argument("--force", action="store_true", help="retrain even if results exist")
    parser.add_argument("--remeasure", metavar="DIR", help="measure the networks saved in DIR again (no training)")
    parser.add_argument("--probe", action="store_true",
                        help=f"train only and append the held-out accuracies to ROOT/{PROBE_FILE}")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else results_root() / "table1"
    if args.gamma is not None:
        if args.rows != "zero_centred":
            parser.error("--gamma is the weight of the zero-centred penalties R1/R2: give it with --rows "
                         "zero_centred, or give --lam")
        if not (math.isfinite(args.gamma) and args.gamma > 0):
            parser.error(f"--gamma {args.gamma!r}: γ must be a finite number > 0 (γ = 0 is no penalty)")
        args.lam = args.gamma / 2
    device = resolve_device(args.device or "cpu")
    workers = args.workers if args.workers is not None else (available_cores() if device.type == "cpu" else 1)
    check_workers(workers, device)
    print(f"results root: {root}", file=sys.stderr)
    if args.remeasure:
        result = remeasure(args.remeasure, root, workers=workers)
        print(json.dumps(result.meta["seconds"]), result.directory)
        return
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("preset", "root", "force", "remeasure", "probe", "workers", "gamma")}
    config = make_config(args.preset, **overrides)
    if args.probe:
        frame = probe_accuracy(config, workers)
        path = root / PROBE_FILE
        old = read_csv(path, "delete it to start the search afresh") if path.exists() else None
        atomic_write_text(path, pd.concat([old, frame]).to_csv(index=False, float_format="%.6g"))
        record_in_manifest(path.parent, [path])
        print(frame.groupby("row", sort=False)["held_out_accuracy"].mean().round(3).to_string())
        return
    result = run_table1(config, root, force=args.force, workers=workers)
    print(json.dumps(result.meta["seconds"]), result.directory)


if __name__ == "__main__":
    main()
