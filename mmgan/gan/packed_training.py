"""Train the runs of a table as packs (:mod:`mmgan.gan.packed`), each run kept in its own folder as if alone.

    results = train_packed(configs, folders, data)   # one summary or error per run

The runs (configurations differing only in :data:`mmgan.gan.packed.PER_RUN_FIELDS`:
loss, q, g, seed, ...) train as one packed network, and every run keeps what
:func:`mmgan.gan.train.train` gives it: its folder, locked while the pack trains
(:class:`mmgan.base.run_folder.RunLock`); its ``checkpoint.pt`` in the single-run
format; its ``log.jsonl`` lines (the same keys, on the same cadence; the
iterations/s is the pack's, i.e. each run's own progress per wall-clock second);
its metric evaluations and ``summary.json``. The loop is the single run's,
:func:`mmgan.gan.loop.train_runs`, over a :class:`Pack` (a bundle of K runs) where a
single run is a bundle of one (:class:`mmgan.gan.train.Alone`); the packed networks
are unpacked into each run's :class:`~mmgan.gan.run_state.RunState` before an
evaluation or checkpoint.

Choices:

* each run continues from the checkpoint in its folder, or starts over when its
  folder holds none (at most a log cut short before the first checkpoint), as
  :func:`mmgan.gan.tables.run_table` always did;
* a run continues bit for bit only in the arrangement it trained in (the same
  pack, members and order, and thread count: a grouped convolution sums in another
  order than a plain one, and the sums depend on the pack), which its checkpoint
  records (:func:`mmgan.gan.train.execution_record`). A resumed run whose checkpoint
  records a pack is packed again with exactly that pack's runs, in their order and
  with their thread count (``pack_size`` and ``threads`` concern new packs); when a
  run of its pack is missing from the call or at another iteration, or its
  checkpoint was written by a single run, it is refused (it fails alone, the error
  says how) unless ``inexact=True``, which packs it like a new run and records the
  change in its summary. After an interruption every run of a pack is at the same
  iteration, as Ctrl-C checkpoints them all;
* new runs (and, with ``inexact``, resumed ones) at different iterations are never
  advanced together: they are grouped by iteration and each group trains as its
  own packs (of ``pack_size`` runs, default the whole group);
* a run whose loss or weights go non-finite fails (the loop's
  :class:`~mmgan.gan.run_state.NonFiniteLoss`) and leaves the pack, which is re-packed
  with the others, who go on unchanged (the runs of a pack are independent, a NaN in
  one reaches no other); any other error of a pack fails every run still in it; a run
  whose folder cannot be prepared (busy, an unreadable or incompatible checkpoint)
  fails alone;
* no host synchronisation per iteration, and Ctrl-C, SIGTERM and SIGUSR2 stop at
  the next iteration boundary after checkpointing every run of the pack: the loop's
  (:mod:`mmgan.gan.loop`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmgan.base.processes import using_threads
from mmgan.base.run_folder import CHECKPOINT, SUMMARY, RunLock, check_snapshot_every, prepare_folder
from mmgan.gan.config import GANConfig, resolve_device
from mmgan.gan.diagnostics import diagnostics, parameter_gradient_norms
from mmgan.gan.loop import data_and_reference, execution_settings, train_runs
from mmgan.gan.models import kept_statistics
from mmgan.gan.packed import (
    PER_RUN_FIELDS,
    PackedIteration,
    PackedState,
    check_packable,
    pack_states,
    packed_critic_scores,
    packed_training_iteration,
    unpack_modules,
    unpack_state,
)
from mmgan.gan.run_state import LossWatch, RunState, check_resumable
from mmgan.gan.train import (
    arrangement,
    check_threads,
    continued_execution,
    execution_record,
    start_state,
    threads_to_use,
)
from mmgan.norms import grad_norm
from mmgan.penalties import penalty_points

__all__ = ["recorded_execution", "train_packed"]


def _check_loop_shared(configs: list[GANConfig]) -> None:
    """The runs of a pack share one loop: every field but :data:`PER_RUN_FIELDS` must agree."""
    check_packable(configs)
    first = dataclasses.asdict(configs[0])
    for config in configs[1:]:
        for name, value in dataclasses.asdict(config).items():
            if name not in PER_RUN_FIELDS and value != first[name]:
                raise ValueError(f"packed runs must share {name}; got {first[name]!r} and {value!r}")


def train_packed(configs: Sequence[GANConfig], outs: Sequence[Path | str], data: torch.Tensor | None = None,
                 progress: bool = False, pack_size: int | None = None, snapshot_every: int | None = None,
                 threads: int | None = None, inexact: bool = False,
                 evaluate: bool = True) -> list[dict[str, Any] | Exception]:
    """Train (or continue) runs ``configs[k]`` in folders ``outs[k]`` as packs; per run its summary or the error
    that failed it (see the module's docstring). ``data`` and ``snapshot_every`` as in :func:`mmgan.gan.train.train`.

    ``threads``: torch's thread count while new packs train (default: this process's); a resumed pack trains with
    the count its checkpoints recorded (a given other count refuses its runs unless ``inexact``). ``inexact``:
    continue resumed runs in whatever pack they fall into, recording the change, where they would be refused.
    ``evaluate=False``: no metric, no summary (as :func:`mmgan.gan.train.train`).

    ``ValueError`` if the runs cannot share a pack (architecture, optimiser, loop); ``KeyboardInterrupt``
    (Ctrl-C) after checkpointing the pack in training.
    """
    configs = [config.validate() for config in configs]
    outs = [Path(out) for out in outs]
    if len(configs) != len(outs):
        raise ValueError(f"{len(configs)} configurations for {len(outs)} folders")
    if pack_size is not None and pack_size < 1:
        raise ValueError(f"pack_size must be >= 1, got {pack_size}")
    if threads is not None:
        check_threads(threads)
    for config in configs:
        check_snapshot_every(snapshot_every, config.checkpoint_every)
    if not configs:
        return []
    _check_loop_shared(configs)
    device = resolve_device(configs[0].device)
    results: list[dict[str, Any] | Exception | None] = [None] * len(configs)
    with contextlib.ExitStack() as locks:
        payloads = {}
        for k, (config, out) in enumerate(zip(configs, outs)):
            try:
                locks.enter_context(RunLock(out))
                resume = (out / CHECKPOINT).is_file()
                payloads[k] = prepare_folder(out, resume, not resume, functools.partial(check_resumable, config))
            except Exception as error:  # noqa: BLE001 - this run fails, the others go on
                results[k] = error
        packs, refused = _plan_packs(payloads, outs, pack_size, threads, inexact)
        results = [refused.get(k, result) for k, result in enumerate(results)]
        payloads = {k: payload for k, payload in payloads.items() if k not in refused}
        if not payloads:
            return results
        data, extractor, reference = data_and_reference(configs[0], data, device, evaluate)
        states: dict[int, RunState] = {}
        for k, payload in payloads.items():
            try:
                states[k] = start_state(configs[k], payload, outs[k], device)
            except Exception as error:  # noqa: BLE001
                results[k] = error
        del payloads
        for members, count in packs:
            members = [k for k in members if k in states]
            if not members:
                continue
            done: dict[int, dict[str, Any] | Exception] = {}
            try:
                with using_threads(count), execution_settings(configs[0], device):
                    _train_pack([states[k] for k in members], [outs[k] for k in members], data, extractor,
                                reference, device, progress, done, snapshot_every)
            except Exception as error:  # noqa: BLE001 - the pack failed: every run still in it
                done.update({i: error for i in range(len(members)) if i not in done})
            for i, result in done.items():
                results[members[i]] = result
    return results


def recorded_execution(folder: Path | str) -> dict[str, Any] | None:
    """The execution record (:func:`mmgan.gan.train.execution_record`) of the checkpoint in ``folder``, read without
    its tensors; None without a checkpoint, for an unreadable one (named when the run resumes) or one older than
    the record."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("execution")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is named when the run resumes
        return None
    return record if isinstance(record, dict) else None


def _plan_packs(payloads: dict[int, dict[str, Any] | None], outs: list[Path], pack_size: int | None,
                threads: int | None, inexact: bool) -> tuple[list[tuple[list[int], int]], dict[int, Exception]]:
    """The packs to train, in order ([(run indices in pack order, thread count)]), and the runs refused
    ({index: error}), from each run's checkpoint payload (None: a new run). See the module's docstring."""
    iteration = {k: (payload["iteration"] if payload is not None else 0) for k, payload in payloads.items()}
    previous = {k: (payload.get("execution") if payload is not None else None) for k, payload in payloads.items()}
    where = {(outs[k].parent, outs[k].name): k for k in payloads}
    refused: dict[int, Exception] = {}
    recorded: dict[tuple[Path, tuple[str, ...], int], list[int]] = {}
    free: list[int] = []
    for k in payloads:
        record = previous[k]
        if record is None or inexact:
            free.append(k)
        elif not record.get("packed"):
            refused[k] = ValueError(
                f"{outs[k]} trained at {arrangement(record)}; in a pack it would compute with grouped instead of "
                f"plain convolutions (different rounding), not bit for bit: resume it alone (run_table(..., "
                f"pack=False), `mmgan table ... --no-pack`, or `mmgan train --out {outs[k]} --resume`), or pass "
                "inexact=True to continue it packed anyway (recorded in its summary)")
        else:
            recorded.setdefault((outs[k].parent, tuple(record.get("pack", [])), iteration[k]), []).append(k)
    packs: list[tuple[int, list[int], int]] = []  # (iteration, members, threads)
    for (parent, names, at), members in recorded.items():
        present = {outs[k].name: k for k in members}
        if sorted(present) != sorted(names) or len(members) != len(names):
            missing = [_whereabouts(parent, name, where, iteration) for name in names if name not in present]
            for k in members:
                refused[k] = ValueError(
                    f"{outs[k]} trained at {arrangement(previous[k])}; its checkpoint (iteration {at}) continues "
                    f"bit for bit only in that pack, but {'; '.join(missing)}: resume the {len(names)} runs "
                    "together from the same iteration (the command that trained them, or run_table(..., runs=[...]) "
                    "or train_packed on their folders), start this run over (delete its folder), or continue it in "
                    "another pack with train_packed(..., inexact=True) (recorded in its summary)")
            continue
        ordered = [present[name] for name in names]
        try:
            count = threads_to_use(previous[ordered[0]], threads, f"the pack of {', '.join(names)}", False,
                                   "threads=")
        except ValueError as error:
            refused.update({k: error for k in ordered})
            continue
        packs.append((at, ordered, count))
    count = threads if threads is not None else torch.get_num_threads()
    by_iteration: dict[int, list[int]] = {}
    for k in free:
        by_iteration.setdefault(iteration[k], []).append(k)
    for at, group in by_iteration.items():
        size = pack_size or len(group)
        packs += [(at, group[start:start + size], count) for start in range(0, len(group), size)]
    packs.sort(key=lambda pack: (pack[0], pack[1][0]))
    return [(members, count) for _, members, count in packs], refused


def _whereabouts(parent: Path, name: str, where: dict[tuple[Path, str], int], iteration: dict[int, int]) -> str:
    """Why the run ``name`` of a recorded pack is not resumed with the others, in words."""
    if (parent, name) in where:
        return f"{name} is at iteration {iteration[where[parent, name]]}"
    if (parent / name / SUMMARY).is_file():
        return f"{name} has finished"
    return f"{name} is not among the runs given"


def _gradient_norms(pack: PackedState, real: torch.Tensor, fake: torch.Tensor,
                    generator_norms: torch.Tensor) -> list[dict[str, float]]:
    """:func:`mmgan.gan.train.gradient_norms` of every run of the pack (the same points, the same critic passes;
    ``generator_norms``: the runs' generator-gradient norms, taken before any re-packing dropped the gradients)."""
    between = torch.stack([penalty_points(real[k], fake[k], "interpolates",
                                          torch.Generator().manual_seed(pack.iteration)) for k in range(pack.runs)])
    names, values, grads = ("real", "fake", "interpolates"), [], {}
    with kept_statistics(pack.critic):  # a measurement, not a training step: BatchNorm statistics unchanged
        for name, x in zip(names, (real, fake, between)):
            points = x.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(packed_critic_scores(pack.critic, points).sum(), points)
            grads[name] = grad
            values.append(torch.stack([grad_norm(grad[k], c.q).mean() for k, c in enumerate(pack.configs)]))
    rows = torch.stack(values, 1).tolist()
    return [{**{f"grad_norm_{name}": value for name, value in zip(names, row)}, **extra}
            for row, extra in zip(rows, diagnostics(grads, generator_norms, fake))]


def _select_runs(values: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """The rows ``keep`` of a per-run tensor (runs first)."""
    return values.index_select(0, torch.tensor(keep, dtype=torch.long).to(values.device, non_blocking=True))


class Pack:
    """Runs at the same iteration as one :class:`mmgan.gan.loop.Bundle`: one packed network (grouped layers,
    :mod:`mmgan.gan.packed`) trained by :func:`packed_training_iteration`; a run that fails leaves it and the others
    are re-packed. Each run's execution record names the pack (it fixes the arithmetic)."""

    packed = True

    def __init__(self, states: list[RunState], outs: list[Path], device: torch.device) -> None:
        self.states, self.outs = states, outs
        self._record(device, lambda state: "start" if state.saved_at is None else "resume")
        self.pack = pack_states(states)
        self._last: PackedIteration | None = None
        self._generator_norms: torch.Tensor | None = None

    def _record(self, device: torch.device, reason) -> None:
        names, config = [out.name for out in self.outs], self.states[0].config
        for i, state in enumerate(self.states):
            state.execution = continued_execution(state.execution, execution_record(
                config, names, i, device, state.iteration, reason(state)))

    @property
    def iteration(self) -> int:
        return self.pack.iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.pack.iteration = value

    def step(self, data: torch.Tensor, device: torch.device, watch: LossWatch) -> None:
        self._last = packed_training_iteration(self.pack, data, device, watch)

    def keep_gradients(self) -> None:
        self._generator_norms = parameter_gradient_norms(self.pack.generator, self.pack.runs)

    def weights_finite(self) -> list[bool]:
        parameters = [*self.pack.generator.parameters(), *self.pack.critic.parameters()]
        return torch.stack([torch.isfinite(p.detach()).reshape(self.pack.runs, -1).all(1)
                            for p in parameters]).all(0).tolist()

    def keep(self, runs: list[int], device: torch.device) -> None:
        unpack_state(self.pack, self.states)
        self.states, self.outs = [self.states[i] for i in runs], [self.outs[i] for i in runs]
        self._last = PackedIteration(*(_select_runs(value, runs) for value in self._last))
        if self._generator_norms is not None:
            self._generator_norms = _select_runs(self._generator_norms, runs)
        self._record(device, lambda state: "repack")
        self.pack = pack_states(self.states)

    def log_rows(self) -> list[tuple[list[float], dict[str, float]]]:
        result = self._last
        norms = _gradient_norms(self.pack, result.real, result.fake, self._generator_norms)
        losses = torch.stack([result.critic_loss, result.penalty, result.generator_loss], 1).tolist()
        return list(zip(losses, norms))

    def sync(self, optimisers: bool) -> None:
        if optimisers:
            unpack_state(self.pack, self.states)
        else:
            unpack_modules(self.pack.generator, [s.generator for s in self.states])
            unpack_modules(self.pack.critic, [s.critic for s in self.states])


def _train_pack(states: list[RunState], outs: list[Path], data: torch.Tensor, extractor, reference,
                device: torch.device, progress: bool, results: dict[int, dict[str, Any] | Exception],
                snapshot_every: int | None = None) -> None:
    """The runs ``states`` (at the same iteration, in folders ``outs``) trained as one pack by the loop of
    :func:`mmgan.gan.loop.train_runs`, which fills ``results`` {index into states: summary or error}."""
    train_runs(Pack(states, outs, device), data, extractor, reference, device, progress, results, snapshot_every,
               "the same run_table call")
