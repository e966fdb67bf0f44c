"""Train a gradient-penalised GAN (the experiments of §6, Tables 2–8).

    mmgan train --config run.yaml --iterations 2000 --out runs/demo
    mmgan train --out runs/demo --resume            # continue where it stopped (reads its config.yaml)

One flat loop: per generator iteration, ``critic_steps`` critic updates
(critic loss of :mod:`mmgan.losses` + λ · gradient penalty of
:mod:`mmgan.penalties`, eq. 6), then one generator update. The configuration is
:class:`mmgan.gan.config.GANConfig` (the released protocol by default).

Never losing work:

* everything a run needs to continue exactly is in one checkpoint (both networks,
  both Adam states, the iteration, the configuration, the metric history and
  every random state), written atomically (temporary file + rename, so the
  previous checkpoint stays until the new one is complete) every
  ``checkpoint_every`` iterations and at the end;
* Ctrl-C (SIGINT), SIGTERM and SIGUSR2 (what SLURM sends at pre-emption and
  time-out) are honoured at the next iteration boundary: the checkpoint is then
  written and the run stops (:class:`Stopped`), so a resumed run continues bit
  for bit; SIGTERM and SIGUSR2 are then handed to the handler that was there
  before (the process ends with status 143, or submitit requeues its job); a
  second signal stops at once, without saving;
* one writer per folder (:class:`mmgan.base.run_folder.RunLock`); a fresh run into a
  folder that holds a run refuses unless ``resume`` or ``overwrite``;
* on resume, ``log.jsonl`` is cut back to the checkpoint's iteration;
* a non-finite loss stops the run: the loop records on the device, without a host
  synchronisation, the iteration at which a loss first became NaN or infinite
  (:class:`LossWatch`) and reads it on the log cadence and before every metric
  evaluation and checkpoint, then raises :class:`NonFiniteLoss` naming that
  iteration (the updates in between are made, but never saved). The parameters
  are checked before every checkpoint and metric evaluation, so non-finite
  weights are never saved; the error says which checkpoint (if any) is kept.
  :func:`training_iteration` called without a watch still checks each loss
  before its update (one host synchronisation per step).

All random draws come from one CPU generator (:mod:`mmgan.base.randomness`), so a
run is reproducible and resumable on any device, up to rounding; except that a run
started on a CUDA device draws the distinct indices of its real batches from a
generator on that device (:func:`index_generator`), and then resumes on a CUDA device only. Bit for bit it
repeats only in the same arrangement: the same pack (:mod:`mmgan.gan.packed_training`;
a grouped convolution sums in another order than a plain one), thread count, dtype,
code and platform (CPU instruction sets, torch, oneDNN, MKL, GPU). The checkpoint
and summary record them (:func:`execution_record`); ``--threads`` sets the count
(``$OMP_NUM_THREADS`` or 1 for a new run, the recorded one on ``--resume``); a run
checkpointed in a pack, or with another thread count, is not continued otherwise
unless ``--inexact`` (the change is recorded); ``mmgan reproduce``
(:mod:`mmgan.gan.reproduce`) regenerates a finished run and compares its log.

``log.jsonl`` gets one line per ``log_every`` iterations (losses, penalty, gradient norms at real, fake and
interpolated points, iterations/s and the diagnostics of :mod:`mmgan.gan.diagnostics`) and one per metric
evaluation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from mmgan.base.processes import using_threads
from mmgan.base.randomness import device_distinct_indices, indices, normal
from mmgan.base.results import atomic_torch_save, atomic_write_text, code_commit, environment, read_yaml
from mmgan.base.run_folder import (
    CHECKPOINT,
    LOG,
    SUMMARY,
    RunLock,
    check_snapshot_every,
    folder_state,
    read_checkpoint,
    snapshot_path,
    truncate_log,
)
from mmgan.gan.config import EXECUTION_FIELDS, TRAIN_LOSSES, GANConfig, config_from, resolve_device
from mmgan.gan.data import load_images
from mmgan.gan.diagnostics import diagnostics, parameter_gradient_norms
from mmgan.gan.metrics import METRICS, dataset_statistics, generator_statistics, make_extractor
from mmgan.gan.models import kept_statistics, make_gan, sampling_mode
from mmgan.losses import critic_loss, generator_loss, needs_real_scores
from mmgan.norms import grad_norm
from mmgan.penalties import gradient_penalty, input_gradient, penalty_points

#: The public pieces of the loop, shared with the packed loop (:mod:`mmgan.gan.packed_training`).
__all__ = ["ARITHMETIC_FIELDS", "GANConfig", "LossWatch", "NonFiniteLoss", "STOP_SIGNALS", "Stopped",
           "TRAIN_LOSSES", "arrangement", "check_threads", "config_from", "continued_execution",
           "data_and_reference", "due", "evaluate_and_log", "execution_record", "execution_settings",
           "gradient_norms", "index_generator", "interrupt_at_boundary", "main", "new_state", "platform_record",
           "prepare_folder", "real_batch",
           "resolve_device", "save_checkpoint", "start_state", "stopped", "threads_to_use", "train",
           "training_iteration", "training_record", "write_line", "write_summary"]


# ----------------------------------------------------------------------------- state


@dataclass
class RunState:
    config: GANConfig
    generator: torch.nn.Module
    critic: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer
    rng: torch.Generator  # on the CPU, whatever the device (mmgan.base.randomness)
    iteration: int = 0
    metrics: list = dataclasses.field(default_factory=list)  # [(iteration, value)]
    #: the samples of each evaluation in ``metrics`` (:meth:`mmgan.gan.config.GANConfig.metric_samples_at`)
    metric_samples: list = dataclasses.field(default_factory=list)
    saved_at: int | None = None  # iteration of the checkpoint in the run folder, None if there is none
    #: what fixes the run's arithmetic (:func:`execution_record`, continued by :func:`continued_execution`); kept in
    #: its checkpoint and summary. Restored from a checkpoint it is the record the run was saved with.
    execution: dict[str, Any] | None = None
    #: the generator of the real batches' distinct indices on a CUDA device (:func:`index_generator`); None: they
    #: come from ``rng``
    index_rng: torch.Generator | None = None


def index_generator(config: GANConfig, device: torch.device) -> torch.Generator | None:
    """The generator of a new run's real-batch indices: on a CUDA device, for distinct indices, one on that device
    seeded with ``config.seed`` (a permutation of the data set per batch costs the host ~0.4 ms at 50,000 images,
    and its indices a copy); None elsewhere: the indices come from the run's CPU generator, as the committed CPU
    studies drew them (i.i.d. indices are cheap there)."""
    if device.type != "cuda" or config.real_sampling == "with_replacement":
        return None
    return torch.Generator(device=device).manual_seed(config.seed)


def new_state(config: GANConfig, device: torch.device) -> RunState:
    torch.manual_seed(config.seed)
    generator, critic = make_gan(config.arch, config.image_size, config.channels, config.z_dim, config.width,
                                 config.leaky_slope, config.critic_batchnorm)
    generator = generator.to(device, memory_format=config.memory_format)
    critic = critic.to(device, memory_format=config.memory_format)
    betas = (config.beta1, config.beta2)
    return RunState(config, generator, critic,
                    torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas),
                    torch.optim.Adam(critic.parameters(), lr=config.lr, betas=betas),
                    torch.Generator().manual_seed(config.seed), index_rng=index_generator(config, device))


# Keys that may change between a run and its continuation (the length and bookkeeping of the run).
RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "log_every", *EXECUTION_FIELDS}


def networks_payload(state: RunState) -> dict[str, Any]:
    """The run's networks alone (``networks.pt`` and snapshots): iteration, generator and critic state dicts."""
    return {"iteration": state.iteration, "generator": state.generator.state_dict(),
            "critic": state.critic.state_dict()}


def save_checkpoint(state: RunState, out: Path, snapshot_every: int | None = None) -> None:
    """Write ``checkpoint.pt`` atomically (every RNG state included); with ``snapshot_every``, at iterations
    that are multiples of it also keep the networks in ``snapshots/`` (:func:`mmgan.base.run_folder.snapshot_path`)."""
    _check_parameters(state, out, "before writing a checkpoint")
    payload = {
        "generator": state.generator.state_dict(), "critic": state.critic.state_dict(),
        "opt_g": state.opt_g.state_dict(), "opt_c": state.opt_c.state_dict(),
        "iteration": state.iteration, "config": dataclasses.asdict(state.config), "metrics": state.metrics,
        "metric_samples": state.metric_samples,
        "rng": state.rng.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "index_rng": state.index_rng.get_state() if state.index_rng is not None else None,
    }
    if state.execution is not None:
        payload["execution"] = state.execution
    try:
        atomic_torch_save(payload, out / CHECKPOINT)
    except OSError as error:  # a full disk, a lost mount: the temporary file failed, the old checkpoint stands
        kept = (f"the previous checkpoint (iteration {state.saved_at}) is intact" if state.saved_at
                is not None else "no earlier checkpoint exists")
        raise OSError(f"could not write the checkpoint of iteration {state.iteration} to {out / CHECKPOINT} "
                      f"({error.strerror or error}); {kept}: free some space and continue with --resume") from error
    state.saved_at = state.iteration
    if snapshot_every and state.iteration % snapshot_every == 0:
        atomic_torch_save(networks_payload(state), snapshot_path(out, state.iteration))


def check_resumable(config: GANConfig, payload: dict[str, Any], path: Path) -> None:
    """Refuse to continue a checkpoint written with another configuration (beyond RESUMABLE_CHANGES)."""
    saved = payload["config"]
    changed = {k for k, v in dataclasses.asdict(config).items() if saved.get(k) != v} - RESUMABLE_CHANGES
    if changed:
        raise ValueError(f"--resume: the configuration differs from the checkpoint's in {sorted(changed)} ({path}); "
                         "resume with the same values or start over with --overwrite")


def restore_state(config: GANConfig, payload: dict[str, Any], device: torch.device) -> RunState:
    """The run state of a checkpoint payload (from :func:`mmgan.base.run_folder.read_checkpoint`) on ``device``."""
    state = new_state(config, device)
    state.generator.load_state_dict(payload["generator"])
    state.critic.load_state_dict(payload["critic"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_c.load_state_dict(payload["opt_c"])
    state.rng.set_state(payload["rng"])
    restore_index_generator(state, payload.get("index_rng"))
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    state.iteration = state.saved_at = payload["iteration"]
    state.metrics = [tuple(m) for m in payload["metrics"]]
    # a checkpoint from before the sample schedule: every evaluation used metric_samples
    state.metric_samples = list(payload.get("metric_samples", [config.metric_samples] * len(state.metrics)))
    state.execution = payload.get("execution")  # None in a checkpoint older than the record
    return state


def restore_index_generator(state: RunState, saved: torch.Tensor | None) -> None:
    """Continue the real-batch index stream of a checkpoint in ``state`` (a new state on its device): a run
    that drew its indices from its CPU generator (saved None: a CPU run, or one checkpointed before the device
    draws) keeps doing so wherever it resumes; one that drew them on a CUDA device continues that generator,
    which needs a CUDA device (``ValueError`` otherwise)."""
    if saved is None:
        state.index_rng = None
        return
    if state.index_rng is None:
        raise ValueError("this run drew its real-batch indices on a CUDA device (its checkpoint holds that "
                         "generator's state): resume it with device='cuda' or 'cuda:<index>'")
    state.index_rng.set_state(saved)


def load_checkpoint(config: GANConfig, out: Path, device: torch.device) -> RunState:
    """Read, check and restore the checkpoint of run folder ``out``."""
    payload = read_checkpoint(Path(out) / CHECKPOINT)
    check_resumable(config, payload, Path(out) / CHECKPOINT)
    return restore_state(config, payload, device)


# ----------------------------------------------------------------------------- the loop


class NonFiniteLoss(RuntimeError):
    """Raised when a loss or a parameter becomes NaN or infinite; the last good checkpoint (if any) is kept."""


def _kept(state: RunState, out: Path | str) -> str:
    if state.saved_at is None:
        return f"no checkpoint has been written to {out} yet"
    return f"the checkpoint of iteration {state.saved_at} in {out} is kept"


def non_finite_weights(state: RunState, out: Path | str, when: str) -> NonFiniteLoss:
    """The error of a run whose weights became NaN or infinite by ``state.iteration``."""
    return NonFiniteLoss(f"a network weight became non-finite by iteration {state.iteration} (found {when}); "
                         f"{_kept(state, out)} (lower lr or lam)")


def _check_parameters(state: RunState, out: Path | str, when: str) -> None:
    """Raise :class:`NonFiniteLoss` if any weight of either network is NaN or infinite (one host sync)."""
    parameters = [p.detach() for p in (*state.generator.parameters(), *state.critic.parameters())]
    if not bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all()):
        raise non_finite_weights(state, out, when)


class LossWatch:
    """Where the losses of K runs first became NaN or infinite, kept on the device.

    :meth:`record` costs a few elementwise operations on the device and no host
    synchronisation, so a training loop can watch every step and read the result
    (:meth:`errors`, one synchronisation) only on its log cadence and before a
    checkpoint or metric evaluation. The updates made after a non-finite loss are
    not undone: the loop must not save a run with an error here.
    """

    NAMES = ("critic loss", "generator loss")

    def __init__(self, runs: int, device: torch.device | str) -> None:
        self.at = torch.zeros(runs, dtype=torch.long, device=device)  # first bad iteration; 0: all finite so far
        self.which = torch.zeros(runs, dtype=torch.long, device=device)  # index into NAMES
        self.value = torch.zeros(runs, dtype=torch.float32, device=device)  # the first non-finite value

    def record(self, losses: torch.Tensor, iteration: int, name: str) -> None:
        """Note the runs whose loss (a scalar, or one per run) is not finite at generator iteration ``iteration``."""
        losses = losses.detach().reshape(-1)
        new = torch.isfinite(losses).logical_not_().logical_and_(self.at == 0)
        self.at = torch.where(new, iteration, self.at)
        self.which = torch.where(new, self.NAMES.index(name), self.which)
        self.value = torch.where(new, losses.to(self.value.dtype), self.value)

    def errors(self, states: list[RunState], outs: list[Path | str]) -> dict[int, NonFiniteLoss]:
        """{run: its error} for the runs (``states[k]`` saved in ``outs[k]``) whose loss went non-finite."""
        at = self.at.tolist()
        if not any(at):
            return {}
        which, value = self.which.tolist(), self.value.tolist()
        return {k: NonFiniteLoss(f"{self.NAMES[which[k]]} became {value[k]} at iteration {at[k]}; "
                                 f"{_kept(states[k], outs[k])} (lower lr or lam)")
                for k in range(len(at)) if at[k]}

    def select(self, runs: list[int]) -> LossWatch:
        """The watch of the chosen runs only (in this order)."""
        index = torch.tensor(runs, dtype=torch.long).to(self.at.device, non_blocking=True)
        chosen = LossWatch.__new__(LossWatch)
        chosen.at, chosen.which, chosen.value = self.at[index], self.which[index], self.value[index]
        return chosen


def real_batch(data: torch.Tensor, config: GANConfig, rng: torch.Generator,
               index_rng: torch.Generator | None) -> torch.Tensor:
    """A batch of real images (on ``data``'s device), distinct within the batch unless i.i.d. sampling is chosen;
    the indices come from ``index_rng`` on its device when there is one (:func:`index_generator`), else from
    ``rng``."""
    if index_rng is None:
        index = indices(data.shape[0], config.batch_size, rng, config.real_sampling == "with_replacement",
                        data.device)
    elif data.device != index_rng.device:
        raise ValueError(f"the run draws its batch indices on {index_rng.device}, so its images must be there too, "
                         f"not on {data.device}")
    else:
        index = device_distinct_indices(data.shape[0], config.batch_size, index_rng)
    return data[index]


def _noise(size: int, z_dim: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    return normal((size, z_dim), rng, device)


def gradient_norms(state: RunState, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """What a log line records beside the losses: the critic's input-gradient norm in the run's q at the real,
    fake and interpolated points (``grad_norm_*``), and :func:`mmgan.gan.diagnostics.diagnostics`."""
    q = state.config.q
    # a generator of its own, so logging does not change the training's random stream
    between = penalty_points(real, fake, "interpolates", torch.Generator().manual_seed(state.iteration))
    out, grads = {}, {}
    with kept_statistics(state.critic):  # a measurement, not a training step: BatchNorm statistics unchanged
        for name, x in (("real", real), ("fake", fake), ("interpolates", between)):
            _, grad = input_gradient(state.critic, x, create_graph=False)
            grads[name] = grad.detach().unsqueeze(0)
            out[f"grad_norm_{name}"] = float(grad_norm(grad.detach(), q).mean())
    return {**out, **diagnostics(grads, parameter_gradient_norms(state.generator, 1), fake.unsqueeze(0))[0]}


def evaluate(state: RunState, extractor, reference, device: torch.device, samples: int) -> float:
    """The run's metric for the current generator from ``samples`` samples, drawn as the configuration says
    (BatchNorm mode, batch size, 8-bit rounding); the generator is left exactly as it was."""
    config = state.config
    with sampling_mode(state.generator, config.sample_mode) as generator:
        stats = generator_statistics(generator, extractor, samples, config.z_dim, device,
                                     batch_size=config.sample_batch_size, seed=12345,
                                     quantize=config.quantize_samples)
    return METRICS[config.metric].distance(stats, reference)


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, name: str, state: RunState, out: Path | str,
          watch: LossWatch | None = None) -> None:
    """One optimiser step on ``loss``; without a ``watch``, refused (NonFiniteLoss) before it could make the
    weights non-finite (one host synchronisation), with one, a non-finite loss is recorded there instead."""
    if watch is not None:
        watch.record(loss, state.iteration + 1, name)
    elif not torch.isfinite(loss):
        raise NonFiniteLoss(f"{name} became {loss.item()} at iteration {state.iteration + 1}; "
                            f"{_kept(state, out)} (lower lr or lam)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_iteration(state: RunState, data: torch.Tensor, device: torch.device, out: Path | str = ".",
                       watch: LossWatch | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One generator iteration: ``critic_steps`` critic steps on eq. 6 (loss + λ·penalty), then a generator step.

    Draws batches, noise and interpolation weights from ``state.rng`` (so a resumed run continues the same random
    stream); ``data`` may live on the CPU or on ``device`` (there when ``state.index_rng`` is set). The relativistic
    generator step uses a fresh real batch (``generator_real_batch='fresh'``, as released) or the critic step's last
    one. Raises :class:`NonFiniteLoss` before an update that would make the weights non-finite; with a ``watch``
    (:class:`LossWatch` of one run) it never synchronises with the device and records a non-finite loss there
    instead (the update is then made). Returns the last critic loss, penalty, the generator loss and the last real
    and fake batches.
    """
    config = state.config
    q = config.q
    for _ in range(config.critic_steps):
        real = real_batch(data, config, state.rng, state.index_rng).to(device, non_blocking=True)
        with torch.no_grad():
            fake = state.generator(_noise(config.batch_size, config.z_dim, state.rng, device))
        c_loss = critic_loss(config.loss, state.critic(real), state.critic(fake),
                             paired_scale=config.paired_critic_scale)
        penalty = gradient_penalty(state.critic, real, fake, q=q, g=config.g, at=config.penalty_at,
                                   as_released=config.as_released, generator=state.rng)
        total = c_loss + config.lam * penalty
        _step(state.opt_c, total, "critic loss", state, out, watch)
    fake = state.generator(_noise(config.batch_size, config.z_dim, state.rng, device))
    real_out = None
    if needs_real_scores(config.loss):
        if config.generator_real_batch == "fresh":
            real = real_batch(data, config, state.rng, state.index_rng).to(device, non_blocking=True)
        real_out = state.critic(real)
    g_loss = generator_loss(config.loss, real_out, state.critic(fake))
    _step(state.opt_g, g_loss, "generator loss", state, out, watch)
    return c_loss, penalty, g_loss, real, fake


#: The signals that stop a run at the next iteration boundary, after its checkpoint: Ctrl-C, SIGTERM (what a
#: scheduler sends before SIGKILL) and SIGUSR2 (SLURM's advance warning, on which submitit requeues a job).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal at an iteration boundary, its checkpoint written (``signum``: the signal)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class _StopAtBoundary:
    """Handler of :data:`STOP_SIGNALS`: the first asks the loop to stop at the next iteration boundary (after
    its checkpoint), a second stops at once (KeyboardInterrupt, nothing saved)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this iteration and writing a checkpoint "
              "(send it again to stop at once)", file=sys.stderr)


@contextlib.contextmanager
def interrupt_at_boundary() -> Iterator[_StopAtBoundary]:
    """Install :class:`_StopAtBoundary` for :data:`STOP_SIGNALS` while a loop runs. When the loop stops on SIGTERM
    or SIGUSR2 (:class:`Stopped`, checkpoint written), the signal is then handed to the handler that was there
    before: by default the process ends with status 143 (SIGTERM) as a scheduler expects; inside a submitit job,
    submitit's own SIGUSR2 handler requeues the job, which resumes from the checkpoint."""
    stop = _StopAtBoundary()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set in the main thread; signals then act as usual
        return
    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield stop
    except Stopped as stopped:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous = {}
        if stopped.signum != signal.SIGINT:
            signal.raise_signal(stopped.signum)  # the previous handler: terminate, requeue, or return
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def check_run_folder_path(out: Path) -> None:
    """``ValueError`` when ``out`` (or a folder above it) is a file: a run folder is created there."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"the run folder {out} cannot be made: {path} is a file; give a folder path "
                                 "(it is created if missing)")
            return


def prepare_folder(config: GANConfig, out: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the run folder before any expensive work: returns the checkpoint payload when resuming.

    A folder whose run was killed before its first checkpoint (a log, a config.yaml, no checkpoint) has nothing
    to continue: ``resume`` starts it over."""
    state = folder_state(out)
    if state == "finished" and not (out / CHECKPOINT).is_file() and not overwrite:
        raise FileExistsError(f"{out} holds a finished run whose checkpoint was not kept (committed runs keep "
                              "their summary, log and networks only), so there is nothing to continue: train it "
                              "again from the start with overwrite=True (--overwrite), or choose another folder")
    if resume and not (out / CHECKPOINT).is_file() and state == "partial":
        print(f"{out} holds no checkpoint yet (the run stopped before its first one): starting it over",
              file=sys.stderr)
        overwrite = True
    elif resume:
        payload = read_checkpoint(out / CHECKPOINT)
        check_resumable(config, payload, out / CHECKPOINT)
        return payload
    if state != "empty":
        if not overwrite:
            hint = ("continue it with resume=True (--resume)" if (out / CHECKPOINT).is_file() else
                    "it has no checkpoint yet, so resume=True (--resume) starts it over")
            raise FileExistsError(f"{out} already holds a {state} run; {hint}, or start it over with overwrite=True "
                                  "(--overwrite)")
        for name in (CHECKPOINT, LOG, SUMMARY, "config.yaml"):
            (out / name).unlink(missing_ok=True)
    return None


def train(config: GANConfig, out: Path | str, resume: bool = False, progress: bool = True,
          data: torch.Tensor | None = None, overwrite: bool = False,
          snapshot_every: int | None = None, threads: int | None = None, inexact: bool = False,
          evaluate: bool = True) -> dict[str, Any]:
    """Train (or continue) one GAN run in folder ``out``; returns its summary (also in summary.json).

    ``snapshot_every`` (a multiple of ``checkpoint_every``) keeps the networks at those iterations in
    ``out/snapshots/`` (e.g. to measure the critic's margins along training); it does not change the run.

    ``data`` may pass the images already loaded (N, C, H, W) in [−1, 1], e.g. to share them between the runs
    of a table; otherwise they are loaded from ``config``. They are moved to the run's device once. The
    configuration, the device, the folder (lock, resume or overwrite) and the checkpoint are checked before
    the data and the data set's statistics are loaded.

    ``threads``: torch's thread count while the run trains (restored after); default: on resume the count its
    checkpoint recorded, else this process's. The run's checkpoint and summary record it with the rest of
    :func:`execution_record`. A run whose checkpoint was written in a pack, or with another thread count than
    ``threads``, would not continue bit for bit: refused (``ValueError`` saying how) unless ``inexact``, which
    continues it anyway and records the change (:func:`continued_execution`).

    ``evaluate=False`` (:mod:`mmgan.gan.reproduce`, comparing training lines only) builds no metric extractor,
    evaluates nothing and writes no summary (the run looks unfinished); it returns ``{"iterations": ...}``.
    """
    config.validate()
    check_snapshot_every(snapshot_every, config.checkpoint_every)
    device = resolve_device(config.device)
    out = Path(out)
    check_run_folder_path(out)
    with RunLock(out):
        payload = prepare_folder(config, out, resume, overwrite)
        previous = payload.get("execution") if payload is not None else None
        refuse_alone(previous, out, inexact)
        threads = threads_to_use(previous, threads, str(out), inexact)
        with using_threads(threads):
            data, extractor, reference = data_and_reference(config, data, device, evaluate)
            state = start_state(config, payload, out, device)
            state.execution = continued_execution(previous, execution_record(
                config, None, 0, device, state.iteration, "start" if payload is None else "resume"))
            with execution_settings(config, device):
                _loop(state, data, extractor, reference, device, out, progress, snapshot_every)
            return write_summary(state, out, device) if evaluate else {"iterations": state.iteration}


def data_and_reference(config: GANConfig, data: torch.Tensor | None, device: torch.device, evaluate: bool = True):
    """The training images on ``device`` (loaded unless given), the metric's feature extractor and the data
    set's reference statistics (both None unless ``evaluate``: :func:`evaluate_and_log` then evaluates nothing)."""
    if data is None:
        data = load_images(config.dataset, config.image_size, config.channels, config.data_root)
    check_batch_size(config, len(data))
    data = data.to(device, memory_format=config.memory_format) if data.dim() == 4 else data.to(device)
    if not evaluate:
        return data, None, None
    extractor = make_extractor(config.metric, config.image_size, config.channels, device)
    reference = dataset_statistics(extractor, data, f"{config.dataset}-{config.image_size}px-"
                                   f"{config.channels}ch", device)
    return data, extractor, reference


@contextlib.contextmanager
def execution_settings(config: GANConfig, device: torch.device) -> Iterator[None]:
    """TF32 and cuDNN autotuning as the configuration asks, while a run trains on a CUDA device (restored
    afterwards; nothing changes on the CPU). The metric's extractor turns TF32 off for itself
    (:func:`mmgan.gan.metrics.no_tf32`)."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = config.tf32
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def check_batch_size(config: GANConfig, images: int) -> None:
    """A batch of distinct real images needs at least ``batch_size`` images (``ValueError`` naming the field)."""
    if config.real_sampling != "with_replacement" and config.batch_size > images:
        raise ValueError(f"batch_size={config.batch_size} is larger than the {images} images of dataset="
                         f"{config.dataset!r}: real batches are drawn without replacement; choose batch_size <= "
                         f"{images} (or real_sampling='with_replacement')")


def start_state(config: GANConfig, payload: dict[str, Any] | None, out: Path, device: torch.device) -> RunState:
    """The run's state: restored from ``payload`` (its log cut back to the checkpoint) or new; writes config.yaml."""
    if payload is not None:
        state = restore_state(config, payload, device)
        truncate_log(out, state.iteration)
    else:
        state = new_state(config, device)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=True))
    return state


def due(config: GANConfig, iteration: int, stop_requested: bool) -> tuple[bool, bool, bool]:
    """After generator iteration ``iteration``: is a log line, a metric evaluation, a checkpoint due?"""
    return (iteration % config.log_every == 0,
            iteration % config.metric_every == 0 or iteration == config.iterations,
            iteration % config.checkpoint_every == 0 or iteration == config.iterations or stop_requested)


def write_line(log, record: dict[str, Any]) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()


def training_record(iteration: int, critic_loss: float, penalty: float, generator_loss: float,
                     iterations_per_s: float, gradient_norms: dict[str, float]) -> dict[str, Any]:
    """A training line of log.jsonl (the packed runs write the same keys)."""
    return {"iteration": iteration, "critic_loss": critic_loss, "penalty": penalty,
            "generator_loss": generator_loss, "iterations_per_s": iterations_per_s, **gradient_norms}


def evaluate_and_log(state: RunState, extractor, reference, device: torch.device, out: Path, log) -> float | None:
    """The metric at ``state.iteration`` (unless already evaluated there, or no ``extractor``), appended to the
    history and the log; the weights are checked first."""
    if extractor is None or state.metrics and state.metrics[-1][0] == state.iteration:
        return None
    _check_parameters(state, out, "before a metric evaluation")
    config = state.config
    samples = config.metric_samples_at(state.iteration)
    value = evaluate(state, extractor, reference, device, samples)
    state.metrics.append((state.iteration, value))
    state.metric_samples.append(samples)
    # a run with a sample schedule labels each evaluation (the others' count is the config's metric_samples)
    labelled = {} if config.early_metric_samples is None else {"samples": samples}
    write_line(log, {"iteration": state.iteration, config.metric: value, **labelled})
    return value


def stopped(stop: _StopAtBoundary, iteration: int, where: str, how: str = "--resume") -> Stopped:
    name = "Ctrl-C" if stop.signum == signal.SIGINT else signal.Signals(stop.signum).name
    return Stopped(f"stopped by {name} at iteration {iteration}; {where}, continue with {how}", stop.signum)


def _loop(state: RunState, data: torch.Tensor, extractor, reference, device: torch.device, out: Path,
          progress: bool, snapshot_every: int | None = None) -> None:
    config = state.config
    watch = LossWatch(1, device)
    bar = tqdm(total=config.iterations, initial=state.iteration, disable=not progress, desc="generator iterations",
               mininterval=2.0)
    clock, clock_iteration = time.perf_counter(), state.iteration
    with (out / LOG).open("a", encoding="utf-8") as log, interrupt_at_boundary() as stop:
        try:
            while state.iteration < config.iterations:
                c_loss, penalty, g_loss, real, fake = training_iteration(state, data, device, out, watch)
                state.iteration += 1
                bar.update(1)
                log_due, metric_due, checkpoint_due = due(config, state.iteration, stop.requested)
                if not (log_due or metric_due or checkpoint_due):
                    continue  # nothing is read back from the device between these points
                errors = watch.errors([state], [out])
                if errors:
                    raise errors[0]
                if log_due:
                    now = time.perf_counter()
                    rate = (state.iteration - clock_iteration) / max(now - clock, 1e-9)
                    clock, clock_iteration = now, state.iteration
                    write_line(log, training_record(state.iteration, c_loss.item(), penalty.item(), g_loss.item(),
                                                      rate, gradient_norms(state, real, fake.detach())))
                if metric_due:
                    value = evaluate_and_log(state, extractor, reference, device, out, log)
                    if value is not None:
                        bar.set_postfix({config.metric: f"{value:.2f}"})
                if checkpoint_due:
                    save_checkpoint(state, out, snapshot_every)
                if stop.requested:
                    raise stopped(stop, state.iteration, f"the checkpoint in {out} is saved")
        finally:
            bar.close()


#: The record fields that fix a run's arithmetic: a run continued with any of them changed is no longer the
#: same computation (:func:`continued_execution` keeps the earlier arrangement beside the new one).
ARITHMETIC_FIELDS: tuple[str, ...] = ("packed", "pack", "position", "threads", "dtype", "channels_last", "commit",
                                      "platform")
#: Environment variables that change which instruction set oneDNN, MKL or ATen use (recorded when set).
ISA_VARIABLES: tuple[str, ...] = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
                                  "ATEN_CPU_CAPABILITY")


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and its vector instruction-set flags (Linux: /proc/cpuinfo; elsewhere the name only):
    oneDNN and MKL choose their kernels from these, so two CPUs with other flags may round differently."""
    name, flags = platform.processor() or platform.machine(), []
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        found = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
        name = model.group(1).strip() if model else name
        flags = sorted({f for f in (found.group(1).split() if found else [])
                        if re.match(r"^(avx|amx|fma|f16c|sse4|asimd|sve|neon)", f)})
    return name, flags


def _library_versions() -> dict[str, str]:
    """oneDNN's and MKL's versions as torch reports its build (``torch.__config__.show()``)."""
    shown, out = torch.__config__.show(), {}
    onednn = re.search(r"MKL-DNN v([\w.]+)", shown) or re.search(r"oneDNN v([\w.]+)", shown)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", shown)
    out["onednn"] = onednn.group(1) if onednn else "none"
    out["mkl"] = mkl.group(1) if mkl else "none"
    return out


def platform_record(device: torch.device | str | None = None) -> dict[str, Any]:
    """What of the machine and libraries fixes a run's rounding: the device, torch, the CPU (model, vector
    instruction-set flags, ATen's capability), oneDNN and MKL, the instruction-set variables when set, and on
    CUDA the GPU, CUDA and cuDNN. Two runs agree bit for bit only where these agree (and threads, pack, code)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    name, flags = _cpu()
    out: dict[str, Any] = {"device": device.type, "torch": str(torch.__version__), "machine": platform.machine(),
                           "cpu": name, "cpu_flags": flags,
                           "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), **_library_versions()}
    variables = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}
    if variables:
        out["isa_variables"] = variables
    if device.type == "cuda":
        out.update({"gpu": torch.cuda.get_device_name(device), "cuda": str(torch.version.cuda),
                    "cudnn": str(torch.backends.cudnn.version())})
    return out


def execution_record(config: GANConfig, pack: list[str] | None = None, position: int = 0,
                     device: torch.device | str | None = None, iteration: int = 0,
                     reason: str = "start") -> dict[str, Any]:
    """What fixes a run's arithmetic beyond its configuration: the pack it trains in (the folder names of its
    runs, in order, and its position; a single run has ``pack=[]``, ``packed=False``: plain layers, where a pack
    even of one has grouped ones), the thread count, torch's default dtype (the networks'), the memory layout,
    the code's commit (with ``dirty`` if the work tree had changes) and :func:`platform_record`; from generator
    iteration ``iteration`` on, for ``reason`` (``'start'``, ``'resume'``, or ``'repack'``: a run of its pack failed
    and the others went on without it)."""
    return {"pack": list(pack or []), "position": position if pack else 0, "packed": pack is not None,
            "threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()).removeprefix("torch."),
            "channels_last": config.channels_last, "commit": code_commit(),
            "platform": platform_record(device if device is not None else resolve_device(config.device)),
            "from_iteration": iteration, "reason": reason}


def continued_execution(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """The record of a run that continues (``current``: its arrangement now) after ``previous`` (its checkpoint's
    record; None for a fresh run or a checkpoint older than the record): ``previous`` itself when nothing of
    :data:`ARITHMETIC_FIELDS` changed, else ``current`` with the earlier arrangements in ``earlier`` (oldest first;
    ``{"recorded": False}`` stands for an arrangement nothing recorded)."""
    if previous is None:
        if current["from_iteration"] == 0:
            return current
        return {**current, "earlier": [{"from_iteration": 0, "recorded": False}]}
    if all(previous.get(name) == current.get(name) for name in ARITHMETIC_FIELDS):
        return previous
    earlier = [*previous.get("earlier", []), {k: v for k, v in previous.items() if k != "earlier"}]
    return {**current, "earlier": earlier}


def arrangement(record: dict[str, Any] | None) -> str:
    """A record's arrangement in words: 'alone' or 'position P in a pack of K (names)', and its threads."""
    if record is None or record.get("recorded") is False:
        return "an arrangement nothing recorded"
    if not record.get("packed"):
        where = "alone (plain layers)"
    else:
        pack = record.get("pack", [])
        where = f"position {record.get('position', 0)} of a pack of {len(pack)} ({', '.join(pack)})"
    return f"{where}, {record.get('threads', '?')} thread(s)"


def threads_to_use(previous: dict[str, Any] | None, threads: int | None, what: str, inexact: bool,
                   how: str = "--threads") -> int:
    """The thread count a run (``what``) continues with: ``threads`` when given, else the one its checkpoint
    recorded (``previous``), else this process's. A given count other than the recorded one is refused
    (``ValueError`` saying how) unless ``inexact``."""
    if threads is not None:
        check_threads(threads)
    recorded = previous.get("threads") if previous else None
    if threads is not None and recorded is not None and threads != recorded and not inexact:
        raise ValueError(f"{what} trained with {recorded} thread(s); {how} {threads} would continue it with other "
                         f"rounding, not bit for bit: leave {how} out (it resumes with {recorded}) or give "
                         f"{recorded}, or pass --inexact (inexact=True) to continue with {threads} anyway (recorded "
                         "in its summary)")
    return threads if threads is not None else recorded if recorded is not None else torch.get_num_threads()


def default_threads() -> int:
    """The thread count of a new run started from the command line: ``$OMP_NUM_THREADS`` when it is a whole
    number >= 1, else 1 (what the committed studies used)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else 1


def check_threads(threads: Any) -> int:
    """``threads`` if it is a positive integer (``ValueError`` naming the valid values otherwise)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1 (torch's intra-op threads; 1 is what the committed "
                         f"studies used), got {threads!r}")
    return threads


def refuse_alone(previous: dict[str, Any] | None, out: Path, inexact: bool) -> None:
    """A run whose checkpoint was written in a pack continues bit for bit only in that pack: ``ValueError`` that
    says how, unless ``inexact``."""
    if previous is None or not previous.get("packed") or inexact:
        return
    pack = previous.get("pack", [])
    raise ValueError(
        f"{out} trained at {arrangement(previous)}; continued alone it would compute with plain instead of grouped "
        f"convolutions (different rounding from the first step, growing with training), not bit for bit. Resume "
        f"its pack instead: the command that trained it (`mmgan table ...`, the same `mmgan sweep ...`) resumes "
        f"all {len(pack)} runs together, as does run_table(..., runs=[...]) or train_packed on the {len(pack)} "
        f"folders (siblings of {out.name}); or pass --inexact (inexact=True) to continue it alone anyway (the "
        f"change is recorded in its summary)")


def write_summary(state: RunState, out: Path, device: torch.device,
                  execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's summary.json: its metric statistics and history, environment, configuration and
    :func:`execution_record` (``execution``; by default the run's own, ``state.execution``, else a single run's)."""
    config = state.config
    values = [v for _, v in state.metrics]
    if execution is None:
        execution = state.execution if state.execution is not None else execution_record(config, device=device)
    summary = {"iterations": state.iteration, "metric": config.metric, "final": values[-1],
               "lowest": min(values), "lowest_at": state.metrics[values.index(min(values))][0],
               "history": state.metrics, "history_samples": state.metric_samples,
               "environment": environment(device), "config": dataclasses.asdict(config),
               "execution": execution}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a gradient-penalised GAN (mmgan).")
    parser.add_argument("--config", type=Path, help="YAML file of config values (flags override it; with --resume "
                                                    "and no --config, the run folder's own config.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log, summary)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    group.add_argument("--overwrite", action="store_true", help="discard a run already in --out and start over")
    parser.add_argument("--no-progress", action="store_true")
    for field in dataclasses.fields(GANConfig):
        # values stay strings here: mmgan.gan.config.config_from coerces them and names the field on error
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=None,
                            help=f"default: {field.default}")
    parser.add_argument("--gamma", help="γ of a zero-centred penalty (g zero_centered at real, fake or data) "
                                        "instead of --lam: λ = γ/2 for R1 or R2")
    parser.add_argument("--threads", type=int, help="torch threads while training (default: $OMP_NUM_THREADS or 1 for "
                                                    "a new run, the recorded count on --resume); recorded: other "
                                                    "counts round differently")
    parser.add_argument("--inexact", action="store_true",
                        help="with --resume: continue a run trained in a pack alone, or with another --threads, "
                             "knowing it no longer continues bit for bit (recorded in its summary)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    values: dict[str, Any] = {}
    try:
        source = args.config
        if source is None and args.resume and (args.out / "config.yaml").is_file():
            source = args.out / "config.yaml"  # the run's own configuration, as it wrote it
        if source is not None:
            loaded = read_yaml(source) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{source} must hold a mapping of config keys to values")
            values.update(loaded)
        values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(GANConfig)
                       if getattr(args, f.name) is not None})
        if args.gamma is not None:  # the flag stands for lam: it replaces a lam read from a file
            if args.lam is None:
                values.pop("lam", None)
            values["gamma"] = args.gamma
        config = config_from(values)
        # the thread count is always explicit: for a new run $OMP_NUM_THREADS when set, else 1 (what the committed
        # studies used); for a resumed run the recorded one (None: train reads it from the checkpoint)
        threads = args.threads if args.threads is not None else None if args.resume else default_threads()
        summary = train(config, args.out, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, threads=threads, inexact=args.inexact)
    except (ValueError, OSError, RuntimeError) as error:  # OSError: FileExistsError, FileNotFoundError, a full disk
        print(f"mmgan train: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("iterations", "metric", "final", "lowest", "lowest_at")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
