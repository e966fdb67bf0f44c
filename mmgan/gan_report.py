"""Comparing our GAN runs with Tables 2–8, and the paper's three qualitative claims (§6).

The claims, as stated at the end of §6: smaller FIDs come with (i) a larger
gradient norm q, (ii) the hinge penalty max(0, ‖∇f‖ − 1) rather than LS, and
(iii) HingeGAN rather than WGAN. Each is checked as a set of paired comparisons
between cells that differ only in that factor; a claim "holds" in a table when
most of its comparisons go the predicted way. Lower is better for FID and FDD.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from mmgan.norms import order_text
from mmgan.paper import paper_table

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
    merged["ours rank"] = merged["mean"].rank().astype(int)
    merged["paper rank"] = merged["value"].rank()
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


def _comparisons(cells: pd.DataFrame, value: str) -> dict[str, list[tuple[float, float]]]:
    """Paired comparisons for the three claims: (predicted cell − other cell, standard error of that difference).

    The claim predicts a negative difference (lower is better). The standard error comes
    from the seeds (``std`` and ``count`` columns of :func:`cell_means`); NaN without them.
    """
    def se(row) -> float:
        if "std" not in cells or not row["count"] > 1:
            return math.nan
        return float(row["std"]) ** 2 / float(row["count"])

    index = {(r["loss"], r["q"], r["g"]): (float(r[value]), se(r)) for _, r in cells.iterrows()}
    out: dict[str, list[tuple[float, float]]] = {"larger q": [], "hinge penalty": [], "HingeGAN over WGAN": []}

    def add(claim: str, better: tuple, other: tuple) -> None:
        (v1, s1), (v2, s2) = index[better], index[other]
        out[claim].append((v1 - v2, math.sqrt(s1 + s2)))

    for (loss, q, g) in index:
        for q_big in ("2", "inf"):
            if q in Q_ORDER and Q_ORDER[q] == Q_ORDER[q_big] - 1 and (loss, q_big, g) in index:
                add("larger q", (loss, q_big, g), (loss, q, g))
        if g == "ls" and (loss, q, "hinge") in index:
            add("hinge penalty", (loss, q, "hinge"), (loss, q, g))
        if loss == "wgan" and ("hinge", q, g) in index:
            add("HingeGAN over WGAN", ("hinge", q, g), (loss, q, g))
    return out


def claims(results: pd.DataFrame, table: str, stat: str = "final") -> pd.DataFrame:
    """For each claim: how many paired comparisons agree, in the paper's table and in our runs.

    With several seeds, a comparison is *beyond seed noise* when the difference of the
    two cell means exceeds twice its standard error; the column counts those that go
    the predicted way and those that go against it.
    """
    ours = _comparisons(cell_means(results, stat), "mean")
    paper = _comparisons(paper_cells(table, stat), "value")
    rows = []
    for claim in ours:
        o, p = ours[claim], paper[claim]
        if not o and not p:
            continue
        agree = [d < 0 for d, _ in o]
        clear_for = sum(d < -2 * e for d, e in o if e == e)
        clear_against = sum(d > 2 * e for d, e in o if e == e)
        has_se = any(e == e for _, e in o)
        rows.append({"claim": claim,
                     "paper's table": f"{sum(d < 0 for d, _ in p)} of {len(p)}" if p else "—",
                     "our runs": f"{sum(agree)} of {len(o)}" if o else "—",
                     "beyond seed noise (for / against)": f"{clear_for} / {clear_against}" if has_se else "one seed",
                     "verdict on our runs": _verdict(agree)})
    return pd.DataFrame(rows).set_index("claim")


def _verdict(outcomes: list[bool]) -> str:
    if not outcomes:
        return "not testable here"
    share = float(np.mean(outcomes))
    if share >= 0.75:
        return "holds"
    if share > 0.25:
        return "mixed"
    return "does not hold"


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
