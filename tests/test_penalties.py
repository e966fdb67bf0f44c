import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import LinearCritic, small_mlp

from mmgan import norms, penalties

Q_CHOICES = [1, 2, math.inf, "smax"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(Q_CHOICES), st.sampled_from(list(penalties.PENALTY_SHAPES)), st.integers(0, 10_000))
def test_penalty_on_linear_critic_is_g_of_weight_norm(q, g, seed):
    critic = LinearCritic((3, 4, 4), seed=seed)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    for at in penalties.PENALTY_POINTS:
        value = penalties.gradient_penalty(critic, real, fake, q=q, g=g, at=at)
        expected = penalties.PENALTY_SHAPES[g](norms.grad_norm(critic.w.detach()[None], q))[0]
        torch.testing.assert_close(value, expected)


def test_penalty_shapes_closed_forms():
    z = torch.tensor([0.0, 0.5, 1.0, 2.0])
    torch.testing.assert_close(penalties.penalty_shape("ls")(z), torch.tensor([1.0, 0.25, 0.0, 1.0]))
    torch.testing.assert_close(penalties.penalty_shape("hinge")(z), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(penalties.penalty_shape("squared_hinge")(z), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(penalties.penalty_shape("zero_centered")(z), z**2)
    torch.testing.assert_close(penalties.penalty_shape("kkt")(z), z**2 - 1)


def test_penalty_has_parameter_gradient_matching_finite_differences():
    critic = small_mlp(2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731 - same interpolates every call
    value = penalties.gradient_penalty(critic, real, fake, q=2, g="ls", generator=gen())
    weight = critic[0].weight
    (analytic,) = torch.autograd.grad(value, weight)
    eps = 1e-6
    with torch.no_grad():
        weight[0, 0] += eps
        plus = penalties.gradient_penalty(critic, real, fake, q=2, g="ls", generator=gen())
        weight[0, 0] -= 2 * eps
        minus = penalties.gradient_penalty(critic, real, fake, q=2, g="ls", generator=gen())
        weight[0, 0] += eps
    assert analytic[0, 0].item() == pytest.approx(((plus - minus) / (2 * eps)).item(), rel=1e-5, abs=1e-8)


def test_interpolates_lie_on_segments_with_one_u_per_sample():
    real, fake = torch.zeros(64, 3, 2, 2), torch.ones(64, 3, 2, 2)
    x = penalties.penalty_points(real, fake, "interpolates", torch.Generator().manual_seed(0))
    one_minus_u = x.reshape(64, -1)
    assert torch.all(one_minus_u == one_minus_u[:, :1])  # constant within a sample
    assert one_minus_u.min() >= 0 and one_minus_u.max() <= 1
    assert one_minus_u[:, 0].std() > 0.2  # varies across samples (U[0,1] has std 0.29)


def test_penalty_points_real_fake_data():
    real, fake = torch.randn(3, 2), torch.randn(4, 2)
    torch.testing.assert_close(penalties.penalty_points(real, fake, "real"), real)
    torch.testing.assert_close(penalties.penalty_points(real, fake, "fake"), fake)
    assert penalties.penalty_points(real, fake, "data").shape == (7, 2)


def test_released_signed_max_penalty_differs_for_negative_gradient():
    critic = LinearCritic((2,))
    with torch.no_grad():
        critic.w.copy_(torch.tensor([-2.0, 0.5]))
    x = torch.randn(4, 2)
    correct = penalties.gradient_penalty(critic, x, x, q=math.inf, g="hinge")
    released = penalties.gradient_penalty(critic, x, x, q=math.inf, g="hinge", as_released=True)
    assert correct.item() == pytest.approx(1.0)  # max(0, 2 - 1)
    assert released.item() == pytest.approx(0.0)  # max(0, 0.5 - 1)


def test_bad_inputs_raise_naming_parameter():
    critic = lambda x: x.sum(1)  # noqa: E731
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="unknown g='l2'; valid choices: 'ls', 'hinge'"):
        penalties.gradient_penalty(critic, x, x, g="l2")
    with pytest.raises(ValueError, match="invalid at='between'; valid choices: 'interpolates'"):
        penalties.gradient_penalty(critic, x, x, at="between")
    with pytest.raises(ValueError, match="unknown gradient norm q=3"):
        penalties.gradient_penalty(critic, x, x, q=3)
    with pytest.raises(ValueError, match="same shape"):
        penalties.gradient_penalty(critic, x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="per-sample shape"):
        penalties.gradient_penalty(critic, x, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"critic must return shape \(batch,\)"):
        penalties.gradient_penalty(lambda x: x, x, x)
