import math

import pytest
import torch
from helpers import LinearCritic, small_mlp
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgan import norms, penalties
from mmgan.mlp import BatchedMLP

Q_CHOICES = [1, 2, math.inf, "smax"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(Q_CHOICES), st.sampled_from(list(penalties.PENALTY_SHAPES)), st.integers(0, 10_000))
def test_penalty_on_linear_critic_is_g_of_weight_norm(q, g, seed):
    critic = LinearCritic((3, 4, 4), seed=seed)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    for at in penalties.PENALTY_POINTS:
        value = penalties.gradient_penalty(critic, real, fake, q=q, g=g, at=at)
        expected = penalties.penalty_shape(g)(norms.grad_norm(critic.w.detach()[None], q))[0]
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


GRID = [(q, g) for q in Q_CHOICES for g in penalties.PENALTY_SHAPES]


def _critics_and_points(n_models: int, batch: int = 6):
    """A float64 BatchedMLP whose gradient norms straddle 1 (so hinge shapes are active), and points."""
    critics = BatchedMLP(list(range(n_models)), 3, width=8, dtype=torch.float64)
    with torch.no_grad():
        critics.weights[-1].mul_(25.0)
    x_hat = torch.randn(n_models, batch, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return critics, x_hat


def _assert_matches_model_by_model(qs: list, gs: list) -> None:
    """Batched penalty, gradient norms, scores and parameter gradients equal the single-critic ones."""
    critics, x_hat = _critics_and_points(len(qs))
    q_arg, g_arg = (qs[0], gs[0]) if len(set(qs)) == len(set(gs)) == 1 else (qs, gs)
    result = penalties.batched_gradient_penalty(critics, x_hat, q_arg, g_arg)
    assert result.penalty.shape == (len(qs),) and result.grad_norm.shape == result.scores.shape == x_hat.shape[:2]
    assert (result.grad_norm < 1).any() and (result.grad_norm > 1).any()
    # double backward; the last bias does not change ∇ₓf, its gradient is zero
    batched_grads = torch.autograd.grad(result.penalty.sum(), list(critics.parameters()), materialize_grads=True)
    for m, (q, g) in enumerate(zip(qs, gs)):
        net = critics.model(m)  # nn.Sequential copy of model m: Linear weights are stored transposed
        value = penalties.gradient_penalty(net, x_hat[m], x_hat[m], q=q, g=g, at="real")
        scores, grad = penalties.input_gradient(net, x_hat[m], create_graph=False)
        torch.testing.assert_close(result.penalty[m], value)
        torch.testing.assert_close(result.grad_norm[m], norms.grad_norm(grad, q))
        torch.testing.assert_close(result.scores[m], scores)
        single = torch.autograd.grad(value, list(net.parameters()), materialize_grads=True)
        by_layer = [single[i].T for i in range(0, len(single), 2)] + [single[i] for i in range(1, len(single), 2)]
        for batched, expected in zip(batched_grads, by_layer):  # BatchedMLP: all weights, then all biases
            torch.testing.assert_close(batched[m], expected)


@pytest.mark.parametrize(("q", "g"), GRID)
def test_batched_penalty_matches_gradient_penalty_for_one_q_and_g(q, g):
    _assert_matches_model_by_model([q] * 3, [g] * 3)


def test_batched_penalty_with_mixed_q_and_g_matches_model_by_model():
    _assert_matches_model_by_model([q for q, _ in GRID], [g for _, g in GRID])


def test_batched_penalty_without_graph_and_with_detached_points():
    critics, x_hat = _critics_and_points(2)
    x_hat.requires_grad_(True)
    result = penalties.batched_gradient_penalty(critics, x_hat, 2, "ls", create_graph=False)
    assert not result.penalty.requires_grad and result.scores.requires_grad
    with_graph = penalties.batched_gradient_penalty(critics, x_hat, 2, "ls")
    (grad_x,) = torch.autograd.grad(with_graph.penalty.sum(), x_hat, allow_unused=True)
    assert grad_x is None  # x_hat is detached: only the critic's parameters get gradients
    torch.testing.assert_close(result.penalty, with_graph.penalty.detach())


def test_batched_penalty_bad_inputs_raise_naming_parameter():
    critics, x_hat = _critics_and_points(3)
    with pytest.raises(ValueError, match=r"q must be one value or a sequence of one per model \(3\), got 2"):
        penalties.batched_gradient_penalty(critics, x_hat, [1, 2], "ls")
    with pytest.raises(ValueError, match=r"g must be one value or a sequence of one per model \(3\), got 4"):
        penalties.batched_gradient_penalty(critics, x_hat, 2, ["ls"] * 4)
    with pytest.raises(ValueError, match="unknown g='l2'; valid choices: 'ls', 'hinge'"):
        penalties.batched_gradient_penalty(critics, x_hat, 2, ["ls", "l2", "ls"])
    with pytest.raises(ValueError, match="unknown gradient norm q=3"):
        penalties.batched_gradient_penalty(critics, x_hat, [2, 3, 2], "ls")
    with pytest.raises(ValueError, match=r"x_hat must have shape \(models, batch, \.\.\.\)"):
        penalties.batched_gradient_penalty(critics, x_hat[0], 2, "ls")
    with pytest.raises(ValueError, match=r"critic must map \(3, 6, 3\) to \(3, 6\), got \(3, 6, 1\)"):
        penalties.batched_gradient_penalty(lambda x: critics(x)[..., None], x_hat, 2, "ls")
