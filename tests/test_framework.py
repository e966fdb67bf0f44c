import math

import pytest
import torch
from helpers import small_mlp

from mmgan import framework, losses, penalties


@pytest.mark.parametrize("loss", list(framework.GAN_AS_MMC))
@pytest.mark.parametrize("q", [1, 2, math.inf])
def test_gan_critic_objective_equals_twice_eq6(loss, q):
    """§5.1: critic_loss + λ·GP = 2 · eq. 6 on the balanced mixture (penalty weight λ/2)."""
    critic = small_mlp(2)
    real, fake = torch.randn(16, 2) + 1, torch.randn(16, 2) - 1
    lam = 10.0
    gp = penalties.gradient_penalty(critic, real, fake, q=q, g="ls", generator=torch.Generator().manual_seed(1))
    gan = losses.critic_loss(loss, critic(real), critic(fake)) + lam * gp
    x_hat = penalties.penalty_points(real, fake, "interpolates", torch.Generator().manual_seed(1))
    x, y = torch.cat([real, fake]), torch.cat([torch.ones(16), -torch.ones(16)])
    eq6 = framework.eq6_objective(critic, x, y, loss, "ls", q, lam / 2, penalty_x=x_hat)
    torch.testing.assert_close(gan, 2 * eq6)


def test_eq6_is_differentiable_and_defaults_to_data_points():
    critic = small_mlp(2)
    x, y = torch.randn(8, 2), torch.tensor([1.0, -1.0] * 4)
    value = framework.eq6_objective(critic, x, y, "hinge", "hinge", 2, 1.0)
    explicit = framework.eq6_objective(critic, x, y, "hinge", "hinge", 2, 1.0, penalty_x=x)
    torch.testing.assert_close(value, explicit)
    value.backward()
    assert critic[0].weight.grad is not None


def test_eq6_bad_inputs():
    critic = small_mlp(2)
    x, y = torch.randn(4, 2), torch.ones(4)
    with pytest.raises(ValueError, match="lam"):
        framework.eq6_objective(critic, x, y, "hinge", "ls", 2, -1.0)
    with pytest.raises(ValueError, match="unknown loss='svm'"):
        framework.eq6_objective(critic, x, y, "svm", "ls", 2, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        framework.expected_margin_loss("hinge", torch.zeros(3), torch.zeros(4))
