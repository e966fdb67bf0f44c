"""Tables 2–8: which GAN runs make up each table, at which scale, and running them.

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
* ``paper``: the paper's protocol on the named data set (CIFAR-10 or CAT), full
  networks, 100k generator iterations, FID of 50k samples every 10k iterations,
  seed 1; needs a GPU, the data and the Inception weights.

Runs are stored under ``<root>/table<N>/<preset>-<key>/<cell>-s<seed>/`` and
skipped when finished (summary.json present) or resumed from their checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmgan.data.images import load_images
from mmgan.registry import check_int, lookup
from mmgan.results import config_key
from mmgan.train import GANConfig, config_from, train

CELLS_Q3_G2 = tuple((q, g) for q in ("1", "2", "inf") for g in ("ls", "hinge"))
CELLS_Q4_G2 = tuple((q, g) for q in ("1", "2", "inf", "smax") for g in ("ls", "hinge"))
CELLS_SHORT = (("2", "ls"), ("2", "hinge"), ("inf", "hinge"))


@dataclass(frozen=True)
class TableSpec:
    title: str
    dataset: str
    arch: str
    image_size: int
    losses: tuple[str, ...]
    cells: tuple[tuple[str, str], ...]  # (q, g)
    beta1: float = 0.5
    beta2: float = 0.999
    width: int | None = None
    stats: tuple[str, ...] = ("final",)


TABLES: dict[str, TableSpec] = {
    "2": TableSpec("CIFAR-10, DCGAN", "cifar10", "dcgan", 32, ("wgan", "hinge"), CELLS_Q3_G2),
    "3": TableSpec("CIFAR-10, DCGAN, relativistic paired / average HingeGAN", "cifar10", "dcgan", 32,
                   ("rphinge", "rahinge"), CELLS_Q4_G2),
    "4": TableSpec("CIFAR-10, DCGAN, Adam betas (0, .9)", "cifar10", "dcgan", 32, ("wgan", "hinge"), CELLS_Q4_G2,
                   beta1=0.0, beta2=0.9),
    "5": TableSpec("CIFAR-10, standard CNN", "cifar10", "standard_cnn", 32, ("wgan", "hinge"), CELLS_SHORT),
    "6": TableSpec("CAT 32×32, standard CNN", "cat", "standard_cnn", 32, ("wgan", "hinge"), CELLS_SHORT,
                   stats=("final", "lowest")),
    "7": TableSpec("CAT 64×64, DCGAN", "cat", "dcgan", 64, ("wgan", "hinge"), CELLS_SHORT, width=64),
    "8": TableSpec("CIFAR-10, DCGAN, smooth maximum", "cifar10", "dcgan", 32, ("wgan", "hinge"),
                   (("smax", "ls"), ("smax", "hinge"))),
}

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(dataset="digits", channels=1, iterations=50, metric="fdd", metric_samples=256,
                  metric_every=50, checkpoint_every=50, log_every=25, seeds=(0,), device="cpu"),
    "cpu": dict(dataset="digits", channels=1, iterations=10_000, metric="fdd", metric_samples=1000,
                metric_every=250, checkpoint_every=500, log_every=50, seeds=(0, 1, 2), device="cpu"),
    "paper": dict(iterations=100_000, metric="fid", metric_samples=50_000, metric_every=10_000,
                  checkpoint_every=1000, log_every=100, seeds=(1,), device="auto"),
}
# Small networks for the CPU presets, per architecture: (image size, width).
SMALL = {"smoke": {"dcgan": (16, 4), "standard_cnn": (32, 4)}, "cpu": {"dcgan": (16, 16), "standard_cnn": (32, 8)}}


def cell_name(loss: str, q: str, g: str) -> str:
    return f"{loss}-q{q}-{g}"


def table_configs(table: str, preset: str, **overrides: Any) -> tuple[list[tuple[str, str, str, int]], GANConfig]:
    """The runs of a table at a preset: [(loss, q, g, seed)] and the shared base configuration.

    ``overrides`` may set any :class:`~mmgan.train.GANConfig` field plus ``seeds`` and
    ``cells`` (a list of cell names such as ``'hinge-qinf-hinge'``); ``None`` values are ignored.
    """
    spec = lookup(TABLES, str(table), "table")
    values = dict(lookup(PRESETS, preset, "preset"))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    seeds = tuple(overrides.pop("seeds", values.pop("seeds")))
    values.pop("seeds", None)
    wanted = overrides.pop("cells", None)
    as_released = bool(overrides.pop("as_released", False))
    base: dict[str, Any] = dict(dataset=spec.dataset, arch=spec.arch, image_size=spec.image_size, width=spec.width,
                                beta1=spec.beta1, beta2=spec.beta2)
    if preset in SMALL:
        base["image_size"], base["width"] = SMALL[preset][spec.arch]
    base.update(values)
    base.update(overrides)
    config = config_from({**base, "loss": spec.losses[0], "q": spec.cells[0][0], "g": spec.cells[0][1]})
    config = dataclasses.replace(config, as_released=as_released)  # applied per cell, to q = inf / smax only
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    for seed in seeds:
        check_int(seed, "seeds[i]", minimum=0)
    runs = [(loss, q, g, seed) for loss in spec.losses for q, g in spec.cells for seed in seeds]
    if wanted is not None:
        valid = sorted({cell_name(loss, q, g) for loss, q, g, _ in runs})
        unknown = sorted(set(wanted) - set(valid))
        if unknown:
            raise ValueError(f"unknown cells {unknown}; valid cells of table {table}: {valid}")
        runs = [r for r in runs if cell_name(*r[:3]) in wanted]
    return runs, config


def table_folder(table: str, preset: str, config: GANConfig, root: Path | str) -> Path:
    """One folder per (table, preset, shared configuration); ``as_released`` is part of the key."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("loss", "q", "g", "seed", "device")}
    return Path(root) / f"table{table}" / f"{preset}-{config_key(fields)}"


def run_table(table: str, preset: str = "smoke", root: Path | str = "results/gan", progress: bool = False,
              load_only: bool = False, **overrides: Any) -> pd.DataFrame:
    """Run (or load) every run of a table; one row per run with its final and lowest metric.

    With ``load_only`` a missing run raises ``FileNotFoundError`` instead of training it.
    ``as_released=True`` uses the released code's signed max / batch-pooled smooth max in
    the q = inf and q = smax cells (the way the paper's numbers were produced).
    """
    runs, base = table_configs(table, preset, **overrides)
    folder = table_folder(table, preset, base, root)
    data = None
    rows = []
    for loss, q, g, seed in runs:
        out = folder / f"{cell_name(loss, q, g)}-s{seed}"
        if not (out / "summary.json").is_file():
            if load_only:
                raise FileNotFoundError(f"{out} has no finished run; produce it with run_table('{table}', "
                                        f"'{preset}', ...) or `python -m mmgan.gan_tables {table} {preset}`")
            if data is None:
                data = load_images(base.dataset, base.image_size, base.channels, base.data_root)
            config = dataclasses.replace(base, loss=loss, q=q, g=g, seed=seed,
                                         as_released=base.as_released and q in ("inf", "smax")).validate()
            train(config, out, resume=(out / "checkpoint.pt").is_file(), progress=progress, data=data)
        summary = json.loads((out / "summary.json").read_text())
        rows.append({"loss": loss, "q": q, "g": g, "seed": seed, "final": summary["final"],
                     "lowest": summary["lowest"], "lowest_at": summary["lowest_at"],
                     "iterations": summary["iterations"], "metric": summary["metric"], "run": str(out)})
    frame = pd.DataFrame(rows)
    for name in ("dataset", "image_size", "arch", "width"):
        frame[name] = getattr(base, name)
    frame["preset"] = preset
    return frame


def metric_curves(results: pd.DataFrame) -> pd.DataFrame:
    """The metric history of every run (from its summary), one row per evaluation."""
    rows = []
    for _, run in results.iterrows():
        summary = json.loads((Path(run["run"]) / "summary.json").read_text())
        for iteration, value in summary["history"]:
            rows.append({"loss": run["loss"], "q": run["q"], "g": run["g"], "seed": run["seed"],
                         "iteration": iteration, "value": value})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run every cell of one of Tables 2-8.")
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--root", default="results/gan")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--cells", nargs="+")
    parser.add_argument("--data-root", dest="data_root")
    parser.add_argument("--device")
    parser.add_argument("--as-released", dest="as_released", action="store_true")
    args = parser.parse_args(argv)
    frame = run_table(args.table, args.preset, args.root, progress=True, seeds=args.seeds,
                      iterations=args.iterations, cells=args.cells, data_root=args.data_root, device=args.device,
                      as_released=args.as_released or None)
    print(frame[["loss", "q", "g", "seed", "final", "lowest"]].to_string(index=False))


if __name__ == "__main__":
    main()
