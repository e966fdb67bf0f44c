"""Train a gradient-penalised GAN (the experiments of §6, Tables 2–8).

    python -m mmgan.train --config run.yaml --iterations 2000 --out runs/demo
    python -m mmgan.train --out runs/demo --resume            # continue where it stopped

One flat loop: per generator iteration, ``critic_steps`` critic updates
(critic loss of :mod:`mmgan.losses` + λ · gradient penalty of
:mod:`mmgan.penalties`), then one generator update. Everything a run needs to
continue exactly is in one checkpoint: both networks, both Adam states, the
iteration, the configuration and every random state; checkpoints are written to
a temporary file and renamed, every ``checkpoint_every`` iterations, at the
end, and when the run is interrupted with Ctrl-C. A run resumed from iteration
k produces bit for bit the same result as one that never stopped (tested on CPU).
Non-finite losses stop the run with a clear error and keep the last good
checkpoint. ``log.jsonl`` gets one line per ``log_every`` iterations (losses,
penalty, gradient norms at real, fake and interpolated points, iterations/s)
and one per metric evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from mmgan.data.images import DATASETS, load_images
from mmgan.fid import METRICS, dataset_statistics, frechet_distance, generator_statistics, make_extractor
from mmgan.losses import critic_loss, generator_loss, needs_real_scores
from mmgan.models import ARCHITECTURES, make_gan
from mmgan.norms import grad_norm
from mmgan.penalties import PENALTY_POINTS, PENALTY_SHAPES, gradient_penalty, input_gradient, penalty_points
from mmgan.registry import check_choice, check_int
from mmgan.results import atomic_torch_save, atomic_write_text, environment

Q_CHOICES: tuple[str, ...] = ("1", "2", "inf", "smax")
TRAIN_LOSSES: tuple[str, ...] = ("wgan", "hinge", "rphinge", "rahinge", "sgan", "lsgan")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class GANConfig:
    """One GAN run. Defaults are the paper's CIFAR-10 protocol (§6, Table 2)."""

    dataset: str = "cifar10"
    data_root: str | None = None
    image_size: int = 32
    channels: int = 3
    arch: str = "dcgan"
    width: int | None = None
    z_dim: int = 128
    leaky_slope: float | None = None
    critic_batchnorm: bool = True
    loss: str = "hinge"
    q: str = "2"
    g: str = "ls"
    as_released: bool = False
    lam: float = 20.0
    penalty_at: str = "interpolates"
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 32
    critic_steps: int = 1
    iterations: int = 100_000
    seed: int = 1
    device: str = "auto"
    metric: str = "fid"
    metric_every: int = 10_000
    metric_samples: int = 50_000
    checkpoint_every: int = 1000
    log_every: int = 100

    def validate(self) -> GANConfig:
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_choice(self.arch, tuple(ARCHITECTURES), "arch")
        check_choice(self.image_size, ARCHITECTURES[self.arch], f"image_size for arch={self.arch!r}")
        check_choice(self.loss, TRAIN_LOSSES, "loss")
        check_choice(self.q, Q_CHOICES, "q")
        check_choice(self.g, tuple(PENALTY_SHAPES), "g")
        check_choice(self.penalty_at, PENALTY_POINTS, "penalty_at")
        check_choice(self.device, DEVICES, "device")
        check_choice(self.metric, tuple(METRICS), "metric")
        check_choice(self.channels, (1, 3), "channels")
        for name in ("z_dim", "batch_size", "critic_steps", "iterations", "metric_every", "metric_samples",
                     "checkpoint_every", "log_every"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.seed, "seed", minimum=0)
        if self.as_released and self.q not in ("inf", "smax"):
            raise ValueError(f"as_released only applies to q='inf' or q='smax', got q={self.q!r}")
        if not (self.lam >= 0 and self.lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("need lam >= 0, lr > 0 and Adam betas in [0, 1)")
        return self

    @property
    def q_value(self) -> float | str:
        return {"1": 1.0, "2": 2.0, "inf": math.inf, "smax": "smax"}[self.q]


def config_from(values: dict[str, Any]) -> GANConfig:
    """A validated config from a mapping; unknown keys raise ``ValueError`` listing the valid ones."""
    known = {f.name for f in dataclasses.fields(GANConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown GAN config key(s) {unknown}; valid keys: {sorted(known)}")
    values = dict(values)
    if "q" in values:
        values["q"] = {1: "1", 2: "2", 1.0: "1", 2.0: "2", math.inf: "inf"}.get(values["q"], str(values["q"]))
    return GANConfig(**values).validate()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available")
    return torch.device(name)


# ----------------------------------------------------------------------------- state


@dataclass
class RunState:
    config: GANConfig
    generator: torch.nn.Module
    critic: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer
    rng: torch.Generator
    iteration: int = 0
    metrics: list = dataclasses.field(default_factory=list)  # [(iteration, value)]


def new_state(config: GANConfig, device: torch.device) -> RunState:
    torch.manual_seed(config.seed)
    generator, critic = make_gan(config.arch, config.image_size, config.channels, config.z_dim, config.width,
                                 config.leaky_slope, config.critic_batchnorm)
    generator, critic = generator.to(device), critic.to(device)
    betas = (config.beta1, config.beta2)
    return RunState(config, generator, critic,
                    torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas),
                    torch.optim.Adam(critic.parameters(), lr=config.lr, betas=betas),
                    torch.Generator().manual_seed(config.seed))


CHECKPOINT = "checkpoint.pt"
# Keys that may change between a run and its continuation (the length and bookkeeping of the run).
RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "log_every", "device"}


def save_checkpoint(state: RunState, out: Path) -> None:
    payload = {
        "generator": state.generator.state_dict(), "critic": state.critic.state_dict(),
        "opt_g": state.opt_g.state_dict(), "opt_c": state.opt_c.state_dict(),
        "iteration": state.iteration, "config": dataclasses.asdict(state.config), "metrics": state.metrics,
        "rng": state.rng.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_torch_save(payload, out / CHECKPOINT)


def load_checkpoint(config: GANConfig, out: Path, device: torch.device) -> RunState:
    path = out / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    payload = torch.load(path, map_location=device, weights_only=False)
    saved = payload["config"]
    changed = {k for k, v in dataclasses.asdict(config).items() if saved.get(k) != v} - RESUMABLE_CHANGES
    if changed:
        raise ValueError(f"--resume: the configuration differs from the checkpoint's in {sorted(changed)}")
    state = new_state(config, device)
    state.generator.load_state_dict(payload["generator"])
    state.critic.load_state_dict(payload["critic"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_c.load_state_dict(payload["opt_c"])
    state.rng.set_state(payload["rng"])
    torch.set_rng_state(payload["torch_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    state.iteration = payload["iteration"]
    state.metrics = [tuple(m) for m in payload["metrics"]]
    return state


# ----------------------------------------------------------------------------- the loop


class NonFiniteLoss(RuntimeError):
    """Raised when a loss becomes NaN or infinite; the last good checkpoint is kept."""


def _batch(data: torch.Tensor, size: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    index = torch.randint(data.shape[0], (size,), generator=rng)
    return data[index].to(device, non_blocking=True)


def _noise(size: int, z_dim: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(size, z_dim, generator=rng).to(device)


def _gradient_norms(state: RunState, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    q = state.config.q_value
    # a generator of its own, so logging does not change the training's random stream
    between = penalty_points(real, fake, "interpolates", torch.Generator().manual_seed(state.iteration))
    out = {}
    for name, x in (("real", real), ("fake", fake), ("interpolates", between)):
        _, grad = input_gradient(state.critic, x, create_graph=False)
        out[f"grad_norm_{name}"] = float(grad_norm(grad.detach(), q).mean())
    return out


def evaluate(state: RunState, extractor, reference, device: torch.device) -> float:
    """The run's metric for the current generator (BatchNorm in evaluation mode)."""
    state.generator.eval()
    stats = generator_statistics(state.generator, extractor, state.config.metric_samples, state.config.z_dim,
                                 device, seed=12345)
    state.generator.train()
    return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, name: str, state: RunState, out: Path | str) -> None:
    """One optimiser step on ``loss``, refused (NonFiniteLoss) before it could make the weights non-finite."""
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"{name} became {loss.item()} at iteration {state.iteration + 1}; "
                            f"the last good checkpoint in {out} is kept (lower lr or lam)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_iteration(state: RunState, data: torch.Tensor, device: torch.device, out: Path | str = "."
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One generator iteration: ``critic_steps`` critic steps on eq. 6 (loss + λ·penalty), then a generator step.

    Draws batches, noise and interpolation weights from ``state.rng`` (so a resumed run continues the same
    random stream). Raises :class:`NonFiniteLoss` before an update that would make the weights non-finite.
    Returns the last critic loss, penalty, the generator loss and the last real and fake batches.
    """
    config = state.config
    q = config.q_value
    for _ in range(config.critic_steps):
        real = _batch(data, config.batch_size, state.rng, device)
        with torch.no_grad():
            fake = state.generator(_noise(config.batch_size, config.z_dim, state.rng, device))
        c_loss = critic_loss(config.loss, state.critic(real), state.critic(fake))
        penalty = gradient_penalty(state.critic, real, fake, q=q, g=config.g, at=config.penalty_at,
                                   as_released=config.as_released, generator=state.rng)
        total = c_loss + config.lam * penalty
        _step(state.opt_c, total, "critic loss", state, out)
    fake = state.generator(_noise(config.batch_size, config.z_dim, state.rng, device))
    real_out = state.critic(real) if needs_real_scores(config.loss) else None
    g_loss = generator_loss(config.loss, real_out, state.critic(fake))
    _step(state.opt_g, g_loss, "generator loss", state, out)
    return c_loss, penalty, g_loss, real, fake


def train(config: GANConfig, out: Path | str, resume: bool = False, progress: bool = True,
          data: torch.Tensor | None = None) -> dict[str, Any]:
    """Train (or continue) one GAN run in folder ``out``; returns its summary (also in summary.json).

    ``data`` may pass the images already loaded (N, C, H, W) in [−1, 1], e.g. to share
    them between the runs of a table; otherwise they are loaded from ``config``.
    """
    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    if data is None:
        data = load_images(config.dataset, config.image_size, config.channels, config.data_root)
    extractor = make_extractor(config.metric, config.image_size, config.channels, device)
    reference = dataset_statistics(extractor, data, f"{config.dataset}-{config.image_size}px-{config.channels}ch",
                                   device)
    state = load_checkpoint(config, out, device) if resume else new_state(config, device)
    if not resume:
        (out / "log.jsonl").unlink(missing_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=True))
    log = (out / "log.jsonl").open("a", encoding="utf-8")
    bar = tqdm(total=config.iterations, initial=state.iteration, disable=not progress, desc="generator iterations",
               mininterval=2.0)
    clock, clock_iteration = time.perf_counter(), state.iteration
    try:
        while state.iteration < config.iterations:
            c_loss, penalty, g_loss, real, fake = training_iteration(state, data, device, out)
            state.iteration += 1
            bar.update(1)
            if state.iteration % config.log_every == 0:
                now = time.perf_counter()
                record = {"iteration": state.iteration, "critic_loss": c_loss.item(), "penalty": penalty.item(),
                          "generator_loss": g_loss.item(),
                          "iterations_per_s": (state.iteration - clock_iteration) / max(now - clock, 1e-9),
                          **_gradient_norms(state, real, fake.detach())}
                clock, clock_iteration = now, state.iteration
                log.write(json.dumps(record) + "\n")
                log.flush()
            if state.iteration % config.metric_every == 0 or state.iteration == config.iterations:
                if not state.metrics or state.metrics[-1][0] != state.iteration:
                    value = evaluate(state, extractor, reference, device)
                    state.metrics.append((state.iteration, value))
                    log.write(json.dumps({"iteration": state.iteration, config.metric: value}) + "\n")
                    log.flush()
                    bar.set_postfix({config.metric: f"{value:.2f}"})
            if state.iteration % config.checkpoint_every == 0 or state.iteration == config.iterations:
                save_checkpoint(state, out)
    except KeyboardInterrupt:
        save_checkpoint(state, out)  # a consistent state between iterations
        raise
    finally:
        bar.close()
        log.close()
    values = [v for _, v in state.metrics]
    summary = {"iterations": state.iteration, "metric": config.metric, "final": values[-1],
               "lowest": min(values), "lowest_at": state.metrics[values.index(min(values))][0],
               "history": state.metrics, "environment": environment(), "config": dataclasses.asdict(config)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a gradient-penalised GAN (mmgan).")
    parser.add_argument("--config", type=Path, help="YAML file of config values (flags override it)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log, summary)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--no-progress", action="store_true")
    for field in dataclasses.fields(GANConfig):
        base = str(field.type).split("|")[0].strip()  # annotations are strings: "int", "str | None", ...
        kind = {"int": int, "float": float, "str": str, "bool": _boolean}[base]
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=kind, default=None,
                            help=f"default: {field.default}")
    return parser


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config} must hold a mapping of config keys to values")
        values.update(loaded)
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(GANConfig)
                   if getattr(args, f.name) is not None})
    try:
        config = config_from(values)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("iterations", "metric", "final", "lowest", "lowest_at")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
