"""K GAN runs of one architecture trained as one: the packed training step (Adam, random draws, losses).

The cells of a table (loss × q × g × seed) share the architecture, the image size
and the optimiser, so K of them train as one packed network (:mod:`mmgan.gan.packed_layers`:
grouped convolutions, K independent copies side by side). The step stays K independent runs:

* the losses: the packed step minimises ``Σ_k loss_k``; run k's parameters
  receive the gradient of ``loss_k`` alone (the other terms do not depend on them);
* Adam is elementwise: one Adam over the packed parameters is K Adams as long as
  the runs share the hyper-parameters and the step count (weight decay and
  AMSGrad are elementwise too; tested);
* the random draws: each run keeps its own CPU generator and draws its batch
  indices, noise and interpolation weights in the order of
  :func:`mmgan.gan.train.training_iteration`, so the packed runs see exactly the
  numbers they would see alone.

The packed result equals the K separate runs up to floating-point rounding (a
grouped convolution or a batched matrix product may sum in another order than a
plain one). On the CPU, 4 runs × 5 iterations came out bit-identical in float64
and within 5e-7 relative in float32 (``tests/test_packed.py`` allows 1e-10
relative in float64).

Speed on one CPU thread (2-core machine under load, median of 6): 6 runs of the
16 px DCGAN, width 16, batch 32 (the ``cpu`` preset) took 18 ms per run and
iteration packed against 25 ms one after another (1.4× faster); at 32 px, width
16, 3 channels, packing was 10-15 % slower (88 against 75 ms): there the
convolutions fill the core and only per-operation overhead is saved. The gain
this is built for, on a GPU, has not been measured yet.

Entry points: :func:`pack_adam`, :func:`unpack_adam`, :func:`pack_states`, :func:`unpack_state` and
:func:`packed_training_iteration`. The training loop of packed runs (run folders,
checkpoints, logs, metrics, failures) is :func:`mmgan.gan.packed_training.train_packed`,
which :func:`mmgan.gan.tables.run_table` uses by default.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from mmgan.base.randomness import normal
from mmgan.gan.config import GANConfig
from mmgan.gan.packed_layers import (
    PackedBatchNorm2d,
    PackedSequential,
    check_runs,
    pack_modules,
    packed_critic_scores,
    packed_generate,
    packed_gradient_penalty,
    unpack_modules,
)
from mmgan.gan.run_state import LossWatch, NonFiniteLoss, RunState, real_batch
from mmgan.losses import critic_loss, generator_loss, needs_real_scores
from mmgan.penalties import penalty_points

__all__ = ["PER_RUN_FIELDS", "SHARED_FIELDS", "PackedIteration", "PackedNonFiniteLoss", "PackedState",
           "check_packable", "pack_adam", "pack_states", "packed_training_iteration", "unpack_adam", "unpack_state"]

#: Configuration fields the runs of one pack must share (architecture, batch, optimiser, loop shape, device).
SHARED_FIELDS: tuple[str, ...] = ("dataset", "data_root", "image_size", "channels", "arch", "width", "z_dim",
                                  "leaky_slope", "critic_batchnorm", "lr", "beta1", "beta2", "batch_size",
                                  "critic_steps", "device")
#: Fields each run of a pack may set for itself (what the cells and seeds of a table vary, and more).
PER_RUN_FIELDS: tuple[str, ...] = ("loss", "q", "g", "as_released", "lam", "penalty_at", "paired_critic_scale",
                                   "real_sampling", "generator_real_batch", "seed")


# ----------------------------------------------------------------------------- BatchNorm statistics


@contextlib.contextmanager
def _statistics_of(packed: nn.Module, runs: list[bool]) -> Iterator[None]:
    """Train-mode forwards inside update the BatchNorm running statistics of the chosen runs only."""
    layers = [m for m in packed.modules() if isinstance(m, PackedBatchNorm2d)]
    mask = None if all(runs) else torch.tensor(runs)
    for layer in layers:
        layer.update_runs = mask
    try:
        yield
    finally:
        for layer in layers:
            layer.update_runs = None


# ----------------------------------------------------------------------------- Adam


def _hyper(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}


def _check_adam(optimizers: list[torch.optim.Optimizer], models: list[nn.Module], what: str) -> None:
    if len(optimizers) != len(models):
        raise ValueError(f"{what}: {len(optimizers)} optimisers for {len(models)} networks")
    for k, (optimizer, model) in enumerate(zip(optimizers, models)):
        if type(optimizer) is not torch.optim.Adam:
            raise ValueError(f"{what}: optimiser {k} is {type(optimizer).__name__}; packed mode supports "
                             "torch.optim.Adam only")
        if len(optimizer.param_groups) != 1 or [id(p) for p in optimizer.param_groups[0]["params"]] \
                != [id(p) for p in model.parameters()]:
            raise ValueError(f"{what}: optimiser {k} must hold exactly its network's parameters, in order, "
                             "in one parameter group")
    first = _hyper(optimizers[0])
    for k, optimizer in enumerate(optimizers[1:], 1):
        for key, value in _hyper(optimizer).items():
            if not _same(value, first.get(key)):
                raise ValueError(f"{what}: the runs' Adam {key} differ ({first.get(key)!r} vs {value!r}, run {k}); "
                                 "one packed Adam needs shared hyper-parameters")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def pack_adam(optimizers: Sequence[torch.optim.Optimizer], packed: PackedSequential,
              models: Sequence[nn.Module]) -> torch.optim.Adam:
    """One Adam over ``packed``'s parameters equal to the K runs' Adams (``optimizers[k]`` over ``models[k]``).

    Adam acts elementwise, so with shared hyper-parameters (checked) and a shared
    step count (checked) it is K independent Adams; its moments are the runs'
    moments concatenated like the weights.
    """
    optimizers, models = list(optimizers), list(models)
    runs = check_runs(packed, len(models), "pack_adam")
    _check_adam(optimizers, models, "pack_adam")
    params = list(packed.parameters())
    result = torch.optim.Adam(params)
    result.param_groups[0].update(copy.deepcopy(_hyper(optimizers[0])))
    per_run = [list(m.parameters()) for m in models]
    for i, target in enumerate(params):
        states = [opt.state.get(run_params[i]) for opt, run_params in zip(optimizers, per_run)]
        if all(s is None or not s for s in states):
            continue
        if any(s is None or not s for s in states) or len({tuple(sorted(s)) for s in states}) != 1:
            raise ValueError("pack_adam: the runs' Adam states differ in kind (one has taken steps, another not)")
        steps = {float(s["step"]) for s in states}
        if len(steps) != 1:
            raise ValueError(f"pack_adam: the runs' Adam step counts differ ({sorted(steps)}); packed runs must "
                             "be at the same iteration")
        packed_state: dict[str, Any] = {}
        for key, value in states[0].items():
            if key == "step":
                packed_state[key] = value.clone() if isinstance(value, torch.Tensor) else value
            else:
                packed_state[key] = torch.stack([s[key] for s in states]).reshape(runs * value.shape[0],
                                                                                   *value.shape[1:])
        result.state[target] = packed_state
    return result


def unpack_adam(packed_optimizer: torch.optim.Adam, optimizers: Sequence[torch.optim.Optimizer],
                models: Sequence[nn.Module], packed: PackedSequential) -> None:
    """Write the packed Adam's state and hyper-parameters back into the K runs' Adams (in place)."""
    optimizers, models = list(optimizers), list(models)
    runs = check_runs(packed, len(models), "unpack_adam")
    _check_adam(optimizers, models, "unpack_adam")
    hyper = _hyper(packed_optimizer)
    per_run = [list(m.parameters()) for m in models]
    for k, optimizer in enumerate(optimizers):
        optimizer.param_groups[0].update(copy.deepcopy(hyper))
        for i, source in enumerate(packed.parameters()):
            state = packed_optimizer.state.get(source)
            target = per_run[k][i]
            if not state:
                optimizer.state.pop(target, None)
                continue
            optimizer.state[target] = {
                key: (value.clone() if isinstance(value, torch.Tensor) else value) if key == "step"
                else value.reshape(runs, *target.shape)[k].clone()
                for key, value in state.items()}


# ----------------------------------------------------------------------------- packed runs


class PackedNonFiniteLoss(NonFiniteLoss):
    """A loss of some packed runs became NaN or infinite; no update was made. ``runs`` lists them."""

    def __init__(self, message: str, runs: list[int]) -> None:
        super().__init__(message)
        self.runs = runs


@dataclass
class PackedState:
    """K runs trained as one: their configurations, the packed networks and Adams, and each run's generator
    (the same ``torch.Generator`` objects as the runs' :class:`mmgan.gan.run_state.RunState`, when packed by
    :func:`pack_states`)."""

    configs: list[GANConfig]
    generator: PackedSequential
    critic: PackedSequential
    opt_g: torch.optim.Adam
    opt_c: torch.optim.Adam
    rngs: list[torch.Generator]
    #: each run's generator of real-batch indices on its CUDA device, or None (:func:`mmgan.gan.train.index_generator`)
    index_rngs: list[torch.Generator | None]
    iteration: int = 0

    @property
    def runs(self) -> int:
        return len(self.configs)


class PackedIteration(NamedTuple):
    """What :func:`packed_training_iteration` returns, each the K runs' (detached) values of
    :func:`mmgan.gan.train.training_iteration`."""

    critic_loss: torch.Tensor  # (K,) the last critic step's loss (without the penalty)
    penalty: torch.Tensor  # (K,) the last critic step's penalty
    generator_loss: torch.Tensor  # (K,)
    real: torch.Tensor  # (K, B, C, H, W) the last real batches
    fake: torch.Tensor  # (K, B, C, H, W) the generator step's fake batches


def check_packable(configs: Sequence[GANConfig]) -> list[GANConfig]:
    """Validate K run configurations and check they can train as one pack; ``ValueError`` names the field.

    The runs must agree on :data:`SHARED_FIELDS`; each may set :data:`PER_RUN_FIELDS`
    for itself, except that ``penalty_at='data'`` (2B points) cannot be mixed with the
    other choices (B points). Fields of the loop around an iteration (iterations,
    metrics, checkpoints, logging) are not looked at.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("a pack needs at least one run")
    for config in configs:
        if not isinstance(config, GANConfig):
            raise ValueError(f"expected GANConfig, got {type(config).__name__}")
        config.validate()
    for name in SHARED_FIELDS:
        values = [getattr(c, name) for c in configs]
        if len(set(values)) != 1:
            raise ValueError(f"packed runs must share {name}; got {values}")
    if len({c.penalty_at == "data" for c in configs}) != 1:
        raise ValueError("packed runs cannot mix penalty_at='data' (2B points) with "
                         f"{sorted({c.penalty_at for c in configs})} (B points)")
    return configs


def pack_states(states: Sequence[RunState]) -> PackedState:
    """Pack K runs (:func:`mmgan.gan.train.new_state` or a restored checkpoint) into one :class:`PackedState`.

    The runs must be at the same iteration. Their networks and Adams are copied;
    their random generators are shared (the packed run advances them).
    """
    states = list(states)
    configs = check_packable([s.config for s in states])
    if len({s.iteration for s in states}) != 1:
        raise ValueError(f"packed runs must be at the same iteration, got {[s.iteration for s in states]}")
    generators, critics = [s.generator for s in states], [s.critic for s in states]
    generator, critic = pack_modules(generators), pack_modules(critics)
    generator.to(memory_format=configs[0].memory_format)
    critic.to(memory_format=configs[0].memory_format)
    return PackedState(configs, generator, critic, pack_adam([s.opt_g for s in states], generator, generators),
                       pack_adam([s.opt_c for s in states], critic, critics), [s.rng for s in states],
                       [s.index_rng for s in states], states[0].iteration)


def unpack_state(packed: PackedState, states: Sequence[RunState]) -> list[RunState]:
    """Write the packed runs back into their :class:`mmgan.gan.run_state.RunState` (networks, Adams, random
    generators, iteration), in place; returns ``states``."""
    states = list(states)
    if len(states) != packed.runs:
        raise ValueError(f"the pack holds {packed.runs} runs, got {len(states)} states")
    generators, critics = [s.generator for s in states], [s.critic for s in states]
    unpack_modules(packed.generator, generators)
    unpack_modules(packed.critic, critics)
    unpack_adam(packed.opt_g, [s.opt_g for s in states], generators, packed.generator)
    unpack_adam(packed.opt_c, [s.opt_c for s in states], critics, packed.critic)
    for state, rng, index_rng in zip(states, packed.rngs, packed.index_rngs):
        if state.rng is not rng:
            state.rng.set_state(rng.get_state())
        state.index_rng = index_rng
        state.iteration = packed.iteration
    return states


def _packed_step(optimizer: torch.optim.Optimizer, losses: list[torch.Tensor], name: str,
                 state: PackedState, watch: LossWatch | None) -> None:
    """One step on ``Σ_k losses[k]``: without a ``watch``, refused (PackedNonFiniteLoss) if any run's loss is
    not finite (one host synchronisation); with one, the non-finite losses are recorded there (no
    synchronisation) and the step is made (the runs stay independent: a NaN in run k reaches run k only)."""
    total = torch.stack(losses)
    if watch is not None:
        watch.record(total, state.iteration + 1, name)
    else:
        _refuse_non_finite(total, name, state)
    optimizer.zero_grad(set_to_none=True)
    total.sum().backward()
    optimizer.step()


def _refuse_non_finite(total: torch.Tensor, name: str, state: PackedState) -> None:
    finite = torch.isfinite(total)
    if not bool(finite.all()):
        bad = [k for k in range(total.shape[0]) if not bool(finite[k])]
        described = ", ".join(f"run {k} ({state.configs[k].loss}, q={state.configs[k].q}, g={state.configs[k].g}, "
                              f"seed {state.configs[k].seed}): {float(total[k].detach())}" for k in bad)
        raise PackedNonFiniteLoss(f"{name} became non-finite at iteration {state.iteration + 1} in {described}; "
                                  "no update was made (lower lr or lam, or take these runs out of the pack)", bad)


def packed_training_iteration(state: PackedState, data: torch.Tensor, device: torch.device | str | None = None,
                              watch: LossWatch | None = None) -> PackedIteration:
    """One generator iteration of K runs at once: :func:`mmgan.gan.train.training_iteration` for each run.

    Run k draws its real batches, noise and interpolation weights from
    ``state.rngs[k]`` in the single-run order (per critic step: batch indices,
    noise, interpolation weights; then noise and, for a relativistic loss with
    ``generator_real_batch='fresh'``, batch indices; the indices from
    ``state.index_rngs[k]`` on a CUDA device when it is set), and makes the same critic
    and generator passes, so its numbers are those of the run trained alone (up
    to rounding). ``data`` (N, C, H, W) is shared by the runs and may live on the
    CPU (unless indices are drawn on the device) or on ``device`` (default: the packed networks' device). Like
    ``training_iteration`` it does not advance ``state.iteration``. Raises
    :class:`PackedNonFiniteLoss` (naming the runs) before an update that would
    make a run's weights non-finite; the whole pack is then not updated. With a
    ``watch`` (:class:`mmgan.gan.run_state.LossWatch` of the K runs) it never synchronises
    with the device: non-finite losses are recorded there and the updates made
    (what :func:`mmgan.gan.packed_training.train_packed` does).
    """
    configs, rngs = state.configs, state.rngs
    runs = len(configs)
    if not (state.generator.runs == state.critic.runs == len(rngs) == runs):
        raise ValueError("the packed state's networks, generators and configurations disagree in their run count")
    device = torch.device(device) if device is not None else next(state.critic.parameters()).device
    base = configs[0]
    qs = [c.q for c in configs]
    gs = [c.g for c in configs]
    released = [c.as_released for c in configs]
    for _ in range(base.critic_steps):
        reals, noises = [], []
        for config, rng, index_rng in zip(configs, rngs, state.index_rngs):
            reals.append(real_batch(data, config, rng, index_rng).to(device, non_blocking=True))
            noises.append(normal((config.batch_size, config.z_dim), rng, device))
        real = torch.stack(reals)
        with torch.no_grad():
            fake = packed_generate(state.generator, torch.stack(noises))
        real_scores = packed_critic_scores(state.critic, real)
        fake_scores = packed_critic_scores(state.critic, fake)
        c_losses = [critic_loss(c.loss, real_scores[k], fake_scores[k], paired_scale=c.paired_critic_scale)
                    for k, c in enumerate(configs)]
        x_hat = torch.stack([penalty_points(real[k], fake[k], c.penalty_at, rng)
                             for k, (c, rng) in enumerate(zip(configs, rngs))])
        penalty = packed_gradient_penalty(state.critic, x_hat, qs, gs, released)
        totals = [c_losses[k] + c.lam * penalty[k] for k, c in enumerate(configs)]
        _packed_step(state.opt_c, totals, "critic loss", state, watch)
    noise = torch.stack([normal((c.batch_size, c.z_dim), rng, device) for c, rng in zip(configs, rngs)])
    fake = packed_generate(state.generator, noise)
    relativistic = [needs_real_scores(c.loss) for c in configs]
    real_scores = None
    if any(relativistic):
        reals = list(real.unbind(0))
        for k, (config, rng, index_rng) in enumerate(zip(configs, rngs, state.index_rngs)):
            if relativistic[k] and config.generator_real_batch == "fresh":
                reals[k] = real_batch(data, config, rng, index_rng).to(device, non_blocking=True)
        real = torch.stack(reals)
        with _statistics_of(state.critic, relativistic):  # the plain losses make no critic pass on real images
            real_scores = packed_critic_scores(state.critic, real)
    fake_scores = packed_critic_scores(state.critic, fake)
    g_losses = [generator_loss(c.loss, real_scores[k] if relativistic[k] else None, fake_scores[k])
                for k, c in enumerate(configs)]
    _packed_step(state.opt_g, g_losses, "generator loss", state, watch)
    return PackedIteration(torch.stack(c_losses).detach(), penalty.detach(), torch.stack(g_losses).detach(),
                           real, fake.detach())
