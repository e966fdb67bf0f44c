"""Margins of relativistic GANs (App. C).

Relativistic losses only see *differences* of critic values, so adding a
constant to the critic changes nothing: the level set f = 0 has no meaning for
them. Appendix C replaces it by

* RaGAN: two boundaries, {f = E_Q f} for real points and {f = E_P f} for fake
  points, whose first-order geometric margin is α_Ra(x, y) / ‖∇f(x)‖_q with
  α_Ra(x, +1) = f(x) − E_Q f and α_Ra(x, −1) = E_P f − f(x) (App. C.1, D.4);
* RpGAN: a margin of *pairs*, γ*(x₁, x₂) = γ(x₁) − γ(x₂), which equals
  (f(x₁) − f(x₂)) / ‖∇f‖_q when the gradient norms at x₁ and x₂ agree (App. C.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mmgan.base.registry import check_choice
from mmgan.margins import MARGIN_ORDERS
from mmgan.norms import Order, dual, grad_norm
from mmgan.penalties import batched_gradient_penalty, input_gradient

Critic = Callable[[torch.Tensor], torch.Tensor]


class ShiftedCritic(torch.nn.Module):
    """C(x) − c as a module: its zero set is the RaGAN boundary {C = c} of App. C.1.

    With c = E_Q C it is the boundary of real points, with c = E_P C that of fake
    points; any distance-to-{f = 0} routine then measures the relativistic margin.
    """

    def __init__(self, critic: torch.nn.Module, level: float) -> None:
        super().__init__()
        self.critic = critic
        self.level = float(level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).reshape(-1) - self.level


def ra_functional_margin(scores: torch.Tensor, y: torch.Tensor, mean_real: float, mean_fake: float) -> torch.Tensor:
    """α_Ra(x, y): f(x) − E_Q f for real points (y = +1), E_P f − f(x) for fake ones (y = −1)."""
    return torch.where(y > 0, scores - mean_fake, mean_real - scores)


def ra_margin(f: Critic, x: torch.Tensor, y: torch.Tensor, p: Order, mean_real: float,
              mean_fake: float) -> torch.Tensor:
    """First-order relativistic-average geometric margin α_Ra(x, y) / ‖∇f(x)‖_q (App. C.1)."""
    check_choice(p, MARGIN_ORDERS, "p")
    scores, grad = input_gradient(f, x, create_graph=False)
    return ra_functional_margin(scores.detach(), y, mean_real, mean_fake) / grad_norm(grad.detach(), dual(p))


def rp_margin(f: Critic, x_real: torch.Tensor, x_fake: torch.Tensor, p: Order) -> tuple[torch.Tensor, torch.Tensor]:
    """The paired margin of App. C.2 for pairs (x_real[i], x_fake[i]), computed two ways.

    Returns ``(exact_form, common_norm_form)``: f(x₁)/‖∇f(x₁)‖_q − f(x₂)/‖∇f(x₂)‖_q, and
    (f(x₁) − f(x₂)) / ‖∇f‖_q with ‖∇f‖_q the mean of the two gradient norms. They agree
    when the two gradient norms are equal, which a gradient penalty encourages.
    """
    check_choice(p, MARGIN_ORDERS, "p")
    if x_real.shape != x_fake.shape:
        raise ValueError(f"pairs need equal shapes, got {tuple(x_real.shape)} and {tuple(x_fake.shape)}")
    q = dual(p)
    s1, g1 = input_gradient(f, x_real, create_graph=False)
    s2, g2 = input_gradient(f, x_fake, create_graph=False)
    n1, n2 = grad_norm(g1.detach(), q), grad_norm(g2.detach(), q)
    s1, s2 = s1.detach(), s2.detach()
    return s1 / n1 - s2 / n2, (s1 - s2) / (0.5 * (n1 + n2))


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real points around (1, 0.5) and fake points around (−1, −0.5), n each (a fixed 2-D example)."""
    gen = torch.Generator().manual_seed(seed)
    real = 0.35 * torch.randn(n, 2, generator=gen, dtype=torch.float32) + torch.tensor([1.0, 0.5])
    fake = 0.5 * torch.randn(n, 2, generator=gen, dtype=torch.float32) + torch.tensor([-1.0, -0.5])
    return real, fake


def train_relativistic_critics(runs: list[tuple[str, float]], seed: int = 0, iterations: int = 500,
                               width: int = 32, lr: float = 2e-3, batch_size: int = 128):
    """Train one critic per (loss, λ) on :func:`blobs` with the LS penalty (q = 2) at interpolates.

    The fake distribution is fixed (no generator), so each critic converges to a
    classifier of the two blobs under its loss. Returns the batched critics
    (model i ↔ runs[i]) and the training data (real, fake).
    """
    from mmgan.losses import critic_loss
    from mmgan.mlp import BatchedMLP

    m = len(runs)
    critics = BatchedMLP([seed] * m, 2, width)
    real_all, fake_all = blobs(2000, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    lam = torch.tensor([w for _, w in runs], dtype=torch.float32)
    optimizer = torch.optim.Adam(critics.parameters(), lr=lr, betas=(0.5, 0.999))
    for _ in range(iterations):
        idx = torch.randint(2000, (2, batch_size), generator=gen)
        real = real_all[idx[0]].expand(m, -1, -1)
        fake = fake_all[idx[1]].expand(m, -1, -1)
        u = torch.rand(1, batch_size, 1, generator=gen, dtype=torch.float32)
        penalty = batched_gradient_penalty(critics, u * real + (1 - u) * fake, q=2, g="ls").penalty
        r_out, f_out = critics(real), critics(fake)
        losses = torch.stack([critic_loss(name, r_out[i], f_out[i]) for i, (name, _) in enumerate(runs)])
        optimizer.zero_grad()
        (losses + lam * penalty).sum().backward()
        optimizer.step()
    return critics, (real_all, fake_all)
