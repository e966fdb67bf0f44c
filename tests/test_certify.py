"""CROWN certified margins (mmgan.critics.certify) on critics whose geometry is known or checkable."""

import math

import pytest
import torch
from torch import nn

from mmgan.critics import certify, instruments
from mmgan.exact import distance_to_zero_set_2d
from mmgan.gan.models import Flatten
from mmgan.margins import MARGIN_ORDERS, boundary_distances
from mmgan.norms import dual


def gan_like_critic(seed=0):
    """The layer pattern of the DCGAN critics: conv, leaky ReLU, conv, BatchNorm (eval), leaky ReLU, conv."""
    torch.manual_seed(seed)
    critic = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                           nn.Conv2d(4, 6, 4, 2, 1, bias=False), nn.BatchNorm2d(6), nn.LeakyReLU(0.2),
                           nn.Conv2d(6, 1, 2, 1, 0, bias=False), Flatten())
    critic[3].running_mean.uniform_(-0.5, 0.5)
    critic[3].running_var.uniform_(0.5, 2.0)
    critic[3].weight.data.uniform_(-2, 2)
    critic[3].bias.data.uniform_(-0.5, 0.5)
    return critic.eval()


def steps_forward(steps, x):
    """The critic computed from its unrolled steps."""
    z = x.double().flatten(1)
    for step in steps:
        if isinstance(step, certify.Affine):
            z = step.forward(z)
        else:
            z = torch.where(z >= 0, z, step.slope * z)
    return z[:, 0]


def points_in_ball(x, radius, p, n, generator):
    """n points of B_p(x, radius) per image, including some on the sphere."""
    shape = (n, *x.shape)
    if p == math.inf:
        delta = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) * radius
        delta[: n // 2] = delta[: n // 2].sign() * radius  # corners
    else:
        delta = torch.randn(shape, generator=generator, dtype=torch.float64)
        if p == 1.0:
            delta = delta ** 3  # heavier tails: closer to the L1 ball's corners
        norms = torch.linalg.vector_norm(delta.flatten(2), ord=p, dim=2).reshape(n, x.shape[0], *[1] * (x.dim() - 1))
        scale = torch.rand((n, x.shape[0], *[1] * (x.dim() - 1)), generator=generator, dtype=torch.float64)
        scale[: n // 2] = 1.0
        delta = delta / norms * radius * scale
    return x.double() + delta


def test_affine_steps_compute_the_critic():
    critic = gan_like_critic()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = critic(x).double()
    assert torch.allclose(steps_forward(certify.affine_steps(critic, (1, 8, 8)), x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="eval mode"):
        certify.affine_steps(critic.train(), (1, 8, 8))
    with pytest.raises(TypeError, match="cannot certify a Tanh layer"):
        certify.affine_steps(nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Tanh()).eval(), (4,))


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_output_bounds_contain_the_critic_on_the_whole_ball(p):
    critic = gan_like_critic(1)
    steps = certify.affine_steps(critic, (1, 8, 8))
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    radius = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64) * (8.0 if p == 1.0 else 1.0)
    low, high = certify.output_bounds(steps, x.flatten(1), radius, p)
    centre = steps_forward(steps, x)
    assert torch.allclose(low[0], centre[0]) and torch.allclose(high[0], centre[0])  # radius 0: exact
    generator = torch.Generator().manual_seed(0)
    for i in (1, 2):
        inside = points_in_ball(x[i:i + 1], float(radius[i]), p, 2000, generator).reshape(-1, 1, 8, 8)
        values = steps_forward(steps, inside)
        assert float(values.min()) >= float(low[i]) - 1e-9 and float(values.max()) <= float(high[i]) + 1e-9
        assert float(low[i]) < float(centre[i]) < float(high[i])


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_certified_radius_of_a_linear_critic_is_its_exact_distance(p):
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1), Flatten()).eval()
    x = torch.randn(6, 16)
    w, b = critic[1].weight[0].detach(), float(critic[1].bias[0].detach())
    exact = ((x @ w + b - 0.1).abs() / torch.linalg.vector_norm(w, ord=dual(p))).double()
    radius = certify.certified_radius(critic, x, 0.1, p, upper=2 * exact, steps=30)
    assert (radius <= exact * (1 + 1e-9)).all()
    assert torch.allclose(radius, exact, rtol=1e-6)


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_certified_radius_of_a_relu_mlp_lies_below_the_exact_2d_distance(p):
    torch.manual_seed(3)
    critic = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.LeakyReLU(0.1), nn.Linear(16, 1),
                           Flatten()).eval()
    x = torch.rand(40, 2) * 2 - 1
    exact = distance_to_zero_set_2d(critic, x, p, (-4.0, -4.0), (4.0, 4.0)).double()
    reachable = torch.isfinite(exact)
    radius = certify.certified_radius(critic, x[reachable], 0.0, p, upper=exact[reachable] * 1.001 + 1e-6)
    assert (radius <= exact[reachable] * (1 + 1e-6) + 1e-9).all()
    assert float((radius / exact[reachable]).median()) > 0.3  # not vacuous


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_certified_radius_brackets_the_margin_of_a_gan_like_critic(p):
    critic = gan_like_critic(2)
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        threshold = float(critic(x).median())
    found = boundary_distances(lambda z: critic(z) - threshold, x, (p,), max_steps=80)[p]
    radius = certify.certified_radius(critic, x, threshold, p, upper=found.distance.double())
    lipschitz = (critic(x).detach().double() - threshold).abs() / instruments.lipschitz_bound(critic, (1, 8, 8), p)
    assert (radius <= found.distance.double() * (1 + 1e-6)).all()
    assert (radius >= lipschitz * (1 - 1e-9)).all() and (radius > 2 * lipschitz).any()


def test_affine_transpose_is_the_jacobian_transpose():
    critic = gan_like_critic(4)
    for step in certify.affine_steps(critic, (1, 8, 8)):
        if isinstance(step, certify.Affine):
            units = math.prod(step.in_shape)
            jacobian = torch.autograd.functional.jacobian(
                lambda z, step=step: step.forward(z[None])[0], torch.zeros(units, dtype=torch.float64))
            coefficients = torch.randn(3, jacobian.shape[0], dtype=torch.float64)
            assert torch.allclose(step.transpose(coefficients), coefficients @ jacobian)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_bounds_carried_back_over_the_units_read_equal_the_dense_pass(p, train, monkeypatch):
    """Each group of a convolution's units is carried back over only the inputs it reads
    (``Affine.row_groups``, ``transpose_on``); with one group of every unit over every input (the dense pass)
    the bounds are the same, and every unit is in exactly one group."""
    critic = gan_like_critic(5)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    mates = torch.randn(4, 3, 1, 8, 8) if train else None
    radius = torch.tensor([0.0, 0.05, 0.4, 1.5], dtype=torch.float64) * (8.0 if p == 1.0 else 1.0)
    steps = certify.affine_steps(critic.train() if train else critic, (1, 8, 8), mates)
    groups = [step.row_groups for step in steps if isinstance(step, certify.Affine)]
    assert len(groups[1]) > 1  # the second convolution's positions read different patches
    for step_groups, step in zip(groups, [s for s in steps if isinstance(s, certify.Affine)]):
        units = torch.cat([units for units, _ in step_groups]).sort().values
        assert torch.equal(units, torch.arange(math.prod(step.out_shape)))
    grouped = certify.output_bounds(steps, x.flatten(1), radius, p)
    dense = certify.affine_steps(critic, (1, 8, 8), mates)
    for step in dense:
        if isinstance(step, certify.Affine):
            everything = (torch.arange(math.prod(step.out_shape)), torch.arange(math.prod(step.in_shape)))
            monkeypatch.setitem(step.__dict__, "row_groups", [everything])
    reference = certify.output_bounds(dense, x.flatten(1), radius, p)
    for ours, theirs in zip(grouped, reference):
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
