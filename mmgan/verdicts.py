"""Verdicts on the paper's claims, computed from paired seeds.

A claim about one comparison ("the penalised margin is at least twice the
unpenalised one", "q = dual(p) gives the largest L^p margin") is judged from
per-seed values that are *paired*: the two sides share the seed, hence the
data, the minibatches and the initial weights (see
:mod:`mmgan.toys.classifiers`). The rule, stated once here and in the
chapters that use it:

* compute the per-seed statistic (a difference, or the log of a ratio), its
  mean and a two-sided 95% Student-t interval over seeds (paired t);
* the claim **holds** when the whole interval lies on the claimed side of the
  threshold, **does not hold** when the whole interval lies on the other side,
  and we **cannot tell at this noise** otherwise;
* a comparison whose classifiers did not learn (held-out accuracy below a
  stated bar) is **not comparable**: a margin of a classifier at chance is not
  the quantity the claim is about.

A claim made for many comparisons at once ("true for all types of gradient
penalties") holds when every comparison holds, does not hold when at least one
does not, and otherwise cannot be told (:func:`combine`): a comparison that is
not comparable keeps the claim from holding, since it was not tested there.

A ratio pooled over seeds (how many times larger a quantity is at one level than at
another) is judged by :func:`pooled_effect`, with a band of equivalence around 1.

This is the one module of the verdict statistics; the engines (Table 1, the GAN
tables, the critics) compute their verdicts with it and the chapters show them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Confidence level of every interval behind a verdict.
LEVEL = 0.95
#: Equivalence band of a ratio: an interval inside [1/(1 + band), 1 + band] shows no effect larger than this.
EQUIVALENCE_BAND = 0.10
#: Family-wise error rate of the propositions of one chapter (Bonferroni; :func:`pooled_effect`).
ALPHA = 0.05


class Verdict(enum.Enum):
    """Outcome of a claim checked against seed noise."""

    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    CANNOT_TELL = "cannot tell at this noise"
    #: the interval of a ratio lies inside the equivalence band (:data:`EQUIVALENCE_BAND`)
    NO_LARGE_EFFECT = f"no effect larger than {EQUIVALENCE_BAND:.0%}"
    NOT_COMPARABLE = "not comparable"  # a classifier of the comparison missed the accuracy bar

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Interval:
    """Mean of a per-seed statistic with its two-sided t interval (NaN bounds for < 2 seeds)."""

    mean: float
    lower: float
    upper: float
    n: int

    def map(self, function) -> Interval:
        """The interval of a monotone increasing transform (e.g. ``math.exp`` for log ratios)."""
        return Interval(function(self.mean), function(self.lower), function(self.upper), self.n)


def paired_t_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and Student-t interval of per-seed values (differences or log ratios of paired runs)."""
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1 or len(array) == 0 or not np.isfinite(array).all():
        raise ValueError(f"paired values must be a non-empty 1-D array of finite numbers, got {array!r}")
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.5 + level / 2, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array)))
    return Interval(mean, mean - half, mean + half, len(array))


def interval_text(lower: float, upper: float) -> str:
    """``'[0.45, 0.83]'``, or ``'—'`` when there is no interval (one seed)."""
    return f"[{lower:.2f}, {upper:.2f}]" if math.isfinite(lower) and math.isfinite(upper) else "—"


def effect_text(verdict: str, ratio: float, lower: float, upper: float) -> str:
    """``' (1.23 [1.05, 1.44])'`` to put after a verdict: its effect and interval; nothing after a verdict that is
    *not comparable* (its runs cannot carry a number) or without a finite ratio."""
    if str(verdict).startswith(Verdict.NOT_COMPARABLE.value) or not math.isfinite(ratio):
        return ""
    return f" ({ratio:.2f} {interval_text(lower, upper)})"


def interval_verdict(interval: Interval, threshold: float) -> Verdict:
    """HOLDS if the interval lies above ``threshold``, DOES_NOT_HOLD if below, else CANNOT_TELL."""
    if not (math.isfinite(interval.lower) and math.isfinite(interval.upper)):
        return Verdict.CANNOT_TELL
    if interval.lower > threshold:
        return Verdict.HOLDS
    if interval.upper < threshold:
        return Verdict.DOES_NOT_HOLD
    return Verdict.CANNOT_TELL


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for a claim made about every comparison at once (see the module docstring)."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("combine needs at least one verdict")
    if Verdict.DOES_NOT_HOLD in verdicts:
        return Verdict.DOES_NOT_HOLD
    if all(v is Verdict.HOLDS for v in verdicts):
        return Verdict.HOLDS
    if all(v is Verdict.NOT_COMPARABLE for v in verdicts):
        return Verdict.NOT_COMPARABLE
    return Verdict.CANNOT_TELL


def counts(verdicts: Iterable[Verdict]) -> dict[Verdict, int]:
    """How many comparisons ended in each verdict (every verdict listed, zeros included)."""
    verdicts = list(verdicts)
    return {v: sum(1 for x in verdicts if x is v) for v in Verdict}


@dataclass(frozen=True)
class PooledEffect:
    """A pooled ratio (other / better) of paired runs with its interval and verdict."""

    ratio: float
    lower: float
    upper: float
    seeds: int
    level: float
    spread: float  # standard deviation of the per-seed log ratios (NaN with one seed)
    verdict: Verdict


def pooled_effect(per_seed: Sequence[float], level: float = 1 - ALPHA) -> PooledEffect:
    """Pool per-seed log ratios ``d_s`` (log other/better) into a ratio, its t interval and a verdict: *holds* above 1,
    *does not hold* below 1, *no effect larger than* :data:`EQUIVALENCE_BAND` inside the band, else *cannot tell*;
    *not comparable* with one seed (the pooled rule of :mod:`mmgan.gan.propositions`, rules 3–4), which pools
    nothing: its ratio is NaN like its interval, so that no caller shows one pair's ratio as a pooled one."""
    d = np.asarray(list(per_seed), dtype=float)
    if d.ndim != 1 or len(d) == 0 or not np.isfinite(d).all():
        raise ValueError(f"per-seed log ratios must be a non-empty 1-D array of finite numbers, got {d!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if len(d) < 2:
        return PooledEffect(math.nan, math.nan, math.nan, 1, level, math.nan, Verdict.NOT_COMPARABLE)
    mean, spread = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * spread / math.sqrt(len(d))
    lower, upper = math.exp(mean - half), math.exp(mean + half)
    if lower > 1:
        verdict = Verdict.HOLDS
    elif upper < 1:
        verdict = Verdict.DOES_NOT_HOLD
    elif lower >= 1 / (1 + EQUIVALENCE_BAND) and upper <= 1 + EQUIVALENCE_BAND:
        verdict = Verdict.NO_LARGE_EFFECT
    else:
        verdict = Verdict.CANNOT_TELL
    return PooledEffect(math.exp(mean), lower, upper, len(d), level, spread, verdict)
