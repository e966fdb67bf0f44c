"""The chapter "Margins of GAN critics": one call that returns everything the page shows.

``chapter(table, ...)`` checks its parameters, loads the committed measurements of the
table's study critics (``results/critic_margins/table<N>.csv``, produced by
``mmgan critic-margins N``) and measures a few critics live as the page's
pipeline check (no verdict is drawn from the check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from mmgan.base.registry import check_choice, check_int
from mmgan.base.results import results_root as find_results_root
from mmgan.book.verdicts import Verdict
from mmgan.critics import measure as cm
from mmgan.critics import report

ORDER_NAMES = {1.0: "L1", 2.0: "L2", math.inf: "L∞"}


@dataclass
class CriticMarginsPage:
    table: str
    measurements: pd.DataFrame
    meta: dict[str, Any]
    critics: pd.DataFrame  # report.per_critic
    check: pd.DataFrame | None  # the live pipeline check (raw rows), None when skipped
    #: report.per_critic of the critics measured along training (midpoint threshold), None when not measured
    training: pd.DataFrame | None = None
    training_meta: dict[str, Any] | None = None

    @cached_property
    def comparisons(self) -> pd.DataFrame:
        return report.dual_norm_comparisons(self.critics)

    @cached_property
    def correlations(self) -> pd.DataFrame:
        rows = [report.fdd_correlation(self.critics, rule, p)
                for rule in self.critics["threshold_rule"].unique() for p in sorted(self.critics["p"].unique())]
        return pd.DataFrame(rows)

    def margins_table(self) -> pd.DataFrame:
        """Per cell, threshold and order: mean margin over seeds [95% t interval], accuracy, final FDD."""
        summary = report.cell_summary(self.critics)
        summary["order"] = summary["p"].map(ORDER_NAMES)
        summary["margin [95% CI]"] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in
                                      zip(summary["margin"], summary["margin CI low"], summary["margin CI high"])]
        table = summary.pivot_table(index=["threshold", "cell"], columns="order", values="margin [95% CI]",
                                    aggfunc="first", sort=False)[list(ORDER_NAMES.values())]
        extra = summary.groupby(["threshold", "cell"], sort=False)[["accuracy", "final FDD"]].first()
        table = table.join(extra.round({"accuracy": 2, "final FDD": 1}))
        table.columns = [f"{c} margin (pixel units, [-1, 1] scale)" if c in ORDER_NAMES.values() else c
                         for c in table.columns]
        return table

    def bracket_numbers(self) -> pd.DataFrame:
        """Per order: how the three bounds relate, over every measured image of every critic (numbers)."""
        rows = []
        measured = report.with_best_upper(self.measurements)
        gap = report.certificate_gap(measured) if "certified" in measured else pd.Series(dtype=float)
        for p, group in measured.groupby("p", sort=False):
            shorter = group["fmn_shorter"]
            excess = (group["upper"] / group["fmn"])[shorter]
            rows.append({"order": ORDER_NAMES[p], "measurements": len(group),
                         "sign change": group["sign_change"].mean(), "converged": group["converged"].mean(),
                         "FMN shorter": shorter.mean(),
                         "excess": float(excess.median() - 1) if shorter.any() else math.nan,
                         "bracket": float((group["margin"] / group["lower"]).median()),
                         "certified bracket": float(gap.get(p, math.nan)),
                         "certified below": (float((group["certified"] <= group["margin"]).mean())
                                             if "certified" in group else math.nan),
                         "taylor": float((group["taylor"] / group["margin"]).median())})
        return pd.DataFrame(rows).set_index("order")

    def certified_ratio(self, rule: str) -> str:
        """Best upper bound / CROWN certificate at one threshold rule: the range over orders of the median over
        images, e.g. '1.4–5.5'."""
        frame = report.with_best_upper(self.measurements)
        if "certified" not in frame:
            return "not measured"
        gap = report.certificate_gap(frame[frame["threshold_rule"] == rule])
        return f"{gap.min():.1f}–{gap.max():.1f}"

    def bracket_table(self) -> pd.DataFrame:
        """:meth:`bracket_numbers` for reading: shares in percent, '—' where a figure does not apply."""
        numbers = self.bracket_numbers()
        return pd.DataFrame({
            "images × critics × thresholds": numbers["measurements"],
            "sign change checked": numbers["sign change"].map("{:.0%}".format),
            "search converged": numbers["converged"].map("{:.0%}".format),
            "FMN shorter than the estimator": numbers["FMN shorter"].map("{:.0%}".format),
            "estimator excess where FMN is shorter (median)": numbers["excess"].map(
                lambda v: "—" if math.isnan(v) else f"{v:.1%}"),
            "best upper / Lipschitz lower (median)": numbers["bracket"].map("{:,.0f}×".format),
            "best upper / CROWN lower (median)": numbers["certified bracket"].map(
                lambda v: "not measured" if math.isnan(v) else f"{v:.2f}×"),
            "Taylor / best upper (median)": numbers["taylor"].map("{:.2f}".format),
        })

    def correlations_table(self) -> pd.DataFrame:
        """:attr:`correlations` for reading ('—' where no critic passes the gate)."""
        frame = self.correlations
        text = [("—" if math.isnan(rho) else f"{rho:.2f} [{lo:.2f}, {hi:.2f}]")
                for rho, lo, hi in zip(frame["rho"], frame["rho CI low"], frame["rho CI high"])]
        return pd.DataFrame({"threshold": frame["threshold"], "order": frame["p"].map(ORDER_NAMES),
                             "critics passing the gate": [f"{k} of {n}" for k, n in zip(frame["critics"], frame["of"])],
                             "Spearman ρ [95% bootstrap CI]": text,
                             "verdict": frame["verdict"].map(str)}).set_index(["threshold", "order"])

    def comparisons_table(self) -> pd.DataFrame:
        """:attr:`comparisons` for reading: the ratio with its interval, the verdict as text."""
        frame = self.comparisons
        return pd.DataFrame({"threshold": frame["threshold"], "claim": frame["claim"], "seeds": frame["seeds"],
                             "margin ratio [95% CI]": [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                                                       zip(frame["ratio"], frame["ratio CI low"],
                                                           frame["ratio CI high"])],
                             "verdict": frame["verdict"].map(str)}).set_index(["threshold", "claim"])

    @cached_property
    def training_summary(self) -> pd.DataFrame:
        """Per cell, order and iteration: mean margin [interval], accuracy, FDD (:func:`report.along_training`)."""
        return pd.DataFrame() if self.training is None else report.along_training(self.training)

    def training_figure(self):
        """Margins and FDD against the iteration (:func:`mmgan.book.plots.critic_margins_along_training`), or why
        none."""
        from mmgan.book.plots import critic_margins_along_training

        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        return critic_margins_along_training(self.training_summary)

    def training_table(self) -> pd.DataFrame | str:
        """Per cell and iteration: the three margins [95% CI], accuracy and FDD at that iteration."""
        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        summary = self.training_summary.assign(order=lambda f: f["p"].map(ORDER_NAMES))
        summary["margin [95% CI]"] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in
                                      zip(summary["margin"], summary["margin CI low"], summary["margin CI high"])]
        table = summary.pivot_table(index=["cell", "iteration"], columns="order", values="margin [95% CI]",
                                    aggfunc="first", sort=False)[list(ORDER_NAMES.values())]
        extra = summary.groupby(["cell", "iteration"], sort=False)[["accuracy", "FDD"]].first()
        table = table.join(extra.round({"accuracy": 2, "FDD": 1}))
        table.columns = [f"{c} margin" if c in ORDER_NAMES.values() else c for c in table.columns]
        return table

    @cached_property
    def training_comparisons(self) -> pd.DataFrame:
        return pd.DataFrame() if self.training is None else report.dual_norm_along_training(self.training)

    def training_comparisons_table(self) -> pd.DataFrame | str:
        """The dual-norm comparisons at every measured iteration (the rule of the final critics)."""
        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        frame = self.training_comparisons
        return pd.DataFrame({"claim": frame["claim"], "iteration": frame["iteration"],
                             "margin ratio [95% CI]": [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                                                       zip(frame["ratio"], frame["ratio CI low"],
                                                           frame["ratio CI high"])],
                             "verdict": frame["verdict"].map(str)}).set_index(["claim", "iteration"])

    @cached_property
    def training_growth(self) -> pd.DataFrame:
        """Do margins grow from the first to the last measured iteration (:func:`report.margin_growth`)?"""
        return pd.DataFrame() if self.training is None else report.margin_growth(self.training)

    def growth_sentence(self) -> str:
        """Per order, the geometric-mean margin ratio last/first iteration with its interval and verdict."""
        frame = self.training_growth
        words = {Verdict.HOLDS: "they grow", Verdict.DOES_NOT_HOLD: "they shrink",
                 Verdict.CANNOT_TELL: "cannot tell at this noise", Verdict.NOT_COMPARABLE: "not comparable"}
        parts = []
        for row in frame.to_dict("records"):
            order = ORDER_NAMES[row['p']] + (f" ({row['threshold']})" if frame["threshold"].nunique() > 1 else "")
            if row["critics"] >= 3:
                parts.append(f"{order}: {row['ratio']:.2f}× [{row['ratio CI low']:.2f}, {row['ratio CI high']:.2f}] "
                             f"over {row['critics']} of {row['of']} critics, {words[row['verdict']]}")
            else:
                parts.append(f"{order}: only {row['critics']} of {row['of']} critics pass the gate at both "
                             f"iterations, {words[row['verdict']]}")
        first, last = int(frame["from"].iloc[0]), int(frame["to"].iloc[0])
        return f"from iteration {first:,} to {last:,}, " + "; ".join(parts)

    def correlation_sentence(self, rule: str) -> str:
        """The L¹ margin–FDD correlation at one threshold rule, as the chapter states it."""
        row = self.correlations.set_index(["threshold", "p"]).loc[(rule, 1.0)]
        if math.isnan(row["rho"]):
            return (f"no verdict: {row['critics']} of {row['of']} critics pass the sanity gate "
                    f"({row['verdict']})")
        return (f"ρ = {row['rho']:.2f} [{row['rho CI low']:.2f}, {row['rho CI high']:.2f}] over {row['critics']} "
                f"of {row['of']} critics: {row['verdict']}")

    def glue(self) -> dict[str, Any]:
        comparisons = self.comparisons
        brackets = self.bracket_numbers()
        values: dict[str, Any] = {
            "cm_table": self.table, "cm_critics": int(self.critics[["cell", "seed"]].drop_duplicates().shape[0]),
            "cm_images": int(self.meta["images"]), "cm_fmn_steps": int(self.meta["fmn_steps"]),
            "cm_minutes": self.meta["seconds"] / 60, "cm_workers": int(self.meta["workers"]),
            "cm_fmn_shorter_l1": float(brackets.loc["L1", "FMN shorter"]),
            "cm_fmn_shorter_linf": float(brackets.loc["L∞", "FMN shorter"]),
            "cm_fmn_shorter_l2": float(brackets.loc["L2", "FMN shorter"]),
            "cm_excess_l1": float(brackets.loc["L1", "excess"]),
            "cm_bracket_ratio_min": float(brackets["bracket"].min()),
            "cm_certified_ratio_midpoint": self.certified_ratio("midpoint"),
            "cm_certified_ratio_zero": self.certified_ratio("zero"),
            "cm_certified_below": float(brackets["certified below"].min()),
            "cm_sign_checked": float(self.measurements["sign_change"].mean()),
            "cm_check_critics": 0 if self.check is None else len(self.check[["cell", "seed"]].drop_duplicates()),
        }
        if self.training is not None:
            iterations = sorted(self.training["iteration"].unique())
            values.update(cm_training_iterations=", ".join(f"{i:,}" for i in iterations),
                          cm_training_images=int(self.training_meta["images"]),
                          cm_training_minutes=self.training_meta["seconds"] / 60,
                          cm_training_verdicts=self.training_verdicts(), cm_training_growth=self.growth_sentence(),
                          cm_training_certified=self.training_certified())
        else:
            values.update(cm_training_iterations="—", cm_training_images=0, cm_training_minutes=0.0,
                          cm_training_verdicts=f"not measured for Table {self.table}",
                          cm_training_growth=f"not measured for Table {self.table}",
                          cm_training_certified="not measured")
        for rule in ("zero", "midpoint"):
            chosen = comparisons[comparisons["threshold"] == rule]
            values[f"cm_dual_{rule}"] = "; ".join(
                f"{claim} ({ratio:.2f}× [{low:.2f}, {high:.2f}]): {verdict}" for claim, ratio, low, high, verdict in
                zip(chosen["claim"], chosen["ratio"], chosen["ratio CI low"], chosen["ratio CI high"],
                    chosen["verdict"])) or "no pair of cells differs in q alone"
            values[f"cm_fdd_{rule}"] = self.correlation_sentence(rule)
            at_rule = self.critics[self.critics["threshold_rule"] == rule]
            values[f"cm_accuracy_{rule}"] = f"{at_rule['accuracy'].min():.2f}–{at_rule['accuracy'].max():.2f}"
        return values

    def training_certified(self) -> str:
        """Per order, the median over the critics along training of mean best upper bound / mean CROWN certificate."""
        frame = self.training
        if "certified" not in frame:
            return "not measured"
        return ", ".join(f"{ORDER_NAMES[p]} {value:.1f}×" for p, value in report.certificate_gap(frame).items())

    def training_verdicts(self) -> str:
        """Per dual-norm claim, its verdicts along training in iteration order (one sentence)."""
        frame = self.training_comparisons
        return "; ".join(f"{claim}: " + ", ".join(f"{v} at {i:,}" for i, v in zip(group["iteration"], group["verdict"]))
                         for claim, group in frame.groupby("claim", sort=False))

    def scatter(self):
        """The critics' margins against their runs' final FDD (:func:`mmgan.book.plots.critic_margin_scatter`)."""
        from mmgan.book.plots import critic_margin_scatter

        return critic_margin_scatter(self.critics)

    def check_table(self) -> pd.DataFrame | str:
        if self.check is None:
            return "No pipeline check was run (check_runs = 0)."
        shown = self.check.groupby(["cell", "seed", "threshold_rule", "p"], sort=False)[
            ["upper", "fmn", "certified", "lower", "taylor"]].mean()
        shown.columns = ["estimator", "FMN", "CROWN lower", "Lipschitz lower", "Taylor"]
        return shown


def chapter(table: str = "3", images: int = 2, check_runs: int = 1, fmn_steps: int = 50,
            results_root: Path | str | None = None) -> CriticMarginsPage:
    """Everything the chapter shows for ``table``'s committed critic-margin study, plus a live check.

    ``results_root`` holds ``critic_margins/`` and ``gan/`` (default: ``results/`` of this repository,
    :func:`mmgan.base.results.results_root`).
    """
    table = str(table)
    root = find_results_root(results_root)
    results_root, gan_root = root / "critic_margins", root / "gan"
    measured = sorted(path.stem.removeprefix("table") for path in Path(results_root).glob("table*.csv")
                      if not path.stem.endswith(cm.ALONG_TRAINING))
    check_choice(table, tuple(measured), "table (one whose critics' margins are committed)")
    check_int(images, "images", minimum=1)
    check_int(check_runs, "check_runs", minimum=0)
    check_int(fmn_steps, "fmn_steps", minimum=0)
    measurements, meta = cm.load_measurements(table, results_root)
    critics = report.per_critic(measurements)
    training = training_meta = None
    if (Path(results_root) / f"table{table}{cm.ALONG_TRAINING}.csv").is_file():
        along, training_meta = cm.load_measurements(table, results_root, cm.ALONG_TRAINING)
        training = report.per_critic(along)
    check = None
    if check_runs:
        check = cm.measure_study(table, images=images, fmn_steps=fmn_steps, root=gan_root, runs=check_runs,
                                 search=dict(max_steps=30, polish_steps=1))
    return CriticMarginsPage(table, measurements, meta, critics, check, training, training_meta)
