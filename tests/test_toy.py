import contextlib
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mmgan import relativistic
from mmgan.base.processes import using_threads
from mmgan.losses import critic_loss, margin_loss
from mmgan.mlp import BatchedMLP
from mmgan.penalties import gradient_penalty
from mmgan.toys import gan as toy_gan
from mmgan.toys import sigmoid as toy
from mmgan.toys.classifiers import PenaltySpec
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


# Per-run references: one model trained alone with plain autograd (nn.Linear layers), its own optimiser and its own
# penalty (mmgan.penalties.gradient_penalty, the one-critic form), to check that training all runs in one batch
# changes nothing but the float32 rounding: a batched layer is one baddbmm, whose sums round otherwise than nn.Linear's
# (so do softplus on strided data and autograd's order of summing a weight's gradients). Measured, torch 2.14 on
# CPU: largest relative difference 3e-7 on the discriminators' summaries after 150 steps, 3e-6 on the toy GAN's
# curves after 80. Training amplifies these: after the chapter's 1000 discriminator steps the summaries differ by up
# to 1e-2, after 1500 toy-GAN steps a generator's position by up to 0.4 (its dynamics are chaotic), which is why the
# tests train briefly. Within a batch, a run's numbers do not depend on the other runs, bit for bit (tested below;
# a batch of one model takes a matrix-vector product for the output layer instead and rounds differently).
RTOL, ATOL = 1e-5, 1e-7


def assert_close_columns(batched: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> None:
    """Equal up to float32 rounding (NaN, a boundary that does not cross the axis, only where the other has one)."""
    np.testing.assert_allclose(batched[columns].to_numpy(float), reference[columns].to_numpy(float), RTOL, ATOL)


def one_discriminator(spec: PenaltySpec, lam: float, seed: int, iterations: int, width: int = 16, lr: float = 1e-3,
                      n: int = 1000, half: int = 128) -> dict[str, float]:
    """One model of ``toy.learned_discriminators`` trained alone: the seed's initial weights, data and stream
    (minibatch indices of the real, then the fake segment, then the interpolation weights), eq. 6 with Adam."""
    net = BatchedMLP([seed], 2, width).model(0)  # the seed's initial weights, as in the batch
    x, y = toy.segments(n, seed)
    real, fake = x[y > 0].float(), x[y < 0].float()
    labels = torch.cat([torch.ones(half), -torch.ones(half)]).float()
    gen = torch.Generator().manual_seed(10_000 + seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(iterations):
        xp, xn = real[torch.randint(n, (half,), generator=gen)], fake[torch.randint(n, (half,), generator=gen)]
        u = torch.rand(half, 1, generator=gen, dtype=torch.float32)
        loss = F.softplus(-labels * net(torch.cat([xp, xn]))[:, 0]).mean()
        if spec.g is not None:
            x_hat = u * xp + (1 - u) * xn
            loss = loss + lam * gradient_penalty(net, x_hat, x_hat, spec.q, spec.g, at="real")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe, _ = toy.segments(200, 99)
    at_fake, at_real = toy.gradient_summary(net, probe[200:].float()), toy.gradient_summary(net, probe[:200].float())
    return {"penalty": spec.label, "lam": lam, "seed": seed, "boundary x1": toy.boundary_crossing(net),
            "critic grad at fake": at_fake["critic_grad"], "D grad at fake": at_fake["disc_grad"],
            "D grad at real": at_real["disc_grad"], "D at fake": at_fake["disc_value"],
            "D at real": at_real["disc_value"]}


def test_learned_discriminators_equal_runs_trained_one_by_one():
    specs, lams, seeds, iterations = [PenaltySpec("hinge", 2.0), PenaltySpec("ls", math.inf)], (10.0,), (3, 1), 150
    batched = toy.learned_discriminators(lams, specs, seeds, iterations=iterations)
    runs = [(PenaltySpec(None, None), 0.0)] + [(spec, lam) for spec in specs for lam in lams]
    with using_threads(1):
        reference = pd.DataFrame([one_discriminator(spec, lam, seed, iterations)
                                  for spec, lam in runs for seed in seeds])
    pd.testing.assert_frame_equal(batched[["penalty", "lam", "seed"]], reference[["penalty", "lam", "seed"]])
    assert_close_columns(batched, reference, ["boundary x1", "critic grad at fake", "D grad at fake", "D grad at real",
                                              "D at fake", "D at real"])


def test_a_learned_discriminator_does_not_depend_on_its_batch():
    alone = toy.learned_discriminators((10.0,), [PenaltySpec("ls", 1.0)], (1,), iterations=60)
    batch = toy.learned_discriminators((1.0, 10.0), [PenaltySpec("hinge", 2.0), PenaltySpec("ls", 1.0)], (4, 1),
                                       iterations=60)
    mine = batch[(batch.seed == 1) & batch.lam.isin([0.0, 10.0]) & batch.penalty.isin(["none", "ls-q1"])]
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), alone, check_exact=True)


def one_line_gan(config: LineGANConfig, runs: list[tuple[str, float, int]], i: int, stream_seed: int) -> pd.DataFrame:
    """Run ``i`` of ``train_line_gans`` trained alone: its seed's critic, its own Adam, θ and SGD. The batch draws
    the samples of all runs from one stream, row by row; the reference draws the same and keeps row i."""
    loss_name, lam, seed = runs[i]
    m, b, f32 = len(runs), config.batch_size, torch.float32
    critic = BatchedMLP([seed], 2, config.width).model(0)
    theta = torch.tensor(toy.FAKE_X1, dtype=f32, requires_grad=True)
    opt_c = torch.optim.Adam(critic.parameters(), lr=config.critic_lr, betas=(0.5, 0.999))
    opt_g = torch.optim.SGD([theta], lr=config.generator_lr)
    gen = torch.Generator().manual_seed(stream_seed)

    def line(x1: torch.Tensor) -> torch.Tensor:
        return torch.stack([x1.expand(b), (2 * torch.rand(m, b, generator=gen, dtype=f32) - 1)[i]], 1)

    rows = []
    for it in range(1, config.iterations + 1):
        real, fake = line(torch.tensor(toy.REAL_X1, dtype=f32)), line(theta.detach())
        u = torch.rand(m, b, 1, generator=gen, dtype=f32)[i]
        loss = F.softplus(-critic(real)).mean() + F.softplus(critic(fake)).mean()  # eq. 1 with the SGAN loss
        if lam:
            x_hat = u * real + (1 - u) * fake
            loss = loss + lam * gradient_penalty(critic, x_hat, x_hat, config.q, config.g, at="real")
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()
        scores = critic(line(theta))[:, 0]
        generator_loss = -F.softplus(scores) if loss_name == "minimax" else F.softplus(-scores)
        (theta.grad,) = torch.autograd.grad(generator_loss.mean(), theta)
        opt_g.step()
        if it % config.log_every == 0 or it == 1:
            x = line(theta.detach()).requires_grad_(True)
            c = critic(x)[:, 0]
            (grad,) = torch.autograd.grad(c.sum(), x)
            d, norms = torch.sigmoid(c).detach(), grad.norm(dim=1)
            rows.append({"generator_loss": loss_name, "lam": lam, "seed": seed, "iteration": it,
                         "distance": abs(theta.item() - toy.REAL_X1), "fake_critic_grad": norms.mean().item(),
                         "fake_disc_grad": (d * (1 - d) * norms).mean().item(), "fake_disc_value": d.mean().item()})
    return pd.DataFrame(rows)


def test_line_gans_equal_runs_trained_one_by_one():
    config, lams, seeds = LineGANConfig(iterations=80, log_every=20), [0.0, 10.0], [0, 2]
    batched = train_line_gans(config, lams, seeds)
    runs = [(loss, lam, seed) for loss in toy_gan.GENERATOR_LOSSES for lam in lams for seed in seeds]
    with using_threads(1):
        reference = pd.concat([one_line_gan(config, runs, i, sum(seeds) + 7) for i in range(len(runs))])
    key = ["generator_loss", "lam", "seed", "iteration"]
    batched, reference = batched.sort_values(key, ignore_index=True), reference.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(batched[key], reference[key])
    assert_close_columns(batched, reference, ["distance", "fake_critic_grad", "fake_disc_grad", "fake_disc_value"])


def test_the_toys_give_the_same_numbers_with_more_threads(monkeypatch):
    """They train with one thread (fast); two give the same numbers, only slower (very much so on busy cores)."""
    config = LineGANConfig(iterations=10, log_every=5)
    one = (toy.learned_discriminators((10.0,), [PenaltySpec("ls", 2.0)], (0,), iterations=10, n=100),
           train_line_gans(config, [10.0], [0]))
    threads = torch.get_num_threads()
    monkeypatch.setattr(toy, "using_threads", contextlib.nullcontext)
    monkeypatch.setattr(toy_gan, "using_threads", contextlib.nullcontext)
    torch.set_num_threads(2)
    try:
        two = (toy.learned_discriminators((10.0,), [PenaltySpec("ls", 2.0)], (0,), iterations=10, n=100),
               train_line_gans(config, [10.0], [0]))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_using_threads_restores_the_thread_count():
    threads = torch.get_num_threads()
    with using_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
