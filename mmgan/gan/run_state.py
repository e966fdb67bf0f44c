"""A GAN run's state and its checkpoint: what a run needs to continue exactly, and the checks that keep it sound.

* :class:`RunState` — both networks, both Adam states, the iteration, the configuration,
  the metric history and every random state (:mod:`mmgan.base.randomness`);
* :func:`save_checkpoint` — all of it in one ``checkpoint.pt``, written atomically
  (temporary file + rename, so the previous checkpoint stays until the new one is
  complete), after checking that every weight is finite; :func:`restore_state` reads it
  back into a new state (:func:`mmgan.gan.train.new_state`);
* :class:`LossWatch` — where the losses of K runs first became non-finite, recorded on
  the device without a host synchronisation; :class:`NonFiniteLoss` names the
  iteration and the checkpoint that is kept;
* :func:`real_batch` — the real images of a step, drawn from the run's generators;
* :func:`write_summary` — the finished run's ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmgan.base.randomness import device_distinct_indices, indices
from mmgan.base.results import atomic_torch_save, atomic_write_text, environment
from mmgan.base.run_folder import CHECKPOINT, SUMMARY, snapshot_path
from mmgan.gan.config import EXECUTION_FIELDS, GANConfig

__all__ = ["LossWatch", "NonFiniteLoss", "RunState", "check_parameters", "check_resumable", "non_finite_weights",
           "real_batch", "restore_state", "save_checkpoint", "weights_finite", "write_summary"]


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
    #: what fixes the run's arithmetic (:func:`mmgan.gan.train.execution_record`, continued by
    #: :func:`mmgan.gan.train.continued_execution`); kept in its checkpoint and summary. Restored from a
    #: checkpoint it is the record the run was saved with.
    execution: dict[str, Any] | None = None
    #: the generator of the real batches' distinct indices on a CUDA device
    #: (:func:`mmgan.gan.train.index_generator`); None: they come from ``rng``
    index_rng: torch.Generator | None = None


# Keys that may change between a run and its continuation (the length and bookkeeping of the run).
RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "log_every", *EXECUTION_FIELDS}


def networks_payload(state: RunState) -> dict[str, Any]:
    """The run's networks alone (``networks.pt`` and snapshots): iteration, generator and critic state dicts."""
    return {"iteration": state.iteration, "generator": state.generator.state_dict(),
            "critic": state.critic.state_dict()}


def save_checkpoint(state: RunState, out: Path, snapshot_every: int | None = None) -> None:
    """Write ``checkpoint.pt`` atomically (every RNG state included); with ``snapshot_every``, at iterations
    that are multiples of it also keep the networks in ``snapshots/`` (:func:`mmgan.base.run_folder.snapshot_path`)."""
    check_parameters(state, out, "before writing a checkpoint")
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


def restore_state(state: RunState, payload: dict[str, Any]) -> RunState:
    """``state`` (a new run state of the checkpoint's configuration, on its device) continued from a checkpoint
    payload (from :func:`mmgan.base.run_folder.read_checkpoint`); returns it."""
    config = state.config
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


class NonFiniteLoss(RuntimeError):
    """Raised when a loss or a parameter becomes NaN or infinite; the last good checkpoint (if any) is kept."""


def kept_checkpoint(state: RunState, out: Path | str) -> str:
    if state.saved_at is None:
        return f"no checkpoint has been written to {out} yet"
    return f"the checkpoint of iteration {state.saved_at} in {out} is kept"


def non_finite_weights(state: RunState, out: Path | str, when: str) -> NonFiniteLoss:
    """The error of a run whose weights became NaN or infinite by ``state.iteration``."""
    return NonFiniteLoss(f"a network weight became non-finite by iteration {state.iteration} (found {when}); "
                         f"{kept_checkpoint(state, out)} (lower lr or lam)")


def weights_finite(state: RunState) -> bool:
    """Are all weights of both networks finite? (One host synchronisation.)"""
    parameters = [p.detach() for p in (*state.generator.parameters(), *state.critic.parameters())]
    return bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all())


def check_parameters(state: RunState, out: Path | str, when: str) -> None:
    """Raise :class:`NonFiniteLoss` if any weight of either network is NaN or infinite (one host sync)."""
    if not weights_finite(state):
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
                                 f"{kept_checkpoint(states[k], outs[k])} (lower lr or lam)")
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
    the indices come from ``index_rng`` on its device when there is one
    (:func:`mmgan.gan.train.index_generator`), else from ``rng``."""
    if index_rng is None:
        index = indices(data.shape[0], config.batch_size, rng, config.real_sampling == "with_replacement",
                        data.device)
    elif data.device != index_rng.device:
        raise ValueError(f"the run draws its batch indices on {index_rng.device}, so its images must be there too, "
                         f"not on {data.device}")
    else:
        index = device_distinct_indices(data.shape[0], config.batch_size, index_rng)
    return data[index]


def write_summary(state: RunState, out: Path, device: torch.device) -> dict[str, Any]:
    """The run's summary.json: its metric statistics and history, environment, configuration and execution
    record (``state.execution``, :func:`mmgan.gan.train.execution_record`)."""
    config = state.config
    values = [v for _, v in state.metrics]
    summary = {"iterations": state.iteration, "metric": config.metric, "final": values[-1],
               "lowest": min(values), "lowest_at": state.metrics[values.index(min(values))][0],
               "history": state.metrics, "history_samples": state.metric_samples,
               "environment": environment(device), "config": dataclasses.asdict(config),
               "execution": state.execution}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2))
    return summary

