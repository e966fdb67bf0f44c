"""Comparing our GAN runs with Tables 2–8, and the paper's three qualitative claims (§6).

The claims, as stated at the end of §6: smaller FIDs come with (i) a larger
gradient norm q, (ii) the hinge penalty max(0, ‖∇f‖ − 1) rather than LS, and
(iii) HingeGAN rather than WGAN. Each is checked as a set of paired comparisons
between cells that differ only in that factor; a claim "holds" in a table when
its comparisons go the predicted way beyond seed noise (:func:`claim_verdict`). Lower is
better for FID and FDD.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats as scipy_stats

from mmgan.norms import order_text
from mmgan.paper import paper_table
from mmgan.verdicts import Verdict, counts, interval_verdict, paired_t_interval

Q_ORDER = {"1": 0, "2": 1, "inf": 2}


def paper_cells(table: str, stat: str = "final") -> pd.DataFrame:
    frame = paper_table(table)
    frame = frame[frame["stat"] == stat].copy()
    frame["q"] = frame["q"].map(order_text)
    return frame[["loss", "q", "g", "value"]]


def cell_means(results: pd.DataFrame, stat: str = "final") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each cell."""
    grouped = results.groupby(["loss", "q", "g"])[stat]
    return grouped.agg(["mean", "std", "count"]).reset_index()


def side_by_side(results: pd.DataFrame, table: str, stat: str = "final") -> pd.DataFrame:
    """Our metric (mean ± sd over seeds) beside the paper's FID, with the rank of each within its table."""
    ours = cell_means(results, stat)
    merged = ours.merge(paper_cells(table, stat), on=["loss", "q", "g"], how="left")
    merged["ours rank"] = merged["mean"].rank(method="min").astype(int)
    merged["paper rank"] = merged["value"].rank(method="min").astype("Int64")  # ties share the better rank
    label = f"{results['metric'].iloc[0].upper()} ({results['dataset'].iloc[0]}, {results['preset'].iloc[0]}, " \
            f"{int(results['iterations'].iloc[0])} it.)"
    merged[f"ours: {label}"] = [f"{m:.2f} ± {s:.2f}" if c > 1 else f"{m:.2f}"
                                for m, s, c in zip(merged["mean"], merged["std"].fillna(0), merged["count"])]
    merged["paper: FID (TF, 100k it.)"] = merged["value"]
    keep = ["loss", "q", "g", f"ours: {label}", "ours rank", "paper: FID (TF, 100k it.)", "paper rank"]
    return merged[keep].set_index(["loss", "q", "g"])


def rank_agreement(results: pd.DataFrame, table: str, stat: str = "final") -> float:
    """Spearman correlation between our cell means and the paper's values (NaN if < 3 cells)."""
    merged = cell_means(results, stat).merge(paper_cells(table, stat), on=["loss", "q", "g"])
    if len(merged) < 3:
        return math.nan
    return float(scipy_stats.spearmanr(merged["mean"], merged["value"]).statistic)


#: The paired comparisons behind each claim, in the order the chapters list them.
CLAIMS: tuple[str, ...] = ("larger q", "hinge penalty", "HingeGAN over WGAN")


def comparison_pairs(cells: list[tuple[str, str, str]]) -> dict[str, list[tuple[tuple, tuple]]]:
    """For each claim, the pairs (predicted better cell, other cell) of cells that differ only in its factor.

    larger q: q = 2 over q = 1 and q = ∞ over q = 2 (same loss and penalty); hinge penalty: g = hinge over
    g = ls (same loss and q); HingeGAN over WGAN: the hinge loss over the WGAN loss (same q and g).
    """
    present = set(cells)
    out: dict[str, list[tuple[tuple, tuple]]] = {claim: [] for claim in CLAIMS}
    for loss, q, g in cells:
        for q_big in ("2", "inf"):
            if q in Q_ORDER and Q_ORDER[q] == Q_ORDER[q_big] - 1 and (loss, q_big, g) in present:
                out["larger q"].append(((loss, q_big, g), (loss, q, g)))
        if g == "ls" and (loss, q, "hinge") in present:
            out["hinge penalty"].append(((loss, q, "hinge"), (loss, q, g)))
        if loss == "wgan" and ("hinge", q, g) in present:
            out["HingeGAN over WGAN"].append((("hinge", q, g), (loss, q, g)))
    return out


def comparisons(results: pd.DataFrame, stat: str = "final") -> pd.DataFrame:
    """Every paired comparison of our runs, with its seed-paired interval and verdict.

    For a pair (better, other) the per-seed gain is ``other − better`` over the seeds both cells
    finished (the claim predicts a positive gain: lower is better), summarised by its mean and 95%
    paired-t interval (:func:`mmgan.verdicts.paired_t_interval`); the verdict is HOLDS when the
    interval lies above 0, DOES_NOT_HOLD when it lies below, CANNOT_TELL otherwise or with < 2 seeds.
    """
    values = results.set_index(["loss", "q", "g", "seed"])[stat].sort_index()
    cells = list(dict.fromkeys(zip(results["loss"], results["q"], results["g"])))
    rows = []
    for claim, pairs in comparison_pairs(cells).items():
        for better, other in pairs:
            a, b = values.loc[better], values.loc[other]
            gains = (b - a).dropna()
            if gains.empty:
                continue
            interval = paired_t_interval(gains.to_numpy())
            rows.append({"claim": claim, "better": cell_text(*better), "other": cell_text(*other),
                         "mean gain": interval.mean, "lower": interval.lower, "upper": interval.upper,
                         "seeds": interval.n, "verdict": interval_verdict(interval, 0.0)})
    return pd.DataFrame(rows, columns=["claim", "better", "other", "mean gain", "lower", "upper", "seeds", "verdict"])


def claim_verdict(outcomes: list[Verdict]) -> Verdict:
    """One verdict for a claim from its comparisons' verdicts (the rule the GAN chapters state).

    The claim HOLDS when more than half of its comparisons hold beyond seed noise and none goes
    against it beyond seed noise; it DOES_NOT_HOLD in the mirror case; otherwise we CANNOT_TELL
    (too few comparisons beyond noise, or clear comparisons both ways).
    """
    if not outcomes:
        raise ValueError("claim_verdict needs at least one comparison")
    tally = counts(outcomes)
    n, holds, against = len(outcomes), tally[Verdict.HOLDS], tally[Verdict.DOES_NOT_HOLD]
    if holds > n / 2 and against == 0:
        return Verdict.HOLDS
    if against > n / 2 and holds == 0:
        return Verdict.DOES_NOT_HOLD
    return Verdict.CANNOT_TELL


def paper_claim_counts(table: str, stat: str = "final") -> dict[str, tuple[int, int]]:
    """Per claim testable in the paper's table: (comparisons that go the predicted way, comparisons)."""
    paper = paper_cells(table, stat).set_index(["loss", "q", "g"])["value"]
    return {claim: (sum(bool(paper[b] < paper[o]) for b, o in pairs), len(pairs))
            for claim, pairs in comparison_pairs(list(paper.index)).items() if pairs}


def claims(results: pd.DataFrame, table: str, stat: str = "final") -> pd.DataFrame:
    """Per claim: how many paired comparisons go the predicted way in the paper's table and in our runs,
    how many hold / go against it beyond seed noise, and the claim's :class:`Verdict` (:func:`claim_verdict`).

    The paper's table has one run per cell, so only the direction of its comparisons is counted.
    """
    ours = comparisons(results, stat)
    paper = paper_claim_counts(table, stat)
    rows = []
    for claim in CLAIMS:
        mine = ours[ours["claim"] == claim]
        if mine.empty and claim not in paper:
            continue
        tally = counts(mine["verdict"])
        rows.append({"claim": claim,
                     "paper's table": f"{paper[claim][0]} of {paper[claim][1]}" if claim in paper else "—",
                     "our runs": f"{int((mine['mean gain'] > 0).sum())} of {len(mine)}" if len(mine) else "—",
                     "beyond seed noise (for / against)": f"{tally[Verdict.HOLDS]} / {tally[Verdict.DOES_NOT_HOLD]}",
                     "verdict": claim_verdict(list(mine["verdict"])) if len(mine) else Verdict.NOT_COMPARABLE})
    return pd.DataFrame(rows).set_index("claim")


def cell_text(loss: str, q: str, g: str) -> str:
    """A cell as the chapters write it, e.g. ``'hinge, q = inf, hinge penalty'``."""
    return f"{loss}, q = {q}, {g} penalty"


def read_log(run: str | Path) -> pd.DataFrame:
    """The training log of a run (log.jsonl): one row per logged iteration (metric rows dropped)."""
    frame = pd.read_json(Path(run) / "log.jsonl", lines=True)
    return frame.dropna(subset=["critic_loss"]) if "critic_loss" in frame else frame


def loss_gap(results: pd.DataFrame, first: str = "wgan", second: str = "hinge",
             column: str = "critic_loss") -> pd.DataFrame:
    """Per (q, g, seed): the range of ``column`` of the ``second`` loss's run minus the ``first``'s.

    The hinge critic loss E max(0, 1 − C(x₁)) + E max(0, 1 + C(x₂)) equals WGAN's −E C(x₁) + E C(x₂)
    plus 2 whenever every critic output lies in (−1, 1); two runs with the same seed then take
    identical steps, and the gap stays exactly 2 (min = max = 2).
    """
    rows = []
    runs = results.set_index(["loss", "q", "g", "seed"])["run"]
    for (loss, q, g, seed), run in runs.items():
        if loss != first or (second, q, g, seed) not in runs.index:
            continue
        a, b = read_log(run), read_log(runs[(second, q, g, seed)])
        merged = a[["iteration", column]].merge(b[["iteration", column]], on="iteration", suffixes=("_a", "_b"))
        gap = merged[f"{column}_b"] - merged[f"{column}_a"]
        rows.append({"q": q, "g": g, "seed": seed, "gap min": gap.min(), "gap max": gap.max(),
                     "logged iterations": len(gap)})
    return pd.DataFrame(rows)


def late_improvement(curves: pd.DataFrame, tail: float = 0.25) -> pd.DataFrame:
    """Per run of ``curves`` (:func:`mmgan.gan_tables.metric_curves`): first and best metric, and how
    much the last ``tail`` of training improved the best.

    ``late improvement`` = (best before the tail − best within the tail) / best before the tail,
    clipped at 0: near 0 means the run had levelled off before its last ``tail`` of iterations.
    """
    if not 0 < tail < 1:
        raise ValueError(f"tail must be in (0, 1), got {tail!r}")
    rows = []
    for (loss, q, g, seed), run in curves.groupby(["loss", "q", "g", "seed"], sort=False):
        run = run.sort_values("iteration")
        in_tail = run["iteration"] > run["iteration"].max() * (1 - tail)
        before, within = run["value"][~in_tail], run["value"][in_tail]
        if before.empty or within.empty:
            raise ValueError(f"run {loss}-q{q}-{g}-s{seed}: too few evaluations to split at {tail:.0%} of training")
        gain = max(0.0, (before.min() - within.min()) / before.min())
        rows.append({"loss": loss, "q": q, "g": g, "seed": seed, "first": run["value"].iloc[0],
                     "best": run["value"].min(), "late improvement": gain})
    return pd.DataFrame(rows)
