"""What the chapter "Margins of GAN critics" reports, computed from :mod:`mmgan.critic_margins` measurements.

The rules the chapter states:

* **Margin of an image**: the best known upper bound of its distance to {f = t}, the
  smaller of the estimator's and FMN's distances (both reach a point where f − t changes
  sign). A critic's margin at order p is the mean over its measured images (reals and
  generated images alike).
* **Sanity gate**: a comparison is *not comparable* when one of its critics does not
  separate reals from generated images at its threshold (accuracy below
  :data:`SEPARATION_BAR`) or when its run did not learn (lowest FDD not at least
  :data:`LEARNT_FACTOR` times below the first evaluation).
* **Dual-norm claim** (§4): penalising ‖∇f‖_q gives a larger L^p margin, p = dual(q),
  than penalising another norm. For two cells of the same loss and penalty shape that
  differ in q, the per-seed log ratio of their L^p margins (seeds share data order,
  noise and initial weights) gets a 95% t interval: *holds* when it lies above 0, *does
  not hold* below 0, else *cannot tell at this noise*.
* **FDD link** (§5's argument that larger L¹ margins make better GANs): Spearman's rank
  correlation across the critics that pass the sanity gate between the L^p margin and
  the final FDD, with a bootstrap 95% interval over those critics: *holds* when the
  interval lies below 0 (larger margin, lower FDD), *does not hold* when above 0; *not
  comparable* when fewer than 3 critics pass the gate.
* **Growth along training**: per order p, over the critics that pass the gate at both
  iterations, the 95% t interval of log(margin late / margin early): margins *grow*
  (holds) when it lies above 0, *shrink* (does not hold) below 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.gan_chapter import LEARNT_FACTOR
from mmgan.verdicts import Interval, Verdict, interval_verdict, paired_t_interval

SEPARATION_BAR = 0.6
#: p = dual(q) for the gradient norms of the GAN tables (smax, a smooth maximum, is left out).
DUAL_ORDER = {"1": math.inf, "2": 2.0, "inf": 1.0}
KEYS = ["cell", "loss", "q", "g", "seed", "threshold_rule", "p"]


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
    margins, brackets, sanity measures."""
    frame = with_best_upper(measurements)
    frame["q"] = frame["q"].astype(str)
    frame["correct"] = np.where(frame["image"] == "real", frame["score"] > frame["threshold"],
                                frame["score"] < frame["threshold"])
    along = "iteration" in frame
    extra = {"fdd_at_iteration": ("fdd_at_iteration", "first")} if along else {}
    if "certified" in frame:
        extra["certified"] = ("certified", "mean")
    grouped = frame.groupby(KEYS + (["iteration"] if along else []), sort=False)
    out = grouped.agg(margin=("margin", "mean"), estimator=("upper", "mean"), fmn=("fmn", "mean"),
                      lower=("lower", "mean"), taylor=("taylor", "mean"), accuracy=("correct", "mean"),
                      fmn_shorter_share=("fmn_shorter", "mean"), sign_change_share=("sign_change", "mean"),
                      converged_share=("converged", "mean"), final_fdd=("final_fdd", "first"),
                      lowest_fdd=("lowest_fdd", "first"), first_fdd=("first_fdd", "first"), **extra).reset_index()
    out["learnt"] = out["lowest_fdd"] * LEARNT_FACTOR <= out["first_fdd"]
    out["separates"] = out["accuracy"] >= SEPARATION_BAR
    return out


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
    """Per (cell, p, iteration) of :func:`per_critic` rows measured along training: the mean margin over
    seeds with its 95% t interval, the accuracy and the FDD at that iteration."""
    rows = []
    for (cell, p, iteration), group in critics.groupby(["cell", "p", "iteration"], sort=True):
        interval = paired_t_interval(group["margin"])
        rows.append({"cell": cell, "p": p, "iteration": int(iteration), "seeds": len(group), "margin": interval.mean,
                     "margin CI low": interval.lower, "margin CI high": interval.upper,
                     "accuracy": group["accuracy"].mean(), "FDD": group["fdd_at_iteration"].mean()})
    return pd.DataFrame(rows)


def dual_norm_along_training(critics: pd.DataFrame) -> pd.DataFrame:
    """:func:`dual_norm_comparisons` at every measured iteration (one more column, ``iteration``)."""
    frames = [dual_norm_comparisons(group).assign(iteration=int(iteration))
              for iteration, group in critics.groupby("iteration", sort=True)]
    return pd.concat(frames, ignore_index=True)


def margin_growth(critics: pd.DataFrame, first: int | None = None, last: int | None = None) -> pd.DataFrame:
    """Do margins grow along training? Per threshold rule and order p, over the critics (cell, seed)
    that pass the sanity gate at both iterations (default: the first and last measured), the 95% t
    interval of log(margin at ``last`` / margin at ``first``), shown as a ratio: *holds* (they grow)
    when it lies above 1, *does not hold* (they shrink) below 1, *not comparable* with fewer than 3
    critics."""
    iterations = sorted(critics["iteration"].unique())
    first, last = iterations[0] if first is None else first, iterations[-1] if last is None else last
    for name, value in (("first", first), ("last", last)):
        if value not in iterations:
            raise ValueError(f"{name}={value} is not a measured iteration; valid: {[int(i) for i in iterations]}")
    keys = ["threshold_rule", "p", "cell", "seed"]
    start = critics[critics["iteration"] == first].set_index(keys)
    end = critics[critics["iteration"] == last].set_index(keys)
    both = start.index.intersection(end.index)
    start, end = start.loc[both], end.loc[both]
    paired = pd.DataFrame({"log_ratio": np.log(end["margin"] / start["margin"]),
                           "gate": start["separates"] & end["separates"] & end["learnt"]}, index=both)
    rows = []
    for (rule, p), group in paired.groupby(level=["threshold_rule", "p"], sort=True):
        chosen = group.loc[group["gate"], "log_ratio"]
        if len(chosen) < 3:
            interval, verdict = Interval(math.nan, math.nan, math.nan, len(chosen)), Verdict.NOT_COMPARABLE
        else:
            interval = paired_t_interval(chosen).map(math.exp)
            verdict = interval_verdict(interval, 1.0)
        rows.append({"threshold": rule, "p": p, "from": int(first), "to": int(last), "critics": len(chosen),
                     "of": len(group), "ratio": interval.mean, "ratio CI low": interval.lower,
                     "ratio CI high": interval.upper, "verdict": verdict})
    return pd.DataFrame(rows)


def _comparable(critics: pd.DataFrame) -> bool:
    return bool(critics["learnt"].all() and critics["separates"].all())


def dual_norm_comparisons(critics: pd.DataFrame) -> pd.DataFrame:
    """Every pair of cells (same loss, same g, different q ∈ DUAL_ORDER), judged at p = dual(q) of the first."""
    rows = []
    for rule, by_rule in critics.groupby("threshold_rule", sort=False):
        cells = by_rule[["cell", "loss", "q", "g"]].drop_duplicates()
        for (_, a), (_, b) in itertools.permutations(cells.iterrows(), 2):
            if a["loss"] != b["loss"] or a["g"] != b["g"] or a["q"] not in DUAL_ORDER or b["q"] not in DUAL_ORDER:
                continue
            p = DUAL_ORDER[a["q"]]
            at_p = by_rule[by_rule["p"] == p].set_index("seed")
            mine, theirs = at_p[at_p["cell"] == a["cell"]], at_p[at_p["cell"] == b["cell"]]
            seeds = mine.index.intersection(theirs.index)
            if len(seeds) == 0:
                continue
            log_ratio = np.log(mine.loc[seeds, "margin"] / theirs.loc[seeds, "margin"])
            interval = paired_t_interval(log_ratio).map(math.exp)
            verdict = (interval_verdict(interval, 1.0)
                       if _comparable(pd.concat([mine.loc[seeds], theirs.loc[seeds]])) else Verdict.NOT_COMPARABLE)
            rows.append({"threshold": rule, "claim": f"{a['cell']} has larger L{_p_text(p)} margins than {b['cell']}",
                         "p": p, "seeds": len(seeds), "ratio": interval.mean, "ratio CI low": interval.lower,
                         "ratio CI high": interval.upper, "verdict": verdict})
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


def _p_text(p: float) -> str:
    return "∞" if math.isinf(p) else f"{p:g}"
