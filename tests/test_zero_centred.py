"""R1, R2 and R1 + R2 (mmgan.penalties.zero_centred_penalty) against closed forms, and R3GAN's pairing loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgan import losses, penalties


def _linear(w: torch.Tensor, b: float = 0.3):
    return lambda x: x.flatten(1) @ w + b


@pytest.mark.parametrize("which, classes", [("r1", 1), ("r2", 1), ("r1+r2", 2)])
def test_a_linear_critic_pays_gamma_over_two_times_its_squared_weight_norm_per_class(which, classes):
    w = torch.tensor([3.0, -4.0, 1.0], dtype=torch.float64)
    real, fake = torch.randn(7, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    value = penalties.zero_centred_penalty(_linear(w), real, fake, which, gamma=0.4)
    assert value.item() == pytest.approx(classes * 0.4 / 2 * 26.0, rel=1e-12)


def test_r1_looks_at_the_real_points_only_and_r2_at_the_fake_ones():
    """f(x) = ½ ‖x‖² has ∇f = x: R1 = γ/2 · mean ‖x_real‖², R2 = γ/2 · mean ‖x_fake‖², R1 + R2 their sum."""
    def critic(x):
        return 0.5 * x.pow(2).sum(1)
    real, fake = torch.randn(6, 4, dtype=torch.float64), 3 * torch.randn(9, 4, dtype=torch.float64)
    r1 = penalties.zero_centred_penalty(critic, real, fake, "r1", gamma=2.0)
    r2 = penalties.zero_centred_penalty(critic, real, fake, "r2", gamma=2.0)
    both = penalties.zero_centred_penalty(critic, real, fake, "r1+r2", gamma=2.0)
    torch.testing.assert_close(r1, real.pow(2).sum(1).mean())
    torch.testing.assert_close(r2, fake.pow(2).sum(1).mean())
    torch.testing.assert_close(both, r1 + r2)
    assert r2 > 2 * r1  # the classes are not pooled: the fake points are 3x farther out


def test_the_penalty_is_differentiable_in_the_critics_parameters():
    critic = torch.nn.Linear(3, 1, dtype=torch.float64)
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    penalties.zero_centred_penalty(critic, real, fake, "r1+r2", gamma=1.0).backward()
    # d/dw of γ/2 · 2 · ‖w‖² (two classes) = 2γ w
    torch.testing.assert_close(critic.weight.grad, 2.0 * critic.weight.detach())


@pytest.mark.parametrize("bad, message", [(dict(which="r3"), "'r1', 'r2', 'r1\\+r2'"), (dict(gamma=-1.0), "gamma"),
                                          (dict(gamma=math.nan), "gamma")])
def test_bad_choices_are_named(bad, message):
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=message):
        penalties.zero_centred_penalty(_linear(torch.ones(3)), x, x, **bad)


def test_r3gans_pairing_loss_is_rpsgan_with_the_formulas_scale():
    real, fake = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    torch.testing.assert_close(losses.critic_loss("rpsgan", real, fake, paired_scale=1.0),
                               F.softplus(fake - real).mean())
    torch.testing.assert_close(losses.generator_loss("rpsgan", real, fake), F.softplus(real - fake).mean())


# ----------------------------------------------------------------------------- on the swiss roll (Table 1's trainer)

def _roll(seed: int):
    from mmgan.table1.swiss_roll import STANDARDIZED, swiss_roll
    return swiss_roll(300, scale=STANDARDIZED, seed=seed)


def test_r1_and_r2_flatten_the_classifier_where_they_look():
    """Trained with a small λ, R1 (R2) leaves a ‖∇f‖₂ at class +1 (−1) under a quarter of the unpenalised one's."""
    from mmgan.mlp import BatchedMLP
    from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers, zero_centred

    torch.set_default_dtype(torch.float32)
    specs = [PenaltySpec(None, None), zero_centred("r1"), zero_centred("r2")]
    model = BatchedMLP([0, 0, 0], 2, width=16)
    x, y = _roll(0)
    train_penalized_classifiers(model, specs, [0, 0, 0], [(x, y)], 300, lam=0.1, lr=3e-3, progress=False)
    x = x.to(torch.float32).expand(3, -1, -1).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    norms = grad.norm(dim=2)  # (3, N)
    at_real, at_fake = norms[:, y > 0].mean(1), norms[:, y < 0].mean(1)
    assert at_real[1] < at_real[0] / 4 and at_fake[2] < at_fake[0] / 4


def test_r1_plus_r2_with_lambda_trains_like_the_pooled_zero_centred_penalty_with_two_lambda():
    """On balanced minibatches E_P + E_Q = 2 · the mean over all points: the class-means path (r1+r2, λ) and eq. 6's
    pooled path (g = z² at the data, 2λ) train the same network."""
    from mmgan.mlp import BatchedMLP
    from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers, zero_centred

    torch.set_default_dtype(torch.float32)
    model = BatchedMLP([0, 0], 2, width=16)
    train_penalized_classifiers(model, [zero_centred("r1+r2"), PenaltySpec("zero_centered", 2.0)], [0, 0],
                                [_roll(1)], 30, lam=[0.5, 1.0], lr=3e-3, progress=False)
    for weights in model.parameters():
        torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_r1_plus_r2_is_the_sum_of_the_class_means_not_their_pooled_mean():
    from mmgan.toys.classifiers import PenaltySpec, _class_means, _zero_centred_weights, zero_centred

    specs = [zero_centred("r1"), zero_centred("r2"), zero_centred("r1+r2"), PenaltySpec("ls", 2.0)]
    weights = _zero_centred_weights(specs, "data", torch.device("cpu"), torch.float64)
    squared = torch.tensor([[1.0, 3.0, 10.0, 30.0]] * 4, dtype=torch.float64)  # class +1: 1, 3; class −1: 10, 30
    other = torch.full((4,), -7.0, dtype=torch.float64)
    torch.testing.assert_close(_class_means(squared, weights, other),
                               torch.tensor([2.0, 20.0, 22.0, -7.0], dtype=torch.float64))
    assert _zero_centred_weights([PenaltySpec("ls", 2.0)], "interpolates", torch.device("cpu"), torch.float64) is None
    with pytest.raises(ValueError, match="penalty_at='data'"):
        _zero_centred_weights(specs, "interpolates", torch.device("cpu"), torch.float64)


def test_a_zero_centred_row_is_g_squared_at_q_two_only():
    from mmgan.toys.classifiers import PenaltySpec

    with pytest.raises(ValueError, match="zero_centered"):
        PenaltySpec("hinge", 2.0, "r1")
    with pytest.raises(ValueError, match="'r1', 'r2', 'r1\\+r2'"):
        PenaltySpec("zero_centered", 2.0, "r3")


def test_table1s_keys_do_not_change_and_the_zero_centred_rows_get_their_own():
    from mmgan.table1.files import result_directory
    from mmgan.table1.variant import make_config

    table1 = make_config("fitted")
    assert table1.key() == make_config("fitted", rows="table1").key()
    zero = make_config("fitted", rows="zero_centred")
    assert zero.key() != table1.key() and "zero_centred" in result_directory(zero, "r").name
    assert [s.label for s in zero.specs] == ["none", "ls-q2", "hinge-q2", "r1", "r2", "r1+r2"]
    with pytest.raises(ValueError, match="rows"):
        make_config("fitted", rows="r1")


# ----------------------------------------------------------------------------- the chapter's verdicts

def _stats(margins: dict[str, list[float]], accuracy: dict[str, list[float]] | None = None):
    import pandas as pd

    rows = []
    for row, values in margins.items():
        for seed, value in enumerate(values):
            acc = 1.0 if accuracy is None or row not in accuracy else accuracy[row][seed]
            rows += [{"row": row, "seed": seed, "p": p, "distance": value * (1 + p / 10 if p != math.inf else 0.5),
                      "accuracy": acc} for p in (1.0, 2.0, math.inf)]
    return pd.DataFrame(rows)


def test_margin_propositions_hold_fail_and_are_not_comparable_by_the_rule():
    from mmgan.table1.zero_centred import MarginProposition, judge_margins
    from mmgan.verdicts import Verdict

    props = (MarginProposition("a beats b", "a", "b"), MarginProposition("b beats a", "b", "a"),
             MarginProposition("a beats c", "a", "c"))
    base = [1.0, 2.0, 0.5, 1.5, 0.8]
    stats = _stats({"a": [2 * v * (1 + 0.01 * i) for i, v in enumerate(base)], "b": base, "c": base},
                   accuracy={"c": [1.0, 1.0, 0.5, 0.5, 0.5]})
    judged = judge_margins(stats, props)
    assert judged.loc["a beats b", "verdict"] is Verdict.HOLDS
    assert judged.loc["a beats b", "ratio"] == pytest.approx(2 * math.exp(np.mean(np.log(1 + 0.01 * np.arange(5)))))
    assert judged.loc["b beats a", "verdict"] is Verdict.DOES_NOT_HOLD
    assert judged.loc["a beats c", "verdict"] is Verdict.NOT_COMPARABLE  # 2 seeds fit the bar, 3 needed
    assert judged.loc["a beats c", "left out"] == "seed 2, seed 3, seed 4"
    assert judged["level"].iloc[0] == pytest.approx(1 - 0.05 / 3)


def test_equal_margins_are_no_large_effect_and_noisy_ones_cannot_tell():
    from mmgan.table1.zero_centred import MarginProposition, judge_margins
    from mmgan.verdicts import Verdict

    base = [1.0, 2.0, 0.5, 1.5, 0.8]
    noisy = [v * f for v, f in zip(base, (3.0, 0.3, 2.5, 0.4, 1.2))]
    jitter = (1.004, 0.996, 1.003, 0.997, 1.0)
    judged = judge_margins(_stats({"a": base, "b": [v * j for v, j in zip(base, jitter)], "c": noisy}),
                           (MarginProposition("a beats b", "a", "b"), MarginProposition("c beats a", "c", "a")))
    assert judged.loc["a beats b", "verdict"] is Verdict.NO_LARGE_EFFECT
    assert judged.loc["c beats a", "verdict"] is Verdict.CANNOT_TELL


def test_growth_with_lambda_pairs_each_row_with_itself_seed_by_seed():
    """The SVM reading's 'the margin grows with λ' as a proposition: row r at the larger λ against row r at the
    smaller one, by the same rule and gate as within one λ."""
    from mmgan.table1.zero_centred import judge_growth
    from mmgan.verdicts import Verdict

    base = [1.0, 2.0, 0.5, 1.5, 0.8]
    jitter = (1.004, 0.996, 1.003, 0.997, 1.0)
    small = _stats({"r1": base, "r2": base, "r1+r2": base})
    large = _stats({"r1": [2 * v * j for v, j in zip(base, jitter)], "r2": [v * j for v, j in zip(base, jitter)],
                    "r1+r2": [3 * v for v in base]}, accuracy={"r1+r2": [1.0, 1.0, 0.7, 0.7, 0.7]})
    growth = tuple((f"{row} grows", row, 1.0, 0.1) for row in ("r1", "r2", "r1+r2"))
    judged = judge_growth({0.1: small, 1.0: large}, growth)
    assert judged.loc["r1 grows", "verdict"] is Verdict.HOLDS
    assert judged.loc["r1 grows", "ratio"] == pytest.approx(2.0, rel=0.01)
    assert judged.loc["r2 grows", "verdict"] is Verdict.NO_LARGE_EFFECT
    assert judged.loc["r1+r2 grows", "verdict"] is Verdict.NOT_COMPARABLE  # underfits at the larger λ on 3 seeds
    assert judged["level"].iloc[0] == pytest.approx(1 - 0.05 / 3)
    reversed_ = judge_growth({0.1: large, 1.0: small}, growth)
    assert reversed_.loc["r1 grows", "verdict"] is Verdict.DOES_NOT_HOLD
