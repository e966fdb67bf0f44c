"""Finished GAN runs: their final (or snapshot) networks, loaded safely, and samples drawn from them.

``networks.pt`` is a run's final generator and critic without optimiser states (small enough to commit,
written by :func:`export_networks` from the run's checkpoint); :func:`load_run` reads a finished run folder
(its config.yaml, summary.json and networks, checked) into a :class:`TrainedGAN` in eval mode.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmgan.base.manifest import MANIFEST, record_in_manifest
from mmgan.base.randomness import normal
from mmgan.base.results import atomic_torch_save, read_torch, read_yaml
from mmgan.base.run_folder import CHECKPOINT, SUMMARY, read_checkpoint, read_summary, snapshot_path
from mmgan.gan.config import GANConfig, config_from
from mmgan.gan.models import make_gan, sampling_mode


@dataclasses.dataclass
class TrainedGAN:
    """A finished run of a GAN table: its configuration, networks (eval mode) and summary."""

    folder: Path
    config: GANConfig
    generator: nn.Module
    critic: nn.Module
    summary: dict[str, Any]


#: The final generator and critic weights of a run, without optimiser states (small enough to commit).
NETWORKS = "networks.pt"


def export_networks(folder: Path | str) -> Path:
    """Write ``networks.pt`` (generator and critic state dicts) from a run's ``checkpoint.pt``; when the run
    belongs to a study with a manifest, the file is recorded there (it is committed with the study)."""
    folder = Path(folder)
    payload = read_checkpoint(folder / CHECKPOINT)
    atomic_torch_save({"iteration": payload["iteration"], "generator": payload["generator"],
                       "critic": payload["critic"]}, folder / NETWORKS)
    if (folder.parent / MANIFEST).is_file():
        record_in_manifest(folder.parent, [folder / NETWORKS])
    return folder / NETWORKS


def rerun_advice(folder: Path | str, snapshot_every: int | None = None) -> str:
    """The command that trains the run of ``folder`` again (a folder ``<root>/table<N>/<preset>-<key>/<cell>-s<seed>``
    written by ``mmgan table``), keeping snapshots every ``snapshot_every`` iterations when given (into another
    root, beside the committed run); without, also the :mod:`mmgan.gan.reproduce` command that trains it in its
    pack."""
    folder = Path(folder)
    table, study, (cell, _, seed) = folder.parent.parent.name, folder.parent.name, folder.name.rpartition("-s")
    if not (table.startswith("table") and "-" in study and cell and seed.isdigit()):
        return f"train it again with `mmgan train --config {folder / 'config.yaml'} --out {folder} --overwrite`"
    words = f"mmgan table {table.removeprefix('table')} --preset {study.split('-')[0]} --cells {cell} --seeds {seed}"
    if snapshot_every is None:
        return (f"train it again with `{words} --root {folder.parents[2]}` (alone, so to rounding), or as it trained, "
                f"in its pack, with `mmgan reproduce {folder} --out <another folder>`")
    return (f"train a replicate that keeps them with `{words} --snapshot-every {snapshot_every} --root "
            f"<another folder>` and measure that replicate")


def weights_file(folder: Path | str) -> Path:
    """The run's final weights: ``networks.pt`` if kept, else ``checkpoint.pt``; a clear error if neither."""
    folder = Path(folder)
    for name in (NETWORKS, CHECKPOINT):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has neither {NETWORKS} nor {CHECKPOINT}: its weights were not kept; "
                            f"{rerun_advice(folder)}")


def load_run(folder: Path | str, iteration: int | None = None) -> TrainedGAN:
    """The final networks of a finished run folder (or those of ``iteration``), in eval mode.

    Reads config.yaml, summary.json and the weights from ``networks.pt`` (committed
    with the studies) or else from ``checkpoint.pt``; with ``iteration``, from the
    snapshot of that iteration (a study trained with ``snapshot_every``, :func:`mmgan.gan.tables.run_table`).
    """
    folder = Path(folder)
    rerun = rerun_advice(folder)
    for name in ("config.yaml", SUMMARY):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: the run is not finished; {rerun}")
    summary = read_summary(folder / SUMMARY, rerun)
    if iteration is None:
        weights = weights_file(folder)
        payload = read_torch(weights, rerun) if weights.name == NETWORKS else read_checkpoint(weights)
        expected, remedy = summary.get("iterations"), rerun
    else:
        remedy = rerun_advice(folder, iteration)
        weights = snapshot_path(folder, iteration)
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} has no snapshot of iteration {iteration}; {remedy}")
        payload, expected = read_torch(weights, remedy), iteration
    if payload.get("iteration") != expected:
        raise ValueError(f"{folder}: the weights are from iteration {payload.get('iteration')}, expected "
                         f"{expected}; {remedy}")
    config = config_from(read_yaml(folder / "config.yaml", rerun))
    generator, critic = make_gan(config.arch, config.image_size, config.channels, config.z_dim, config.width,
                                 config.leaky_slope, config.critic_batchnorm)
    generator.load_state_dict(payload["generator"])
    critic.load_state_dict(payload["critic"])
    return TrainedGAN(folder, config, generator.eval(), critic.eval(), summary)


def samples(run: TrainedGAN, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` images of the run's generator from noise seeded with ``seed``, drawn the way its metric drew them
    (BatchNorm in the configuration's ``sample_mode``), on the CPU, in [−1, 1]."""
    with sampling_mode(run.generator, run.config.sample_mode) as generator:
        return generator(normal((n, run.config.z_dim), torch.Generator().manual_seed(seed))).cpu()
