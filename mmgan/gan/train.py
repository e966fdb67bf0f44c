"""Train a gradient-penalised GAN (the experiments of §6, Tables 2–8).

    mmgan train --config run.yaml --iterations 2000 --out runs/demo
    mmgan train --out runs/demo --resume            # continue where it stopped (reads its config.yaml)

A run is a bundle of one (:class:`Alone`, plain layers) trained by the one loop of
:func:`mmgan.gan.loop.train_runs`: per generator iteration, ``critic_steps`` critic
updates (critic loss of :mod:`mmgan.losses` + λ · gradient penalty of
:mod:`mmgan.penalties`, eq. 6), then one generator update
(:func:`training_iteration`). The configuration is
:class:`mmgan.gan.config.GANConfig` (the released protocol by default).

Never losing work:

* everything a run needs to continue exactly is in one checkpoint
  (:mod:`mmgan.gan.run_state`: both networks, both Adam states, the iteration, the
  configuration, the metric history and every random state), written atomically
  every ``checkpoint_every`` iterations and at the end;
* Ctrl-C (SIGINT), SIGTERM and SIGUSR2 are honoured at the next iteration boundary,
  after the checkpoint (:func:`mmgan.base.run_folder.interrupt_at_boundary`), so a
  resumed run continues bit for bit;
* one writer per folder (:class:`mmgan.base.run_folder.RunLock`); a fresh run into a
  folder that holds a run refuses unless ``resume`` or ``overwrite``
  (:func:`mmgan.base.run_folder.prepare_folder`); on resume, ``log.jsonl`` is cut
  back to the checkpoint's iteration;
* a non-finite loss or weight stops the run with
  :class:`mmgan.gan.run_state.NonFiniteLoss` naming the iteration and the checkpoint
  kept (found without a host synchronisation per step, see :mod:`mmgan.gan.loop`);
  :func:`training_iteration` called without a watch checks each loss before its
  update (one host synchronisation per step).

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
evaluation (:mod:`mmgan.gan.loop`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgan.base.processes import using_threads
from mmgan.base.randomness import normal
from mmgan.base.results import atomic_write_text, code_commit, read_yaml
from mmgan.base.run_folder import RunLock, check_run_folder_path, check_snapshot_every, prepare_folder, truncate_log
from mmgan.gan.config import GANConfig, config_from, resolve_device
from mmgan.gan.diagnostics import diagnostics, parameter_gradient_norms
from mmgan.gan.loop import data_and_reference, execution_settings, train_runs
from mmgan.gan.models import kept_statistics, make_gan
from mmgan.gan.run_state import (
    LossWatch,
    NonFiniteLoss,
    RunState,
    check_resumable,
    kept_checkpoint,
    real_batch,
    restore_state,
    weights_finite,
)
from mmgan.losses import critic_loss, generator_loss, needs_real_scores
from mmgan.norms import grad_norm
from mmgan.penalties import gradient_penalty, input_gradient, penalty_points

__all__ = ["ARITHMETIC_FIELDS", "Alone", "arrangement", "check_threads", "continued_execution",
           "default_threads", "execution_record", "gradient_norms", "index_generator", "main", "new_state",
           "platform_record", "start_state", "threads_to_use", "train", "training_iteration"]


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


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, name: str, state: RunState, out: Path | str,
          watch: LossWatch | None = None) -> None:
    """One optimiser step on ``loss``; without a ``watch``, refused (NonFiniteLoss) before it could make the
    weights non-finite (one host synchronisation), with one, a non-finite loss is recorded there instead."""
    if watch is not None:
        watch.record(loss, state.iteration + 1, name)
    elif not torch.isfinite(loss):
        raise NonFiniteLoss(f"{name} became {loss.item()} at iteration {state.iteration + 1}; "
                            f"{kept_checkpoint(state, out)} (lower lr or lam)")
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


class Alone:
    """One run as a :class:`mmgan.gan.loop.Bundle` of one: its own plain networks, trained by
    :func:`training_iteration` (where a pack, even of one, has grouped layers that round differently)."""

    packed = False

    def __init__(self, state: RunState, out: Path) -> None:
        self.states, self.outs = [state], [out]
        self._last: tuple[torch.Tensor, ...] = ()

    @property
    def iteration(self) -> int:
        return self.states[0].iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.states[0].iteration = value

    def step(self, data: torch.Tensor, device: torch.device, watch: LossWatch) -> None:
        self._last = training_iteration(self.states[0], data, device, self.outs[0], watch)

    def keep_gradients(self) -> None:
        """Nothing to hold: :meth:`log_rows` reads the generator's gradients, which nothing changes before."""

    def weights_finite(self) -> list[bool]:
        return [weights_finite(self.states[0])]

    def keep(self, runs: list[int], device: torch.device) -> None:
        """A bundle of one goes on only whole (``runs == [0]``): nothing changes."""

    def log_rows(self) -> list[tuple[list[float], dict[str, float]]]:
        c_loss, penalty, g_loss, real, fake = self._last
        return [([c_loss.item(), penalty.item(), g_loss.item()],
                 gradient_norms(self.states[0], real, fake.detach()))]

    def sync(self, optimisers: bool) -> None:
        """Nothing to write: the run trains in its own state."""


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
        payload = prepare_folder(out, resume, overwrite, functools.partial(check_resumable, config))
        previous = payload.get("execution") if payload is not None else None
        refuse_alone(previous, out, inexact)
        threads = threads_to_use(previous, threads, str(out), inexact)
        with using_threads(threads):
            data, extractor, reference = data_and_reference(config, data, device, evaluate)
            state = start_state(config, payload, out, device)
            state.execution = continued_execution(previous, execution_record(
                config, None, 0, device, state.iteration, "start" if payload is None else "resume"))
            results: dict[int, dict[str, Any] | Exception] = {}
            with execution_settings(config, device):
                train_runs(Alone(state, out), data, extractor, reference, device, progress, results, snapshot_every)
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


def start_state(config: GANConfig, payload: dict[str, Any] | None, out: Path, device: torch.device) -> RunState:
    """The run's state: restored from ``payload`` (its log cut back to the checkpoint) or new; writes config.yaml."""
    if payload is not None:
        state = restore_state(new_state(config, device), payload)
        truncate_log(out, state.iteration)
    else:
        state = new_state(config, device)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=True))
    return state


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
