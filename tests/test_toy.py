import math

import pytest
import torch

from mmgan import relativistic
from mmgan.losses import critic_loss, margin_loss
from mmgan.toys import sigmoid as toy
from mmgan.toys.gan import LineGANConfig, summarise_line_gans, train_line_gans
from mmgan.toys.robustness import contaminated_blobs


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_sigmoid_example_closed_forms():
    out = toy.sigmoid_example(4, 0)
    assert out["f_real"] == pytest.approx(sig(4))
    assert out["f_fake"] == pytest.approx(sig(-4))
    assert out["grad_real"] == pytest.approx(4 * sig(4) * sig(-4))
    assert out["grad_fake"] == pytest.approx(4 * sig(4) * sig(-4))
    shifted = toy.sigmoid_example(4, -1)
    assert shifted["f_real"] == pytest.approx(sig(3))
    assert shifted["f_fake"] == pytest.approx(sig(-5))
    assert shifted["grad_fake"] == pytest.approx(4 * sig(-5) * sig(5))
    assert shifted["grad_real"] == pytest.approx(4 * sig(3) * sig(-3))


def test_sigmoid_example_matches_autograd():
    for w1, w0 in [(4.0, 0.0), (4.0, -1.0), (8.0, 0.5), (-3.0, 1.0)]:
        out = toy.sigmoid_example(w1, w0)
        for x1, key in [(1.0, "grad_real"), (-1.0, "grad_fake")]:
            x = torch.tensor([x1, 0.3], dtype=torch.float64, requires_grad=True)
            torch.sigmoid(w1 * x[0] + w0).backward()
            for p in (1, 2, math.inf):
                assert torch.linalg.vector_norm(x.grad, ord=p).item() == pytest.approx(out[key])


def test_paper_numbers_are_swapped_outputs_and_correct_gradients():
    opt, worse = toy.sigmoid_example(4, 0), toy.sigmoid_example(4, -1)
    assert (round(opt["f_fake"], 2), round(opt["f_real"], 2)) == (0.02, 0.98)  # paper: f(x_r)=.02, f(x_f)=.98
    assert (round(worse["f_fake"], 2), round(worse["f_real"], 2)) == (0.01, 0.95)
    assert (round(opt["grad_fake"], 2), round(worse["grad_fake"], 2)) == (0.07, 0.03)


def test_lipschitz_weight_and_boundary():
    assert toy.lipschitz_weight(1) == 4 and toy.lipschitz_weight(2) == 8
    assert toy.boundary_position(4, -1) == pytest.approx(0.25)
    z = torch.linspace(-10, 10, 100_001)
    assert (torch.sigmoid(z) * torch.sigmoid(-z)).max().item() == pytest.approx(0.25)


def test_bad_inputs():
    with pytest.raises(ValueError, match="w1"):
        toy.sigmoid_example(float("nan"), 0)
    with pytest.raises(ValueError, match="w0"):
        toy.sigmoid_example(1.0, "0")
    with pytest.raises(ValueError, match="Lipschitz"):
        toy.lipschitz_weight(0)
    with pytest.raises(ValueError, match="eps"):
        contaminated_blobs(10, 1.5, 0)


def test_segments_and_boundary_crossing():
    x, y = toy.segments(50, seed=1)
    assert torch.all(x[:50, 0] == 1) and torch.all(x[50:, 0] == -1) and x[:, 1].abs().max() <= 1
    assert toy.boundary_crossing(lambda z: 4 * z[:, 0] - 1) == pytest.approx(0.25, abs=1e-9)
    assert math.isnan(toy.boundary_crossing(lambda z: z[:, 0] * 0 + 1))


def test_contaminated_blobs_moves_a_fraction_of_class_minus_one():
    x, y = contaminated_blobs(200, 0.1, seed=0)
    outliers = (y < 0) & (x[:, 0] > 2)
    assert outliers.sum().item() == 20


def test_line_gan_runs_and_summarises():
    curves = train_line_gans(LineGANConfig(iterations=20, log_every=10), [0.0, 1.0], [0])
    assert set(curves.columns) >= {"generator_loss", "lam", "seed", "iteration", "distance", "fake_disc_grad"}
    assert len(summarise_line_gans(curves)) == 4
    with pytest.raises(ValueError, match="generator_losses"):
        train_line_gans(LineGANConfig(iterations=2), [0.0], [0], generator_losses=("wasserstein",))


def test_ra_margin_identity_and_rp_forms_on_a_linear_critic():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64)
    f = lambda z: z @ w + 0.5  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(30, 2, generator=gen, dtype=torch.float64) + 2
    fake = torch.randn(30, 2, generator=gen, dtype=torch.float64) - 2
    exact_form, common = relativistic.rp_margin(f, real, fake, 2)
    torch.testing.assert_close(exact_form, common)  # equal gradient norms: the two forms agree
    y = torch.cat([torch.ones(30), -torch.ones(30)]).double()
    scores = f(torch.cat([real, fake]))
    m_real, m_fake = f(real).mean().item(), f(fake).mean().item()
    alpha = relativistic.ra_functional_margin(scores, y, m_real, m_fake)
    L = margin_loss("hinge")
    torch.testing.assert_close(critic_loss("rahinge", f(real), f(fake)), L(alpha[:30]).mean() + L(alpha[30:]).mean())
    margin = relativistic.ra_margin(f, torch.cat([real, fake]), y, 2, m_real, m_fake)
    torch.testing.assert_close(margin, alpha / w.norm())
