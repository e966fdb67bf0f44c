import math

import pytest
import torch
from helpers import small_mlp

from mmgan import lipschitz, norms


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_sampled_ratios_never_exceed_max_dual_gradient_norm_along_segments(p):
    """Mean value theorem: |f(x) − f(y)| ≤ ‖x − y‖_p · max_{segment} ‖∇f‖_q."""
    f = small_mlp(3, seed=1)
    x, y = torch.randn(200, 3), torch.randn(200, 3)
    ratios = lipschitz.lipschitz_ratios(f, x, y, p)
    t = torch.linspace(0, 1, 101)
    segment = (x[:, None] + t[None, :, None] * (y - x)[:, None]).reshape(-1, 3)
    bound = lipschitz.gradient_norms(f, segment, norms.dual(p)).reshape(200, 101).max(1).values
    assert torch.all(ratios <= bound * (1 + 1e-3))


def test_steepest_pairs_attain_the_dual_norm_not_the_same_norm():
    """For f(x) = w·x the L^∞ Lipschitz constant is ‖w‖₁, above ‖w‖_∞ = ‖∇f‖_p with p = ∞."""
    w = torch.tensor([1.0, 1.0, -0.5])
    f = lambda x: x @ w  # noqa: E731
    x = torch.randn(5, 3)
    y = lipschitz.steepest_pairs(f, x, math.inf, h=0.1)
    ratios = lipschitz.lipschitz_ratios(f, x, y, math.inf)
    torch.testing.assert_close(ratios, torch.full((5,), 2.5))
    assert (ratios > norms.grad_norm(w[None], math.inf)).all()


def test_ratio_shapes_must_match():
    with pytest.raises(ValueError, match="same shape"):
        lipschitz.lipschitz_ratios(lambda x: x.sum(1), torch.ones(2, 2), torch.ones(3, 2), 2)
