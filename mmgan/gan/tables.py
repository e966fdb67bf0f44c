"""Running the GAN tables (Tables 2–8 and the studies beyond the paper) at a scale.

What each table trains, and which committed studies hold its runs, is data: :mod:`mmgan.gan.table_specs`.
A *table* fixes the data set, architecture and optimiser of the paper's
experiment and lists its cells (loss × gradient norm q × penalty shape g). A
*preset* fixes the scale:

* ``smoke``: scikit-learn digits at 16 px (32 px for the standard CNN), tiny
  networks, 50 iterations, the offline FDD metric: seconds on a CPU, proves the
  pipeline, says nothing about the paper.
* ``cpu``: a real small-scale study on digits (16 px DCGAN, width 16; 32 px
  standard CNN, width 8), three seeds, 10,000 generator iterations with the FDD
  every 250 (at 5,000 most runs were still improving); about two minutes per run
  on one core, 40 minutes for the 36 runs of Table 2 with two runs in parallel.
  It keeps the settings its committed Table 2 study was run with, which differ
  from the released code in five (appendix slope 0.2, real batches with
  replacement, metric samples in eval mode, in batches of 250, not rounded).
* ``paper``: the paper's protocol on the named data set (CIFAR-10 or CAT), full
  networks, 100k generator iterations, FID of 50k samples every 10k iterations,
  seed 1; needs a GPU, the data and the Inception weights.

Every preset follows the released code's protocol (:class:`mmgan.gan.config.GANConfig`
defaults) except in scale; :func:`protocol_table` lists, for a configuration, each
setting as the paper states it, as the released code ran it, and as this run has it.

Runs are stored under ``<root>/table<N>/<preset>-<key>/<cell>-s<seed>/`` and
skipped when finished (summary.json present) or resumed from their checkpoint. A
run that fails (an error, a non-finite loss) is recorded with its error and the
other runs of the table go on. The runs of a table share their architecture, so
by default they train together as one packed network (:mod:`mmgan.gan.packed_training`),
each run keeping its folder, checkpoint, log and metrics as if trained alone;
``run_table(..., pack=False)`` trains them one at a time.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from mmgan.base.manifest import MANIFEST, verify_manifest
from mmgan.base.processes import using_threads
from mmgan.base.registry import lookup
from mmgan.base.results import config_key, results_root
from mmgan.base.run_folder import CHECKPOINT, SUMMARY, check_snapshot_every, read_summary
from mmgan.base.user_lists import as_int_list, as_str_list
from mmgan.gan.config import (
    EXECUTION_FIELDS,
    GANConfig,
    coerce_field,
    config_from,
    gamma_as_lam,
    resolve_device,
)
from mmgan.gan.data import load_images
from mmgan.gan.models import ARCHITECTURES, SMALL_PRESETS
from mmgan.gan.packed_training import train_packed
from mmgan.gan.propositions import norm_level
from mmgan.gan.table_specs import COMPANIONS, EXTENSIONS, STAND_INS, STUDIES, TABLES
from mmgan.gan.train import check_threads, default_threads, train
from mmgan.norms import released_norms

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(dataset="digits", channels=1, iterations=20, metric="fdd", metric_samples=256,
                  metric_every=20, checkpoint_every=20, log_every=10, seeds=(0,), device="cpu"),
    # The committed Table 2 study was run before the released code's sampling and slope were adopted;
    # these five values reproduce it bit for bit and are listed as differences in its protocol table.
    "cpu": dict(dataset="digits", channels=1, iterations=10_000, metric="fdd", metric_samples=1000,
                metric_every=250, checkpoint_every=500, log_every=50, seeds=(0, 1, 2), device="cpu",
                leaky_slope=0.2, real_sampling="with_replacement", sample_mode="eval", sample_batch_size=250,
                quantize_samples=False),
    # as_released: the paper's numbers come from the released code's signed max / pooled smooth max;
    # FID of 50k samples where final and end read (the last 10% of training), 10k before (early_metric_samples)
    "paper": dict(iterations=100_000, metric="fid", metric_samples=50_000, metric_every=10_000,
                  checkpoint_every=1000, log_every=100, seeds=(1,), device="auto", as_released=True,
                  tf32=True, cudnn_benchmark=True, early_metric_samples=10_000),
}
def extension_sources(table: str) -> list[dict[str, Any]]:
    """:data:`EXTENSIONS` of ``table``, each checked to share its study's configuration (``ValueError`` naming the
    fields that differ)."""
    table = str(table)
    out = []
    for extra in EXTENSIONS.get(table, ()):
        _, mine = table_configs(table, "cpu", **STUDIES[table])
        _, theirs = table_configs(table, "cpu", **{**STUDIES[table], **extra})
        differ = sorted(k for k, v in shared_fields(mine).items() if shared_fields(theirs)[k] != v)
        if differ:
            raise ValueError(f"Table {table}'s extra seeds differ from its study in {differ}")
        out.append({**STUDIES[table], **extra})
    return out


def companion_tables(table: str) -> list[str]:
    """The tables whose runs join ``table``'s propositions (:data:`COMPANIONS`)."""
    return [other for other, _ in COMPANIONS.get(str(table), ())]


def companion_sources(table: str) -> list[tuple[str, dict[str, Any]]]:
    """:data:`COMPANIONS` of ``table``, each checked to share its study's configuration but for ``as_released``;
    ``ValueError`` naming the fields that differ."""
    table = str(table)
    source, overrides = study_source(table)
    _, mine = table_configs(source, "cpu", **overrides)
    out = []
    for other, extra in COMPANIONS.get(table, ()):
        _, theirs = table_configs(other, "cpu", **extra)
        a, b = (shared_fields(dataclasses.replace(c, as_released=False)) for c in (mine, theirs))
        differ = sorted(k for k in a if a[k] != b[k])
        if differ:
            raise ValueError(f"Table {table}'s companion runs of Table {other} differ from its study in {differ}")
        out.append((other, extra))
    return out


def study_source(table: str) -> tuple[str, dict[str, Any]]:
    """The table whose committed runs form ``table``'s CPU study (itself, or its :data:`STAND_INS` entry),
    and the overrides they are loaded with; ``ValueError`` if a stand-in's runs are not what ``table`` trains."""
    table = str(table)
    overrides = lookup(STUDIES, table, "table (one with a committed CPU study)")
    if table not in STAND_INS:
        return table, overrides
    source = STAND_INS[table].runs_of
    (mine, mine_base), (theirs, their_base) = (table_configs(t, "cpu", **overrides) for t in (table, source))
    if mine != theirs or shared_fields(mine_base) != shared_fields(their_base):
        raise ValueError(f"Table {table}'s stand-in, the study of Table {source}, is not what Table {table} trains "
                         f"at preset cpu: runs {mine} with {shared_fields(mine_base)} vs runs {theirs} with "
                         f"{shared_fields(their_base)}")
    return source, overrides


def cell_name(loss: str, q: str, g: str) -> str:
    return f"{loss}-q{q}-{g}"


def table_configs(table: str, preset: str, **overrides: Any) -> tuple[list[tuple[str, str, str, int]], GANConfig]:
    """The runs of a table at a preset: [(loss, q, g, seed)] and the shared base configuration.

    ``overrides`` may set any :class:`~mmgan.gan.config.GANConfig` field plus ``seeds`` and
    ``cells`` (cell names such as ``'hinge-qinf-hinge'``), in any form a user types them
    (``0``, ``'[0, 1]'``, ``'0,1'``; see :mod:`mmgan.base.user_lists`); ``None`` values are ignored.
    Every value is checked here, before any data is loaded.
    """
    spec = lookup(TABLES, str(table), "table")
    values = dict(lookup(PRESETS, preset, "preset"))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    seeds = as_int_list(overrides.pop("seeds", None), "seeds") or list(values["seeds"])
    values.pop("seeds")
    wanted = as_str_list(overrides.pop("cells", None), "cells")
    for seed in seeds:
        if seed < 0:
            raise ValueError(f"seeds must be >= 0, got {seed}")
    base: dict[str, Any] = dict(dataset=spec.dataset, arch=spec.arch, image_size=spec.image_size, width=spec.width,
                                beta1=spec.beta1, beta2=spec.beta2, critic_batchnorm=spec.critic_batchnorm,
                                penalty_at=spec.penalty_at, lam=spec.lam, paired_critic_scale=spec.paired_critic_scale)
    if preset in SMALL_PRESETS:  # each architecture's small networks (image size, width)
        base["image_size"], base["width"] = ARCHITECTURES[spec.arch].small[preset]
    base.update(values)
    if "lowest" in spec.stats:  # a table reading the lowest value reads every evaluation: all at full size
        base["early_metric_samples"] = None
    # γ of the zero-centred tables (λ = γ/2 for R1 or R2)
    base.update(gamma_as_lam(overrides, [g for _, g in spec.cells], overrides.get("penalty_at", base["penalty_at"])))
    as_released = coerce_field("as_released", base.pop("as_released", False))
    # as_released applies per cell, to q = inf / smax only; validate the shared fields with the first cell
    config = config_from({**base, "loss": spec.losses[0], "q": spec.cells[0][0], "g": spec.cells[0][1]})
    config = dataclasses.replace(config, as_released=as_released)
    runs = [(loss, q, g, seed) for loss in spec.losses for q, g in spec.cells for seed in seeds]
    if wanted is not None:
        valid = sorted({cell_name(loss, q, g) for loss, q, g, _ in runs})
        unknown = sorted(set(wanted) - set(valid))
        if unknown:
            raise ValueError(f"unknown cells {unknown}; valid cells of table {table}: {valid}")
        runs = [r for r in runs if cell_name(*r[:3]) in wanted]
    return runs, config


#: One run of a table: (loss, q, g, seed).
RunKey = tuple[str, str, str, int]


@dataclasses.dataclass(frozen=True)
class TableRequest:
    """The runs of one table at one preset with their shared configuration, every value checked: what a chapter or
    a command asked for, parsed once (:func:`table_request`) at that boundary and passed down typed."""

    table: str
    preset: str
    runs: tuple[RunKey, ...]
    config: GANConfig


def table_request(table: str, preset: str, runs: Any = None, **overrides: Any) -> TableRequest:
    """Parse what a user typed (:func:`table_configs`' ``overrides``) into a :class:`TableRequest`.

    ``runs`` (a list of ``(loss, q, g, seed)``) restricts the table to exactly those runs, in that order, where
    ``cells`` × ``seeds`` can only select products (a sweep job trains exactly its pack with it); they are checked
    like the chapter's parameters.
    """
    chosen = None if runs is None else [tuple(run) for run in runs]
    if chosen is not None:
        overrides = {**overrides, "seeds": sorted({run[3] for run in chosen}),
                     "cells": sorted({cell_name(*run[:3]) for run in chosen})}
    planned, base = table_configs(table, preset, **overrides)
    selected = planned if chosen is None else list(dict.fromkeys(chosen))  # each is in the product checked above
    return TableRequest(str(table), preset, tuple(tuple(run) for run in selected), base)


def table_folder(table: str, preset: str, config: GANConfig, root: Path | str) -> Path:
    """One folder per (table, preset, shared configuration); ``as_released`` is part of the key."""
    return Path(root) / f"table{table}" / f"{preset}-{config_key(shared_fields(config))}"


#: Fields added after the committed studies: part of a table's key only when set, so that the studies keep their
#: folders (``None``, their default, is what those runs did).
KEYED_WHEN_SET: tuple[str, ...] = ("early_metric_samples",)


def shared_fields(config: GANConfig) -> dict[str, Any]:
    """The fields the runs of a table share: all but the cell, the seed, how the device computes
    (:data:`mmgan.gan.config.EXECUTION_FIELDS`) and the :data:`KEYED_WHEN_SET` fields left unset."""
    return {k: v for k, v in dataclasses.asdict(config).items()
            if k not in ("loss", "q", "g", "seed", *EXECUTION_FIELDS) and not (k in KEYED_WHEN_SET and v is None)}


def run_config(base: GANConfig, loss: str, q: str, g: str, seed: int) -> GANConfig:
    """The configuration of one run of a table (a row of :func:`table_configs`) from its shared ``base``:
    ``as_released`` applies to the norms the released code computed otherwise only (q = inf and smax)."""
    return dataclasses.replace(base, loss=loss, q=q, g=g, seed=seed,
                               as_released=base.as_released and q in released_norms()).validate()


def run_table(table: str, preset: str = "smoke", root: Path | str | None = None, progress: bool = False,
              load_only: bool = False, pack: bool = True, pack_size: int | None = None,
              snapshot_every: int | None = None, runs: Any = None, threads: int | None = None,
              inexact: bool = False, **overrides: Any) -> pd.DataFrame:
    """:func:`run_request` of :func:`table_request` (``runs`` and ``overrides``): parse what a user typed, then run
    (or load) the table."""
    return run_request(table_request(table, preset, runs, **overrides), root, progress, load_only, pack, pack_size,
                       snapshot_every, threads, inexact)


def run_request(request: TableRequest, root: Path | str | None = None, progress: bool = False,
                load_only: bool = False, pack: bool = True, pack_size: int | None = None,
                snapshot_every: int | None = None, threads: int | None = None,
                inexact: bool = False) -> pd.DataFrame:
    """Run (or load) every run of a table under ``root`` (default: ``gan/`` of :func:`mmgan.base.results.results_root`);
    one row per run with its final and lowest metric. A study folder with a manifest is verified first
    (:func:`mmgan.base.manifest.verify_manifest`): a changed or missing committed file is refused, never retrained.

    The runs are those of ``request`` (:func:`table_request`), in its order.
    With ``load_only`` a missing run raises ``FileNotFoundError`` instead of training it.
    ``as_released=True`` uses the released code's signed max / batch-pooled smooth max in
    the q = inf and q = smax cells (the way the paper's numbers were produced).
    With ``pack`` (the default) the unfinished runs train together as packs of
    ``pack_size`` runs (default: all of them; :mod:`mmgan.gan.packed_training`): each
    keeps its folder, checkpoint, log, metrics and summary as if trained alone, and
    runs at different iterations train in separate packs. ``pack=False`` trains
    them one after another with :func:`mmgan.gan.train.train`. ``snapshot_every`` keeps each run's
    networks every that many iterations (see :func:`mmgan.gan.train.train`).
    A run that raises is recorded with ``status='failed'`` and its ``error`` (its metric is NaN),
    and the table goes on; interrupting (Ctrl-C) still stops the whole table.

    ``threads``: torch's thread count for new runs (default: this process's), recorded in each run's summary;
    a resumed run keeps the count it recorded (another count is refused unless ``inexact``, as is a packed run
    resumed alone: :func:`mmgan.gan.train.refuse_alone`).
    """
    if threads is not None:
        check_threads(threads)
    table, preset, runs, base = request.table, request.preset, request.runs, request.config
    root = Path(root) if root is not None else results_root() / "gan"
    check_snapshot_every(snapshot_every, base.checkpoint_every)
    if not load_only:
        device = resolve_device(base.device)  # before any data is loaded
    folder = table_folder(table, preset, base, root)
    if (folder / MANIFEST).is_file():  # a committed study: every file it lists as committed, before any is read
        verify_manifest(folder)
    rows, pending = [], []  # pending: (row, configuration, folder) of the runs to train
    for loss, q, g, seed in runs:
        out = folder / f"{cell_name(loss, q, g)}-s{seed}"
        released = base.as_released and q in released_norms()
        rows.append({"loss": loss, "q": q, "norm": norm_level(q, released), "g": g, "seed": seed,
                     "as_released": released, "run": str(out), "status": "finished", "error": ""})
        if not (out / SUMMARY).is_file():
            if load_only:
                raise FileNotFoundError(f"{out} has no finished run; produce it with run_table('{table}', "
                                        f"'{preset}', ...) or `mmgan table {table} --preset {preset}`")
            config = run_config(base, loss, q, g, seed)
            pending.append((rows[-1], config, out))
    if pending:
        data = load_images(base.dataset, base.image_size, base.channels, base.data_root).to(device)
        if pack:
            outcomes = train_packed([c for _, c, _ in pending], [o for _, _, o in pending], data, progress,
                                    pack_size, snapshot_every, threads=threads, inexact=inexact)
            for (row, _, out), outcome in zip(pending, outcomes):
                if isinstance(outcome, Exception):
                    _failed(row, outcome, table, out, base.metric)
        else:
            for row, config, out in pending:
                resume = (out / CHECKPOINT).is_file()
                try:
                    # a folder without a checkpoint holds at most a log cut short before the first checkpoint
                    train(config, out, resume=resume, overwrite=not resume, progress=progress, data=data,
                          snapshot_every=snapshot_every, threads=threads, inexact=inexact)
                except Exception as error:  # noqa: BLE001 - one failing cell must not stop the table
                    _failed(row, error, table, out, base.metric)
    for row in rows:
        if row["status"] == "finished":
            try:
                summary = read_summary(Path(row["run"]) / SUMMARY)
            except ValueError as error:  # an unusable results file: shown as a failed run, never a shorter mean
                _failed(row, error, table, Path(row["run"]), base.metric)
                continue
            row.update({"final": summary["final"], "lowest": summary["lowest"], "lowest_at": summary["lowest_at"],
                        "iterations": summary["iterations"], "metric": summary["metric"]})
    frame = pd.DataFrame(rows)
    for name in ("dataset", "image_size", "arch", "width"):
        frame[name] = getattr(base, name)
    frame["preset"] = preset
    return frame


def _failed(row: dict[str, Any], error: Exception, table: str, out: Path, metric: str) -> None:
    warnings.warn(f"table {table}, run {out.name} failed: {type(error).__name__}: {error}", stacklevel=3)
    row.update({"status": "failed", "error": f"{type(error).__name__}: {error}", "final": math.nan,
                "lowest": math.nan, "lowest_at": math.nan, "iterations": math.nan, "metric": metric})


def finished(results: pd.DataFrame) -> pd.DataFrame:
    """The runs of :func:`run_table` that finished (failed ones carry NaN metrics and their error)."""
    return results[results["status"] == "finished"]


def metric_curves(results: pd.DataFrame) -> pd.DataFrame:
    """The metric history of every run (from its summary), one row per evaluation, with its sample count."""
    rows = []
    for _, run in finished(results).iterrows():
        summary = read_summary(Path(run["run"]) / SUMMARY)
        # a summary from before the sample schedule: every evaluation used metric_samples (unknown: NaN)
        samples = summary.get("history_samples",
                              [summary["config"].get("metric_samples", math.nan)] * len(summary["history"]))
        for (iteration, value), count in zip(summary["history"], samples, strict=True):
            rows.append({"loss": run["loss"], "q": run["q"], "norm": run["norm"], "g": run["g"],
                         "seed": run["seed"], "iteration": iteration, "value": value, "samples": count})
    return pd.DataFrame(rows)


def committed_elsewhere(request: TableRequest, root: Path | str) -> Path | None:
    """The study folder under the project's results root (:func:`mmgan.base.results.results_root`) that holds
    finished runs of ``request`` which ``root`` lacks — runs that a command working in ``root`` would train again
    although they could be loaded — or None."""
    here = table_folder(request.table, request.preset, request.config, root)
    default = table_folder(request.table, request.preset, request.config, results_root() / "gan")
    if here.resolve() == default.resolve():
        return None
    names = [f"{cell_name(*run[:3])}-s{run[3]}" for run in request.runs]
    if any((default / n / SUMMARY).is_file() and not (here / n / SUMMARY).is_file() for n in names):
        return default
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="mmgan table",
        description="Run (or load) every cell of one of Tables 2-8 (or of the zero-centred studies r1, r2, r1r2, "
                    "r3gan) in this process: finished runs under --root are loaded, the others trained.")
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--preset", default="smoke", choices=sorted(PRESETS), help="default: smoke")
    parser.add_argument("--root", type=Path,
                        help="folder of the GAN tables (default: results/gan of this checkout, or "
                             "$MMGAN_RESULTS/gan)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--cells", nargs="+", help="cells as LOSS-qQ-G, e.g. hinge-q2-hinge (default: all)")
    parser.add_argument("--data-root", dest="data_root", help="folder of CIFAR-10 or the CAT faces")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the preset's)")
    parser.add_argument("--as-released", dest="as_released", action="store_true",
                        help="q = inf and smax as the released code computes them (signed max, pooled smooth max)")
    parser.add_argument("--no-pack", dest="pack", action="store_false",
                        help="train the runs one at a time instead of as one packed network")
    parser.add_argument("--pack-size", dest="pack_size", type=int, help="runs per pack (default: all)")
    parser.add_argument("--snapshot-every", dest="snapshot_every", type=int, metavar="N",
                        help="keep both networks every N iterations (a multiple of the checkpoint interval)")
    parser.add_argument("--train", action="store_true",
                        help="train here even though the project's results root holds these runs finished")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads for new runs, recorded in each summary (default: $OMP_NUM_THREADS, else "
                             "1, what the committed studies used); a resumed run keeps its recorded count")
    parser.add_argument("--inexact", action="store_true",
                        help="continue a resumed run with another thread count or outside its pack (not bit for "
                             "bit; recorded in its summary)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        check_threads(args.threads)
    root = args.root if args.root is not None else results_root() / "gan"
    overrides = dict(seeds=args.seeds, iterations=args.iterations, cells=args.cells, data_root=args.data_root,
                     device=args.device, as_released=args.as_released or None)
    request = table_request(args.table, args.preset, **overrides)
    elsewhere = committed_elsewhere(request, root)
    if elsewhere is not None and not args.train:
        raise ValueError(f"{root} lacks runs of table {args.table} ({args.preset}) that are finished under "
                         f"{elsewhere}: load them with --root {elsewhere.parents[1]} (the default), or pass --train "
                         f"to train them again under {root}")
    print(f"results root: {root}", file=sys.stderr)
    with using_threads(args.threads or default_threads()):  # new runs; a resumed one keeps its recorded count
        frame = run_request(request, root, progress=True, pack=args.pack, pack_size=args.pack_size,
                            snapshot_every=args.snapshot_every, threads=args.threads, inexact=args.inexact)
    print(frame[["loss", "norm", "g", "seed", "final", "lowest"]].to_string(index=False))
    return 0 if (frame["status"] == "finished").all() else 1


if __name__ == "__main__":
    sys.exit(main())
