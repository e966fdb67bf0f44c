"""The paper's GAN claims as propositions, each judged by one pooled rule (Tables 2–8).

A *proposition* says that one level of one factor gives a lower FID than another
level, everything else equal: "q = ∞ beats q = 2" (the paper's proposal, §5.3 and
§6 (i)), "the hinge penalty beats the LS penalty" (§6 (ii)), ...; a level may span two
columns (R1 + R2 is q = 2 with g = 'R1 + R2', set against q = ∞ with g = 'hinge'). They are named
once, in :data:`PROPOSITIONS`. A run's *cell* is its ``(loss, norm, g)``, where
``norm`` is the gradient norm ``q`` of the penalty (eq. 6), with ``'inf, signed'``
for the released code's signed maximum (``as_released``; see
:func:`mmgan.norms.grad_norm`) so that it can be set against the true L^∞ norm.

The rule, stated in every GAN chapter and implemented here once
(:func:`judge`):

1. **Matched pairs.** Every pair of cells of the study that differ only in the
   proposition's factor, one at each level. A pair whose two runs are identical
   in every seed (a tie built into the design, e.g. WGAN and HingeGAN with the
   L^1 penalty) is left out and listed, since it cannot be evidence.
2. **The seed is the unit.** Runs with the same seed share the data order, the
   noise and the initial weights. For each seed, the statistic is
   ``d_s = mean over the pairs of log(other / better)`` of the study's metric
   (lower is better, so ``d_s > 0`` favours the proposition). A seed counts only
   when every pair has both runs (each ``d_s`` then estimates the same pooled
   quantity); a seed missing a run is listed.
3. **Pooled effect.** ``ratio = exp(mean d_s)``: how many times larger the
   metric is at the other level than at the predicted-better one (geometric
   mean over pairs and seeds; log scale, since values span decades). Its interval
   is the Student-t interval of ``mean d_s`` over seeds, mapped through ``exp``,
   at the simultaneous level ``1 − α/m`` (Bonferroni over the ``m``
   propositions the chapter judges; α = 0.05). Bonferroni rather than Holm
   because it gives one interval per proposition that agrees with its verdict.
4. **Verdict** (:class:`~mmgan.book.verdicts.Verdict`): *holds* when the interval lies
   above 1, *does not hold* when it lies below 1, *no effect larger than the
   band* when it lies within ``[1/(1 + band), 1 + band]`` (band 10%), otherwise
   *cannot tell*; with fewer than two seeds, *not comparable*. The interval is
   always shown with the word.

:func:`seeds_needed` turns the per-seed spread into the number of seeds that
would bring the interval within ±15% (the width the study is sized for).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.base.registry import lookup
from mmgan.book.verdicts import EQUIVALENCE_BAND as BAND
from mmgan.book.verdicts import Verdict

#: Family-wise error rate of the propositions of one chapter (Bonferroni).
ALPHA = 0.05
#: The interval half-width (on the ratio) a study's seeds are sized for: ±15%.
TARGET_HALF_WIDTH = 0.15
#: The columns that make up a cell.
CELL = ("loss", "norm", "g")
#: The level of ``norm`` of the released code's signed maximum (q = ∞ with ``as_released``).
SIGNED_MAX = "inf, signed"


@dataclass(frozen=True)
class Proposition:
    """One level of one factor gives a lower metric than another, everything else equal."""

    name: str
    key: str  # a short identifier for glue names, e.g. ``'qinf_q2'``
    #: one of CELL, or several when the two levels differ in more than one column (a penalty is its norm and shape)
    factor: str | tuple[str, ...]
    better: str | tuple[str, ...]  # the level predicted to give the lower (better) metric (one value per factor)
    other: str | tuple[str, ...]
    source: str  # where the paper states it, or why it is asked
    #: False when the paper's runs cannot test it (its q = ∞ runs are all signed maxima)
    in_paper: bool = True

    def pairs(self, cells: Iterable[tuple[str, str, str]]) -> list[tuple[tuple, tuple]]:
        """(better cell, other cell) for every cell at ``other`` whose twin at ``better`` is present."""
        present = list(dict.fromkeys(cells))
        factors, better, other = (_as_tuple(v) for v in (self.factor, self.better, self.other))
        positions = [CELL.index(f) for f in factors]
        out = []
        for cell in present:
            if tuple(cell[p] for p in positions) != other:
                continue
            twin = list(cell)
            for position, level in zip(positions, better):
                twin[position] = level
            if tuple(twin) in present:
                out.append((tuple(twin), cell))
        return out


def _as_tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


#: Every proposition the GAN chapters judge, by name. A chapter judges those its study's cells can test.
PROPOSITIONS: dict[str, Proposition] = {p.name: p for p in (
    Proposition("q = ∞ beats q = 2", "qinf_q2", "norm", "inf", "2",
                "the paper's proposal: an L^∞ gradient penalty (L^1 margin) beats the usual L^2 one (§5.3, §6 (i))"),
    Proposition("q = 2 beats q = 1", "q2_q1", "norm", "2", "1", "a larger q gives a lower FID (§6 (i))"),
    Proposition("hinge penalty beats LS", "hinge_ls", "g", "hinge", "ls",
                "penalising ‖∇f‖ > 1 only beats pulling ‖∇f‖ to 1 (§6 (ii))"),
    Proposition("HingeGAN beats WGAN", "hingegan_wgan", "loss", "hinge", "wgan", "§6 (iii)"),
    Proposition("signed max beats q = 2", "signed_q2", "norm", SIGNED_MAX, "2",
                "the paper's proposal as its code ran it: the released 'L^∞' penalty is a signed maximum "
                "(not in the paper's text)"),
    Proposition("signed max beats L^∞", "signed_inf", "norm", SIGNED_MAX, "inf",
                "do the paper's L^∞ wins belong to the released signed maximum rather than the L^∞ norm? "
                "(not tested in the paper)", in_paper=False),
    Proposition("q = ∞ beats smooth max", "qinf_smax", "norm", "inf", "smax",
                "App. B: with the smooth maximum 'results are worse'"),
    Proposition("RaHinge beats HingeGAN", "rahinge_hingegan", "loss", "rahinge", "hinge",
                "App. C calls relativistic GANs more stable (not claimed for FID)"),
    # beyond the paper: the zero-centred penalties of later practice (their cells have q = 2 and g = R1, R2, R1 + R2)
    Proposition("R1 + R2 beats the L^∞ hinge penalty", "r1r2_qinf", ("norm", "g"), ("2", "R1 + R2"),
                ("inf", "hinge"), "R3GAN's penalty against the paper's proposal (not in the paper)", in_paper=False),
    Proposition("R1 + R2 beats the L² hinge penalty", "r1r2_q2", "g", "R1 + R2", "hinge",
                "R3GAN's penalty against the best one-centred penalty of Table 2's study (not in the paper)",
                in_paper=False),
    Proposition("R1 + R2 beats R1", "r1r2_r1", "g", "R1 + R2", "R1",
                "does R1 alone suffice, as StyleGAN assumes? (not in the paper)", in_paper=False),
    Proposition("R1 beats R2", "r1_r2", "g", "R1", "R2",
                "Mescheder et al. penalise at the real data (not in the paper)", in_paper=False),
    Proposition("R3GAN's loss beats HingeGAN (both with R1 + R2)", "rpsgan_hinge", "loss", "rpsgan", "hinge",
                "R3GAN pairs R1 + R2 with the relativistic pairing loss (not in the paper)", in_paper=False),
    Proposition("R3GAN beats the paper's L^∞ HingeGAN", "r3gan_qinf", CELL, ("rpsgan", "2", "R1 + R2"),
                ("hinge", "inf", "hinge"), "the modern recipe against the paper's proposal (not in the paper)",
                in_paper=False),
)}


def norm_level(q: str, as_released: bool) -> str:
    """The ``norm`` of a run: its ``q``, or :data:`SIGNED_MAX` / ``'smax, pooled'`` when run as released."""
    if as_released and q == "inf":
        return SIGNED_MAX
    if as_released and q == "smax":
        return "smax, pooled"
    return q


# ----------------------------------------------------------------------------- the pooled effect


@dataclass(frozen=True)
class PooledEffect:
    """A proposition's pooled ratio (other / better) with its interval and verdict."""

    ratio: float
    lower: float
    upper: float
    seeds: int
    level: float
    spread: float  # standard deviation of the per-seed log ratios (NaN with one seed)
    verdict: Verdict


def pooled_effect(per_seed: Sequence[float], level: float = 1 - ALPHA) -> PooledEffect:
    """Pool per-seed log ratios ``d_s`` (log other/better) into a ratio, its t interval and a verdict (rule 3–4)."""
    d = np.asarray(list(per_seed), dtype=float)
    if d.ndim != 1 or len(d) == 0 or not np.isfinite(d).all():
        raise ValueError(f"per-seed log ratios must be a non-empty 1-D array of finite numbers, got {d!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    mean = float(d.mean())
    if len(d) < 2:
        return PooledEffect(math.exp(mean), math.nan, math.nan, 1, level, math.nan, Verdict.NOT_COMPARABLE)
    spread = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * spread / math.sqrt(len(d))
    lower, upper = math.exp(mean - half), math.exp(mean + half)
    if lower > 1:
        verdict = Verdict.HOLDS
    elif upper < 1:
        verdict = Verdict.DOES_NOT_HOLD
    elif lower >= 1 / (1 + BAND) and upper <= 1 + BAND:
        verdict = Verdict.NO_LARGE_EFFECT
    else:
        verdict = Verdict.CANNOT_TELL
    return PooledEffect(math.exp(mean), lower, upper, len(d), level, spread, verdict)


def seeds_needed(spread: float, half_width: float = TARGET_HALF_WIDTH, level: float = 1 - ALPHA) -> int:
    """The fewest seeds whose t interval of the pooled ratio stays within ``(1 ± half_width)``, for per-seed
    log ratios of standard deviation ``spread`` (the wider, upper side: log(1 + half_width))."""
    if not (math.isfinite(spread) and spread >= 0):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    target = math.log1p(half_width)
    n = max(2, int((stats.norm.ppf(0.5 + level / 2) * spread / target) ** 2))  # the normal bound is below
    while stats.t.ppf(0.5 + level / 2, n - 1) * spread / math.sqrt(n) > target:
        n += 1
    return n


# ----------------------------------------------------------------------------- matched pairs


@dataclass(frozen=True)
class Matched:
    """The matched comparisons of one proposition in one study: per-seed log ratios and what was left out."""

    proposition: Proposition
    log_ratios: pd.DataFrame  # index: seed, columns: "better vs other" pair labels; complete seeds only
    tied: list[str]  # pairs identical in every seed
    incomplete_seeds: list[int]  # seeds missing a run of some pair


def pair_label(better: tuple, other: tuple) -> str:
    return f"{cell_text(*better)} vs {cell_text(*other)}"


def cell_text(loss: str, norm: str, g: str) -> str:
    """A cell as the chapters write it, e.g. ``'hinge, q = inf, hinge penalty'``."""
    return f"{loss}, q = {norm}, {g} penalty"


def match(values: pd.DataFrame, proposition: Proposition, stat: str, drop_ties: bool = True) -> Matched:
    """Per seed, the log ratio other / better of every matched pair of ``proposition`` in ``values``
    (one row per run: the columns of :data:`CELL`, ``seed`` and ``stat``, finite and > 0); with
    ``drop_ties``, pairs identical in every seed are set aside (rule 1)."""
    missing = [c for c in (*CELL, "seed", stat) if c not in values]
    if missing:
        raise ValueError(f"the runs lack the columns {missing}")
    metric = values[stat].to_numpy(dtype=float)
    if not (np.isfinite(metric) & (metric > 0)).all():
        raise ValueError(f"every {stat} must be a finite number > 0 to be compared on a log scale")
    table = values.set_index([*CELL, "seed"])[stat]
    if table.index.duplicated().any():
        raise ValueError(f"two runs share a cell and seed: {list(table.index[table.index.duplicated()])}")
    by_cell = {cell: group.droplevel(list(range(len(CELL)))) for cell, group in table.groupby(level=list(CELL))}
    columns, tied = {}, []
    for better, other in proposition.pairs(by_cell):
        ratio = np.log(by_cell[other]) - np.log(by_cell[better])  # aligned on seed; NaN where one run is missing
        both = ratio.dropna().index
        if drop_ties and len(both) and (by_cell[other].reindex(both) == by_cell[better].reindex(both)).all():
            tied.append(pair_label(better, other))
            continue
        columns[pair_label(better, other)] = ratio
    frame = pd.DataFrame(columns)
    complete = frame.dropna()
    incomplete = sorted(int(s) for s in frame.index.difference(complete.index))
    return Matched(proposition, complete.sort_index(), tied, incomplete)


def judge(values: pd.DataFrame, stat: str, names: Sequence[str] | None = None,
          alpha: float = ALPHA) -> pd.DataFrame:
    """The verdict of every proposition (of ``names``, default all) that ``values`` can test, by the rule of
    the module docstring; one row per proposition, in registry order.

    Columns: ratio, lower, upper (the pooled ratio other/better and its simultaneous interval), level,
    seeds, pairs, verdict (:class:`Verdict`), spread (sd of the per-seed log ratios), seeds for ±15%
    (:func:`seeds_needed`), left out (tied pairs and incomplete seeds, in words).
    """
    chosen = [lookup(PROPOSITIONS, name, "proposition") for name in (names or list(PROPOSITIONS))]
    matched = [m for m in (match(values, p, stat) for p in chosen) if m.log_ratios.shape[1]]
    level = 1 - alpha / max(len(matched), 1)
    rows = []
    for m in matched:
        effect = pooled_effect(m.log_ratios.mean(axis=1), level) if len(m.log_ratios) else None
        left_out = ([f"tied by construction: {', '.join(m.tied)}"] if m.tied else []) + (
            [f"seeds missing a run: {', '.join(map(str, m.incomplete_seeds))}"] if m.incomplete_seeds else [])
        rows.append({
            "proposition": m.proposition.name,
            "ratio": effect.ratio if effect else math.nan,
            "lower": effect.lower if effect else math.nan, "upper": effect.upper if effect else math.nan,
            "level": level, "seeds": len(m.log_ratios), "pairs": m.log_ratios.shape[1],
            "verdict": effect.verdict if effect else Verdict.NOT_COMPARABLE,
            "spread": effect.spread if effect else math.nan,
            "seeds for ±15%": (float(seeds_needed(effect.spread, level=level))
                               if effect and math.isfinite(effect.spread) else math.nan),
            "left out": "; ".join(left_out),
        })
    columns = ["proposition", "ratio", "lower", "upper", "level", "seeds", "pairs", "verdict", "spread",
               "seeds for ±15%", "left out"]
    return pd.DataFrame(rows, columns=columns).set_index("proposition")


def pair_effects(values: pd.DataFrame, stat: str, names: Sequence[str] | None = None,
                 level: float = 1 - ALPHA) -> pd.DataFrame:
    """Every matched pair behind the propositions on its own: its ratio over seeds and a per-pair t interval
    (at ``level``, uncorrected; shown to reveal heterogeneity between pairs, never to judge)."""
    rows = []
    for name in names or list(PROPOSITIONS):
        m = match(values, lookup(PROPOSITIONS, name, "proposition"), stat)
        for label in m.log_ratios.columns:
            d = m.log_ratios[label]
            effect = pooled_effect(d, level)
            rows.append({"proposition": name, "pair": label, "ratio": effect.ratio, "lower": effect.lower,
                         "upper": effect.upper, "seeds": effect.seeds})
    return pd.DataFrame(rows, columns=["proposition", "pair", "ratio", "lower", "upper", "seeds"])


def paper_ratios(paper: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """The paper's own direction for each proposition its table can test: the geometric mean ratio
    other/better over its matched pairs and how many pairs go the predicted way (one run per cell, so no
    interval). ``paper``: one row per cell with ``loss``, ``norm``, ``g`` and ``value``. The paper's q = ∞
    runs were signed maxima (the released code), so they also stand for :data:`SIGNED_MAX`."""
    signed = paper[paper["norm"] == "inf"].assign(norm=SIGNED_MAX)
    values = pd.concat([paper, signed], ignore_index=True).assign(seed=0)
    rows = []
    for name in names:
        proposition = lookup(PROPOSITIONS, name, "proposition")
        if not proposition.in_paper:
            continue
        m = match(values, proposition, "value", drop_ties=False)
        if m.log_ratios.shape[1] == 0:
            continue
        logs = m.log_ratios.iloc[0]
        rows.append({"proposition": name, "paper ratio": math.exp(float(logs.mean())),
                     "paper pairs": f"{int((logs > 0).sum())} of {len(logs)}"})
    return pd.DataFrame(rows, columns=["proposition", "paper ratio", "paper pairs"]).set_index("proposition")
