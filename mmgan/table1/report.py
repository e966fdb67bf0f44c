"""Tables and verdicts for the Table 1 chapter, computed from saved results.

Everything here reads per-seed statistics (one row per row of Table 1 × seed ×
margin order, :func:`statistics`, recomputed from the saved per-point samples)
and the paper's numbers (:mod:`mmgan.paper`); nothing trains or searches. The
verdicts follow the rule of :mod:`mmgan.verdicts` (paired seeds, 95% t
intervals, an accuracy bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmgan.exact import error_text, relative_errors
from mmgan.norms import dual, order_text
from mmgan.paper import paper_table
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant
from mmgan.table1.study import margin_statistics
from mmgan.table1.variant import TABLE1_ROWS, Table1Result
from mmgan.toys.classifiers import PenaltySpec
from mmgan.verdicts import LEVEL, Verdict, combine, counts, interval_verdict, paired_t_interval

ROW_ORDER = [spec.label for spec in TABLE1_ROWS]
P_NAMES = {2.0: "p=2", 1.0: "p=1", math.inf: "p=inf"}  # the paper's column order: 2, 1, ∞


#: The held-out accuracy below which a classifier's margins do not enter a verdict.
ACCURACY_BAR = 0.95
#: Margin columns of :func:`mmgan.table1.study.margin_statistics`, headline first.
MARGIN_KINDS: dict[str, str] = {"distance": "eq. 3 distance", "signed": "signed margin",
                                "correct_only": "correctly classified points only"}
#: Claim 1's two readings: "larger" (ratio > 1) and the paper's "2 to 3 times bigger" (ratio > 2).
GAIN_THRESHOLDS: dict[str, float] = {"larger": 1.0, "at least 2x": 2.0}



#: The speed target of the whole headline variant (training and margins) on 2 CPU cores.
TARGET_SECONDS = 600.0

def mean_ci(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval of :func:`mmgan.verdicts.paired_t_interval`
    (NaN width for one value)."""
    interval = paired_t_interval(values, level)
    return interval.mean, interval.upper - interval.mean


def statistics(result: Table1Result) -> pd.DataFrame:
    """Per (row, seed, p) margins of a saved or fresh variant, recomputed from its per-point samples."""
    frame = margin_statistics(result.samples, result.config)
    return frame.assign(p=frame["p"].astype(float))  # saved files spell ∞ 'inf'


def _cell(mean: float, half: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "no estimate"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{mean:.{digits}f}"


def means(stats_frame: pd.DataFrame, column: str = "distance") -> pd.DataFrame:
    """Seed-averaged ``column`` as a numeric rows × p frame (columns 2, 1, ∞)."""
    pivot = stats_frame.groupby(["row", "p"])[column].mean().unstack("p")
    return pivot.reindex(index=ROW_ORDER, columns=list(P_NAMES))


def accuracy(stats_frame: pd.DataFrame) -> pd.Series:
    """Mean held-out accuracy of each row over seeds."""
    return stats_frame[stats_frame.p == 2.0].groupby("row")["accuracy"].mean().reindex(ROW_ORDER)


def paper_means() -> pd.DataFrame:
    """The paper's Table 1 as a rows × p frame in the same layout as :func:`means`."""
    paper = paper_table("1")
    paper["row"] = [PenaltySpec(None, None).label if g == "none" else PenaltySpec(g, q).label
                    for g, q in zip(paper.g, paper.q)]
    pivot = paper.pivot(index="row", columns="p", values="value")
    return pivot.reindex(index=ROW_ORDER, columns=list(P_NAMES))


def norm_order_violations(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a rows × p frame where L^1 ≥ L^2 ≥ L^∞ fails (it must hold point by point)."""
    bad = (table[1.0] < table[2.0]) | (table[2.0] < table[math.inf])
    return table[bad]


def comparison_table(stats_frame: pd.DataFrame, column: str = "distance", digits: int = 2) -> pd.DataFrame:
    """Our expected margins (mean ± 95% CI over seeds) beside the paper's, with our held-out accuracy."""
    paper = paper_means()
    columns: dict[str, list[str]] = {}
    for p, name in P_NAMES.items():
        ours = []
        for row in ROW_ORDER:
            values = stats_frame[(stats_frame.row == row) & (stats_frame.p == p)][column].dropna().to_numpy()
            ours.append(_cell(*mean_ci(values), digits) if len(values) else "no estimate")
        columns[f"{name} ours"] = ours
        columns[f"{name} paper"] = [f"{v:.2f}" for v in paper[p]]
    acc = stats_frame[stats_frame.p == 2.0]
    columns["held-out accuracy (ours)"] = [
        f"{acc[acc.row == row]['accuracy'].mean():.1%}" for row in ROW_ORDER]
    return pd.DataFrame(columns, index=ROW_ORDER).rename_axis("penalty")


def margin_kinds_table(stats_frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Every row × p: the three margins of :data:`MARGIN_KINDS` (mean ± 95% CI) and the accuracy."""
    records = []
    for row in ROW_ORDER:
        for p, name in P_NAMES.items():
            part = stats_frame[(stats_frame.row == row) & (stats_frame.p == p)]
            record = {"penalty": row, "p": name}
            for column, title in MARGIN_KINDS.items():
                values = part[column].dropna().to_numpy()
                record[title] = _cell(*mean_ci(values), digits) if len(values) else "no estimate"
            record["held-out accuracy"] = f"{part['accuracy'].mean():.1%}"
            record["searches not converged"] = f"{part['nonconverged_share'].mean():.1%}"
            records.append(record)
    return pd.DataFrame(records).set_index(["penalty", "p"])


#: The fewest paired seeds, both of whose classifiers reach the accuracy bar, that a verdict needs.
MIN_PAIRS = 3


def _paired(stats_frame: pd.DataFrame, first: str, second: str, p: float, column: str,
            accuracy_bar: float) -> pd.DataFrame:
    """Per seed, ``column`` of two rows at order p, keeping only the seeds where both reach the bar."""
    part = stats_frame[stats_frame.p == p].set_index("seed")
    a, b = part[part.row == first], part[part.row == second]
    pairs = pd.DataFrame({"first": a[column], "second": b[column].reindex(a.index),
                          "learnt": (a["accuracy"] >= accuracy_bar) & (b["accuracy"].reindex(a.index) >= accuracy_bar)})
    return pairs[pairs.learnt].dropna()


def gain_intervals(stats_frame: pd.DataFrame, column: str = "distance",
                   accuracy_bar: float = ACCURACY_BAR) -> pd.DataFrame:
    """Claim 1 per penalised row and p: the margin ratio penalised / none from paired seeds.

    Only seeds where both classifiers reach ``accuracy_bar`` on held-out points are paired;
    with fewer than :data:`MIN_PAIRS` such seeds the cell is NOT_COMPARABLE. The interval is the
    paired-t interval of the per-seed log ratio, exponentiated (the ratio is a geometric mean
    over seeds); one verdict per reading of :data:`GAIN_THRESHOLDS`.
    """
    acc = accuracy(stats_frame)
    records = []
    for row in ROW_ORDER[1:]:
        for p, name in P_NAMES.items():
            pairs = _paired(stats_frame, row, "none", p, column, accuracy_bar)
            record = {"penalty": row, "p": name, "seeds compared": len(pairs),
                      "accuracy (penalised, none)": f"{acc[row]:.1%}, {acc['none']:.1%}"}
            if len(pairs) >= MIN_PAIRS:
                interval = paired_t_interval(np.log(pairs["first"] / pairs["second"]).to_numpy()).map(math.exp)
                record.update(ratio=interval.mean, lower=interval.lower, upper=interval.upper)
                for reading, threshold in GAIN_THRESHOLDS.items():
                    record[reading] = interval_verdict(interval, threshold)
            else:
                record.update(ratio=math.nan, lower=math.nan, upper=math.nan)
                record.update({reading: Verdict.NOT_COMPARABLE for reading in GAIN_THRESHOLDS})
            records.append(record)
    return pd.DataFrame(records).set_index(["penalty", "p"])


def own_margin_intervals(stats_frame: pd.DataFrame, column: str = "distance",
                         accuracy_bar: float = ACCURACY_BAR) -> pd.DataFrame:
    """Claim 2 per g and p: does penalising ‖∇f‖_q with q = dual(p) give the largest L^p margin?

    For each rival q' the paired-t interval of the per-seed difference margin(q*) − margin(q')
    is computed over the seeds where both classifiers reach ``accuracy_bar``; the cell HOLDS when
    both differences are above 0, DOES_NOT_HOLD when one is below 0 and otherwise CANNOT_TELL
    (NOT_COMPARABLE when a rival has fewer than :data:`MIN_PAIRS` such seeds).
    """
    records = []
    for g in ("ls", "hinge"):
        for p, name in P_NAMES.items():
            own = PenaltySpec(g, dual(p)).label
            record: dict[str, object] = {"g": g, "p": name, "own q": order_text(dual(p))}
            rival_verdicts = []
            for rival_q in (2.0, math.inf, 1.0):
                if rival_q == dual(p):
                    continue
                pairs = _paired(stats_frame, own, PenaltySpec(g, rival_q).label, p, column, accuracy_bar)
                title = f"own − q={order_text(rival_q)}"
                if len(pairs) < MIN_PAIRS:
                    record[title] = f"{len(pairs)} seeds learnt"
                    rival_verdicts.append(Verdict.NOT_COMPARABLE)
                    continue
                interval = paired_t_interval((pairs["first"] - pairs["second"]).to_numpy())
                record[title] = _cell(interval.mean, interval.upper - interval.mean, 3)
                rival_verdicts.append(interval_verdict(interval, 0.0))
            record["verdict"] = (Verdict.NOT_COMPARABLE if Verdict.NOT_COMPARABLE in rival_verdicts
                                 else combine(rival_verdicts))
            records.append(record)
    columns = ["own q"] + [f"own − q={order_text(q)}" for q in (2.0, math.inf, 1.0)] + ["verdict"]
    return pd.DataFrame(records).set_index(["g", "p"])[columns].fillna("— (own)")


@dataclass(frozen=True)
class ClaimVerdicts:
    """The two claims of §4.2 on one variant, each combined over its comparisons (:func:`combine`)."""

    larger: Verdict
    at_least_2x: Verdict
    own_margin: Verdict
    larger_counts: dict[Verdict, int]
    at_least_2x_counts: dict[Verdict, int]
    own_margin_counts: dict[Verdict, int]


def claim_verdicts(stats_frame: pd.DataFrame, column: str = "distance",
                   accuracy_bar: float = ACCURACY_BAR) -> ClaimVerdicts:
    """Combine the per-cell verdicts of :func:`gain_intervals` and :func:`own_margin_intervals`."""
    gains = gain_intervals(stats_frame, column, accuracy_bar)
    own = own_margin_intervals(stats_frame, column, accuracy_bar)
    return ClaimVerdicts(combine(gains["larger"]), combine(gains["at least 2x"]), combine(own["verdict"]),
                         counts(gains["larger"]), counts(gains["at least 2x"]), counts(own["verdict"]))


def count_text(tally: dict[Verdict, int]) -> str:
    """'12 hold, 3 cannot tell, …' (only the verdicts that occur)."""
    words = {Verdict.HOLDS: "hold", Verdict.DOES_NOT_HOLD: "do not hold", Verdict.CANNOT_TELL: "cannot tell",
             Verdict.NOT_COMPARABLE: "not comparable"}
    return ", ".join(f"{n} {words[v]}" for v, n in tally.items() if n)


def verdicts(variants: dict[str, Table1Result], column: str = "distance") -> pd.DataFrame:
    """Both claims of §4.2 on every variant, with the accuracies that qualify them.

    Beside the verdicts, the range of the seed-averaged ratios penalised / none over all
    classifiers, learnt or not (what a table without an accuracy bar would report).
    """
    rows = []
    for name, result in variants.items():
        frame = statistics(result)
        acc = accuracy(frame)
        claims = claim_verdicts(frame, column)
        table = means(frame, column)
        ungated = table.drop(index="none") / table.loc["none"]
        rows.append({
            "variant": name,
            "accuracy, no penalty": f"{acc['none']:.0%}",
            "accuracy, penalised rows": _range_text(acc.drop("none"), ".0%"),
            "ratio penalised / none, all classifiers": _range_text(pd.Series(ungated.to_numpy().ravel()), ".2f"),
            "claim 1: larger": f"{claims.larger} ({count_text(claims.larger_counts)})",
            "claim 1: 2–3x": f"{claims.at_least_2x} ({count_text(claims.at_least_2x_counts)})",
            "claim 2: q = dual(p) wins": f"{claims.own_margin} ({count_text(claims.own_margin_counts)})",
        })
    return pd.DataFrame(rows).set_index("variant")


def reference_errors_pooled(variants: dict[str, Table1Result], reference: str = "exact") -> pd.DataFrame:
    """The estimator against an independent reference over all points of a variant: ``'exact'`` (the
    zero set traced in 2-D, :mod:`mmgan.exact`) or ``'ray'`` (3-D ray casting, :mod:`mmgan.table1.ray_reference`).

    The relative error is (estimate − reference) / reference: positive where the estimator
    stopped at a farther boundary point than the reference found, negative where the reference
    is the farther one (both are distances to genuine boundary points, so the smaller is the
    better upper bound of the true distance).
    """
    rows = []
    for name, result in variants.items():
        samples = result.samples
        if reference not in samples:
            continue
        for j, p in enumerate(samples["orders"]):
            ref = samples[reference][:, j].ravel()
            has_reference = ~np.isnan(ref)
            rel, both = relative_errors(samples["distance"][:, j].ravel()[has_reference], ref[has_reference])
            rows.append({"variant": name, "p": P_NAMES[float(p)], "points": int(both.sum()),
                         "median |rel. error|": float(np.median(np.abs(rel))),
                         "95th pct |rel. error|": float(np.quantile(np.abs(rel), 0.95)),
                         "share above 5%": float(np.mean(np.abs(rel) > 0.05)),
                         "lowest rel. error": float(rel.min()),
                         "share without estimate": float(1 - both.mean())})
    return pd.DataFrame(rows).set_index(["variant", "p"])


def exact_errors_pooled(variants: dict[str, Table1Result]) -> pd.DataFrame:
    """The estimator against the exact 2-D reference (:func:`reference_errors_pooled`)."""
    return reference_errors_pooled(variants, "exact")


def convergence(variants: dict[str, Table1Result], learnt_only: bool = False,
                accuracy_bar: float = ACCURACY_BAR) -> pd.DataFrame:
    """Share of margin searches that did not converge, per variant and row (worst p, mean over seeds);
    with ``learnt_only``, over the classifiers that reach ``accuracy_bar`` only (NaN if none does)."""
    rows = {}
    for name, result in variants.items():
        frame = statistics(result)
        if learnt_only:
            frame = frame[frame.accuracy >= accuracy_bar]
        share = frame.groupby(["row", "p"])["nonconverged_share"].mean().groupby("row").max()
        rows[name] = share.reindex(ROW_ORDER)
    return pd.DataFrame(rows).rename_axis("penalty")


def scale_fit(frames_by_scale: dict[str, pd.DataFrame], column: str = "distance") -> pd.DataFrame:
    """How plausible the paper's Table 1 is at each coordinate scale (the :func:`statistics` of one
    variant per convention).

    Margins are lengths in input units, so a wrong scale shows as one multiplicative factor
    between the paper's table and ours. Per scale: the factor the paper implies (geometric mean
    of paper / ours over the 21 cells, and separately over the unpenalised row and the penalised
    rows) and the RMS of log(paper / ours), the least-squares misfit on a log scale without any
    rescaling; the most plausible scale has the smallest misfit. Our held-out accuracies qualify it.
    """
    paper = np.log(paper_means())
    records = []
    for scale, frame in frames_by_scale.items():
        log_ratio = paper - np.log(means(frame, column))
        acc = accuracy(frame)
        records.append({
            "scale": scale, "factor to the paper, all cells": float(np.exp(log_ratio.to_numpy().mean())),
            "factor, no penalty": float(np.exp(log_ratio.loc["none"].mean())),
            "factor, penalised rows": float(np.exp(log_ratio.drop(index="none").to_numpy().mean())),
            "RMS log misfit": float(np.sqrt((log_ratio.to_numpy() ** 2).mean())),
            "accuracy, no penalty": float(acc["none"]), "accuracy, penalised (lowest)": float(acc.drop("none").min()),
        })
    return pd.DataFrame(records).set_index("scale")


def _range_text(values: pd.Series, fmt: str) -> str:
    low, high = values.min(), values.max()
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}}–{high:{fmt}}"


def nonconverged_max(stats_frame: pd.DataFrame) -> float:
    """The largest share of non-converged margin searches of a row and order (mean over seeds)."""
    return float(stats_frame.groupby(["row", "p"])["nonconverged_share"].mean().max())


def variant_values(prefix: str, result: Table1Result, column: str = "distance") -> dict[str, object]:
    """The numbers the chapter's prose quotes about one variant, under ``<prefix>_<name>`` keys."""
    frame = statistics(result)
    acc = accuracy(frame)
    gains = gain_intervals(frame, column)
    claims = claim_verdicts(frame, column)
    config = result.config
    below = frame[(frame.p == 2.0) & (frame.accuracy < ACCURACY_BAR)]
    values: dict[str, object] = {
        "label": (f"preset '{config.preset}', {config.dim}-D, {config.scale} coordinates, {len(config.seeds)} seeds × "
                  f"{config.iterations} iterations, width {config.width}, lr {config.lr:g}, "
                  f"{config.n_eval} test points per class"),
        "acc_none": float(acc["none"]),
        "acc_penalised": _range_text(acc.drop("none"), ".1%"),
        "classifiers_below_bar": len(below), "classifiers": int((frame.p == 2.0).sum()),
        "ratio_range": _range_text(gains["ratio"].dropna(), ".2f") if gains["ratio"].notna().any() else "none",
        "claim_larger": claims.larger, "claim_larger_counts": count_text(claims.larger_counts),
        "claim_2x": claims.at_least_2x, "claim_2x_counts": count_text(claims.at_least_2x_counts),
        "claim_own": claims.own_margin, "claim_own_counts": count_text(claims.own_margin_counts),
        "nonconverged_max": nonconverged_max(frame),
        "nonconverged_learnt_max": nonconverged_max(frame[frame.accuracy >= ACCURACY_BAR]),
    }
    return {f"{prefix}_{name}": value for name, value in values.items()}


def plain_row_name(label: str) -> str:
    """'none' -> 'no penalty', 'ls-q2' -> 'LS penalty, q = 2' (plain text for the prose)."""
    if label == "none":
        return "no penalty"
    g, q = label.split("-q")
    return f"{g.upper() if g == 'ls' else g} penalty, q = {q}"


def order_failures(variants: dict[str, Table1Result], rtol: float = 1e-6) -> int:
    """Points (over all variants, classifiers) whose estimates break d_1 ≥ d_2 ≥ d_∞."""
    failures = 0
    for result in variants.values():
        d, orders = result.samples["distance"], list(result.samples["orders"])
        d1, d2, dinf = (d[:, orders.index(p)] for p in (1.0, 2.0, math.inf))
        failures += int(((d1 < d2 * (1 - rtol)) | (d2 < dinf * (1 - rtol))).sum())
    return failures


def signed_distances(result: Table1Result, p: float) -> dict[str, np.ndarray]:
    """Per row: the signed L^p distances of all test points of all seeds (negative: misclassified)."""
    j = list(result.samples["orders"]).index(p)
    signed = result.samples["distance"][:, j] * np.sign(result.samples["score"] * result.samples["y"])
    labels = [label for label, _ in result.models]
    return {row: signed[[i for i, label in enumerate(labels) if label == row]].ravel() for row in ROW_ORDER}


def boundary_plot_inputs(result: Table1Result, seed_position: int = 0, p: float = 2.0) -> tuple:
    """Arguments of the chapter's figure of decision boundaries (``plots.decision_boundaries`` of the book) for the
    seven classifiers of one seed."""
    seed = result.config.seeds[seed_position]
    picked = [i for i, (_, s) in enumerate(result.models) if s == seed]
    j = list(result.samples["orders"]).index(p)
    nets = [(result.models[i][0], result.model.model(i)) for i in picked]
    closest = [result.samples["point"][i, j] for i in picked]
    acc = [float((result.samples["score"][i] * result.samples["y"][i] > 0).mean()) for i in picked]
    return nets, result.samples["x"][picked[0]], result.samples["y"][picked[0]], closest, acc


def literal_frames_by_scale(variants: dict[str, Table1Result]) -> dict[str, pd.DataFrame]:
    """The :func:`statistics` of App. A's literal 2-D protocol at every scale the book ran."""
    return {v.config.scale: statistics(v) for v in variants.values()
            if v.config.preset == "paper" and v.config.dim == 2}


def chapter_values(variants: dict[str, Table1Result], benchmark: dict[str, object]) -> dict[str, object]:
    """Every number and verdict the Table 1 chapter's prose quotes, by glue name."""
    defaults = table1_variant.make_config("fitted")
    headline = variants[table1_files.variant_name(*table1_files.HEADLINE)]
    dim3 = variants[table1_files.variant_name("fitted", 3, headline.config.scale)]
    literal = variants[table1_files.variant_name("paper", 2, "standardized")]
    violations = norm_order_violations(paper_means())
    values: dict[str, object] = {
        "accuracy_bar": ACCURACY_BAR, "min_pairs": MIN_PAIRS, "default_n_train": defaults.n_train,
        "default_width": defaults.width, "default_seeds": len(defaults.seeds),
        "ray_directions": table1.RAY_DIRECTIONS, "ray_points_per_class": table1.RAY_POINTS_PER_CLASS,
        "paper_violations": len(violations),
        "paper_violation_rows": " and ".join(plain_row_name(r) for r in violations.index) or "none",
        **variant_values("headline", headline), **variant_values("literal", literal),
        **variant_values("dim3", dim3),
        "dim3_literal_nonconverged_max": max(nonconverged_max(statistics(v)) for v in variants.values()
                                             if v.config.dim == 3 and v.config.preset == "paper"),
        "order_failures": order_failures(variants),
    }
    fit = scale_fit(literal_frames_by_scale(variants))
    best = fit["RMS log misfit"].idxmin()
    values.update(scale_best=best, scale_best_misfit=fit.loc[best, "RMS log misfit"],
                  scale_best_factor=math.exp(fit.loc[best, "RMS log misfit"]),
                  scale_best_acc_penalised=fit.loc[best, "accuracy, penalised (lowest)"],
                  scale_best_variant=table1_files.variant_name("paper", 2, best),
                  scale_best_learnt=("have learnt the roll"
                                     if fit.loc[best, "accuracy, penalised (lowest)"] >= ACCURACY_BAR
                                     else "have not learnt the roll"))
    exact = exact_errors_pooled(variants)
    values.update(exact_median_max=error_text(exact["median |rel. error|"].max(), floor=1e-6),
                  exact_p95_max=exact["95th pct |rel. error|"].max(), exact_points=int(exact["points"].sum()))
    ray = reference_errors_pooled(variants, "ray")
    values.update(ray_median_max=error_text(ray["median |rel. error|"].max(), floor=1e-6),
                  ray_p95_max=ray["95th pct |rel. error|"].max())
    preset = benchmark.get("preset", "paper")  # recorded before the script took --preset: the 'paper' preset
    full = benchmark.get("full_preset_wall_seconds", benchmark.get(f"{preset}_preset_wall_seconds"))
    headline_preset = table1_files.HEADLINE[0]
    timed = (f"The headline variant was timed this way, with {benchmark.get('workers', 1)} worker process(es): "
             f"{'within' if full <= TARGET_SECONDS else 'over'} the target."
             if preset == headline_preset else
             f"The headline variant ('{headline_preset}', width {headline.config.width}) has not been timed on a "
             f"quiet machine yet: its committed run took {sum(headline.meta['seconds'].values()) / 60:.0f} minutes on "
             "one thread while other jobs shared the two cores (its meta.json), which says nothing about the target; "
             f"python benchmarks/table1.py --preset {headline_preset} --full measures it.")
    if "search_speedup" in benchmark:
        timed += (f" Its margin search scores the points in blocks of rows that stay in the CPU cache: "
                  f"{benchmark['search_speedup']:.1f}× faster than one call on all rows, with "
                  f"{'the same distances bit for bit' if benchmark['search_same_distances'] else 'other distances'}.")
    values.update(bench_machine=f"{benchmark['machine']}, {benchmark['date']}", bench_ratio=benchmark["speedup"],
                  bench_preset=preset, bench_width=table1_variant.make_config(preset).width,
                  bench_full_minutes=full / 60,
                  bench_headline_note=timed)
    return values


def protocol_search_table(probes: pd.DataFrame, accuracy_bar: float = ACCURACY_BAR) -> pd.DataFrame:
    """The search for a protocol that learns (:func:`mmgan.table1.study.probe_accuracy` results), one line
    per setting: how many classifiers reach the bar, the least accurate one, and the rows that miss it."""
    records = []
    for (scale, width, lr, iterations), part in probes.groupby(["scale", "width", "lr", "iterations"], sort=False):
        missed = part[part.held_out_accuracy < accuracy_bar]
        records.append({"scale": scale, "width": int(width), "lr": f"{lr:g}", "iterations": int(iterations),
                        "seeds": part.seed.nunique(),
                        "classifiers at the bar": f"{len(part) - len(missed)} of {len(part)}",
                        "lowest accuracy": f"{part.held_out_accuracy.min():.1%}",
                        "rows with a classifier below": ", ".join(dict.fromkeys(missed.row)) or "—"})
    return pd.DataFrame(records)


def status_note(claims: ClaimVerdicts) -> str:
    """The introduction's status note for Table 1: each claim's verdict and counts, as the chapter gives them."""
    return (f"headline: a penalty gives larger margins: {claims.larger} ({count_text(claims.larger_counts)}); "
            f"2-3 times larger: {claims.at_least_2x} ({count_text(claims.at_least_2x_counts)}); each penalty "
            f"maximises its own margin: {claims.own_margin} ({count_text(claims.own_margin_counts)})")


def headline_claims(root: Path | str) -> ClaimVerdicts:
    """The claims of §4.2 on the committed headline variant under ``root`` (``results/table1``)."""
    preset, dim, scale = table1_files.HEADLINE
    config = table1_variant.make_config(preset, dim=dim, scale=scale)
    return claim_verdicts(statistics(table1_files.load_table1(table1_files.result_directory(config, Path(root)))))


def book_status(claims: ClaimVerdicts) -> str:
    """The intro's status word for Table 1 (one of the book's status words) from the headline verdicts:
    'does not hold' when a claim does not hold, 'holds' when all hold, else 'cannot tell'."""
    verdicts_of_claims = (claims.larger, claims.at_least_2x, claims.own_margin)
    if Verdict.DOES_NOT_HOLD in verdicts_of_claims:
        return "does not hold"
    if all(v is Verdict.HOLDS for v in verdicts_of_claims):
        return "holds"
    return "cannot tell"
