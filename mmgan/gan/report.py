"""Comparing our GAN runs with Tables 2–8: cell means beside the paper's FIDs, the statistics the
propositions are judged on (:mod:`mmgan.gan.propositions`), and whether the runs learnt and levelled off.

Lower is better for FID and FDD. A run's *cell* is ``(loss, norm, g)`` (see
:func:`mmgan.gan.propositions.norm_level`), so that the released code's signed maximum
sits beside the true L^∞ norm in one table.

Statistics of a run (from its metric history):

* ``final``: the last evaluation (what the paper reports);
* ``end``: the mean of the evaluations in the last :data:`END_SHARE` of training
  (at the ``cpu`` preset the last 4 of 40); a single evaluation of a GAN
  fluctuates from one evaluation to the next, the mean of the last few much less;
* ``lowest``: the best evaluation (Table 6 reports it).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats as scipy_stats

from mmgan.base import run_folder
from mmgan.gan.config import END_SHARE
from mmgan.gan.propositions import CELL
from mmgan.paper import paper_table
from mmgan.verdicts import ALPHA, interval_text

#: The share of training whose evaluations are averaged into the ``end`` statistic.
#: The statistics of a run, in the order the chapters show them.
STATISTICS = ("end", "final", "lowest")


def paper_cells(table: str | None, stat: str = "final") -> pd.DataFrame:
    """The paper's cells of its ``table`` (``loss``, ``q``, ``norm`` (= q), ``g``, ``value``) for one statistic;
    the paper reports single final (and, in Table 6, lowest) FIDs, so ``end`` reads its final ones. None (a
    study beyond the paper): no cells."""
    if table is None:
        return pd.DataFrame(columns=["loss", "q", "norm", "g", "value"]).astype({"value": float})
    frame = paper_table(table)
    frame = frame[frame["stat"] == ("final" if stat == "end" else stat)].copy()
    frame["norm"] = frame["q"]
    return frame[["loss", "q", "norm", "g", "value"]]


def cell_means(results: pd.DataFrame, stat: str = "final") -> pd.DataFrame:
    """Per cell ``(loss, norm, g)`` (with its ``q``) over seeds: the median and quartiles of ``stat`` (robust to
    one run that stalled: the chapters rank cells by the median), the mean and standard deviation, and the count."""
    grouped = results.groupby([*CELL, "q"], sort=False)[stat]
    out = grouped.agg(["median", "mean", "std", "count"])
    out["q1"], out["q3"] = grouped.quantile(0.25), grouped.quantile(0.75)
    return out.reset_index()


def side_by_side(results: pd.DataFrame, table: str | None, stat: str = "final",
                 verdicts: bool = True) -> pd.DataFrame:
    """Our metric (median [interquartile range] over seeds, and how many seeds) beside the FID of the paper's
    ``table``, with the rank of each within its table (ours by the median); ``verdicts=False`` marks the column
    "no verdict" (runs that cannot carry one). ``table`` None (a study beyond the paper): ours only.

    The paper's q = ∞ runs were made with the released code's signed maximum, so its q = ∞ value stands
    beside both our true L^∞ cell and our signed-maximum cell."""
    ours = cell_means(results, stat)
    merged = ours.merge(paper_cells(table, stat).drop(columns="norm"), on=["loss", "q", "g"], how="left")
    merged["ours rank"] = merged["median"].rank(method="min").astype(int)
    merged["paper rank"] = merged["value"].rank(method="min").astype("Int64")  # ties share the better rank
    label = f"{results['metric'].iloc[0].upper()} ({results['dataset'].iloc[0]}, {results['preset'].iloc[0]}, " \
            f"{int(results['iterations'].iloc[0])} it., {stat}{'' if verdicts else '; no verdict'})"
    merged[f"ours: {label}, median [IQR]"] = [f"{m:.2f} [{a:.2f}, {b:.2f}]" if c > 1 else f"{m:.2f}"
                                              for m, a, b, c in zip(merged["median"], merged["q1"], merged["q3"],
                                                                    merged["count"])]
    merged["seeds"] = merged["count"]
    merged["paper: FID (TF, 100k it.)"] = merged["value"]
    keep = [*CELL, f"ours: {label}, median [IQR]", "seeds", "ours rank",
            *(["paper: FID (TF, 100k it.)", "paper rank"] if table is not None else [])]
    return merged[keep].rename(columns={"norm": "q"}).set_index(["loss", "q", "g"])


def rank_agreement(results: pd.DataFrame, table: str | None, stat: str = "final") -> float:
    """Spearman correlation between our cell medians and the paper's values over the cells run with the true
    norm (NaN if < 3 cells)."""
    means = cell_means(results, stat)
    means = means[means["norm"] == means["q"]]
    merged = means.merge(paper_cells(table, stat).drop(columns="norm"), on=["loss", "q", "g"])
    if len(merged) < 3:
        return math.nan
    return float(scipy_stats.spearmanr(merged["median"], merged["value"]).statistic)


def end_of_training(curves: pd.DataFrame, share: float = END_SHARE) -> pd.Series:
    """Per run of ``curves`` (:func:`mmgan.gan.tables.metric_curves`): the mean of its evaluations after
    ``(1 − share)`` of its iterations (at least the last one), indexed by (loss, norm, g, seed); ``ValueError``
    if one of them used fewer samples than the run's full count (``samples``, where the curves have it)."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    out = {}
    for key, run in curves.groupby([*CELL, "seed"], sort=False):
        late = run["iteration"] > run["iteration"].max() * (1 - share)
        if "samples" in run and (run.loc[late, "samples"] < run["samples"].max()).any():
            raise ValueError(f"run {key}: an evaluation in the last {share:.0%} of training used fewer samples "
                             f"({run.loc[late, 'samples'].min()}) than the run's full count ({run['samples'].max()})")
        out[key] = float(run.loc[late, "value"].mean())
    return pd.Series(out, dtype=float).rename_axis([*CELL, "seed"])


def run_statistics(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its cell, ``q``, seed and the statistics of :data:`STATISTICS`."""
    finished = results[results["status"] == "finished"]
    end = end_of_training(curves).rename("end").reset_index()
    frame = finished[[*CELL, "q", "seed", "final", "lowest"]].merge(end, on=[*CELL, "seed"], how="left")
    return frame[[*CELL, "q", "seed", *STATISTICS]]


def read_log(run: str | Path) -> pd.DataFrame:
    """The training log of a run (log.jsonl, checked by :func:`mmgan.base.run_folder.read_log`): one row per logged
    iteration (metric rows dropped)."""
    frame = pd.DataFrame(run_folder.read_log(Path(run) / run_folder.LOG))
    return frame.dropna(subset=["critic_loss"]) if "critic_loss" in frame else frame


def loss_gap(results: pd.DataFrame, first: str = "wgan", second: str = "hinge",
             column: str = "critic_loss") -> pd.DataFrame:
    """Per (q, g, seed): the range of ``column`` of the ``second`` loss's run minus the ``first``'s.

    The hinge critic loss E max(0, 1 − C(x₁)) + E max(0, 1 + C(x₂)) equals WGAN's −E C(x₁) + E C(x₂)
    plus 2 whenever every critic output lies in (−1, 1); two runs with the same seed then take
    identical steps, and the gap stays exactly 2 (min = max = 2). ``q`` is the run's ``norm``.
    """
    rows = []
    runs = results.set_index([*CELL, "seed"])["run"]
    for (loss, norm, g, seed), run in runs.items():
        if loss != first or (second, norm, g, seed) not in runs.index:
            continue
        a, b = read_log(run), read_log(runs[(second, norm, g, seed)])
        merged = a[["iteration", column]].merge(b[["iteration", column]], on="iteration", suffixes=("_a", "_b"))
        gap = merged[f"{column}_b"] - merged[f"{column}_a"]
        rows.append({"q": norm, "g": g, "seed": seed, "gap min": gap.min(), "gap max": gap.max(),
                     "logged iterations": len(gap)})
    return pd.DataFrame(rows)


def loss_ties(results: pd.DataFrame, offset: float = 2.0, tolerance: float = 1e-4) -> pd.DataFrame:
    """Per (q, g) of :func:`loss_gap`: the gap's range over seeds, and ``tied``: it stayed ``offset`` throughout.

    A tied cell is one where the hinge and WGAN runs took identical steps in every seed (the gap
    min = max = 2 up to ``tolerance``); empty when the study has no matched WGAN/hinge pairs.
    """
    gaps = loss_gap(results)
    if gaps.empty:
        return pd.DataFrame(columns=["gap min", "gap max", "tied"],
                            index=pd.MultiIndex.from_arrays([[], []], names=["q", "g"]))
    summary = gaps.groupby(["q", "g"]).agg({"gap min": "min", "gap max": "max"})
    off = (summary[["gap min", "gap max"]] - offset).abs()
    summary["tied"] = off.max(axis=1) < tolerance
    return summary


def tie_sentence(ties: pd.DataFrame) -> str:
    """One sentence naming the tied cells of :func:`loss_ties` (or saying that none tie, or none were compared)."""
    if ties.empty:
        return "The committed study has no WGAN and HingeGAN runs of the same cell and seed, so no tie is checked here."
    tied = [f"q = {q} with the {g} penalty" for (q, g), row in ties.iterrows() if row["tied"]]
    compared = len(ties)
    if not tied:
        return (f"In none of the {compared} compared cells is the hinge critic loss the WGAN loss plus exactly 2 "
                "throughout: the two losses took different steps everywhere.")
    return (f"In {len(tied)} of the {compared} compared cells ({', '.join(tied)}) the hinge critic loss is the WGAN "
            "critic loss plus exactly 2 at every logged iteration of every seed.")


def learning(curves: pd.DataFrame, share: float = END_SHARE) -> pd.DataFrame:
    """Per run of ``curves``: did it learn, and had it levelled off?

    ``first``, ``best``: its first and best evaluation (the learning gate compares them);
    ``late change``: the mean of its evaluations in the last ``share`` of training over the mean of those
    in the ``share`` of training that ends at three quarters, minus 1 (−0.2: the metric fell by a further
    20% in the last quarter; near 0: levelled off). Means of several evaluations, so that one noisy
    evaluation does not decide.
    """
    if not 0 < share < 0.75:
        raise ValueError(f"share must be in (0, 0.75), got {share!r}")
    rows = []
    for (loss, norm, g, seed), run in curves.groupby([*CELL, "seed"], sort=False):
        last = run["iteration"].max()
        end = run.loc[run["iteration"] > last * (1 - share), "value"]
        before = run.loc[(run["iteration"] > last * (0.75 - share)) & (run["iteration"] <= last * 0.75), "value"]
        change = float(end.mean() / before.mean() - 1) if len(before) else math.nan  # NaN: too few evaluations
        rows.append({"loss": loss, "norm": norm, "g": g, "seed": seed, "first": run["value"].iloc[0],
                     "best": run["value"].min(), "late change": change})
    return pd.DataFrame(rows, columns=["loss", "norm", "g", "seed", "first", "best", "late change"])


def proposition_table(judged: dict[str, pd.DataFrame], paper_ratios: pd.DataFrame, primary: str,
                      metric: str) -> pd.DataFrame:
    """The propositions as a chapter shows them, both judgements of :func:`mmgan.gan.propositions.judge`:

    * reliability: runs that did not learn at each level (k of the matched comparisons), the difference of
      failure shares with its interval and sign-flip p, and the verdict;
    * quality among runs that learnt, for the ``primary`` statistic: the pooled ratio other / better, its
      interval and verdict (it decides), the Hodges–Lehmann ratio with its interval (the robust companion),
      seeds × pairs, whether the pairs agree (pair × level interaction), the seeds its spread would need for
      ±15%; for every other statistic of ``judged`` its ratio, interval and verdict in one column;
    * the paper's ratio over the same pairs and how many go the predicted way; what was left out.

    ``judged``: statistic → :func:`mmgan.gan.propositions.judge` frame (verdicts already gated).
    """
    main = judged[primary]
    metric = metric.upper()
    level = main["level"].iloc[0] if len(main) else 0.95
    rows = {}
    for name, row in main.iterrows():
        n = int(row["comparisons"])
        interaction = row["interaction p"]
        out = {
            "runs that did not learn (better / other)": f"{int(row['failed better'])} / {int(row['failed other'])} "
                                                        f"of {n}",
            "reliability: Δ failure share [interval], p": (
                f"{row['failure delta']:+.2f} {interval_text(row['failure lower'], row['failure upper'])}, "
                f"p = {row['failure p']:.2g}"),
            "reliability verdict": str(row["reliability"]),
            "time to start: other − better (iterations), p": (
                f"{row['start delay']:+,.0f}, p = {row['start p']:.2g}" if math.isfinite(row["start delay"]) else "—"),
            f"quality among learnt runs: ratio other / better ({primary} {metric})": _number(row["ratio"]),
            f"{level:.1%} interval": interval_text(row["lower"], row["upper"]),
            "verdict": str(row["verdict"]),
            "robust: Hodges–Lehmann ratio [interval]": (
                f"{row['hl']:.2f} {interval_text(row['hl lower'], row['hl upper'])}" if math.isfinite(row["hl"])
                else "—"),
            "seeds × pairs": f"{row['seeds']} × {row['pairs']}",
            "pairs agree?": ("—" if not math.isfinite(interaction) else
                             f"no (interaction p = {interaction:.2g}): see the pairs" if interaction < ALPHA else
                             f"yes (p = {interaction:.2g})"),
            "seeds for ±15%": f"{row['seeds for ±15%']:.0f}" if math.isfinite(row["seeds for ±15%"]) else "—"}
        for stat, frame in judged.items():
            if stat != primary and name in frame.index:
                other = frame.loc[name]
                out[f"{stat} {metric}: ratio, interval, verdict"] = (  # no ratio: the verdict alone
                    f"{other['ratio']:.2f} {interval_text(other['lower'], other['upper'])}, "
                    if math.isfinite(other["ratio"]) else "") + str(other["verdict"])
        quality = [f"quality among learnt runs: ratio other / better ({primary} {metric})", f"{level:.1%} interval",
                   "robust: Hodges–Lehmann ratio [interval]", "seeds × pairs", "pairs agree?", "seeds for ±15%"]
        reliability = ["runs that did not learn (better / other)", "reliability: Δ failure share [interval], p",
                       "time to start: other − better (iterations), p"]
        for verdict, columns in ((row["verdict"], quality), (row["reliability"], reliability)):
            if str(verdict).startswith("not comparable"):  # no number beside a verdict its runs cannot carry
                out.update(dict.fromkeys(columns, "—"))
        if name in paper_ratios.index:
            out["paper: FID ratio on the same pairs (pairs the predicted way)"] = (
                f"{paper_ratios.loc[name, 'paper ratio']:.2f} ({paper_ratios.loc[name, 'paper pairs']})")
        else:
            out["paper: FID ratio on the same pairs (pairs the predicted way)"] = "not tested"
        out["left out"] = row["left out"] or "—"
        rows[name] = out
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("proposition")


def _number(value: float) -> str:
    """``'0.63'``, or ``'—'`` where there is no number (no pair of runs that both learnt)."""
    return f"{value:.2f}" if math.isfinite(value) else "—"
