import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from mmgan import losses

z = torch.linspace(-3, 3, 61)


@pytest.mark.parametrize("name", list(losses.MARGIN_LOSSES))
def test_margin_losses_are_non_increasing_below_one(name):
    L = losses.margin_loss(name)
    values = L(z[z <= 1])
    assert torch.all(values[1:] <= values[:-1] + 1e-12)


def test_margin_loss_closed_forms():
    assert losses.margin_loss("sgan")(torch.tensor(0.0)).item() == pytest.approx(math.log(2))
    assert losses.margin_loss("lsgan")(torch.tensor(-1.0)).item() == pytest.approx(4.0)
    assert losses.margin_loss("hinge")(torch.tensor([2.0, 0.5])).tolist() == pytest.approx([0.0, 0.5])
    assert losses.margin_loss("wgan")(torch.tensor(1.5)).item() == pytest.approx(-1.5)


def test_critic_losses_match_paper_eq1_negated():
    """critic_loss = −(E f1(C(x_r)) + E f2(C(x_f))) with the paper's f1, f2 (§2.2)."""
    r, f = torch.randn(7), torch.randn(7)
    paper = {
        "sgan": (F.logsigmoid(r), F.logsigmoid(-f)),
        "lsgan": (-(1 - r) ** 2, -(1 + f) ** 2),
        "hinge": (-F.relu(1 - r), -F.relu(1 + f)),
        "wgan": (r, -f),
    }
    for name, (f1, f2) in paper.items():
        expected = -(f1.mean() + f2.mean())
        torch.testing.assert_close(losses.critic_loss(name, r, f), expected)


def test_generator_losses_match_paper_f3():
    r, f = torch.randn(5), torch.randn(5)
    torch.testing.assert_close(losses.generator_loss("sgan", r, f), -F.logsigmoid(f).mean())
    torch.testing.assert_close(losses.generator_loss("lsgan", r, f), ((1 - f) ** 2).mean())
    torch.testing.assert_close(losses.generator_loss("hinge", r, f), -f.mean())
    torch.testing.assert_close(losses.generator_loss("wgan", r, f), -f.mean())


def test_relativistic_losses_closed_forms():
    r, f = torch.randn(6), torch.randn(6)
    torch.testing.assert_close(losses.critic_loss("rphinge", r, f), F.relu(1 - (r - f)).mean())
    torch.testing.assert_close(losses.generator_loss("rphinge", r, f), F.relu(1 - (f - r)).mean())
    torch.testing.assert_close(losses.critic_loss("rpsgan", r, f), F.softplus(-(r - f)).mean())
    torch.testing.assert_close(
        losses.critic_loss("rahinge", r, f),
        F.relu(1 - (r - f.mean())).mean() + F.relu(1 + (f - r.mean())).mean(),
    )
    torch.testing.assert_close(
        losses.generator_loss("rahinge", r, f),
        F.relu(1 - (f - r.mean())).mean() + F.relu(1 + (r - f.mean())).mean(),
    )
    torch.testing.assert_close(
        losses.critic_loss("rasgan", r, f),
        F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean(),
    )


@given(st.floats(-5, 5), st.floats(-5, 5))
def test_relativistic_losses_are_shift_invariant(a, shift):
    r, f = torch.tensor([a, 0.3]), torch.tensor([0.1, -a])
    for name in ("rpsgan", "rphinge", "rasgan", "rahinge", "rplsgan", "ralsgan"):
        torch.testing.assert_close(
            losses.critic_loss(name, r, f), losses.critic_loss(name, r + shift, f + shift)
        )


def test_accepts_column_outputs():
    r, f = torch.randn(4, 1), torch.randn(4, 1)
    torch.testing.assert_close(losses.critic_loss("hinge", r, f), losses.critic_loss("hinge", r[:, 0], f[:, 0]))


@pytest.mark.parametrize("name", ["ganloss", "WGAN", "rpwgan", "", None])
def test_unknown_loss_names_list_choices(name):
    with pytest.raises(ValueError, match="valid choices: 'sgan'"):
        losses.critic_loss(name, torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="loss"):
        losses.generator_loss(name, torch.zeros(2), torch.zeros(2))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="real_out"):
        losses.critic_loss("hinge", torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="equal batch sizes"):
        losses.critic_loss("rphinge", torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="fake_out"):
        losses.generator_loss("wgan", torch.zeros(2), torch.zeros(0))


def test_generator_loss_without_real_scores():
    fake = torch.randn(8)
    for name in ("sgan", "lsgan", "hinge", "wgan"):
        assert not losses.needs_real_scores(name)
        assert torch.equal(losses.generator_loss(name, None, fake), losses.generator_loss(name, torch.randn(8), fake))
    for name in ("rphinge", "rahinge", "rpsgan"):
        assert losses.needs_real_scores(name)
        with pytest.raises(ValueError, match="needs real_out"):
            losses.generator_loss(name, None, fake)
