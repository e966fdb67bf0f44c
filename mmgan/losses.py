"""Margin losses L of eq. 6 and the critic/generator losses of the GANs in §2.2 and App. C.

Sign conventions. The paper writes the critic's objective as a *maximisation*
(eq. 1, with ``f1``, ``f2`` ≤ 0) but eq. 6 as a *minimisation* of ``L(y f(x))``.
Here every loss is something to **minimise**, and each margin loss ``L`` is a
non-increasing function of the functional margin ``z = y·C(x)``:

=========  ====================  ==============================================
name       L(z)                  paper (eq. 1 form)
=========  ====================  ==============================================
``sgan``   softplus(−z)          f1(z) = log σ(z) = −L(z), f2(z) = log σ(−z) = −L(−z)
``lsgan``  (1 − z)²              f1(z) = −(1 − z)², f2(z) = −(1 + z)²
``hinge``  max(0, 1 − z)         f1(z) = −max(0, 1 − z), f2(z) = −max(0, 1 + z)
``wgan``   −z                    the IPM of §2.3: maximise E C(x₁) − E C(x₂)
=========  ====================  ==============================================

so that the critic loss is ``E_P[L(C(x₁))] + E_Q[L(−C(x₂))]`` (§5.1). Two
statements in §5.1 carry the opposite sign: "L(z) = log(sigmoid(z)) corresponds
to SGAN" and "L(z) = z corresponds to WGAN-GP" describe functions to *maximise*;
as losses to minimise they are ``−log σ(z) = softplus(−z)`` and ``−z``.

Generator losses follow eq. 2 with the paper's ``f3``: the non-saturating
``softplus(−C(G(z)))`` for SGAN, ``(1 − C(G(z)))²`` for LSGAN and ``−C(G(z))``
for HingeGAN and WGAN. The relativistic losses (App. C) apply ``L`` to critic
differences: paired (``rp*``) compares the i-th real with the i-th fake sample;
average (``ra*``) compares each sample with the batch mean of the other class.
R3GAN's relativistic pairing loss (Huang et al., 2024), softplus(C(x₂) − C(x₁)) for
the critic and softplus(C(x₁) − C(x₂)) for the generator, is ``rpsgan`` with
``paired_scale=1`` (App. C's formula); R3GAN adds R1 + R2
(:func:`mmgan.penalties.zero_centred_penalty`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmgan.base.registry import Registry, lookup

LossFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MarginLoss:
    """A margin loss of eq. 6, as registered in :data:`MARGIN_LOSSES`.

    Attributes:
        L: the loss ``L(z)`` of the functional margin z, non-increasing.
        generator: the generator's loss (eq. 2's f3), from the critic's outputs ``C(G(z))`` (B,) to their mean
            loss: ``E L(C(G(z)))`` for the non-saturating SGAN and for LSGAN, ``−E C(G(z))`` for HingeGAN and WGAN.
        relativistic: whether its paired (``rp``) and average (``ra``) relativistic GANs exist (App. C).
        label: its name and formula in the book's figures (matplotlib text).
    """

    L: LossFunction
    generator: LossFunction
    relativistic: bool
    label: str


#: Prefixes of the relativistic GANs of a margin loss: paired and average (App. C).
RELATIVISTIC: tuple[str, ...] = ("rp", "ra")


def _check_loss(name: str, loss: MarginLoss) -> None:
    """A margin loss and its generator loss are functions, and its name leaves room for its relativistic GANs."""
    for what in ("L", "generator"):
        if not callable(getattr(loss, what)):
            raise TypeError(f"margin loss {name!r}: {what} must be callable")
    if name[:2] in RELATIVISTIC:
        raise ValueError(f"margin loss {name!r}: names starting with {RELATIVISTIC} are its relativistic GANs")


def _logistic(z: torch.Tensor) -> torch.Tensor:
    return F.softplus(-z)


def _squared(z: torch.Tensor) -> torch.Tensor:
    return (1.0 - z).pow(2)


def _negated(z: torch.Tensor) -> torch.Tensor:
    return -z


def _mean_of(L: LossFunction) -> LossFunction:
    """The generator loss ``E L(C(G(z)))``."""
    return lambda fake: L(fake).mean()


def _negated_mean(fake: torch.Tensor) -> torch.Tensor:
    """The generator loss ``−E C(G(z))`` (the mean negated: the order of its sum as the released code's)."""
    return -fake.mean()


#: The margin losses L(z) of eq. 6, each non-increasing in the functional margin z (a new one: one entry).
MARGIN_LOSSES: Registry[MarginLoss] = Registry("loss", MarginLoss, _check_loss, {
    "sgan": MarginLoss(_logistic, _mean_of(_logistic), True, r"SGAN: $\log(1+e^{-z})$"),
    "lsgan": MarginLoss(_squared, _mean_of(_squared), True, r"LSGAN: $(1-z)^2$"),
    "hinge": MarginLoss(lambda z: F.relu(1.0 - z), _negated_mean, True, r"Hinge: $\max(0, 1-z)$"),
    "wgan": MarginLoss(_negated, _negated_mean, False, r"WGAN: $-z$"),
})


def gan_losses() -> list[str]:
    """Loss names accepted by :func:`critic_loss` and :func:`generator_loss`: every margin loss, then the paired
    and the average relativistic GANs of those that have them."""
    relativistic = [name for name, loss in MARGIN_LOSSES.items() if loss.relativistic]
    return [*MARGIN_LOSSES, *(prefix + name for prefix in RELATIVISTIC for name in relativistic)]


def margin_loss(name: str) -> LossFunction:
    """Return the margin loss ``L`` of eq. 6 registered under ``name``."""
    return MARGIN_LOSSES[name].L


def _split(name: str) -> tuple[str, MarginLoss]:
    """Split a GAN loss name into (kind, its margin loss): kind ∈ {'', 'rp', 'ra'}; ``ValueError`` listing
    :func:`gan_losses` for any other name."""
    lookup(dict.fromkeys(gan_losses()), name, "loss")
    if name[:2] in RELATIVISTIC:
        return name[:2], MARGIN_LOSSES[name[2:]]
    return "", MARGIN_LOSSES[name]


def _as_scores(out: torch.Tensor, parameter: str) -> torch.Tensor:
    """Critic outputs of shape (B,) or (B, 1) as a 1-D tensor; else ValueError."""
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() != 1 or out.shape[0] == 0:
        raise ValueError(
            f"{parameter} must have shape (batch,) or (batch, 1) with batch >= 1, "
            f"got {tuple(out.shape)}"
        )
    return out


def _paired(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(
            "relativistic paired losses compare the i-th real with the i-th fake "
            f"output; real_out and fake_out must have equal batch sizes, got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )


def critic_loss(name: str, real_out: torch.Tensor, fake_out: torch.Tensor, *,
                paired_scale: float = 1.0) -> torch.Tensor:
    """Critic (discriminator) loss to minimise, without any gradient penalty.

    Args:
        name: one of :func:`gan_losses`.
        real_out: critic outputs C(x₁) on real samples, shape (B,) or (B, 1).
        fake_out: critic outputs C(x₂) on fake samples, shape (B',) or (B', 1).
        paired_scale: factor on the ``rp*`` critic loss (ignored by the others).
            App. C writes it without a factor (1); the released code multiplies
            the RpSGAN, RpLSGAN and RpHinge critic losses by 2, which halves the
            weight of λ relative to the loss in Table 3.

    Returns:
        ``E[L(C(x₁))] + E[L(−C(x₂))]`` (§5.1) for the plain losses;
        ``E[L(C(x₁) − C(x₂))]`` for ``rp*``; and
        ``E[L(C(x₁) − E C(x₂))] + E[L(−(C(x₂) − E C(x₁)))]`` for ``ra*`` (App. C).
    """
    kind, loss = _split(name)
    L = loss.L
    real = _as_scores(real_out, "real_out")
    fake = _as_scores(fake_out, "fake_out")
    if kind == "rp":
        _paired(real, fake)
        return paired_scale * L(real - fake).mean()
    if kind == "ra":
        return L(real - fake.mean()).mean() + L(-(fake - real.mean())).mean()
    return L(real).mean() + L(-fake).mean()


def generator_loss(name: str, real_out: torch.Tensor | None, fake_out: torch.Tensor) -> torch.Tensor:
    """Generator loss to minimise (eq. 2 and App. C).

    ``real_out`` is ignored by the non-relativistic losses and may be ``None`` for
    them (see :func:`needs_real_scores`), which saves a critic pass on real data;
    the relativistic ones swap the roles of real and fake samples and need it.
    """
    kind, loss = _split(name)
    L = loss.L
    fake = _as_scores(fake_out, "fake_out")
    if kind == "":
        if real_out is not None:
            _as_scores(real_out, "real_out")
        return loss.generator(fake)
    if real_out is None:
        raise ValueError(f"the relativistic loss {name!r} needs real_out (critic outputs on real samples)")
    real = _as_scores(real_out, "real_out")
    if kind == "rp":
        _paired(real, fake)
        return L(fake - real).mean()
    return L(fake - real.mean()).mean() + L(-(real - fake.mean())).mean()


def needs_real_scores(name: str) -> bool:
    """Whether :func:`generator_loss` uses the critic's outputs on real samples (relativistic losses)."""
    return _split(name)[0] != ""
