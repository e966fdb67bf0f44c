"""HingeGAN + R1 + R2 on a linear critic is the soft-margin SVM (§4.1: eq. 6 with the hinge loss and the paper's
standard g(z) = z² − 1 "corresponds exactly to Soft-Margin SVMs").

For f(x) = wᵀx + b, ∇ₓf = w at every point, so R1 = R2 = γ/2 · ‖w‖² and, with m points in each class (n = 2m),

    critic_loss('hinge') + R1 + R2 = (1/m) Σ_i max(0, 1 − y_i f(x_i)) + γ‖w‖²
                                   = 2 · mean hinge + γ‖w‖²
                                   = 2γ · [½‖w‖² + C Σ_i max(0, 1 − y_i f(x_i))],  C = 1/(γ n),

the soft-margin SVM objective of Cortes & Vapnik, up to the factor 2γ. It is also twice eq. 6 with L the hinge,
g(z) = z² − 1 (``kkt``) at every data point and λ = γ/2, plus the constant γ: with a fixed λ the paper's standard
g *is* the zero-centred penalty. Every test below has a counterpart that must fail: a one-centred g, or a wrong C.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgan import losses, penalties

svm = pytest.importorskip("sklearn.svm")

DTYPE = torch.float64


def _linear(w: torch.Tensor, b: torch.Tensor):
    return lambda x: x @ w + b


def _blobs(m: int, seed: int, shift: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """m points of class +1 ('real') and m of class −1 ('fake'): two unit Gaussians 2·shift apart, which overlap a
    little (separable-ish)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.tensor([shift, 0.6 * shift], dtype=DTYPE)
    real = torch.randn(m, 2, generator=gen, dtype=DTYPE) + centre
    fake = torch.randn(m, 2, generator=gen, dtype=DTYPE) - centre
    return real, fake


def project_objective(w: torch.Tensor, b: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, gamma: float,
                      which: str = "r1+r2") -> torch.Tensor:
    """The project's HingeGAN critic loss plus its zero-centred penalty ``which`` (R1 = γ/2 · E_real ‖∇f‖₂²)."""
    f = _linear(w, b)
    return losses.critic_loss("hinge", f(real), f(fake)) + penalties.zero_centred_penalty(f, real, fake, which, gamma)


def _mean_hinge(w, b, real, fake):
    x, y = torch.cat([real, fake]), torch.cat([torch.ones(len(real), dtype=DTYPE), -torch.ones(len(fake), dtype=DTYPE)])
    return F.relu(1 - y * (x @ w + b)).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma", [0.05, 1.0, 20.0])
def test_hinge_gan_plus_r1_plus_r2_is_twice_mean_hinge_plus_gamma_times_the_squared_weight_norm(seed, gamma):
    real, fake = _blobs(25, seed)
    gen = torch.Generator().manual_seed(100 + seed)
    w, b = 2 * torch.randn(2, generator=gen, dtype=DTYPE), torch.randn((), generator=gen, dtype=DTYPE)
    value = project_objective(w, b, real, fake, gamma)
    mean_hinge = _mean_hinge(w, b, real, fake)
    torch.testing.assert_close(value, 2 * mean_hinge + gamma * w.pow(2).sum(), rtol=1e-13, atol=1e-13)
    # the SVM's form: 2γ · (½‖w‖² + C Σ hinge) with C = 1/(γ n)
    n = len(real) + len(fake)
    c = 1 / (gamma * n)
    torch.testing.assert_close(value, 2 * gamma * (0.5 * w.pow(2).sum() + c * n * mean_hinge), rtol=1e-13, atol=1e-13)
    # eq. 6 with L = hinge, the paper's standard g(z) = z² − 1 at every data point and λ = γ/2: half of it, less γ/2
    eq6 = mean_hinge + gamma / 2 * penalties.gradient_penalty(_linear(w, b), real, fake, q=2, g="kkt", at="data")
    torch.testing.assert_close(value, 2 * eq6 + gamma, rtol=1e-13, atol=1e-13)
    # a one-centred penalty is not this objective: (‖w‖ − 1)² ≠ ‖w‖² unless ‖w‖ = ½
    for g in ("ls", "hinge"):
        one = 2 * mean_hinge + gamma * penalties.gradient_penalty(_linear(w, b), real, fake, q=2, g=g, at="data")
        assert abs((one - value).item()) > 1e-3


def _lbfgs(objective, start: torch.Tensor, restarts: int = 3) -> torch.Tensor:
    z = start.clone().requires_grad_(True)
    for _ in range(restarts):  # a fresh history after each stall at a kink of the hinge
        opt = torch.optim.LBFGS([z], lr=1, max_iter=500, tolerance_grad=0, tolerance_change=0, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure(opt=opt):
            opt.zero_grad()
            value = objective(z)
            value.backward()
            return value

        opt.step(closure)
    return z.detach()


def minimise(real: torch.Tensor, fake: torch.Tensor, gamma: float, which: str = "r1+r2",
             candidates: int = 4) -> tuple[np.ndarray, float, int]:
    """(w, b) minimising :func:`project_objective` with L-BFGS in float64, and how many points lie on its margin.

    L-BFGS stalls at the kinks of the hinge (y f(x) = 1), up to a few 1e-3 from the minimiser. The objective is
    convex and piecewise quadratic: its minimiser is the minimiser on the face {y_i f(x_i) = 1, i ∈ S} of the points S
    that lie on the margin there, where the objective is a smooth quadratic. So L-BFGS is run again on every face
    spanned by up to three of the ``candidates`` points nearest the margin at L-BFGS's point (three equations fix
    (w, b) in 2-D), and the lowest value wins: no face can go below the minimum, and the minimiser's face is among
    them, so this is the minimiser to rounding."""
    def objective(z):
        return project_objective(z[:2], z[2], real, fake, gamma, which)

    z0 = _lbfgs(objective, torch.zeros(3, dtype=DTYPE))
    x = torch.cat([real, fake])
    y = torch.cat([torch.ones(len(real), dtype=DTYPE), -torch.ones(len(fake), dtype=DTYPE)])
    rows = y[:, None] * torch.cat([x, torch.ones(len(x), 1, dtype=DTYPE)], 1)  # y_i (x_i, 1): y_i f(x_i) = row · z
    nearest = (rows @ z0 - 1).abs().argsort()[:candidates].tolist()
    best, best_value = z0, objective(z0).item()
    for size in range(1, 4):
        for face in itertools.combinations(nearest, size):
            a = rows[list(face)]
            particular = torch.linalg.lstsq(a, torch.ones(size, 1, dtype=DTYPE)).solution[:, 0]
            _, s, vh = torch.linalg.svd(a)
            null = vh[int((s > 1e-9 * s[0]).sum()):].T  # directions that keep the face's points on the margin
            if null.shape[1] == 0:
                z = particular
            else:
                u = _lbfgs(lambda u, p=particular, v=null: objective(p + v @ u), null.T @ (z0 - particular), restarts=1)
                z = particular + null @ u
            if objective(z).item() < best_value:
                best, best_value = z, objective(z).item()
    on_margin = int(((rows @ best - 1).abs() < 1e-9).sum())
    return best[:2].numpy(), float(best[2]), on_margin


def svc(real: torch.Tensor, fake: torch.Tensor, c: float):
    x = torch.cat([real, fake]).numpy()
    y = np.r_[np.ones(len(real)), -np.ones(len(fake))]
    return svm.SVC(kernel="linear", C=c, tol=1e-12).fit(x, y)


@pytest.mark.parametrize("gamma", [0.03, 0.5, 2.0])
def test_minimising_hinge_gan_plus_r1_plus_r2_gives_the_soft_margin_svm_with_c_one_over_gamma_n(gamma):
    real, fake = _blobs(50, seed=3)
    n = len(real) + len(fake)
    w, b, on_margin = minimise(real, fake, gamma)
    reference = svc(real, fake, 1 / (gamma * n))
    # b is unique only when some point lies on the margin (else, with balanced classes, the objective is flat in b)
    assert on_margin >= 1
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-6)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-6)
    # a wrong C gives another classifier, far outside the tolerance: C = 2/(γ n) (the critic loss read as a mean over
    # all n points rather than the sum of the two class means), C = 1/(2γ n) (R1 + R2 read as one γ/2‖w‖²)
    for wrong in (2 / (gamma * n), 1 / (2 * gamma * n)):
        assert np.abs(svc(real, fake, wrong).coef_[0] - w).max() > 1e-2


@pytest.mark.parametrize("which, factor", [("r1", 2.0), ("r2", 2.0)])
def test_r1_or_r2_alone_on_a_linear_critic_is_the_svm_with_twice_the_c(which, factor):
    """R1 alone pays γ/2 ‖w‖², half of R1 + R2: the SVM with C = 2/(γ n), i.e. R1 + R2 at γ/2."""
    real, fake = _blobs(50, seed=3)
    gamma, n = 1.0, 100
    w, b, _ = minimise(real, fake, gamma, which)
    reference = svc(real, fake, factor / (gamma * n))
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-6)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-6)


def test_a_larger_gamma_gives_a_larger_geometric_margin_until_no_point_lies_outside_it():
    """The SVM reading of eq. 6: ‖w‖ falls as γ grows, so the geometric margin 1/‖w‖ grows; but fewer points lie
    outside it (y f(x) ≥ 1), and past some γ none does: the hinge underfits, and the boundary is set by the class
    means rather than by the points nearest to it."""
    real, fake = _blobs(50, seed=3)
    x, y = torch.cat([real, fake]).numpy(), np.r_[np.ones(50), -np.ones(50)]
    gammas = [0.01, 0.1, 1.0, 10.0, 100.0]
    fits = [svc(real, fake, 1 / (g * 100)) for g in gammas]
    margins = [1 / np.linalg.norm(fit.coef_[0]) for fit in fits]
    outside = [float((y * fit.decision_function(x) >= 1 - 1e-9).mean()) for fit in fits]
    assert all(b > a for a, b in zip(margins, margins[1:]))
    assert all(b <= a for a, b in zip(outside, outside[1:]))
    assert outside[0] > 0.9 and outside[-1] == 0.0


def test_a_one_centred_penalty_does_not_give_the_svm():
    """The paper's one-centred choice g(z) = (z − 1)² pulls ‖w‖ to 1 instead of shrinking it: its minimiser differs
    from the SVM with C = 1/(γ n) by far more than the tolerance above (a control that the comparison can fail)."""
    real, fake = _blobs(50, seed=3)
    gamma, n = 0.5, 100

    def one_centred(z):
        f = _linear(z[:2], z[2])
        return (losses.critic_loss("hinge", f(real), f(fake))
                + gamma * penalties.gradient_penalty(f, real, fake, q=2, g="ls", at="data"))

    z = _lbfgs(one_centred, torch.zeros(3, dtype=DTYPE))
    reference = svc(real, fake, 1 / (gamma * n))
    assert np.abs(z[:2].numpy() - reference.coef_[0]).max() > 0.05
