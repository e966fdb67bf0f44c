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
  :mod:`mmgan.book.propositions`: the seed is the unit, Bonferroni over the three
  (:func:`critic_propositions`).
* **FDD link** (§5's argument that larger L¹ margins make better GANs): Spearman's rank
  correlation across the critics that pass the sanity gate between the L^p margin and
  the final FDD, with a bootstrap 95% interval over those critics: *holds* when the
  interval lies below 0 (larger margin, lower FDD), *does not hold* when above 0; *not
  comparable* when fewer than 3 critics pass the gate.
* **Growth along training**: per order p, the per-seed mean over cells of log(margin late /
  margin early), pooled over seeds; on the raw margin and on the margin over each critic's
  typical nearest-training-image distance of its generated images (:func:`seed_growth`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.book.propositions import ALPHA, pooled_effect
from mmgan.book.verdicts import Verdict, paired_t_interval
from mmgan.gan.outcomes import START_FACTOR

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
    measures, the real–fake score gap and, where measured, the margin over the typical distance from a generated
    image to its nearest training image (``normalised``)."""
    frame = with_best_upper(measurements)
    frame["q"] = frame["q"].astype(str)
    frame["correct"] = np.where(frame["image"] == "real", frame["score"] > frame["threshold"],
                                frame["score"] < frame["threshold"])
    frame["signed"] = np.where(frame["correct"], frame["margin"], -frame["margin"])
    frame["real_score"] = frame["score"].where(frame["image"] == "real")
    frame["fake_score"] = frame["score"].where(frame["image"] == "fake")
    along = "iteration" in frame
    extra = {"fdd_at_iteration": ("fdd_at_iteration", "first")} if along else {}
    if "certified" in frame:
        extra["certified"] = ("certified", "mean")
    if "nn_distance" in frame:
        extra["nn_scale"] = ("nn_distance", "median")
    grouped = frame.groupby(KEYS + (["iteration"] if along else []), sort=False)
    out = grouped.agg(margin=("margin", "mean"), signed=("signed", "mean"), real_score=("real_score", "mean"),
                      fake_score=("fake_score", "mean"), estimator=("upper", "mean"), fmn=("fmn", "mean"),
                      lower=("lower", "mean"), taylor=("taylor", "mean"), accuracy=("correct", "mean"),
                      fmn_shorter_share=("fmn_shorter", "mean"), sign_change_share=("sign_change", "mean"),
                      converged_share=("converged", "mean"), final_fdd=("final_fdd", "first"),
                      lowest_fdd=("lowest_fdd", "first"), first_fdd=("first_fdd", "first"), **extra).reset_index()
    out["learnt"] = out["lowest_fdd"] * START_FACTOR <= out["first_fdd"]
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
    """:data:`CRITIC_PROPOSITIONS` at one threshold rule, by the pooled rule of :mod:`mmgan.book.propositions`: per
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
    mean log ratio over the matched pairs, pooled over seeds (:func:`mmgan.book.propositions.pooled_effect`);
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


def seed_growth(critics: pd.DataFrame, measure: str = "margin", first: int | None = None,
                last: int | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Do margins grow along training? Per threshold rule and order p: per seed, the mean over the cells whose
    critics pass the sanity gate at both iterations of log(``measure`` at ``last`` / at ``first``), pooled over
    seeds (the seed is the unit, not the critic) at the Bonferroni level over the orders; *holds*: they grow.
    ``measure`` is ``margin`` or ``normalised`` (the margin over the typical nearest-training-image distance of the
    generated images, so that images moving closer to the data do not read as shrinking margins)."""
    iterations = sorted(critics["iteration"].unique())
    first, last = iterations[0] if first is None else first, iterations[-1] if last is None else last
    for name, value in (("first", first), ("last", last)):
        if value not in iterations:
            raise ValueError(f"{name}={value} is not a measured iteration; valid: {[int(i) for i in iterations]}")
    if measure not in critics:
        raise ValueError(f"measure={measure!r} is not measured; valid: 'margin', 'signed', 'normalised'")
    keys = ["threshold_rule", "p", "cell", "seed"]
    start = critics[critics["iteration"] == first].set_index(keys)
    end = critics[critics["iteration"] == last].set_index(keys)
    both = start.index.intersection(end.index)
    start, end = start.loc[both], end.loc[both]
    chosen = start["separates"] & end["separates"] & end["learnt"] & (start[measure] > 0) & (end[measure] > 0)
    logs = np.log(end.loc[chosen, measure] / start.loc[chosen, measure])
    measured = pd.Series(1, index=both).groupby(level=["threshold_rule", "p"]).size()
    rows = []
    for (rule, p), group in logs.groupby(level=["threshold_rule", "p"], sort=True):
        per_seed = group.groupby(level="seed").mean()
        effect = pooled_effect(per_seed.to_numpy(), 1 - alpha / critics["p"].nunique())
        rows.append({"threshold": rule, "p": p, "measure": measure, "from": int(first), "to": int(last),
                     "critics": len(group), "of": int(measured[(rule, p)]), "seeds": effect.seeds,
                     "ratio": effect.ratio, "lower": effect.lower, "upper": effect.upper, "verdict": effect.verdict})
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
    seeds with its 95% t interval, the mean margin over the nearest-training-image scale, the real–fake score gap,
    the accuracy and the FDD at that iteration."""
    rows = []
    for (cell, p, iteration), group in critics.groupby(["cell", "p", "iteration"], sort=True):
        interval = paired_t_interval(group["signed"])
        rows.append({"cell": cell, "p": p, "iteration": int(iteration), "seeds": len(group), "margin": interval.mean,
                     "margin CI low": interval.lower, "margin CI high": interval.upper,
                     "normalised": group["normalised"].mean() if "normalised" in group else math.nan,
                     "score gap": group["score_gap"].mean(), "accuracy": group["accuracy"].mean(),
                     "FDD": group["fdd_at_iteration"].mean()})
    return pd.DataFrame(rows)


def fdd_correlation(critics: pd.DataFrame, rule: str, p: float, resamples: int = 2000,
                    seed: int = 0) -> dict[str, object]:
    """Spearman's ρ between a critic's L^p margin and its run's final FDD over the critics that pass the
    sanity gate (``critics`` of them, ``of`` measured), with a bootstrap interval over those critics."""
    at = critics[(critics["threshold_rule"] == rule) & (critics["p"] == p)]
    chosen = at[at["learnt"] & at["separates"]]
    if len(chosen) < 3:
        return {"threshold": rule, "p": p, "critics": len(chosen), "of": len(at), "rho": math.nan,
                "rho CI low": math.nan, "rho CI high": math.nan, "verdict": Verdict.NOT_COMPARABLE}
    margin, fdd = chosen["margin"].to_numpy(), chosen["final_fdd"].to_numpy()
    rho = float(stats.spearmanr(margin, fdd).statistic)
    index = np.random.default_rng(seed).integers(0, len(chosen), (resamples, len(chosen)))
    draws = _rank_correlations(margin[index], fdd[index])
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
