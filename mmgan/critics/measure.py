"""Margins of trained GAN critics in image space (chapter "Margins of GAN critics"): the images, views and
thresholds they are measured at, over every critic of a study (the instruments: :mod:`mmgan.critics.instruments`).

The paper argues (§4) that penalising ‖∇f‖_q enlarges the critic's L^p margins with
p = dual(q), and that the L^∞ penalty, by enlarging L¹ margins, makes better GANs. It
measures margins only on the 2-D swiss roll. Here a critic f of a committed CPU study is a
classifier of images with a threshold t, and the L^p margin of an image x is its L^p distance
to the level set {f = t} (eq. 3 with f − t).

**Two views of the critic** (:data:`MODES`, ``--mode``; :mod:`mmgan.critics.held_batch`):

* ``train`` (primary, the critic as trained): BatchNorm normalises each class-pure batch of
  the training batch size b with the batch's own statistics, as in every training step. An
  image x is measured in its batch: the measured images of a class are cut, in order, into
  batches of b (the last filled with further images of the class, never measured), and x's
  b − 1 mates are *held fixed* while x moves; f(x) is the critic's score of x in that batch,
  a function of x alone whose batch statistics move with x (x's 1/b share of each channel's
  mean and variance). Every number of this view (scores, thresholds, margins, first-order
  estimates, FMN, certificates) is of that function.
* ``eval`` (second view): BatchNorm with its running statistics, each image scored on its own
  (the view the first measurements used; f is then piecewise linear).

**Thresholds** (:data:`THRESHOLDS`, :mod:`mmgan.critics.thresholds`), each a boundary {f = t}:

* ``relativistic``: the paper's own boundary for relativistic average critics (App. C.1):
  a real image x is measured against the mean score of the generated images,
  t = E f(fake), and a generated image against t = E f(real); primary for the RaHinge critics;
* ``zero``: t = 0, the boundary the hinge losses aim at (real above +1, fake below −1); it
  means something only where the loss pins the critic's level (``level``: "pinned"), and an
  accuracy at f = 0 is reported only then ("undetermined" otherwise: a WGAN or relativistic
  loss, or a HingeGAN critic with every score on the hinges' linear parts);
* ``midpoint``: t = (E f(real) + E f(fake)) / 2, our own second view.

The means are *population* means, estimated in the row's view from forward passes over
``--population`` images per class (default :data:`POPULATION`: training images and as many
generated ones, in class-pure batches of b in train mode), with their standard errors
(``threshold_se``); the threshold the measured images alone would give is kept beside
(``threshold_in_sample``, the definition of the first measurements).

An image is *correct* when it lies on its class's side of its boundary (a real image above,
a generated one below); its *signed* margin is its distance to the boundary, negative when
it is on the wrong side (:func:`mmgan.critics.report.per_critic`).

**Images, paired by design.** ``--images`` (default :data:`IMAGES`) real and as many generated
images per critic: the real images are the same training images for every critic of a data
set (a seeded draw, ``dataset_index``), so critics are compared on the same reals (primary);
the generated images are each generator's own, from the same noise (second view), drawn by the
eval-mode generator (the images every committed study's FDD scores, ``sample_mode: eval``). Both
views measure the same images.

What is measured at each image (upper and certified bounds, first-order estimate, FMN, soundness) is described
in :mod:`mmgan.critics.instruments`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmgan.base.manifest import file_digest, record_in_manifest
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
from mmgan.base.run_folder import CHECKPOINT, LOCK, SUMMARY, RunLock, snapshot_path
from mmgan.critics import soundness
from mmgan.critics import thresholds as threshold_rules
from mmgan.critics.held_batch import MODES, class_batches, critic_view
from mmgan.critics.instruments import (
    CERTIFY_STEPS,
    SEARCH,
    batchnorm_views,
    certify_rows,
    check_soundness,
    image_positions,
    measure_critic,
    minimum_norm_attack,
    nearest_training_distance,
)
from mmgan.critics.parts import finished_tasks, measured_part, parts_folder, parts_record
from mmgan.critics.report import primary_threshold
from mmgan.exact import parameter_dtype
from mmgan.gan.data import load_images
from mmgan.gan.models import kept_statistics
from mmgan.gan.tables import STUDIES, cell_name, study_source, table_configs, table_folder
from mmgan.gan.train import default_threads
from mmgan.gan.trained import NETWORKS, TrainedGAN, export_networks, load_run, rerun_advice, weights_file
from mmgan.margins import MARGIN_ORDERS

THRESHOLDS: tuple[str, ...] = threshold_rules.RULES
#: ``--mode both``: the two views, the primary (train) first.
MODE_CHOICES: tuple[str, ...] = (*MODES, "both")
#: Real and generated images measured per critic (each), and images per class of the population forward passes
#: that estimate the thresholds (a multiple of the studies' batch size, 32).
IMAGES = 64
POPULATION = 1024
#: Seeds of the draws: the measured images (and their batch mates), the population, the soundness sample.
IMAGE_SEED, POPULATION_SEED, SOUNDNESS_SEED = 0, 1, 0


def measurement_images(run: TrainedGAN, n: int, seed: int = IMAGE_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images and ``n`` generated images (eval-mode generator, noise from ``seed``).

    The CPU studies train on every image of their data set, so there are no held-out reals. The real images
    depend on the data set and ``seed`` alone: every critic of a data set is measured on the same ones.
    """
    found = measurement_set(run, n, seed)
    return found.reals, found.fakes


@dataclass
class MeasurementSet:
    """The measured images of one critic and what their train-mode batches are filled with: ``reals`` (the
    training images ``real_index`` of the data set), ``fakes``, and further images of each class that are batch
    mates only (``real_pool``, ``fake_pool``)."""

    reals: torch.Tensor
    fakes: torch.Tensor
    real_index: torch.Tensor
    real_pool: torch.Tensor
    fake_pool: torch.Tensor

    def mates(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch mates (2n, b − 1, ...) of the images ``cat([reals, fakes])`` in class-pure batches of
        ``batch_size``, and each image's batch (:func:`mmgan.critics.held_batch.class_batches`)."""
        real_mates, real_batch = class_batches(self.reals, batch_size, self.real_pool)
        fake_mates, fake_batch = class_batches(self.fakes, batch_size, self.fake_pool)
        return torch.cat([real_mates, fake_mates]), torch.cat([real_batch, fake_batch])


def measurement_set(run: TrainedGAN, n: int, seed: int = IMAGE_SEED) -> MeasurementSet:
    """The images :func:`measurement_images` returns, and batch mates to fill their last train-mode batches: the
    next training images of the same seeded permutation and generated images from the noise drawn next."""
    check_int(n, "n", minimum=1)
    config = run.config
    images = load_images(config.dataset, config.image_size, config.channels, config.data_root)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=gen)
    dtype = parameter_dtype(run.critic)
    reals = images[order[:n]].to(dtype)
    with torch.no_grad():
        fakes = run.generator(normal((n, config.z_dim), gen)).to(dtype)
        pool = run.generator(normal((config.batch_size, config.z_dim), gen)).to(dtype)
    return MeasurementSet(reals, fakes, order[:n], images[order[n:n + config.batch_size]].to(dtype), pool)


@dataclass
class Population:
    """Critic scores of ``population`` images per class in one view (``mode``), with the batch of each score in
    train mode (None in eval mode)."""

    mode: str
    real: torch.Tensor
    fake: torch.Tensor
    real_batches: torch.Tensor | None
    fake_batches: torch.Tensor | None

    def threshold(self, rule: str, loss: str) -> threshold_rules.Threshold:
        """The rule's boundary values for a critic trained with ``loss`` (:func:`mmgan.critics.thresholds.estimate`)."""
        return threshold_rules.estimate(rule, loss, self.real, self.fake, self.real_batches, self.fake_batches)


def view_scores(critic: nn.Sequential, images: torch.Tensor, mode: str, batch_size: int) -> tuple[torch.Tensor,
                                                                                               torch.Tensor | None]:
    """Scores of ``images`` in one view: eval mode one image at a time (in blocks of ``batch_size``, for memory),
    train mode in consecutive class-pure batches of ``batch_size`` each normalised with its own statistics (an
    incomplete last batch is left out); the critic's buffers are left as they were. Returns the scores and, in
    train mode, each score's batch."""
    check_choice(mode, MODES, "mode")
    if mode == "train":
        images = images[: images.shape[0] // batch_size * batch_size]
        if images.shape[0] == 0:
            raise ValueError(f"train-mode scores need at least one batch of {batch_size} images")
    was_training = critic.training
    try:
        with torch.no_grad(), kept_statistics(critic):
            critic.train(mode == "train")
            scores = torch.cat([critic(block) for block in images.split(batch_size)])
    finally:
        critic.train(was_training)
    batches = torch.arange(scores.shape[0], device=scores.device) // batch_size if mode == "train" else None
    return scores, batches


def population_scores(run: TrainedGAN, n: int, mode: str, seed: int = POPULATION_SEED) -> Population:
    """Scores of ``n`` training images (a seeded draw) and ``n`` generated images (eval-mode generator) in one
    view, in class-pure batches of the run's batch size in train mode (``n`` a multiple of it)."""
    check_int(n, "population", minimum=2)
    config = run.config
    images = load_images(config.dataset, config.image_size, config.channels, config.data_root)
    if n > images.shape[0]:
        raise ValueError(f"population={n} exceeds the {images.shape[0]} images of dataset={config.dataset!r}; "
                         f"choose at most {images.shape[0]}")
    if mode == "train" and (n % config.batch_size or n < 2 * config.batch_size):
        raise ValueError(f"population={n} must be a multiple of the batch size {config.batch_size}, at least two "
                         f"batches, for train-mode scores")
    gen = torch.Generator().manual_seed(seed)
    dtype = parameter_dtype(run.critic)
    reals = images[torch.randperm(images.shape[0], generator=gen)[:n]].to(dtype)
    with torch.no_grad():
        fakes = torch.cat([run.generator(noise) for noise in normal((n, config.z_dim), gen).split(
            config.sample_batch_size)]).to(dtype)
    real, real_batches = view_scores(run.critic, reals, mode, config.batch_size)
    fake, fake_batches = view_scores(run.critic, fakes, mode, config.batch_size)
    return Population(mode, real, fake, real_batches, fake_batches)


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


def measure_run(folder: str, images: int, thresholds: Sequence[str], fmn_steps: int,
                search: dict[str, Any] | None = None, iteration: int | None = None,
                modes: Sequence[str] = MODES, population: int = POPULATION, soundness_check: bool = False,
                timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Every margin of one run's final critic, or of its snapshot at ``iteration`` (a task of
    :func:`measure_study`), in each view of ``modes`` and at each rule of ``thresholds`` (estimated on
    ``population`` images per class), with the run's FDDs (``fdd_at_iteration``: at the measured weights);
    ``soundness_check`` adds ``certified_uncapped`` and ``violation``. ``timings``, when given, receives the
    seconds spent per (mode, part) as ``"<mode> <part>": [wall, CPU of this process]``, parts population,
    search (with the first-order and Lipschitz margins), fmn, certificate, soundness."""
    for mode in modes:
        check_choice(mode, MODES, "mode")
    run = load_run(folder, iteration)
    chosen = measurement_set(run, images)
    reals, fakes = chosen.reals, chosen.fakes
    x = torch.cat([reals, fakes])
    mates, batch = chosen.mates(run.config.batch_size)
    clock = timings if timings is not None else {}

    def timed(name: str, started: tuple[float, float]) -> None:
        spent = clock.setdefault(name, [0.0, 0.0])
        spent[0] += time.perf_counter() - started[0]
        spent[1] += time.process_time() - started[1]

    frames = []
    for mode in modes:
        started = time.perf_counter(), time.process_time()
        scores = population_scores(run, population, mode)
        timed(f"{mode} population", started)
        view_mates = mates if mode == "train" else None
        for threshold in thresholds:
            values = scores.threshold(threshold, run.config.loss)
            points: dict = {}
            started = time.perf_counter(), time.process_time()
            frame = measure_critic(run.critic, reals, fakes, threshold, search=search, values=values, mode=mode,
                                   mates=view_mates, points=points).assign(threshold_rule=threshold)
            timed(f"{mode} search", started)
            frame["fmn"] = math.nan
            started = time.perf_counter(), time.process_time()
            if fmn_steps:
                for (t, p), group in frame.groupby(["threshold", "p"], sort=False):
                    where = torch.from_numpy(image_positions(group, len(reals)))
                    view = critic_view(run.critic, mode, None if view_mates is None else view_mates[where])
                    frame.loc[group.index, "fmn"] = minimum_norm_attack(view, x[where], float(t), p,
                                                                        fmn_steps).double().numpy()
            timed(f"{mode} fmn", started)
            started = time.perf_counter(), time.process_time()
            frame["certified"] = certify_rows(run.critic, x, frame, mates=view_mates)
            timed(f"{mode} certificate", started)
            positions = image_positions(frame, len(reals))
            frame["batch"] = batch.numpy()[positions] if mode == "train" else math.nan
            frame["dataset_index"] = np.where(frame["image"] == "real",
                                              chosen.real_index.numpy()[frame["index"].to_numpy()], -1)
            frame["level"], frame["level_width"], frame["level_shift"] = (values.level, values.level_width,
                                                                          values.level_shift)
            frame["population"] = values.population
            frame["population_accuracy"] = math.nan if values.accuracy is None else values.accuracy
            frame["population_score_gap"] = values.score_gap
            if soundness_check:
                started = time.perf_counter(), time.process_time()
                checked = check_soundness(run.critic, x, frame, points, mates=view_mates)
                frame["certified_uncapped"], frame["violation"] = checked["certified_uncapped"], checked["violation"]
                timed(f"{mode} soundness", started)
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


#: The arguments of :func:`measure_run` that describe one task of a study (its part file's description).
TASK_FIELDS = tuple(name for name in inspect.signature(measure_run).parameters if name != "timings")


def critic_thresholds(folder: str, population: int = POPULATION, modes: Sequence[str] = MODES) -> pd.DataFrame:
    """One row per view and boundary rule of one run's final critic: the rule's boundary values with their standard
    errors, the loss's level and the population's accuracy (:class:`mmgan.critics.thresholds.Threshold`), from
    forward passes over ``population`` images per class; no margin is measured (a task of
    :func:`study_thresholds`)."""
    run = load_run(folder)
    rows = []
    for mode in modes:
        scores = population_scores(run, population, mode)
        rows += [{"mode": mode, **scores.threshold(rule, run.config.loss).as_dict()} for rule in THRESHOLDS]
    return pd.DataFrame(rows)


def study_plan(table: str, root: Path | str | None = None, cells: Sequence[str] | None = None,
               runs: int | None = None, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """:func:`study_runs`, kept to the runs of ``seeds`` in every cell (a paired subset), then to the first ``runs``
    (a quick check of a command)."""
    plan = study_runs(table, root, cells)
    if seeds is not None:
        missing = sorted(set(seeds) - set(plan["seed"]))
        if missing:
            raise ValueError(f"seeds {missing} are not in Table {table}'s study; valid: {sorted(set(plan['seed']))}")
        plan = plan[plan["seed"].isin(seeds)].reset_index(drop=True)
    return plan if runs is None else plan.head(check_int(runs, "runs", minimum=1))


def study_thresholds(table: str, root: Path | str | None = None, cells: Sequence[str] | None = None,
                     population: int = POPULATION, modes: Sequence[str] = MODES, workers: int = 1,
                     runs: int | None = None, seeds: Sequence[int] | None = None,
                     threads: int | None = None) -> pd.DataFrame:
    """:func:`critic_thresholds` of every final critic of a table's study (``cells``, ``runs`` and ``seeds`` of it:
    :func:`study_plan`), with its cell, loss and seed: every rule (:data:`THRESHOLDS`) in every view, whatever its
    margins were measured at; ``threads``: torch threads per worker (:func:`mmgan.base.processes.run_tasks`)."""
    plan = study_plan(table, root, cells, runs, seeds)
    results = run_tasks([(critic_thresholds, (row["folder"], population, tuple(modes))) for _, row in plan.iterrows()],
                        workers, threads)
    return pd.concat([result.assign(**row[["cell", "loss", "q", "g", "seed"]].to_dict())
                      for result, (_, row) in zip(results, plan.iterrows())], ignore_index=True)


def soundness_sample(tasks: int, critics: int, seed: int = SOUNDNESS_SEED) -> set[int]:
    """Which of ``tasks`` measured critics the soundness check runs on: ``critics`` of them, a seeded draw."""
    check_int(critics, "soundness", minimum=0)
    chosen = np.random.default_rng(seed).choice(tasks, size=min(critics, tasks), replace=False)
    return {int(k) for k in chosen}


def measure_study(table: str, images: int = IMAGES, thresholds: Sequence[str] = THRESHOLDS, fmn_steps: int = 1000,
                  workers: int = 1, root: Path | str | None = None, runs: int | None = None,
                  search: dict[str, Any] | None = None, progress: bool = False,
                  iterations: Sequence[int | None] = (None,), cells: Sequence[str] | None = None,
                  modes: Sequence[str] = MODES, population: int = POPULATION, soundness_critics: int = 0,
                  seeds: Sequence[int] | None = None, parts: Path | str | None = None,
                  threads: int | None = None) -> pd.DataFrame:
    """Margins of every critic of a table's study: one task per run and iteration, over ``workers`` processes.

    ``runs`` keeps the first few runs only (the chapter's quick check); ``iterations`` lists
    the weights measured per run: ``None`` for the final ones, a number for a snapshot; ``cells`` keeps those
    cells of the study only; ``modes`` the views, ``population`` the images per class of the thresholds'
    forward passes; ``soundness_critics`` critics (a seeded draw) get the soundness check; ``seeds`` keeps the runs
    of those seeds in every cell (a paired subset); ``parts``, a folder where each finished task is kept and from
    which a rerun reads it back (:mod:`mmgan.critics.parts`: an interrupted study resumes); ``threads``, torch
    threads per worker (:func:`mmgan.base.processes.run_tasks`).
    """
    check_int(images, "images", minimum=1)
    check_int(fmn_steps, "fmn_steps", minimum=0)
    check_int(population, "population", minimum=2)
    for threshold in thresholds:
        check_choice(threshold, THRESHOLDS, "threshold")
    for mode in modes:
        check_choice(mode, MODES, "mode")
    plan = study_plan(table, root, cells, runs, seeds)
    weights: dict[tuple[str, int | None], Path] = {}
    for folder in plan["folder"]:  # every run's weights exist, before any task starts
        for iteration in iterations:
            if iteration is None:
                weights[folder, iteration] = weights_file(folder)
            elif not snapshot_path(folder, iteration).is_file():
                raise FileNotFoundError(f"{folder} has no snapshot of iteration {iteration}: "
                                        f"{rerun_advice(folder, iteration)}")
            else:
                weights[folder, iteration] = snapshot_path(folder, iteration)
    jobs = [(row, iteration) for _, row in plan.iterrows() for iteration in iterations]
    checked = soundness_sample(len(jobs), soundness_critics)
    arguments = [(row["folder"], images, tuple(thresholds), fmn_steps, search, iteration, tuple(modes), population,
                  k in checked) for k, (row, iteration) in enumerate(jobs)]
    if parts is None:
        tasks = [(measure_run, args) for args in arguments]
    else:
        # a part describes the weights it measured too: a retrained run's critic is measured again, never read back
        described = [{**dict(zip(TASK_FIELDS, args, strict=True)),
                      "weights_sha256": file_digest(weights[row["folder"], iteration])}
                     for args, (row, iteration) in zip(arguments, jobs)]
        if progress:
            print(f"{parts}: {finished_tasks(parts, described)} of {len(described)} critics measured already",
                  file=sys.stderr)
        tasks = [(measured_part, (str(parts), task, measure_run, args)) for task, args in zip(described, arguments)]
    results = run_tasks(tasks, workers, threads, desc="critics" if progress else None)
    frames = [result.assign(**row[["cell", "loss", "q", "g", "seed"]].to_dict())
              for result, (row, _) in zip(results, jobs)]
    return pd.concat(frames, ignore_index=True)


def thresholds_per_critic(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per critic, view and boundary rule of measured rows: the boundary values the real and the generated
    images were measured against with their standard errors (``t real``, ``SE real``, ``t fake``, ``SE fake``),
    those the measured images alone would give (``in-sample real``, ``in-sample fake``), the loss's ``level``
    (:data:`mmgan.critics.thresholds.LEVELS`) and the population's accuracy at the boundary, as a number or
    "undetermined" where the loss does not pin the level (``accuracy``)."""
    keys = [key for key in ("cell", "loss", "q", "g", "seed", "iteration", "mode", "threshold_rule") if key in frame]
    first = frame.drop_duplicates(keys + ["image"])
    sides = {side: first[first["image"] == side].set_index(keys) for side in ("real", "fake")}
    out = pd.DataFrame({"t real": sides["real"]["threshold"], "SE real": sides["real"]["threshold_se"],
                        "t fake": sides["fake"]["threshold"], "SE fake": sides["fake"]["threshold_se"],
                        "in-sample real": sides["real"]["threshold_in_sample"],
                        "in-sample fake": sides["fake"]["threshold_in_sample"],
                        "level": sides["real"]["level"], "level width": sides["real"]["level_width"],
                        "population": sides["real"]["population"],
                        "accuracy": [("undetermined" if level == "undetermined" else float(accuracy))
                                     for level, accuracy in zip(sides["real"]["level"],
                                                                sides["real"]["population_accuracy"])]})
    return out.reset_index()


def soundness_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """The soundness check's count: critics and certified balls checked, and violations found (expected 0)."""
    if "violation" not in frame:
        return {"critics": 0, "balls": 0, "violations": 0}
    checked = frame[frame["certified_uncapped"].notna()]
    critics = checked.groupby(["cell", "seed", "iteration"]).ngroups if len(checked) else 0
    return {"critics": int(critics), "balls": int(len(checked)), "violations": int(checked["violation"].sum()),
            "by_mode": {mode: int(part["violation"].sum()) for mode, part in checked.groupby("mode")}}


#: Where the committed measurements live: ``<root>/table<N>.csv`` and ``table<N>.json`` (final critics),
#: ``table<N>-training.csv`` / ``.json`` (critics along training, :data:`ALONG_TRAINING`), under the results
#: root (:func:`mmgan.base.results.results_root`).
MEASUREMENTS = "critic_margins"
ALONG_TRAINING = "-training"
#: ``table<N>-thresholds.csv``: every boundary rule of every final critic in both views (``--thresholds-only``).
THRESHOLDS_ONLY = "-thresholds"


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


#: What :func:`load_measurements` returns by ``mode``: ``primary`` (the train-mode rows where measured, else the
#: eval-mode ones: one view, as every reader of the first measurements expects), one view, or ``all`` rows.
LOAD_MODES: tuple[str, ...] = ("primary", *MODES, "all")


def load_measurements(table: str, root: Path | str | None = None, kind: str = "",
                      mode: str = "primary") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The committed measurements of a table (``kind``: "" or :data:`ALONG_TRAINING`) in the view ``mode``
    (:data:`LOAD_MODES`) and their meta data (settings, wall time, environment). Measurements from before the
    views were told apart were all of the eval-mode critic: their rows get ``mode`` "eval"."""
    check_choice(mode, LOAD_MODES, "mode")
    path = (Path(root) if root is not None else results_root() / MEASUREMENTS) / f"table{table}{kind}.csv"
    remedy = f"measure them with `mmgan critic-margins {table}" + \
        (" --along-training ITERATION ...`" if kind else "`")
    frame = read_csv(path, remedy, dtype={"cell": str, "loss": str, "q": str, "g": str, "image": str,
                                          "mode": str, "level": str, "violation": "boolean"})
    missing = sorted({"cell", "seed", "p", "image", "upper", "lower", "taylor", "fmn", "threshold_rule"} - set(frame))
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; {remedy}")
    if "mode" not in frame:
        frame["mode"] = "eval"
    if mode == "primary":
        mode = "train" if (frame["mode"] == "train").any() else "eval"
    if mode != "all":
        frame = frame[frame["mode"] == mode].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"{path} has no {mode}-mode rows; measure them with `mmgan critic-margins {table} "
                             f"--mode {mode}`")
    return frame, read_json(path.with_suffix(".json"), remedy)


def verify_measured_weights(table: str, meta: dict[str, Any], root: Path | str | None = None,
                            measurements: pd.DataFrame | None = None) -> None:
    """Every critic a measurement measured is the one committed under ``root``: a study trained again after it was
    measured is refused, naming the command that measures it again. Checked on the SHA-256 of each critic's weights
    where the measurement records them (``meta["parts"]["weights"]``), else, for a measurement from before that
    record, on each run's final FDD as the measurement copied it (``measurements``' ``final_fdd``) against its
    summary's; a measurement with neither is not checked."""
    recorded = (meta.get("parts") or {}).get("weights")
    if not recorded and (measurements is None or "final_fdd" not in measurements):
        return
    plan = study_runs(table, root, meta.get("cells"))
    folders = {Path(folder).name: folder for folder in plan["folder"]}
    again = f"the run was trained again since; measure again: `mmgan critic-margins {table}`"
    if not recorded:
        copied = measurements.groupby(["cell", "seed"])["final_fdd"].first()
        for (cell, seed), final in copied.items():
            summary = read_json(Path(folders[f"{cell}-s{seed}"]) / SUMMARY, f"mmgan table {table} --preset cpu")
            if not math.isclose(float(summary["final"]), float(final), rel_tol=1e-6):
                raise ValueError(f"Table {table}'s margin measurement copied a final FDD of {final:.6g} for "
                                 f"{cell}-s{seed}, whose summary now says {summary['final']:.6g}: {again}")
        return
    for key, digest in recorded.items():
        name, _, iteration = key.partition("@")
        if name not in folders:
            raise ValueError(f"Table {table}'s margin measurement names a run {name!r} its study does not have "
                             f"(runs: {', '.join(sorted(folders))}); measure again: `mmgan critic-margins {table}`")
        path = snapshot_path(folders[name], int(iteration)) if iteration else weights_file(folders[name])
        if file_digest(path) != digest:
            raise ValueError(f"{path} is not the critic Table {table}'s margin measurement measured (SHA-256 "
                             f"{digest[:12]}… then): {again}")


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
    parser.add_argument("--images", type=int, default=IMAGES,
                        help=f"real and generated images per critic, each (default {IMAGES}); the real ones are the "
                             "same training images for every critic")
    parser.add_argument("--mode", default="both", choices=MODE_CHOICES,
                        help="the critic's view: train (BatchNorm with the statistics of each image's class-pure "
                             "batch of the training batch size, the critic as trained), eval (running statistics), "
                             "or both (default)")
    parser.add_argument("--population", type=int, default=POPULATION, metavar="N",
                        help=f"images per class of the forward passes that estimate the thresholds (default "
                             f"{POPULATION}; a multiple of the batch size in train mode)")
    parser.add_argument("--soundness", type=int, default=0, metavar="K",
                        help="search for a flip inside every uncapped certified ball of K critics of the study (a "
                             "seeded draw); default 0: no check")
    parser.add_argument("--fmn-steps", dest="fmn_steps", type=int, default=1000, help="0: no FMN cross-check")
    parser.add_argument("--thresholds", nargs="+", choices=THRESHOLDS,
                        help="default: the study's primary boundary and the midpoint")
    parser.add_argument("--workers", type=int, default=available_cores(),
                        help="CPU processes (default: the available cores)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="torch threads per process (default: $OMP_NUM_THREADS, else 1: a critic's operations are "
                             "small, and on a machine shared with other jobs threads beyond the free cores only spin); "
                             "recorded")
    parser.add_argument("--root", type=Path, help="folder of the GAN tables (default: results/gan of this checkout)")
    parser.add_argument("--out", type=Path,
                        help="folder of the measurements (default: results/critic_margins of this checkout)")
    parser.add_argument("--cells", nargs="+", help="these cells of the study only (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="the runs of these seeds in every cell only: a paired subset (default: all)")
    parser.add_argument("--runs", type=int, metavar="N",
                        help="the first N runs only: a quick check of the command, not a study")
    parser.add_argument("--thresholds-only", dest="thresholds_only", action="store_true",
                        help=f"estimate every boundary rule of every final critic in both views from --population "
                             f"images per class (table<N>{THRESHOLDS_ONLY}.csv), measure no margin, and stop")
    parser.add_argument("--export-networks", dest="export", action="store_true",
                        help=f"write {NETWORKS} beside each run's checkpoint.pt (to commit them) and stop")
    parser.add_argument("--along-training", dest="along", type=int, nargs="+", metavar="ITERATION",
                        help="measure the study's snapshots at these iterations and its end, at its primary "
                             "boundary only")
    args = parser.parse_args(argv)
    check_int(args.images, "--images", minimum=1)
    check_int(args.workers, "--workers", minimum=1)
    check_int(args.fmn_steps, "--fmn-steps", minimum=0)
    check_int(args.population, "--population", minimum=2)
    check_int(args.soundness, "--soundness", minimum=0)
    check_int(args.threads, "--threads", minimum=1)
    modes = MODES if args.mode == "both" else (args.mode,)
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
    if args.thresholds_only:
        frame = study_thresholds(args.table, root, args.cells, args.population, modes, args.workers, args.runs,
                                 args.seeds, args.threads)
        meta = {"table": args.table, "cells": args.cells, "population": args.population, "modes": list(modes),
                "runs": shown_path(root), "workers": args.workers, "threads": args.threads,
                "seconds": time.perf_counter() - started,
                "environment": environment(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        print(save_measurements(frame, args.table, meta, out, THRESHOLDS_ONLY), f"{meta['seconds']:.0f} s")
        return 0
    thresholds = tuple(args.thresholds or default_thresholds(args.table, root))
    if args.along:
        thresholds, iterations = thresholds[:1], [*args.along, None]
    else:
        iterations = [None]
    kind = ALONG_TRAINING if args.along else ""
    parts = parts_folder(out, args.table, kind)
    try:
        with RunLock(parts):
            frame = measure_study(args.table, args.images, thresholds, args.fmn_steps, args.workers, root,
                                  runs=args.runs, progress=True, iterations=iterations, cells=args.cells,
                                  modes=modes, population=args.population, soundness_critics=args.soundness,
                                  seeds=args.seeds, parts=parts, threads=args.threads)
    finally:  # a study refused before its first critic leaves no folder of parts behind (as a finished one)
        if parts.is_dir() and [path.name for path in parts.iterdir()] == [LOCK] and not (parts / LOCK).stat().st_size:
            shutil.rmtree(parts)
            if not any(parts.parent.iterdir()):
                parts.parent.rmdir()
    measured = parts_record(parts)
    meta = {"table": args.table, "cells": args.cells, "seeds": args.seeds, "runs_measured": args.runs,
            "images": args.images,
            "fmn_steps": args.fmn_steps, "modes": list(modes), "population": args.population,
            "thresholds_from": "population", "soundness": soundness_summary(frame),
            "flip_search": soundness.FLIP_SEARCH,
            "search": SEARCH,
            "thresholds": list(thresholds), "iterations": iterations, "runs": shown_path(root),
            "certify_steps": CERTIFY_STEPS, "workers": args.workers, "threads": args.threads,
            "seconds": time.perf_counter() - started,
            "parts": measured,
            "environment": environment(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = save_measurements(frame, args.table, meta, out, kind)
    shutil.rmtree(parts)
    if not any(parts.parent.iterdir()):
        parts.parent.rmdir()
    if args.soundness:
        found = meta["soundness"]
        print(f"soundness: {found['violations']} violations in {found['balls']} certified balls of "
              f"{found['critics']} critics")
    print(path, f"{meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
