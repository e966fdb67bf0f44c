"""The one training loop: K runs (a :class:`Bundle`) trained side by side, each kept in its own run folder.

Per generator iteration the bundle makes one training iteration of every run
(``critic_steps`` critic updates on eq. 6, critic loss + λ · gradient penalty, then
one generator update); between the log, metric and checkpoint points nothing is
read back from the device. A single run is a bundle of one with plain layers
(:class:`mmgan.gan.train.Alone`), the runs of a table a pack of K with grouped
ones (:class:`mmgan.gan.packed_training.Pack`; a grouped convolution sums in
another order than a plain one, so the two round differently). At each point:

* non-finite losses, recorded on the device (:class:`mmgan.gan.run_state.LossWatch`),
  and, before a metric evaluation or checkpoint, non-finite weights fail their run
  (:class:`mmgan.gan.run_state.NonFiniteLoss`), which leaves the bundle; the others go
  on unchanged (the runs are independent: a NaN in one reaches no other);
* a log line per run: losses, penalty, gradient norms and the diagnostics of
  :mod:`mmgan.gan.diagnostics`, and the iterations/s (each run's own progress per
  wall-clock second);
* the metric of each run's generator (:func:`evaluate_and_log`) and its checkpoint
  (:func:`mmgan.gan.run_state.save_checkpoint`);
* Ctrl-C, SIGTERM and SIGUSR2 (:func:`mmgan.base.run_folder.interrupt_at_boundary`)
  stop the loop after the checkpoints (:class:`mmgan.base.run_folder.Stopped`).

Each run that finishes gets its ``summary.json`` (:func:`mmgan.gan.run_state.write_summary`). Around the
loop: the training images and the metric's reference (:func:`data_and_reference`) and the CUDA settings
(:func:`execution_settings`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from mmgan.base.run_folder import LOG, interrupt_at_boundary
from mmgan.gan.config import GANConfig
from mmgan.gan.data import load_images
from mmgan.gan.metrics import METRICS, dataset_statistics, generator_statistics, make_extractor
from mmgan.gan.models import sampling_mode
from mmgan.gan.run_state import (
    LossWatch,
    RunState,
    check_parameters,
    non_finite_weights,
    save_checkpoint,
    write_summary,
)

__all__ = ["Bundle", "check_batch_size", "data_and_reference", "due", "evaluate", "evaluate_and_log",
           "execution_settings", "train_runs", "training_record", "write_line"]


class Bundle(Protocol):
    """K runs at the same iteration that train as one: what :func:`train_runs` asks of them.

    ``states`` and ``outs``: the runs still in the bundle (their :class:`~mmgan.gan.run_state.RunState`, written
    into by :meth:`sync`) and their folders, in order; ``iteration``: the bundle's generator iteration (the states'
    own are set at the log, metric and checkpoint points); ``packed``: grouped layers (a pack) or plain ones."""

    states: list[RunState]
    outs: list[Path]
    iteration: int
    packed: bool

    def step(self, data: torch.Tensor, device: torch.device, watch: LossWatch) -> None:
        """One training iteration of every run, its non-finite losses recorded in ``watch`` (iteration not
        advanced)."""

    def keep_gradients(self) -> None:
        """Hold the generator step's parameter-gradient norms for :meth:`log_rows` (before :meth:`keep`)."""

    def weights_finite(self) -> list[bool]:
        """Per run: are all its weights finite? (One host synchronisation.)"""

    def keep(self, runs: list[int], device: torch.device) -> None:
        """Go on with the runs ``runs`` (positions in ``states``) alone."""

    def log_rows(self) -> list[tuple[list[float], dict[str, float]]]:
        """Per run, what a log line records of the last iteration: its critic loss, penalty and generator loss,
        and its gradient norms and diagnostics (:mod:`mmgan.gan.diagnostics`)."""

    def sync(self, optimisers: bool) -> None:
        """Write the networks (and with ``optimisers`` the Adam states and random generators) into ``states``."""


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
    """A training line of log.jsonl."""
    return {"iteration": iteration, "critic_loss": critic_loss, "penalty": penalty,
            "generator_loss": generator_loss, "iterations_per_s": iterations_per_s, **gradient_norms}


def evaluate(state: RunState, extractor, reference, device: torch.device, samples: int) -> float:
    """The run's metric for the current generator from ``samples`` samples, drawn as the configuration says
    (BatchNorm mode, batch size, 8-bit rounding); the generator is left exactly as it was."""
    config = state.config
    with sampling_mode(state.generator, config.sample_mode) as generator:
        stats = generator_statistics(generator, extractor, samples, config.z_dim, device,
                                     batch_size=config.sample_batch_size, seed=12345,
                                     quantize=config.quantize_samples)
    return METRICS[config.metric].distance(stats, reference)


def evaluate_and_log(state: RunState, extractor, reference, device: torch.device, out: Path, log) -> float | None:
    """The metric at ``state.iteration`` (unless already evaluated there, or no ``extractor``), appended to the
    history and the log; the weights are checked first."""
    if extractor is None or state.metrics and state.metrics[-1][0] == state.iteration:
        return None
    check_parameters(state, out, "before a metric evaluation")
    config = state.config
    samples = config.metric_samples_at(state.iteration)
    value = evaluate(state, extractor, reference, device, samples)
    state.metrics.append((state.iteration, value))
    state.metric_samples.append(samples)
    # a run with a sample schedule labels each evaluation (the others' count is the config's metric_samples)
    labelled = {} if config.early_metric_samples is None else {"samples": samples}
    write_line(log, {"iteration": state.iteration, config.metric: value, **labelled})
    return value


def train_runs(bundle: Bundle, data: torch.Tensor, extractor, reference, device: torch.device, progress: bool,
               results: dict[int, dict[str, Any] | Exception], snapshot_every: int | None = None,
               how: str = "--resume") -> None:
    """Train the runs of ``bundle`` to their configuration's ``iterations`` (see the module's docstring); fills
    ``results`` {position in ``bundle.states``: summary, or the error that failed the run} as the runs finish or
    fail (without an ``extractor``: no metric, no summary, ``{"iterations": ...}``). ``snapshot_every`` as in
    :func:`mmgan.gan.train.train`; ``how``: how to continue after a signal stopped the loop."""
    config = bundle.states[0].config
    live = list(range(len(bundle.states)))  # the runs still in the bundle, by their first position
    watch = LossWatch(len(live), device)
    count = f" ({len(live)} packed runs)" if bundle.packed else ""
    bar = tqdm(total=config.iterations, initial=bundle.iteration, disable=not progress,
               desc=f"generator iterations{count}", mininterval=2.0)
    clock, clock_iteration = time.perf_counter(), bundle.iteration
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context((out / LOG).open("a", encoding="utf-8")) for out in bundle.outs]
        stop = stack.enter_context(interrupt_at_boundary())
        stack.callback(bar.close)
        while live and bundle.iteration < config.iterations:
            bundle.step(data, device, watch)
            bundle.iteration += 1
            bar.update(1)
            log_due, metric_due, checkpoint_due = due(config, bundle.iteration, stop.requested)
            if not (log_due or metric_due or checkpoint_due):
                continue  # nothing is read back from the device between these points
            states, outs = bundle.states, bundle.outs
            for state in states:
                state.iteration = bundle.iteration
            if log_due:
                bundle.keep_gradients()
            errors = watch.errors(states, outs)
            if metric_due or checkpoint_due:  # no run saves or evaluates non-finite weights
                evaluates = metric_due and (not states[0].metrics or states[0].metrics[-1][0] != bundle.iteration)
                when = "before a metric evaluation" if evaluates else "before writing a checkpoint"
                for i, finite in enumerate(bundle.weights_finite()):
                    if not finite and i not in errors:
                        errors[i] = non_finite_weights(states[i], outs[i], when)
            if errors:  # these runs fail and leave the bundle; the others go on
                for i, error in errors.items():
                    results[live[i]] = error
                keep = [i for i in range(len(live)) if i not in errors]
                live, logs = [live[i] for i in keep], [logs[i] for i in keep]
                if not live:
                    break
                bundle.keep(keep, device)
                watch = watch.select(keep)
                states, outs = bundle.states, bundle.outs
            if log_due:
                now = time.perf_counter()
                rate = (bundle.iteration - clock_iteration) / max(now - clock, 1e-9)
                clock, clock_iteration = now, bundle.iteration
                for log, (losses, norms) in zip(logs, bundle.log_rows()):
                    write_line(log, training_record(bundle.iteration, *losses, rate, norms))
            if checkpoint_due or metric_due:
                bundle.sync(optimisers=checkpoint_due)
            if metric_due:
                values = [evaluate_and_log(s, extractor, reference, device, o, log)
                          for s, o, log in zip(states, outs, logs)]
                shown = [v for v in values if v is not None]
                bar.set_postfix({config.metric: f"{min(shown):.2f}"} if shown else {})
            if checkpoint_due:
                for state, out in zip(states, outs):
                    save_checkpoint(state, out, snapshot_every)
            if stop.requested:
                where = (f"the checkpoints of the {len(live)} packed runs in {', '.join(map(str, outs))} are saved"
                         if bundle.packed else f"the checkpoint in {outs[0]} is saved")
                raise stop.stopped(bundle.iteration, where, how)
    for position, state, out in zip(live, bundle.states, bundle.outs):
        results[position] = write_summary(state, out, device) if extractor is not None else \
            {"iterations": state.iteration}
