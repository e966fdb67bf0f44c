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
(:func:`judge`; the pooled effect of rules 3–4 is :func:`mmgan.verdicts.pooled_effect`, shared with
Table 1 and the critics):

1. **Matched pairs.** Every pair of cells of the study that differ only in the
   proposition's factor, one at each level. A pair whose two runs are identical
   in every seed (a tie built into the design, e.g. WGAN and HingeGAN with the
   L^1 penalty) is left out and listed, since it cannot be evidence.
2. **The seed is the unit.** Runs with the same seed share the data order, the
   noise and the initial weights. For each seed, the statistic is
   ``d_s = mean over the pairs of log(other / better)`` of the study's metric
   (lower is better, so ``d_s > 0`` favours the proposition), over the pairs where
   both runs exist and learnt (:mod:`mmgan.gan.outcomes`; runs that did not learn are
   judged by the reliability rule below). A seed with fewer pairs (a run missing, a run
   that did not learn, or a study that ran more seeds in some cells) keeps the pairs it
   has, so its ``d_s`` mixes fewer pairs; such seeds are listed.
3. **Pooled effect.** ``ratio = exp(mean d_s)``: how many times larger the
   metric is at the other level than at the predicted-better one (geometric
   mean over pairs and seeds; log scale, since values span decades). Its interval
   is the Student-t interval of ``mean d_s`` over seeds, mapped through ``exp``,
   at the simultaneous level ``1 − α/m`` (Bonferroni over the ``m``
   propositions the chapter judges; α = 0.05). Bonferroni rather than Holm
   because it gives one interval per proposition that agrees with its verdict.
4. **Verdict** (:class:`~mmgan.verdicts.Verdict`): *holds* when the interval lies
   above 1, *does not hold* when it lies below 1, *no effect larger than the
   band* when it lies within ``[1/(1 + band), 1 + band]`` (band 10%), otherwise
   *cannot tell*; with fewer than two seeds, *not comparable*. The interval is
   always shown with the word.

:func:`seeds_needed` turns the per-seed spread into the number of seeds that
would bring the interval within ±15% (the width the study is sized for).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.base.registry import lookup
from mmgan.verdicts import ALPHA, Verdict, pooled_effect

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
    #: the paper's claim this proposition restates another way (the signed max is how the released code ran
    #: the proposal): counted once, under that claim, when the book counts the paper's claims
    restates: str | None = None

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
                "(not in the paper's text)", restates="q = ∞ beats q = 2"),
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
    cells: dict[str, tuple[tuple, tuple]] = dataclasses.field(default_factory=dict)  # label → (better, other)
    #: every seed with a run of some pair (NaN where a pair's run is missing)
    partial: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


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
    columns, tied, cells = {}, [], {}
    for better, other in proposition.pairs(by_cell):
        ratio = np.log(by_cell[other]) - np.log(by_cell[better])  # aligned on seed; NaN where one run is missing
        both = ratio.dropna().index
        if drop_ties and len(both) and (by_cell[other].reindex(both) == by_cell[better].reindex(both)).all():
            tied.append(pair_label(better, other))
            continue
        columns[pair_label(better, other)] = ratio
        cells[pair_label(better, other)] = (better, other)
    frame = pd.DataFrame(columns)
    complete = frame.dropna()
    incomplete = sorted(int(s) for s in frame.index.difference(complete.index))
    return Matched(proposition, complete.sort_index(), tied, incomplete, cells, frame.sort_index())


def paired_flags(flags: pd.DataFrame, matched: Matched, column: str, kind: type = bool) -> pd.DataFrame:
    """Per seed (rows) and pair of ``matched`` (columns): the (better, other) values of ``column`` of ``flags``
    (one row per run: :data:`CELL`, ``seed``, ``column``), as ``kind``; NaN where a run is missing."""
    table = flags.set_index([*CELL, "seed"])[column]
    seeds = sorted({int(s) for s in flags["seed"]})
    out = {}
    for label, (better, other) in matched.cells.items():
        out[label] = [(kind(table[(*better, s)]), kind(table[(*other, s)]))
                      if (*better, s) in table.index and (*other, s) in table.index else math.nan for s in seeds]
    return pd.DataFrame(out, index=pd.Index(seeds, name="seed"))


def start_delay(starts: pd.DataFrame) -> tuple[float, float]:
    """Time to start (``start``: :func:`paired_flags` of the runs' start iterations, a run that never started
    counted at its last evaluation): the mean over the matched comparisons of other − better (> 0: the predicted-
    better level starts sooner) and the sign-flip p-value over seeds of the per-seed sums."""
    per_seed = [[other - better for better, other in (v for v in row if isinstance(v, tuple))]
                for _, row in starts.iterrows()]
    differences = [d for seed in per_seed for d in seed]
    if not differences:
        return math.nan, math.nan
    return float(np.mean(differences)), sign_flip_p([sum(seed) for seed in per_seed])


def learnt_log_ratios(matched: Matched, learnt: pd.DataFrame) -> pd.Series:
    """Per seed, the mean log ratio over the pairs of ``matched`` where both runs exist and learnt (``learnt``:
    :func:`paired_flags` of the ``learnt`` column); seeds with no such pair are left out."""
    return matched.partial.where(_both_learnt(learnt, matched.partial)).mean(axis=1).dropna()


def _both_learnt(learnt: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """True where both runs of a (seed, pair) of ``like`` learnt."""
    return learnt.reindex(index=like.index, columns=like.columns).map(lambda v: isinstance(v, tuple) and all(v))


#: The columns of :func:`judge`, in order.
JUDGE_COLUMNS = ["ratio", "lower", "upper", "level", "seeds", "pairs", "verdict", "spread", "seeds for ±15%",
                 "hl", "hl lower", "hl upper", "interaction p", "failed better", "failed other", "comparisons",
                 "failure delta", "failure lower", "failure upper", "failure p", "reliability", "start delay",
                 "start p", "left out"]


def judge(values: pd.DataFrame, stat: str, names: Sequence[str] | None = None,
          alpha: float = ALPHA) -> pd.DataFrame:
    """The verdicts of every proposition (of ``names``, default all) that ``values`` can test, by the rules of
    the module docstring; one row per proposition, in registry order.

    ``values``: one row per run with the columns of :data:`CELL`, ``seed``, ``stat`` and, optionally, ``learnt``
    (bool: :mod:`mmgan.gan.outcomes`). With ``learnt``, the pooled ratio is taken over the pairs where both runs
    learnt and the reliability judgement is added; without it every run counts as learnt.

    Columns (:data:`JUDGE_COLUMNS`): ratio, lower, upper (the pooled ratio other/better among runs that learnt and
    its simultaneous interval), level, seeds, pairs, verdict (:class:`Verdict`), spread (sd of the per-seed log
    ratios), seeds for ±15% (:func:`seeds_needed`), hl, hl lower, hl upper (the Hodges–Lehmann ratio and its
    Wilcoxon interval), interaction p (pair × level), failed better / failed other / comparisons (runs that did
    not learn over the matched comparisons), failure delta / lower / upper / p and reliability
    (:func:`reliability`), start delay and start p (:func:`start_delay`, with a ``start`` column of the runs' start
    iterations; NaN without), left out (tied pairs and incomplete seeds, in words).
    """
    chosen = [lookup(PROPOSITIONS, name, "proposition") for name in (names or list(PROPOSITIONS))]
    frame = values if "learnt" in values else values.assign(learnt=True)
    # a run that diverged has no metric: it counts in the reliability judgement only (match refuses the others)
    usable = frame[frame["learnt"].astype(bool) | np.isfinite(frame[stat].to_numpy(dtype=float))]
    matched = [m for m in (match(usable, p, stat) for p in chosen) if m.log_ratios.shape[1]]
    level = 1 - alpha / max(len(matched), 1)
    rows = []
    for m in matched:
        learnt = paired_flags(frame, m, "learnt")
        per_seed = learnt_log_ratios(m, learnt)
        effect = pooled_effect(per_seed, level) if len(per_seed) else None
        hl = hodges_lehmann(per_seed, level) if len(per_seed) else (math.nan,) * 3
        failed = learnt.map(lambda v: (not v[0], not v[1]) if isinstance(v, tuple) else v)
        rel = reliability(failed, level)
        delay, delay_p = (start_delay(paired_flags(frame, m, "start", float)) if "start" in frame
                          else (math.nan, math.nan))
        left_out = ([f"tied by construction: {', '.join(m.tied)}"] if m.tied else []) + (
            [f"seeds with fewer pairs (a run missing or not in the study): {seed_ranges(m.incomplete_seeds)}"]
            if m.incomplete_seeds else [])
        rows.append({
            "proposition": m.proposition.name,
            "ratio": effect.ratio if effect else math.nan,
            "lower": effect.lower if effect else math.nan, "upper": effect.upper if effect else math.nan,
            "level": level, "seeds": len(per_seed), "pairs": m.log_ratios.shape[1],
            "verdict": effect.verdict if effect else Verdict.NOT_COMPARABLE,
            "spread": effect.spread if effect else math.nan,
            "seeds for ±15%": (float(seeds_needed(effect.spread, level=level))
                               if effect and math.isfinite(effect.spread) else math.nan),
            "hl": math.exp(hl[0]) if math.isfinite(hl[0]) else math.nan,
            "hl lower": math.exp(hl[1]) if math.isfinite(hl[1]) else math.nan,
            "hl upper": math.exp(hl[2]) if math.isfinite(hl[2]) else math.nan,
            "interaction p": interaction_p(m.log_ratios.where(_both_learnt(learnt, m.log_ratios))),
            "failed better": rel.failed_better, "failed other": rel.failed_other, "comparisons": rel.comparisons,
            "failure delta": rel.delta, "failure lower": rel.lower, "failure upper": rel.upper,
            "failure p": rel.p, "reliability": rel.verdict, "start delay": delay, "start p": delay_p,
            "left out": "; ".join(left_out),
        })
    return pd.DataFrame(rows, columns=["proposition", *JUDGE_COLUMNS]).set_index("proposition")


def seed_ranges(seeds: Sequence[int]) -> str:
    """``[3, 8, 9, 10, 11]`` as ``'3, 8–11'``."""
    parts: list[list[int]] = []
    for seed in sorted(seeds):
        if parts and seed == parts[-1][-1] + 1:
            parts[-1].append(seed)
        else:
            parts.append([seed])
    return ", ".join(str(p[0]) if len(p) == 1 else f"{p[0]}–{p[-1]}" for p in parts)


def pair_effects(values: pd.DataFrame, stat: str, names: Sequence[str] | None = None,
                 level: float = 1 - ALPHA) -> pd.DataFrame:
    """Every matched pair behind the propositions on its own: its ratio over the seeds that have both of its runs
    (the geometric mean; with one seed, that seed's ratio) and a per-pair t interval (at ``level``, uncorrected;
    none with one seed; shown to reveal heterogeneity between pairs, never to judge)."""
    rows = []
    for name in names or list(PROPOSITIONS):
        m = match(values, lookup(PROPOSITIONS, name, "proposition"), stat)
        for label in m.log_ratios.columns:
            d = m.partial[label].dropna()
            effect = pooled_effect(d, level)
            rows.append({"proposition": name, "pair": label, "ratio": math.exp(float(d.mean())), "lower": effect.lower,
                         "upper": effect.upper, "seeds": effect.seeds})
    return pd.DataFrame(rows, columns=["proposition", "pair", "ratio", "lower", "upper", "seeds"])


def paper_level(norm: str) -> str:
    """The paper's ``q`` of one of our ``norm`` levels: its q = ∞ and smooth-max runs were the released code's
    signed maximum and pooled smooth maximum (:func:`norm_level`), so those stand for them."""
    return {SIGNED_MAX: "inf", "smax, pooled": "smax"}.get(norm, norm)


def paper_ratios(paper: pd.DataFrame, pairs: dict[str, Sequence[tuple[tuple, tuple]]]) -> pd.DataFrame:
    """The paper's own ratio other/better for each proposition over exactly the matched pairs our study tests
    (``pairs``: proposition → its (better cell, other cell) pairs, :attr:`Matched.cells`): the geometric mean
    over those pairs of the paper's values (one run per cell, so no interval), how many go the predicted way,
    and the pairs the paper has no number for. ``paper``: one row per cell of the paper's tables with ``loss``,
    ``norm`` (its q), ``g`` and ``value``; a cell of ours maps to the paper's through :func:`paper_level`.
    Propositions the paper's runs cannot test (:attr:`Proposition.in_paper` False) are left out."""
    table = paper.set_index(list(CELL))["value"]
    if table.index.duplicated().any():
        raise ValueError(f"the paper's cells repeat: {list(table.index[table.index.duplicated()])}")
    rows = []
    for name, matched_pairs in pairs.items():
        if not lookup(PROPOSITIONS, name, "proposition").in_paper or not matched_pairs:
            continue
        logs, missing = [], []
        for better, other in matched_pairs:
            b, o = ((c[0], paper_level(c[1]), c[2]) for c in (better, other))
            if b in table.index and o in table.index:
                logs.append(math.log(table[o]) - math.log(table[b]))
            else:
                missing.append(pair_label(better, other))
        if not logs:
            continue
        rows.append({"proposition": name, "paper ratio": math.exp(float(np.mean(logs))),
                     "paper pairs": f"{sum(d > 0 for d in logs)} of {len(logs)}",
                     "paper missing": "; ".join(missing)})
    return pd.DataFrame(rows, columns=["proposition", "paper ratio", "paper pairs", "paper missing"]
                        ).set_index("proposition")


# ----------------------------------------------------------------------------- runs judged as they behave
#
# A run that stalls, never starts or diverges is an outcome, not a large metric: each proposition gets two
# judgements on the matched pairs of :func:`match` (the outcomes come from :mod:`mmgan.gan.outcomes`, as a
# boolean column ``learnt`` of the runs):
#
# * **reliability**: does the predicted-better level fail less often? Failure = the run did not learn. Per
#   seed s, D_s = Σ over its pairs (failed at other − failed at better). Under "no effect" the two levels are
#   exchangeable within each seed, so the exact p-value is the two-sided sign-flip test of Σ_s D_s over seeds
#   (all 2^n flips of the seeds with D_s ≠ 0; the seed stays the unit and the cells of a seed move together).
#   The effect is the difference of failure shares Δ = share(other) − share(better) over the matched
#   comparisons, with Newcombe's hybrid-score interval for paired proportions (his method 10) at the
#   simultaneous level. Verdict: holds when p < α/m and Δ > 0; does not hold when p < α/m and Δ < 0; no
#   effect larger than :data:`RELIABILITY_BAND` when the interval lies inside ±band; cannot tell otherwise.
# * **quality among runs that learnt**: the pooled rule (:func:`pooled_effect`) on the pairs where both runs
#   learnt; per seed the mean log ratio over its usable pairs (a seed with none is left out). It decides the
#   quality verdict; the Hodges–Lehmann estimate of the same per-seed log ratios with its exact Wilcoxon
#   (sign-flip) interval is shown beside it as the robust companion.
# * **heterogeneity**: with two or more pairs, the pair × level interaction is tested by the two-way analysis
#   of variance of the per-seed log ratios (seeds × pairs, complete seeds); when p < α the pooled ratio
#   averages pairs that disagree and the chapter shows the pairs one by one.

#: A difference of failure shares inside ±this band counts as no effect (10 percentage points).
RELIABILITY_BAND = 0.10
#: Above this many seeds with D_s ≠ 0, the sign-flip p-value is estimated from random flips.
EXACT_FLIPS = 20
MONTE_CARLO_FLIPS = 200_000


def sign_flip_p(per_seed: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of Σ d_s under random sign flips of the seeds' d_s (exact up to :data:`EXACT_FLIPS`
    non-zero values, else :data:`MONTE_CARLO_FLIPS` random flips with a fixed seed); 1.0 when every d_s is 0."""
    d = np.asarray([x for x in per_seed if x != 0], dtype=float)
    if len(d) == 0:
        return 1.0
    observed = abs(d.sum())
    if len(d) <= EXACT_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(MONTE_CARLO_FLIPS, len(d)))
    sums = np.abs(signs @ d)
    return float(np.mean(sums >= observed - 1e-12 * max(observed, 1.0)))


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def paired_share_interval(both: int, only_other: int, only_better: int, neither: int,
                          level: float = 1 - ALPHA) -> tuple[float, float, float]:
    """Δ = share failed at ``other`` − share failed at ``better`` over n paired comparisons, with Newcombe's
    (1998) hybrid score interval (method 10). Counts: both failed, only the other failed, only the better
    failed, neither failed."""
    n = both + only_other + only_better + neither
    if n == 0:
        raise ValueError("no paired comparison")
    z = float(stats.norm.ppf(0.5 + level / 2))
    other, better = both + only_other, both + only_better
    delta = (other - better) / n
    l1, u1 = _wilson(other, n, z)
    l2, u2 = _wilson(better, n, z)
    # phi: the correlation of the two failure indicators (0 when a margin is empty, as Newcombe sets it)
    margins = (both + only_other) * (only_better + neither) * (both + only_better) * (only_other + neither)
    phi = (both * neither - only_other * only_better) / math.sqrt(margins) if margins > 0 else 0.0
    p1, p2 = other / n, better / n
    lower_sq = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    upper_sq = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return delta, max(-1.0, delta - math.sqrt(max(lower_sq, 0.0))), min(1.0, delta + math.sqrt(max(upper_sq, 0.0)))


@dataclass(frozen=True)
class Reliability:
    """Failures at each level of a proposition over its matched comparisons, and the verdict."""

    failed_better: int
    failed_other: int
    comparisons: int  # matched (pair, seed) comparisons with both runs
    seeds: int
    delta: float  # share failed at other − share failed at better (> 0 favours the proposition)
    lower: float
    upper: float
    p: float  # the sign-flip p-value over seeds
    level: float
    verdict: Verdict


def reliability(failed: pd.DataFrame, level: float = 1 - ALPHA) -> Reliability:
    """The reliability judgement (see above) from ``failed``: index seed, one column per pair, each cell a
    (failed at better, failed at other) tuple of booleans (NaN where a run is missing)."""
    units = [(s, v) for s, row in failed.iterrows() for v in row if isinstance(v, tuple)]
    if not units:
        raise ValueError("no matched comparison with both runs")
    counts = {"both": 0, "only_other": 0, "only_better": 0, "neither": 0}
    per_seed: dict[int, float] = {}
    for seed, (better, other) in units:
        key = ("both" if better and other else "only_other" if other else "only_better" if better else "neither")
        counts[key] += 1
        per_seed[seed] = per_seed.get(seed, 0.0) + float(other) - float(better)
    delta, lower, upper = paired_share_interval(**counts, level=level)
    p = sign_flip_p(list(per_seed.values()))
    if p < 1 - level and delta > 0:
        verdict = Verdict.HOLDS
    elif p < 1 - level and delta < 0:
        verdict = Verdict.DOES_NOT_HOLD
    elif -RELIABILITY_BAND <= lower and upper <= RELIABILITY_BAND:
        verdict = Verdict.NO_LARGE_EFFECT
    else:
        verdict = Verdict.CANNOT_TELL
    return Reliability(counts["both"] + counts["only_better"], counts["both"] + counts["only_other"], len(units),
                       len(per_seed), delta, lower, upper, p, level, verdict)


def hodges_lehmann(per_seed: Sequence[float], level: float = 1 - ALPHA) -> tuple[float, float, float]:
    """The Hodges–Lehmann estimate of the centre of the per-seed values (median of the Walsh averages) with its
    exact Wilcoxon signed-rank interval at ``level`` (NaN bounds when n is too small to reach it)."""
    d = np.sort(np.asarray(list(per_seed), dtype=float))
    n = len(d)
    if n == 0 or not np.isfinite(d).all():
        raise ValueError(f"per-seed values must be a non-empty array of finite numbers, got {d!r}")
    walsh = np.sort((d[:, None] + d[None, :])[np.triu_indices(n)] / 2)
    estimate = float(np.median(walsh))
    # the exact null distribution of the signed-rank statistic T+ (how many subsets of the ranks 1..n sum to t)
    ways = np.zeros(n * (n + 1) // 2 + 1)
    ways[0] = 1
    for rank in range(1, n + 1):
        ways[rank:] = ways[rank:] + ways[:-rank].copy()
    cdf = np.cumsum(ways) / 2 ** n
    k = int(np.searchsorted(cdf, (1 - level) / 2, side="right"))  # C = k - 1: the largest c, P(T+ <= c) <= tail
    if k == 0:
        return estimate, math.nan, math.nan
    return estimate, float(walsh[k - 1]), float(walsh[len(walsh) - k])  # W_(C+1) and W_(M-C), 1-indexed


def interaction_p(log_ratios: pd.DataFrame) -> float:
    """p-value of the pair × level interaction: the pair effect in the two-way analysis of variance (without
    replication) of per-seed log ratios (rows seeds, columns pairs; seeds with a missing value left out); NaN
    with < 2 pairs or < 2 seeds."""
    x = log_ratios.dropna().to_numpy(dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        return math.nan
    seeds, pairs = x.shape
    grand = x.mean()
    ss_pairs = seeds * ((x.mean(0) - grand) ** 2).sum()
    residual = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand
    ss_residual = (residual ** 2).sum()
    if ss_residual <= 0:
        return 0.0 if ss_pairs > 0 else math.nan
    f = (ss_pairs / (pairs - 1)) / (ss_residual / ((pairs - 1) * (seeds - 1)))
    return float(stats.f.sf(f, pairs - 1, (pairs - 1) * (seeds - 1)))
