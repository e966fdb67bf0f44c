"""Where a critic's decision is read: the thresholds its loss defines, estimated on a population.

A critic f separates real from generated images at a boundary {f = t}. Which t, per rule
(:data:`RULES`):

* ``relativistic`` (App. C.1): a real image is measured against the mean score of the
  generated images, t = E f(fake), and a generated image against t = E f(real);
* ``midpoint``: t = (E f(real) + E f(fake)) / 2;
* ``zero``: t = 0, meaningful only where the loss pins the critic's level (below).

The means are population means, estimated from forward passes over ``population`` images of
each class (:func:`estimate`): the training images, and as many generated ones; each estimate
carries its standard error. In eval mode (each image scored on its own) the scores are
independent and the SE of a mean is sd/√N. In train mode each score depends on its batch
(the critic as trained normalises class-pure batches with their own statistics), so scores
of one batch are correlated: the SE is that of the mean of the batch means,
sd(batch means)/√(batches), the batch being the independent unit.

**The level.** The relativistic and midpoint thresholds move with the scores (adding a
constant c to f adds c to t), so they need nothing from the loss: their level is
``relative``. t = 0 does not move, so f = 0 means something only if the loss fixes where the
critic's scores sit. Write L(c) for the critic loss (the penalty, a function of ∇f, does not
change) of the population scores shifted by a constant c. The loss *pins* the level when its
minimising shifts form a narrow set; it leaves the level *undetermined* when a constant shift
over a wide set leaves the loss at its minimum: then where f = 0 falls among the images is not
the loss's doing, and an accuracy at f = 0 says nothing about the critic.

* WGAN, and every relativistic loss (paired or average), see score differences only: L(c) is
  constant, the level is undetermined by construction.
* LSGAN and SGAN are strictly convex in c: a single minimiser, pinned.
* The hinge loss is piecewise linear in c, flat wherever every real scores below 1 and every
  generated image above −1 (both hinges on their linear parts: a shift adds as much to one
  term as it takes from the other). A HingeGAN critic whose scores all lie on those linear
  parts (the zero-centred penalties' critics, scores in [0.16, 1.07]) has a flat set of
  shifts about as wide as the gap from its lowest generated score to −1 plus the gap from its
  highest real score to 1.

The rule (:func:`level_width`, :data:`LEVEL_TOLERANCE`): the minimising set {c : L(c) ≤
min L + :data:`LOSS_TOLERANCE`} is measured on the population scores; the level is
``undetermined`` when that set is wider than :data:`LEVEL_TOLERANCE` times the real–fake
score gap (a shift over it would move f = 0 across a tenth of the gap between the classes),
``pinned`` otherwise. An undetermined level gets no accuracy (None, shown "undetermined").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from mmgan.base.registry import check_choice, check_int
from mmgan.losses import RELATIVISTIC, critic_loss, gan_losses

RULES: tuple[str, ...] = ("relativistic", "zero", "midpoint")
#: The levels of a threshold: ``relative`` (it moves with the scores: no level needed), ``pinned`` (the loss fixes
#: the critic's level), ``undetermined`` (a constant shift over a wide set leaves the loss at its minimum).
LEVELS: tuple[str, ...] = ("relative", "pinned", "undetermined")
#: The level is undetermined when the loss's minimising shifts span more than this share of the real–fake score gap.
LEVEL_TOLERANCE = 0.1
#: A shift c is minimising when it leaves the population loss within this of its minimum (float64 rounding of a
#: mean over ~1000 scores is ~1e-15; a strictly convex loss's set is then ~1e-4 wide or narrower).
LOSS_TOLERANCE = 1e-9


def shift_invariant(loss: str) -> bool:
    """Whether ``loss`` sees score differences only, so that every constant shift leaves it unchanged: WGAN and
    every relativistic loss (App. C)."""
    return loss == "wgan" or loss[:2] in RELATIVISTIC


@dataclass(frozen=True)
class Threshold:
    """A rule's boundary values, estimated on a population: ``real`` (the t real images are measured against)
    and ``fake`` (that of generated images), each with its standard error; the ``level`` (:data:`LEVELS`) with the
    width of the loss's minimising shifts (``level_width``, score units; inf for a shift-invariant loss, nan
    where not needed) and their centre (``level_shift``); ``accuracy``: the share of the population on its class's
    side of its boundary, None where the level is undetermined."""

    rule: str
    real: float
    fake: float
    real_se: float
    fake_se: float
    level: str
    level_width: float
    level_shift: float
    accuracy: float | None
    population: int
    score_gap: float

    def accuracy_text(self) -> str:
        """The accuracy to 3 decimals, or "undetermined" where the loss does not pin the level."""
        return "undetermined" if self.accuracy is None else f"{self.accuracy:.3f}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def mean_and_se(scores: torch.Tensor, batches: torch.Tensor | None = None) -> tuple[float, float]:
    """The mean of ``scores`` and its standard error: sd/√N, or with ``batches`` (the batch of each score, equal
    batch sizes) sd(batch means)/√(number of batches), for scores correlated within a batch."""
    scores = scores.detach().double().flatten().cpu()
    mean = float(scores.mean())
    if batches is None:
        if scores.numel() < 2:
            raise ValueError("a standard error needs at least 2 scores")
        return mean, float(scores.std() / math.sqrt(scores.numel()))
    _, labels, counts = torch.unique(batches.cpu(), return_inverse=True, return_counts=True)
    if counts.numel() < 2 or bool((counts != counts[0]).any()):
        raise ValueError(f"the batch-mean standard error needs at least 2 batches of equal size, got sizes "
                         f"{counts.tolist()}")
    means = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, labels, scores) / counts
    return mean, float(means.std() / math.sqrt(means.numel()))


def shifted_loss(loss: str, real: torch.Tensor, fake: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """L(c): the critic loss of the scores shifted by each c of ``shifts`` (float64)."""
    real, fake = real.double().flatten(), fake.double().flatten()
    return torch.stack([critic_loss(loss, real + c, fake + c) for c in shifts.double()])


def level_width(loss: str, real: torch.Tensor, fake: torch.Tensor, iterations: int = 200) -> tuple[float, float]:
    """Width and centre of the set of constant shifts c that leave the critic loss of these scores within
    :data:`LOSS_TOLERANCE` of its minimum: (inf, nan) for a shift-invariant loss (:func:`shift_invariant`).

    L(c) is convex in c for every non-relativistic loss, so its sublevel set is an interval: its minimiser is found
    by ternary search and the interval's ends by bisection, over shifts within the scores' span plus 4."""
    check_choice(loss, gan_losses(), "loss")
    if shift_invariant(loss):
        return math.inf, math.nan
    check_int(iterations, "iterations", minimum=1)
    real, fake = real.detach().double().flatten().cpu(), fake.detach().double().flatten().cpu()
    reach = float(torch.cat([real, fake]).abs().max()) + 4.0

    def at(c: float) -> float:
        return float(shifted_loss(loss, real, fake, torch.tensor([c]))[0])

    low, high = -reach, reach
    for _ in range(iterations):  # ternary search for the minimiser of the convex L(c)
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if at(a) <= at(b):
            high = b
        else:
            low = a
    centre = (low + high) / 2
    bar = at(centre) + LOSS_TOLERANCE

    def edge(outside: float) -> float:  # the end of the sublevel set between the centre and ``outside``
        inside = centre
        for _ in range(iterations // 2):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if at(middle) <= bar else (inside, middle)
        return inside

    left, right = edge(-reach), edge(reach)
    return right - left, (left + right) / 2


def boundary_values(rule: str, real_mean: float, fake_mean: float) -> tuple[float, float]:
    """The t a real and a generated image are measured against under ``rule`` (:data:`RULES`), from the mean
    scores of the two classes: App. C.1's E f(fake) and E f(real) (relativistic), their midpoint, or 0."""
    check_choice(rule, RULES, "threshold")
    if rule == "relativistic":
        return fake_mean, real_mean
    if rule == "midpoint":
        return 0.5 * (real_mean + fake_mean), 0.5 * (real_mean + fake_mean)
    return 0.0, 0.0


def estimate(rule: str, loss: str, real: torch.Tensor, fake: torch.Tensor, real_batches: torch.Tensor | None = None,
             fake_batches: torch.Tensor | None = None) -> Threshold:
    """A rule's boundary values for a critic trained with ``loss``, from population scores ``real`` and ``fake``
    (with their batches in train mode: the SE is then over batch means); see the module docstring."""
    check_choice(rule, RULES, "threshold")
    check_choice(loss, gan_losses(), "loss")
    real_mean, real_se = mean_and_se(real, real_batches)
    fake_mean, fake_se = mean_and_se(fake, fake_batches)
    gap = real_mean - fake_mean
    width, shift = math.nan, math.nan
    t_real, t_fake = boundary_values(rule, real_mean, fake_mean)
    if rule == "relativistic":
        se_real, se_fake, level = fake_se, real_se, "relative"
    elif rule == "midpoint":
        se_real = se_fake = 0.5 * math.hypot(real_se, fake_se)
        level = "relative"
    else:
        width, shift = level_width(loss, real, fake)
        level = "undetermined" if not width <= LEVEL_TOLERANCE * abs(gap) else "pinned"
        se_real = se_fake = 0.0
    accuracy = None
    if level != "undetermined":
        correct = (real.double() > t_real).sum() + (fake.double() < t_fake).sum()
        accuracy = float(correct) / (real.numel() + fake.numel())
    return Threshold(rule, t_real, t_fake, se_real, se_fake, level, width, shift, accuracy,
                     int(min(real.numel(), fake.numel())), gap)
