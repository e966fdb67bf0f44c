"""Tables and verdicts for the Table 1 chapter, computed from saved results.

Everything here reads a tidy summary (one row per model × margin order, see
:mod:`mmgan.table1`) and the paper's numbers (:mod:`mmgan.paper`); nothing
trains or searches.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from mmgan.classifier_training import PenaltySpec
from mmgan.exact import relative_errors
from mmgan.norms import dual
from mmgan.paper import paper_table
from mmgan.table1 import TABLE1_ROWS

ROW_ORDER = [spec.label for spec in TABLE1_ROWS]
P_NAMES = {2.0: "p=2", 1.0: "p=1", math.inf: "p=inf"}  # the paper's column order: 2, 1, ∞


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of a Student-t confidence interval (NaN width for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def _p_value(p: object) -> float:
    return math.inf if p in ("inf", math.inf) else float(p)


def margin_table(summary: pd.DataFrame, column: str = "margin_mean") -> pd.DataFrame:
    """Rows of Table 1 × orders p: 'mean ± CI' over seeds of ``column`` (formatted strings)."""
    frame = summary.assign(p=summary["p"].map(_p_value))
    out = {}
    for p, name in P_NAMES.items():
        cells = []
        for row in ROW_ORDER:
            mean, half = mean_ci(frame[(frame.row == row) & (frame.p == p)][column].to_numpy())
            cells.append(f"{mean:.3f} ± {half:.3f}" if math.isfinite(half) else f"{mean:.3f}")
        out[name] = cells
    acc = [mean_ci(frame[(frame.row == row) & (frame.p == 2.0)]["test_accuracy"].to_numpy())[0] for row in ROW_ORDER]
    table = pd.DataFrame(out, index=ROW_ORDER)
    table["test accuracy"] = [f"{a:.1%}" for a in acc]
    table.index.name = "penalty"
    return table


def means(summary: pd.DataFrame, column: str = "margin_mean") -> pd.DataFrame:
    """Seed-averaged ``column`` as a numeric rows × p frame (columns 2, 1, ∞)."""
    frame = summary.assign(p=summary["p"].map(_p_value))
    pivot = frame.groupby(["row", "p"])[column].mean().unstack("p")
    return pivot.reindex(index=ROW_ORDER, columns=list(P_NAMES))


def paper_means() -> pd.DataFrame:
    """The paper's Table 1 as a rows × p frame in the same layout as :func:`means`."""
    paper = paper_table("1")
    paper["row"] = [PenaltySpec(None, None).label if g == "none" else PenaltySpec(g, q).label
                    for g, q in zip(paper.g, paper.q)]
    pivot = paper.pivot(index="row", columns="p", values="value")
    return pivot.reindex(index=ROW_ORDER, columns=list(P_NAMES))


def side_by_side(summary: pd.DataFrame) -> pd.DataFrame:
    """Our seed-averaged expected margins next to the paper's, column pairs per p."""
    ours, paper = means(summary), paper_means()
    frame = pd.concat({"ours": ours, "paper": paper}, axis=1).swaplevel(axis=1)
    frame.columns = [f"{P_NAMES[p]} {who}" for p, who in frame.columns]
    ordered = [f"{name} {who}" for name in P_NAMES.values() for who in ("ours", "paper")]
    return frame[ordered]


def norm_order_violations(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a rows × p frame where L^1 ≥ L^2 ≥ L^∞ fails (it must hold point by point)."""
    bad = (table[1.0] < table[2.0]) | (table[2.0] < table[math.inf])
    return table[bad]


def penalty_gain(summary: pd.DataFrame) -> pd.DataFrame:
    """Claim 1: expected margin of each penalised row divided by the no-penalty row's, per p."""
    table = means(summary)
    return table.drop(index="none") / table.loc["none"]


def own_margin_check(summary: pd.DataFrame) -> pd.DataFrame:
    """Claim 2: for each g and each p, which q gives the largest L^p margin, and is it dual(p)?"""
    table = means(summary)
    rows = []
    for g in ("ls", "hinge"):
        for p in P_NAMES:
            candidates = {q: table.loc[PenaltySpec(g, q).label, p] for q in (2.0, math.inf, 1.0)}
            best = max(candidates, key=candidates.get)
            rows.append({"g": g, "margin p": P_NAMES[p], "q with the largest margin": best,
                         "q = dual(p)": dual(p), "holds": best == dual(p)})
    return pd.DataFrame(rows)


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Our expected margins (mean ± 95% CI over seeds) beside the paper's, with our test accuracy."""
    ours = margin_table(summary)
    paper = paper_means()
    columns = {}
    for p, name in P_NAMES.items():
        columns[f"{name} ours"] = ours[name]
        columns[f"{name} paper"] = paper[p].map(lambda v: f"{v:.2f}")
    columns["test accuracy (ours)"] = ours["test accuracy"]
    return pd.DataFrame(columns, index=ROW_ORDER).rename_axis("penalty")


def _gain_verdict(gain: pd.DataFrame) -> str:
    if (gain >= 2).all().all():
        return "holds"
    if (gain > 1).all().all():
        return "partly: larger, but not 2-3x"
    if (gain > 1).any().any():
        return "mixed: some penalties shrink the margin"
    return "does not hold"


def verdicts(variants: dict[str, object]) -> pd.DataFrame:
    """Both claims of §4.2 checked on every variant, with the accuracy that qualifies them."""
    rows = []
    for name, result in variants.items():
        summary = result.summary
        gain = penalty_gain(summary)
        own = own_margin_check(summary)
        acc = summary[summary.p.map(_p_value) == 2.0].groupby("row")["test_accuracy"].mean()
        rows.append({
            "variant": name,
            "accuracy, no penalty": f"{acc['none']:.0%}",
            "accuracy, penalised rows": f"{acc.drop('none').min():.0%}–{acc.drop('none').max():.0%}",
            "margin ratio penalised / none": f"{gain.min().min():.2f}–{gain.max().max():.2f}",
            "claim 1 (2–3× larger)": _gain_verdict(gain),
            "claim 2 (q = dual(p) wins)": f"{int(own['holds'].sum())} of {len(own)} cases",
        })
    return pd.DataFrame(rows).set_index("variant")


def exact_errors(variants: dict[str, object]) -> pd.DataFrame:
    """Estimator against the exact 2-D reference, worst seed per (variant, row, p)."""
    rows = []
    for name, result in variants.items():
        summary = result.summary
        if "exact_median_abs_rel" not in summary:
            continue
        grouped = summary.assign(p=summary.p.map(_p_value)).groupby(["row", "p"])
        worst = grouped.agg(median=("exact_median_abs_rel", "max"), p95=("exact_p95_abs_rel", "max"),
                            lowest=("exact_min_rel", "min"), unmatched=("exact_unmatched_share", "max"))
        worst = worst.reset_index()
        worst.insert(0, "variant", name)
        rows.append(worst)
    table = pd.concat(rows, ignore_index=True)
    table["p"] = table["p"].map(P_NAMES)
    return table.rename(columns={"median": "median |rel. error|", "p95": "95th pct |rel. error|",
                                 "lowest": "lowest rel. error", "unmatched": "share without reference"})


def exact_errors_pooled(variants: dict[str, object]) -> pd.DataFrame:
    """Estimator against the exact 2-D reference over all points of all classifiers of a variant."""
    rows = []
    for name, result in variants.items():
        samples = result.samples
        if "exact" not in samples:
            continue
        for j, p in enumerate(samples["orders"]):
            rel, both = relative_errors(samples["distance"][:, j].ravel(), samples["exact"][:, j].ravel())
            rows.append({"variant": name, "p": P_NAMES[float(p)], "points": int(both.sum()),
                         "median |rel. error|": float(np.median(np.abs(rel))),
                         "95th pct |rel. error|": float(np.quantile(np.abs(rel), 0.95)),
                         "share above 5%": float(np.mean(np.abs(rel) > 0.05)),
                         "lowest rel. error": float(rel.min()),
                         "share without estimate": float(1 - both.mean())})
    return pd.DataFrame(rows).set_index(["variant", "p"])
