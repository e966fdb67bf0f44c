"""A GAN on the toy problem of §5.2 whose generator must move a line onto the real one (§5.2.3).

Real samples lie on x₁ = 1; the generator outputs (θ, u) with u ~ U[−1, 1] and a
single learnable position θ that starts at x₁ = −1. The critic is a ReLU MLP
trained with the standard GAN loss (eq. 1, Adam), with or without the LS
gradient penalty at interpolates. The generator takes plain gradient steps
(SGD with a fixed learning rate, the setting of the paper's argument: Adam would
rescale a vanishing gradient) on either

* the original minimax loss, minimise E log(1 − D(G(z))), whose gradient is
  D(G(z))·∇C and vanishes when the discriminator is confident, or
* the non-saturating loss, minimise −E log D(G(z)) (eq. 2 with f₃ = −f₁).

All runs (settings × seeds) train side by side as one batched model: the critics
are one :class:`mmgan.mlp.BatchedMLP` under one Adam (elementwise, so each run's
update is its own) and the generators one vector of positions θ. A run's critic
starts from its seed's weights; the samples of all runs come from one random
stream, row by row, so a run's samples depend on its place in the batch.

The claim under test (§5.2.3): a penalised critic keeps a stable, non-vanishing
gradient at the fake samples, so the generator keeps moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mmgan.base.processes import using_threads
from mmgan.base.registry import check_choice, check_int
from mmgan.losses import margin_loss
from mmgan.mlp import BatchedMLP
from mmgan.penalties import batched_gradient_penalty
from mmgan.toys.sigmoid import FAKE_X1, REAL_X1


@dataclass(frozen=True)
class LineGANConfig:
    iterations: int = 1500
    batch_size: int = 64
    width: int = 32
    critic_lr: float = 1e-3
    generator_lr: float = 0.02
    g: str = "ls"
    q: float = 2.0
    log_every: int = 10


GENERATOR_LOSSES: tuple[str, ...] = ("minimax", "non-saturating")


def train_line_gans(config: LineGANConfig, lams: list[float], seeds: list[int],
                    generator_losses: tuple[str, ...] = GENERATOR_LOSSES) -> pd.DataFrame:
    """Train one toy GAN per (generator loss, λ, seed); λ = 0 means no penalty.

    Returns a tidy curve: one row per (loss, lam, seed, iteration) with the
    generator's distance |θ − 1| to the real line, and at the fake samples the
    mean critic gradient ‖∇C‖₂, discriminator gradient ‖∇ sigmoid(C)‖₂ and D value.
    """
    check_int(config.iterations, "iterations", minimum=1)
    for name in generator_losses:
        check_choice(name, GENERATOR_LOSSES, "generator_losses[i]")
    runs = [(loss, lam, seed) for loss in generator_losses for lam in lams for seed in seeds]
    with using_threads(1):
        return pd.DataFrame(_train(config, runs, sum(seeds) + 7))


def _train(config: LineGANConfig, runs: list[tuple[str, float, int]], stream_seed: int) -> list[dict]:
    """The curves' rows of ``runs`` trained as one batch, their samples drawn from ``stream_seed``."""
    m, b = len(runs), config.batch_size
    critic = BatchedMLP([seed for _, _, seed in runs], 2, config.width)
    dtype = critic.weights[0].dtype
    theta = torch.nn.Parameter(torch.full((m,), FAKE_X1, dtype=dtype))
    lam_m = torch.tensor([lam for _, lam, _ in runs], dtype=dtype)
    minimax = torch.tensor([loss == "minimax" for loss, _, _ in runs])
    opt_c = torch.optim.Adam(critic.parameters(), lr=config.critic_lr, betas=(0.5, 0.999))
    opt_g = torch.optim.SGD([theta], lr=config.generator_lr)
    gen = torch.Generator().manual_seed(stream_seed)
    L = margin_loss("sgan")

    def line(x1: torch.Tensor) -> torch.Tensor:
        u = 2 * torch.rand(m, b, generator=gen, dtype=dtype) - 1
        return torch.stack([x1[:, None].expand(m, b), u], 2)

    rows = []
    for it in range(1, config.iterations + 1):
        real, fake = line(torch.full((m,), REAL_X1, dtype=dtype)), line(theta.detach())
        u = torch.rand(m, b, 1, generator=gen, dtype=dtype)
        penalty = batched_gradient_penalty(critic, u * real + (1 - u) * fake, config.q, config.g).penalty
        loss = L(critic(real)).mean(1) + L(-critic(fake)).mean(1) + lam_m * penalty
        opt_c.zero_grad()
        loss.sum().backward()
        opt_c.step()
        scores = critic(line(theta))
        # minimax: minimise log(1 − D) = −softplus(C); non-saturating: minimise −log D = softplus(−C)
        per_run = torch.where(minimax[:, None], -L(-scores), L(scores)).mean(1)
        (g_theta,) = torch.autograd.grad(per_run.sum(), theta)
        opt_g.zero_grad()
        theta.grad = g_theta
        opt_g.step()
        if it % config.log_every == 0 or it == 1:
            rows.extend(_log(critic, line(theta.detach()), theta.detach(), runs, it))
    return rows


def _log(critic: BatchedMLP, fake: torch.Tensor, theta: torch.Tensor, runs, it: int) -> list[dict]:
    x = fake.requires_grad_(True)
    c = critic(x)
    (grad_c,) = torch.autograd.grad(c.sum(), x)
    with torch.no_grad():
        d = torch.sigmoid(c)
        critic_grad = grad_c.norm(dim=2).mean(1)
        disc_grad = (d * (1 - d) * grad_c.norm(dim=2)).mean(1)
        columns = zip(theta.tolist(), critic_grad.tolist(), disc_grad.tolist(), d.mean(1).tolist())
    return [{"generator_loss": loss, "lam": lam, "seed": seed, "iteration": it,
             "distance": abs(position - REAL_X1), "fake_critic_grad": critic, "fake_disc_grad": disc,
             "fake_disc_value": value}
            for (loss, lam, seed), (position, critic, disc, value) in zip(runs, columns)]


def summarise_line_gans(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (generator loss, λ): final distance, iterations to come within 0.05, gradient statistics."""
    rows = []
    for (loss, lam), part in curves.groupby(["generator_loss", "lam"]):
        final = part[part.iteration == part.iteration.max()]
        reached = part[part.distance < 0.05].groupby("seed").iteration.min()
        seeds = part.seed.nunique()
        rows.append({"generator loss": loss, "lam": lam, "final distance": final.distance.mean(),
                     "seeds that came within 0.05": f"{len(reached)} of {seeds}",
                     "seeds within 0.05 at the end": f"{int((final.distance < 0.05).sum())} of {seeds}",
                     # written out: a run that never came within 0.05 has no iteration to average
                     "median iterations to 0.05": f"{np.median(reached):.0f}" if len(reached) else "not reached",
                     "critic grad at fakes (median over training)": part.fake_critic_grad.median(),
                     "D grad at fakes (min over training)": part.fake_disc_grad.min(),
                     "D grad at fakes (median)": part.fake_disc_grad.median()})
    return pd.DataFrame(rows).set_index(["generator loss", "lam"])
