import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmgan import norms

# Magnitudes whose squares do not underflow: torch's 2-norm does not rescale (see grad_norm).
finite = st.one_of(st.just(0.0), st.floats(1e-100, 1e3), st.floats(-1e3, -1e-100))
vectors = arrays("float64", st.integers(1, 12), elements=finite)


@pytest.mark.parametrize(
    ("p", "q"), [(1, math.inf), (2, 2.0), (math.inf, 1.0), (3, 1.5), (1.5, 3.0), (4, 4 / 3)]
)
def test_dual_known_pairs(p, q):
    assert norms.dual(p) == pytest.approx(q)


@given(st.floats(1.0, 1e6))
def test_dual_is_involution_and_conjugate(p):
    q = norms.dual(p)
    assert q >= 1
    assert norms.dual(q) == pytest.approx(p, rel=1e-9)
    if not math.isinf(q):
        assert 1 / p + 1 / q == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [0.5, 0, -2, float("nan"), "2", None, True])
def test_dual_rejects_bad_orders(bad):
    with pytest.raises(ValueError, match="p"):
        norms.dual(bad)


def test_grad_norm_matches_definitions_per_sample_over_all_dims():
    g = torch.randn(5, 3, 4, 4)
    flat = g.reshape(5, -1)
    torch.testing.assert_close(norms.grad_norm(g, 1), flat.abs().sum(1))
    torch.testing.assert_close(norms.grad_norm(g, 2), flat.pow(2).sum(1).sqrt())
    torch.testing.assert_close(norms.grad_norm(g, math.inf), flat.abs().max(1).values)
    w = torch.exp(flat.abs())
    torch.testing.assert_close(norms.grad_norm(g, "smax"), (flat.abs() * w).sum(1) / w.sum(1))
    assert norms.grad_norm(g, 2).shape == (5,)


def test_grad_norm_smax_lies_between_mean_and_max_and_tends_to_max():
    g = torch.randn(6, 10)
    s = norms.grad_norm(g, "smax")
    assert torch.all(s <= g.abs().max(1).values + 1e-12)
    assert torch.all(s >= g.abs().mean(1) - 1e-12)
    sharp = norms.grad_norm(g, "smax", beta=200.0)
    torch.testing.assert_close(sharp, g.abs().max(1).values, atol=1e-2, rtol=0)


def test_as_released_inf_is_signed_max_and_differs_for_negative_gradients():
    g = torch.tensor([[-3.0, 1.0], [0.5, -0.2]])
    torch.testing.assert_close(norms.grad_norm(g, math.inf, as_released=True), torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(norms.grad_norm(g, math.inf), torch.tensor([3.0, 0.5]))


def test_as_released_smax_is_pooled_over_the_batch():
    g = torch.tensor([[0.0, 0.0], [2.0, 1.0]])
    pooled = norms.grad_norm(g, "smax", as_released=True)
    a = g.abs().reshape(-1)
    expected = (a * a.exp()).sum() / a.exp().sum()
    torch.testing.assert_close(pooled, expected.expand(2))
    assert not torch.allclose(pooled, norms.grad_norm(g, "smax"))


@pytest.mark.parametrize("bad", [3, 0, "l2", "Inf", None, 1.5, True, math.nan])
def test_grad_norm_rejects_unknown_q_naming_choices(bad):
    with pytest.raises(ValueError, match="unknown gradient norm .*valid choices: '1', '2', 'inf', 'smax'"):
        norms.grad_norm(torch.ones(2, 2), bad)


def test_as_released_rejected_where_meaningless():
    with pytest.raises(ValueError, match="as_released"):
        norms.grad_norm(torch.ones(2, 2), 2, as_released=True)


def test_grad_norm_rejects_missing_batch():
    with pytest.raises(ValueError, match="batch"):
        norms.grad_norm(torch.ones(()), 2)


@given(vectors)
def test_norm_ordering_l1_ge_l2_ge_linf(v):
    t = torch.as_tensor(v).reshape(1, -1)
    l1, l2, linf = (norms.grad_norm(t, q).item() for q in (1, 2, math.inf))
    assert l1 >= l2 * (1 - 1e-12)
    assert l2 >= linf * (1 - 1e-12)


@settings(max_examples=200)
@given(vectors, st.data(), st.sampled_from([1.0, 1.5, 2.0, 3.0, math.inf]))
def test_holder_inequality_and_its_equality_case(a, data, p):
    """|a·b| ≤ ‖a‖_q ‖b‖_p, with equality at b = holder_maximizer(a, p)."""
    b = data.draw(arrays("float64", a.shape, elements=finite))
    ta, tb = torch.as_tensor(a).reshape(1, -1), torch.as_tensor(b).reshape(1, -1)
    q = norms.dual(p)
    dual_norm = torch.linalg.vector_norm(ta, ord=q).item()
    assert abs((ta * tb).sum().item()) <= dual_norm * norms.lp_norm(tb, p).item() * (1 + 1e-9) + 1e-9
    v = norms.holder_maximizer(ta, p)
    if dual_norm > 0:
        assert norms.lp_norm(v, p).item() == pytest.approx(1.0, rel=1e-9)
    assert (ta * v).sum().item() == pytest.approx(dual_norm, rel=1e-9, abs=1e-9)


def test_grad_norm_is_differentiable_for_every_choice():
    g = torch.randn(3, 4, requires_grad=True)
    for q in norms.NORMS:
        (grad,) = torch.autograd.grad(norms.grad_norm(g, q).sum(), g)
        assert torch.isfinite(grad).all()
