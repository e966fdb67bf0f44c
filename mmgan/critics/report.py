"""What the chapter "Margins of GAN critics" reports, computed from :mod:`mmgan.critics.measure` measurements.

The rules the chapter states:

* **Margin of an image**: the best known upper bound of its distance to its boundary, the
  smaller of the estimator's and FMN's distances (both reach a point where f − t changes
  sign); *signed*, it is negative when the image lies on the wrong side of its boundary.
  A critic's margin at order p is the mean over its measured images (reals and generated
  images alike); the signed mean is the primary measure.
* **Threshold**: the paper's relativistic-average boundary for relativistic average critics
  (App. C.1), zero for the hinge loss, the real/fake midpoint (ours) for WGAN
  (:func:`primary_threshold`); the midpoint is shown beside as a second view.
* **Sanity gate**: a comparison is *not comparable* when one of its critics does not
  separate reals from generated images at its threshold (accuracy below
  :data:`SEPARATION_BAR`) or when its run's FDD never fell to half its first evaluation
  (:data:`START_FACTOR` of :mod:`mmgan.gan.outcomes`; the committed measurements keep the first, final and
  lowest FDD but not the history, so a run that stalled and started late still passes this gate).
* **Dual-norm propositions** (§4: penalising ‖∇f‖_q enlarges the L^p margin, p = dual(q)), in both
  directions, and a scale-free shape test (the L¹/L² margin ratio), judged by the pooled rule of
  :mod:`mmgan.gan.propositions`: the seed is the unit, Bonferroni over the three
  (:func:`critic_propositions`).
* **FDD link** (§5's argument that larger L¹ margins make better GANs): does a larger signed L^p margin go with a
  lower FDD *among critics of the same cell*? Cells differ in both margin and FDD for reasons of their own (their
  penalty), so a correlation pooled over cells mixes that between-cell difference into the answer; the verdict is
  drawn within cells (:func:`within_cell_correlation`), against the GAN chapters' primary FDD statistic, the mean
  of the evaluations over the last tenth of training (``end_fdd``, :func:`with_end_fdd`; the statistic ``end``
  of the GAN table chapters). *Holds* when its bootstrap interval (seeds resampled) lies below 0 (larger
  margin, lower FDD), *does not hold* when above 0, *cannot tell at this noise* otherwise; *not comparable* when no
  cell has :data:`MIN_CELL_CRITICS` critics that pass the sanity gate. The pooled ρ (between + within cells) is
  shown beside as a second view only (:func:`fdd_correlation`).
* **Growth along training**: per order p, the per-seed mean over cells of log(margin late /
  margin early), pooled over seeds (:func:`seed_growth`); on the margin over all measured images and, as the scale
  control, on the margin of the fixed real images alone (``real_signed``: the same training images at every
  snapshot, so their margins change only because the critic does).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.base.run_folder import SUMMARY, read_summary
from mmgan.gan.outcomes import START_FACTOR
from mmgan.gan.report import END_SHARE, end_of_training
from mmgan.verdicts import ALPHA, LEVEL, Verdict, paired_t_interval, pooled_effect

SEPARATION_BAR = 0.6
KEYS = ["cell", "loss", "q", "g", "seed", "threshold_rule", "p"]


def primary_threshold(losses: pd.Series | list[str]) -> str:
    """The boundary a study's critics are judged at: the paper's relativistic-average one for RaGAN critics
    (App. C.1), zero for the hinge losses, the midpoint for WGAN and the relativistic paired losses (their critics
    are defined only up to a constant: the loss sees score differences only)."""
    losses = set(losses)
    if all(loss.startswith("ra") for loss in losses):
        return "relativistic"
    if "wgan" in losses or any(loss.startswith("rp") for loss in losses):
        return "midpoint"
    return "zero"


def with_best_upper(measurements: pd.DataFrame) -> pd.DataFrame:
    """``measurements`` plus, per image, ``margin`` (the shorter of estimator and FMN) and ``fmn_shorter``."""
    fmn = measurements["fmn"].fillna(np.inf)
    return measurements.assign(margin=np.minimum(measurements["upper"], fmn),
                               fmn_shorter=fmn < measurements["upper"] * (1 - 1e-3))


def certificate_gap(frame: pd.DataFrame) -> pd.Series:
    """Per order p, the median over rows (images or critics) of ``margin`` / ``certified``: how many times the
    best upper bound lies above the CROWN certificate (1 would be a tight bracket)."""
    return (frame["margin"] / frame["certified"]).groupby(frame["p"]).median()


def per_critic(measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per (critic, threshold rule, order p), and iteration where measured along training:
    margins (unsigned, and signed: negative for an image on the wrong side of its boundary), brackets, sanity
    measures (no accuracy where the loss leaves the critic's level undetermined at its boundary, ``level``), the
    real–fake score gap, the margins of the real images alone (``real_margin``, ``real_signed``: the
    same training images for every critic and snapshot) and, where measured, the margin over the typical distance
    from a generated image to its nearest training image (``normalised``)."""
    frame = with_best_upper(measurements)
    frame["q"] = frame["q"].astype(str)
    frame["correct"] = np.where(frame["image"] == "real", frame["score"] > frame["threshold"],
                                frame["score"] < frame["threshold"])
    frame["signed"] = np.where(frame["correct"], frame["margin"], -frame["margin"])
    frame["real_score"] = frame["score"].where(frame["image"] == "real")
    frame["real_margin"] = frame["margin"].where(frame["image"] == "real")
    frame["real_signed"] = frame["signed"].where(frame["image"] == "real")
    frame["fake_score"] = frame["score"].where(frame["image"] == "fake")
    along = "iteration" in frame
    extra = {"fdd_at_iteration": ("fdd_at_iteration", "first")} if along else {}
    if "certified" in frame:
        extra["certified"] = ("certified", "mean")
    if "nn_distance" in frame:
        extra["nn_scale"] = ("nn_distance", "median")
    if "level" in frame:
        extra["level"] = ("level", "first")
    views = ["mode"] if "mode" in frame else []  # the train- and eval-mode critic apart
    grouped = frame.groupby(KEYS + views + (["iteration"] if along else []), sort=False)
    out = grouped.agg(margin=("margin", "mean"), signed=("signed", "mean"), real_margin=("real_margin", "mean"),
                      real_signed=("real_signed", "mean"), real_score=("real_score", "mean"),
                      fake_score=("fake_score", "mean"), estimator=("upper", "mean"), fmn=("fmn", "mean"),
                      lower=("lower", "mean"), taylor=("taylor", "mean"), accuracy=("correct", "mean"),
                      fmn_shorter_share=("fmn_shorter", "mean"), sign_change_share=("sign_change", "mean"),
                      converged_share=("converged", "mean"), final_fdd=("final_fdd", "first"),
                      lowest_fdd=("lowest_fdd", "first"), first_fdd=("first_fdd", "first"), **extra).reset_index()
    out["learnt"] = out["lowest_fdd"] * START_FACTOR <= out["first_fdd"]
    if "level" in out:  # where the loss leaves the level free, f = t says nothing: no accuracy, no separation
        out.loc[out["level"] == "undetermined", "accuracy"] = math.nan
    out["separates"] = out["accuracy"] >= SEPARATION_BAR
    out["score_gap"] = out.pop("real_score") - out.pop("fake_score")
    if "nn_scale" in out:
        out["normalised"] = out["margin"] / out["nn_scale"]
    return out


#: The propositions about critic margins, each a ratio better / other of one per-critic value between the cells
#: (same loss and penalty shape) with the two gradient norms q: the paper's dual-norm claim (§4: penalising
#: ‖∇f‖_q enlarges the L^p margin, p = dual(q)) in both directions, and a scale-free shape test that an overall
#: smaller or larger critic cannot pass: the L¹ / L² margin ratio.
CRITIC_PROPOSITIONS: dict[str, tuple[str, str, str]] = {  # name: (better q, other q, value)
    "q = ∞ gives larger L¹ margins than q = 2": ("inf", "2", "L1"),
    "q = 2 gives larger L² margins than q = ∞": ("2", "inf", "L2"),
    "q = ∞ gives a larger L¹ / L² margin ratio than q = 2": ("inf", "2", "L1/L2"),
}


def critic_values(critics: pd.DataFrame, measure: str = "signed") -> pd.DataFrame:
    """Per critic (threshold rule, cell, loss, q, g, seed): its L¹ and L² ``measure`` (a column of
    :func:`per_critic`), their ratio L¹/L², and whether it passes the sanity gate at every order."""
    keys = ["threshold_rule", "cell", "loss", "q", "g", "seed"]
    wide = critics.pivot_table(index=keys, columns="p", values=measure, aggfunc="first")
    gate = critics.assign(ok=critics["learnt"] & critics["separates"]).groupby(keys)["ok"].all()
    out = pd.DataFrame({"L1": wide[1.0], "L2": wide[2.0]}, index=wide.index)
    out["L1/L2"] = out["L1"] / out["L2"]
    out["gate"] = gate.reindex(out.index).fillna(False)
    return out.reset_index()


def critic_propositions(critics: pd.DataFrame, rule: str, measure: str = "signed",
                        alpha: float = ALPHA) -> pd.DataFrame:
    """:data:`CRITIC_PROPOSITIONS` at one threshold rule, by the pooled rule of :mod:`mmgan.gan.propositions`: per
    seed, the mean over matched cell pairs of log(better / other), pooled over seeds (the seed is the unit) with
    a t interval at the Bonferroni level 1 − α/m over the m propositions; *not comparable* when a critic of a
    pair fails the sanity gate or its value is not positive (a mean signed margin ≤ 0: the critic puts its
    images on the wrong side on average)."""
    values = critic_values(critics[critics["threshold_rule"] == rule], measure)
    level = 1 - alpha / len(CRITIC_PROPOSITIONS)
    rows = []
    for name, (better, other, value) in CRITIC_PROPOSITIONS.items():
        row = paired_effect(values, "q", better, other, value, ["loss", "g"], level)
        if row is not None:
            rows.append({"threshold": rule, "proposition": name, "measure": measure, **row})
    return pd.DataFrame(rows, columns=["threshold", "proposition", "measure", "seeds", "pairs", "ratio", "lower",
                                       "upper", "level", "verdict"])


def paired_effect(values: pd.DataFrame, column: str, better: str, other: str, value: str, match: list[str],
                  level: float) -> dict[str, Any] | None:
    """The pooled ratio better / other of ``value`` between the critics (rows of ``values``, with ``seed`` and
    ``gate``) at ``column == better`` and at ``column == other``, matched on ``match`` and the seed: per seed the
    mean log ratio over the matched pairs, pooled over seeds (:func:`mmgan.verdicts.pooled_effect`);
    *not comparable* when a critic fails its gate or a value is not positive; None when nothing matches."""
    keys = [*match, "seed"]
    mine = values[values[column] == better].set_index(keys)
    theirs = values[values[column] == other].set_index(keys)
    both = mine.index.intersection(theirs.index)
    if len(both) == 0:
        return None
    a, b = mine.loc[both], theirs.loc[both]
    positive = bool((a[value] > 0).all() and (b[value] > 0).all())
    logs = np.log(a[value] / b[value]) if positive else pd.Series(0.0, index=both)
    effect = pooled_effect(logs.groupby(level="seed").mean().to_numpy(), level)
    comparable = positive and bool(a["gate"].all() and b["gate"].all())
    return {"seeds": effect.seeds, "pairs": len(both.droplevel("seed").unique()),
            "ratio": effect.ratio if positive else math.nan, "lower": effect.lower if positive else math.nan,
            "upper": effect.upper if positive else math.nan, "level": level,
            "verdict": effect.verdict if comparable else Verdict.NOT_COMPARABLE}


#: The per-critic values :func:`seed_growth` reads.
GROWTH_MEASURES = ("margin", "signed", "real_margin", "real_signed", "normalised")


def seed_growth(critics: pd.DataFrame, measure: str = "margin", first: int | None = None,
                last: int | None = None, alpha: float = ALPHA, by_cell: bool = False) -> pd.DataFrame:
    """Do margins grow along training? Per threshold rule and order p: per seed, the mean over the cells whose
    critics pass the sanity gate at both iterations of log(``measure`` at ``last`` / at ``first``), pooled over
    seeds (the seed is the unit, not the critic; :func:`mmgan.verdicts.pooled_effect`) at the Bonferroni
    level over the orders; *holds*: they grow. ``by_cell``: one row per cell as well (its seeds' log ratios pooled
    alone, same level), a ``cell`` column added.

    ``measure`` is a column of :func:`per_critic` (:data:`GROWTH_MEASURES`): ``margin`` or ``signed`` over every
    measured image; ``real_margin`` or ``real_signed`` over the real images alone, the scale control (the same
    training images at every snapshot, so their margins change only because the critic's boundary moves, whereas
    the generated images move as the generator learns); ``normalised``, the margin over the typical
    nearest-training-image distance of the generated images."""
    iterations = sorted(critics["iteration"].unique())
    first, last = iterations[0] if first is None else first, iterations[-1] if last is None else last
    for name, value in (("first", first), ("last", last)):
        if value not in iterations:
            raise ValueError(f"{name}={value} is not a measured iteration; valid: {[int(i) for i in iterations]}")
    if measure not in critics:
        valid = ", ".join(repr(m) for m in GROWTH_MEASURES)
        raise ValueError(f"measure={measure!r} is not measured; valid: {valid}")
    keys = ["threshold_rule", "p", "cell", "seed"]
    start = critics[critics["iteration"] == first].set_index(keys)
    end = critics[critics["iteration"] == last].set_index(keys)
    both = start.index.intersection(end.index)
    start, end = start.loc[both], end.loc[both]
    chosen = start["separates"] & end["separates"] & end["learnt"] & (start[measure] > 0) & (end[measure] > 0)
    logs = np.log(end.loc[chosen, measure] / start.loc[chosen, measure])
    groups = ["threshold_rule", "p", "cell"] if by_cell else ["threshold_rule", "p"]
    measured = pd.Series(1, index=both).groupby(level=groups).size()
    level = 1 - alpha / critics["p"].nunique()
    rows = []
    for key, group in logs.groupby(level=groups, sort=True):
        per_seed = group.groupby(level="seed").mean()
        effect = pooled_effect(per_seed.to_numpy(), level)
        where = dict(zip(["threshold", "p", "cell"], key))
        rows.append({**where, "measure": measure, "from": int(first), "to": int(last), "critics": len(group),
                     "of": int(measured[key]), "seeds": effect.seeds, "ratio": effect.ratio, "lower": effect.lower,
                     "upper": effect.upper, "level": level, "verdict": effect.verdict})
    return pd.DataFrame(rows)


def cell_summary(critics: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, threshold rule, p): mean margin over seeds with its 95% t interval, and the sanity measures."""
    rows = []
    for (cell, rule, p), group in critics.groupby(["cell", "threshold_rule", "p"], sort=False):
        interval = paired_t_interval(group["margin"])
        rows.append({"cell": cell, "threshold": rule, "p": p, "seeds": len(group), "margin": interval.mean,
                     "margin CI low": interval.lower, "margin CI high": interval.upper,
                     "certified lower bound": group["lower"].mean(), "Taylor": group["taylor"].mean(),
                     "FMN shorter (share)": group["fmn_shorter_share"].mean(),
                     "accuracy": group["accuracy"].mean(), "final FDD": group["final_fdd"].mean()})
    return pd.DataFrame(rows)


def along_training(critics: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, p, iteration) of :func:`per_critic` rows measured along training: the mean signed margin over
    seeds with its 95% t interval, the mean signed margin of the (fixed) real images, the mean margin over the
    nearest-training-image scale, the real–fake score gap, the accuracy and the FDD at that iteration."""
    rows = []
    for (cell, p, iteration), group in critics.groupby(["cell", "p", "iteration"], sort=True):
        interval = paired_t_interval(group["signed"])
        rows.append({"cell": cell, "p": p, "iteration": int(iteration), "seeds": len(group), "margin": interval.mean,
                     "margin CI low": interval.lower, "margin CI high": interval.upper,
                     "real margin": group["real_signed"].mean() if "real_signed" in group else math.nan,
                     "normalised": group["normalised"].mean() if "normalised" in group else math.nan,
                     "score gap": group["score_gap"].mean(), "accuracy": group["accuracy"].mean(),
                     "FDD": group["fdd_at_iteration"].mean()})
    return pd.DataFrame(rows)


#: The FDD statistic a critic's margin is set against: the GAN chapters' primary one
#: (``end``), the mean of the run's evaluations over the last
#: :data:`mmgan.gan.report.END_SHARE` of training (a single evaluation fluctuates; the mean of the last few much less).
FDD_STATISTIC = "end_fdd"
#: A cell enters the within-cell correlation with at least this many critics that pass the sanity gate.
MIN_CELL_CRITICS = 3
#: Bootstrap resamples of the correlation intervals.
RESAMPLES = 2000


def with_end_fdd(critics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``critics`` (rows with ``cell``, ``seed`` and ``final_fdd``) plus ``end_fdd``, the GAN chapters' primary
    statistic of each critic's run (:data:`FDD_STATISTIC`, by :func:`mmgan.gan.report.end_of_training`), read from the
    run's ``summary.json``. ``runs`` has one row per run with ``cell``, ``loss``, ``q``, ``g``, ``seed`` and
    ``folder``, as :func:`mmgan.critics.measure.study_runs` lists them for the measured study.

    ``FileNotFoundError`` when a critic's run has no summary; ``ValueError`` when a critic has no run in ``runs``,
    or when a summary's last evaluation is not the ``final_fdd`` measured with the critic (to 1e-5, as the CSV keeps
    it; the folder then holds
    another run than the one measured)."""
    rows, finals = [], {}
    for run in runs.itertuples(index=False):
        summary = read_summary(Path(run.folder) / SUMMARY)
        finals[(run.cell, int(run.seed))] = float(summary["final"])
        # end_of_training keys a run by (loss, norm, g, seed): the cell name stands in for the first three
        rows += [{"loss": run.cell, "norm": "", "g": "", "seed": int(run.seed), "iteration": iteration,
                  "value": value} for iteration, value in summary["history"]]
    end = end_of_training(pd.DataFrame(rows), END_SHARE) if rows else pd.Series(dtype=float)
    end = {(cell, seed): value for (cell, _, _, seed), value in end.items()}
    keys = list(zip(critics["cell"], critics["seed"].astype(int)))
    missing = sorted({key for key in keys if key not in end})
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise ValueError(f"no run listed for the critics (cell, seed) {missing[:5]}{more}")
    measured = dict(zip(keys, critics["final_fdd"]))
    other = [key for key, final in measured.items() if not math.isclose(finals[key], final, rel_tol=1e-5)]
    if other:
        raise ValueError(f"the runs {other[:5]} end at another FDD than the one measured with their critics: their "
                         f"folders hold other runs than those measured")
    return critics.assign(end_fdd=[end[key] for key in keys])


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of each row of an (R, n) array, NaN entries left out (0 there), centred on the row's mean."""
    ranks = stats.rankdata(values, axis=1, nan_policy="omit")
    present = np.isfinite(ranks)
    ranks = np.where(present, ranks, 0.0)
    mean = ranks.sum(1, keepdims=True) / np.maximum(present.sum(1, keepdims=True), 1)
    return np.where(present, ranks - mean, 0.0)


def _correlation(parts: list[tuple[np.ndarray, np.ndarray]], within: bool) -> np.ndarray:
    """Per row: the correlation of ranks over the pooled columns of ``parts`` ((R, n_c) pairs, NaN where absent),
    ranked within each part (``within``) or over all parts together; NaN for a row without spread."""
    if within:
        ranked = [(_centred_ranks(x), _centred_ranks(y)) for x, y in parts]
    else:
        ranked = [(_centred_ranks(np.concatenate([x for x, _ in parts], axis=1)),
                   _centred_ranks(np.concatenate([y for _, y in parts], axis=1)))]
    product = sum((x * y).sum(1) for x, y in ranked)
    norm = np.sqrt(sum((x * x).sum(1) for x, _ in ranked) * sum((y * y).sum(1) for _, y in ranked))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, product / np.where(norm > 0, norm, 1.0), np.nan)


def within_cell_correlation(critics: pd.DataFrame, rule: str, p: float, measure: str = "signed",
                            fdd: str = FDD_STATISTIC, resamples: int = RESAMPLES, seed: int = 0,
                            level: float = LEVEL) -> dict[str, Any]:
    """Does a larger L^p margin go with a lower FDD among the critics of one cell? The stratified Spearman
    correlation between a critic's ``measure`` (default: its mean signed margin) and its run's ``fdd`` (default:
    the GAN chapters' primary statistic, :data:`FDD_STATISTIC`) at boundary ``rule`` and order ``p``.

    **Statistic.** Both are ranked within each cell (average ranks for ties), the ranks centred on their cell's mean,
    and ρ is the correlation of these centred ranks pooled over the cells: the rank analogue of a linear model with
    the cell as a fixed effect, so that a difference between cells (the q = ∞ cell with both smaller margins and a
    worse FDD) carries no weight, only the order of the critics inside each cell does. With the same number of
    critics in every cell and no ties it equals the mean of the per-cell ρ (every critic counts once); unlike that
    mean it stays defined with uneven cells and ties (a cell weighs by the spread of its ranks). Only critics that
    pass the sanity gate count, in cells with at least :data:`MIN_CELL_CRITICS` of them (the others are left out
    and counted).

    **Interval.** A percentile bootstrap (``resamples``) in which the seed is the unit: each resample draws the
    seeds with replacement and every cell takes its critics of the drawn seeds (runs with one seed share the data
    order, the noise and the initial weights in every cell, so they are not independent across cells), ranks
    within cells again and recomputes ρ; resamples without spread are left out.

    **Verdict** on "a larger margin goes with a better (lower-FDD) GAN": *holds* when the ``level`` interval lies
    below 0, *does not hold* when it lies above 0, *cannot tell at this noise* otherwise; *not comparable* when no
    cell has enough critics, or the critics kept have no spread.

    The pooled Spearman ρ over the same critics, ranked over all cells together (between + within cells), is
    returned beside with its interval from the same resamples, as a second view only: cells that differ in both
    margin and FDD make it large whether or not the margin orders the critics of one cell.

    Returns ``threshold``, ``p``, ``measure``, ``fdd``, ``critics`` (kept), ``of`` (measured), ``cells`` (kept),
    ``cells left out``, ``seeds``, ``rho``, ``rho CI low``, ``rho CI high``, ``per cell`` (cell → its own
    Spearman ρ), ``pooled rho``, ``pooled CI low``, ``pooled CI high``, ``level`` and ``verdict``."""
    for column in (measure, fdd):
        if column not in critics:
            raise ValueError(f"{column!r} is not a column of the critics; the margin may be 'signed' or 'margin', "
                             f"the FDD 'end_fdd' (with_end_fdd), 'final_fdd' or 'lowest_fdd'")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    at = critics[(critics["threshold_rule"] == rule) & (critics["p"] == p)]
    gated = at[at["learnt"] & at["separates"]]
    sizes = gated.groupby("cell", sort=False).size()
    kept = gated[gated["cell"].isin(sizes[sizes >= MIN_CELL_CRITICS].index)]
    cells = list(dict.fromkeys(kept["cell"]))
    out: dict[str, Any] = {"threshold": rule, "p": p, "measure": measure, "fdd": fdd, "critics": len(kept),
                           "of": len(at), "cells": len(cells), "cells left out": at["cell"].nunique() - len(cells),
                           "seeds": kept["seed"].nunique(), "rho": math.nan, "rho CI low": math.nan,
                           "rho CI high": math.nan, "per cell": {}, "pooled rho": math.nan,
                           "pooled CI low": math.nan, "pooled CI high": math.nan, "level": level,
                           "verdict": Verdict.NOT_COMPARABLE}
    if not cells:
        return out
    seeds = sorted(kept["seed"].unique())
    position = {s: i for i, s in enumerate(seeds)}
    parts = []  # per cell: (margin, FDD) at each seed's position, NaN where the cell has no critic of that seed
    for cell in cells:
        rows = kept[kept["cell"] == cell]
        x, y = np.full(len(seeds), np.nan), np.full(len(seeds), np.nan)
        for s, value, quality in zip(rows["seed"], rows[measure], rows[fdd]):
            x[position[s]], y[position[s]] = value, quality
        parts.append((x, y))
        out["per cell"][cell] = (float(stats.spearmanr(rows[measure], rows[fdd]).statistic)
                                 if rows[measure].nunique() > 1 and rows[fdd].nunique() > 1 else math.nan)
    observed = [(x[None], y[None]) for x, y in parts]
    rho, pooled = float(_correlation(observed, True)[0]), float(_correlation(observed, False)[0])
    out.update({"rho": rho, "pooled rho": pooled})
    if math.isnan(rho):
        return out
    draws = np.random.default_rng(seed).integers(0, len(seeds), (resamples, len(seeds)))
    resampled = [(x[draws], y[draws]) for x, y in parts]
    tails = [(1 - level) / 2, (1 + level) / 2]
    for name, within in (("rho", True), ("pooled", False)):
        values = _correlation(resampled, within)
        values = values[np.isfinite(values)]
        if len(values):
            out[f"{name} CI low"], out[f"{name} CI high"] = (float(v) for v in np.quantile(values, tails))
    low, high = out["rho CI low"], out["rho CI high"]
    if high < 0:
        out["verdict"] = Verdict.HOLDS
    elif low > 0:
        out["verdict"] = Verdict.DOES_NOT_HOLD
    else:
        out["verdict"] = Verdict.CANNOT_TELL
    return out


def fdd_correlation(critics: pd.DataFrame, rule: str, p: float, resamples: int = RESAMPLES, seed: int = 0,
                    measure: str = "margin", fdd: str = "final_fdd") -> dict[str, object]:
    """Spearman's ρ between a critic's L^p ``measure`` and its run's ``fdd`` over the critics that pass the
    sanity gate (``critics`` of them, ``of`` measured), pooled over the cells, with a bootstrap interval over those
    critics. Between + within cells: a second view only, since cells that differ in both margin and FDD make it
    large whatever the order within a cell; the book's verdicts use :func:`within_cell_correlation`."""
    at = critics[(critics["threshold_rule"] == rule) & (critics["p"] == p)]
    chosen = at[at["learnt"] & at["separates"]]
    if len(chosen) < 3:
        return {"threshold": rule, "p": p, "critics": len(chosen), "of": len(at), "rho": math.nan,
                "rho CI low": math.nan, "rho CI high": math.nan, "verdict": Verdict.NOT_COMPARABLE}
    margin, fdd_values = chosen[measure].to_numpy(), chosen[fdd].to_numpy()
    rho = float(stats.spearmanr(margin, fdd_values).statistic)
    index = np.random.default_rng(seed).integers(0, len(chosen), (resamples, len(chosen)))
    draws = _rank_correlations(margin[index], fdd_values[index])
    low, high = np.quantile(draws, [0.025, 0.975])
    if high < 0:
        verdict = Verdict.HOLDS
    elif low > 0:
        verdict = Verdict.DOES_NOT_HOLD
    else:
        verdict = Verdict.CANNOT_TELL
    return {"threshold": rule, "p": p, "critics": len(chosen), "of": len(at), "rho": rho, "rho CI low": float(low),
            "rho CI high": float(high), "verdict": verdict}


def _rank_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row pair of (R, n) arrays (average ranks for ties), rows without spread left out."""
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    spread = norm > 0
    return (ra * rb).sum(1)[spread] / norm[spread]
