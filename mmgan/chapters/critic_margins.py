"""The chapter "Margins of GAN critics": one call that returns everything the page shows.

``chapter(table, ...)`` checks its parameters, loads the committed measurements of the
table's study critics (``results/critic_margins/table<N>.csv`` and, where the study kept
snapshots, ``table<N>-training.csv``, both written by ``mmgan critic-margins N``) and measures
a few critics live as the page's pipeline check (no verdict is drawn from the check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from mmgan.base.registry import check_choice, check_int
from mmgan.base.results import read_csv
from mmgan.base.results import results_root as find_results_root
from mmgan.critics import measure as cm
from mmgan.critics import report, views
from mmgan.gan.tables import STUDIES
from mmgan.verdicts import Verdict, interval_text

ORDER_NAMES = {1.0: "L1", 2.0: "L2", math.inf: "L∞"}
#: How the chapter writes each order in its sentences.
ORDER_TEXT = {1.0: "L¹", 2.0: "L²", math.inf: "L^∞"}
#: How the chapter writes each FDD statistic a margin is set against.
FDD_NAMES = {"end_fdd": "end-of-training FDD", "final_fdd": "final FDD", "lowest_fdd": "lowest FDD"}
#: How the chapter writes each threshold rule, and whose it is.
RULE_NAMES = {"relativistic": "relativistic average (the paper's, App. C.1)", "zero": "zero (the hinge loss's)",
              "midpoint": "real/fake midpoint (ours)"}


@dataclass
class CriticMarginsPage:
    table: str
    measurements: pd.DataFrame
    meta: dict[str, Any]
    critics: pd.DataFrame  # report.per_critic
    check: pd.DataFrame | None  # the live pipeline check (raw rows), None when skipped
    #: report.per_critic of the critics measured along training (primary threshold), None when not measured
    training: pd.DataFrame | None = None
    training_meta: dict[str, Any] | None = None
    #: the column of ``critics`` the margins are set against: the GAN chapters' primary statistic
    #: (:data:`mmgan.critics.report.FDD_STATISTIC`), or the final FDD when the runs' histories are not at hand
    fdd: str = report.FDD_STATISTIC
    #: why ``fdd`` is not the primary statistic ("" when it is)
    fdd_note: str = ""
    #: every boundary rule of every critic of the study in both views (``table<N>-thresholds.csv``), None when absent
    thresholds: pd.DataFrame | None = None
    #: the same critics in eval mode where the primary view is the train-mode critic (both views measured), else None
    second: pd.DataFrame | None = None
    #: the critics along training in eval mode, likewise
    training_second: pd.DataFrame | None = None

    def view(self) -> str:
        """The view the verdicts are drawn on, in words (:func:`mmgan.critics.views.view_text`)."""
        return views.view_text(self.second is not None)

    def views_table(self) -> pd.DataFrame | str:
        """Per proposition at the primary boundary (the dual-norm ones on the signed margins, and the scale control
        along training per order): the verdict on the train-mode critic (primary) beside the one on the eval-mode
        critic (second view), and whether the two agree (:func:`mmgan.critics.views.view_verdicts`)."""
        if self.second is None:
            return "Measured on the eval-mode critic only: there is no second view to compare."
        columns = ["proposition", "verdict", "ratio", "lower", "upper", "seeds"]
        primary = [report.critic_propositions(self.critics, self.primary)[columns]]
        second = [report.critic_propositions(self.second, self.primary)[columns]]
        if self.training is not None and self.training_second is not None:
            primary.append(_growth_propositions(self.training, self.primary))
            second.append(_growth_propositions(self.training_second, self.primary))
        return views.view_verdicts(pd.concat(primary, ignore_index=True), pd.concat(second, ignore_index=True))

    def measurement(self) -> str:
        """What the committed margins behind this page's verdicts are (:func:`mmgan.critics.views.measurement_text`)."""
        return views.measurement_text(self.meta)

    def thresholds_table(self) -> pd.DataFrame | str:
        """Each rule's boundary per cell and view with its standard error, the loss's level and the population's
        accuracy, or "level undetermined by the loss" (:func:`mmgan.critics.views.threshold_summary`)."""
        if self.thresholds is None:
            return f"Not estimated: `mmgan critic-margins {self.table} --thresholds-only` writes them."
        return views.threshold_summary(self.thresholds)

    def soundness(self) -> str:
        """The soundness count of this measurement (:func:`mmgan.critics.views.soundness_text`)."""
        return views.soundness_text(self.meta)

    @property
    def paper_boundary(self) -> str:
        """The paper's boundary for the study's loss (:func:`mmgan.critics.report.primary_threshold`)."""
        return report.primary_threshold(list(self.critics["loss"].unique()))

    @property
    def primary(self) -> str:
        """The boundary the verdicts are drawn at: the paper's when it was measured, else our midpoint (or the
        first measured rule) for measurements made before the paper's boundary was added."""
        measured = list(dict.fromkeys(self.critics["threshold_rule"]))
        if self.paper_boundary in measured:
            return self.paper_boundary
        return "midpoint" if "midpoint" in measured else measured[0]

    def stale_note(self) -> str:
        """What the committed measurements lack, and the command that completes them ("" when nothing)."""
        notes = []
        if views.provenance(self.meta) is views.Provenance.FIRST:
            notes.append(f"Every margin and verdict on this page is {self.measurement()}.")
        if self.primary != self.paper_boundary:
            notes.append(f"The committed measurements predate the paper's {RULE_NAMES[self.paper_boundary]} "
                         f"boundary: the verdicts are drawn at the {RULE_NAMES[self.primary]} boundary until "
                         f"`mmgan critic-margins {self.table}` re-measures them.")
        if self.fdd_note:
            notes.append(self.fdd_note)
        runs = (self.training_meta or {}).get("runs", "results/gan")
        if self.training is not None and runs != "results/gan":
            notes.append(f"The critics along training are those of a retrained replicate of the study (`{runs}`), "
                         f"not of the committed study itself.")
        return " ".join(notes)

    @property
    def rules(self) -> list[str]:
        """The measured threshold rules, the primary one first."""
        measured = list(dict.fromkeys(self.critics["threshold_rule"]))
        return [self.primary] + [rule for rule in measured if rule != self.primary]

    @cached_property
    def propositions(self) -> pd.DataFrame:
        """:func:`mmgan.critics.report.critic_propositions` at every measured rule, signed and unsigned margins."""
        frames = [report.critic_propositions(self.critics, rule, measure)
                  for rule in self.rules for measure in ("signed", "margin")]
        return pd.concat(frames, ignore_index=True)

    def verdicts(self, rule: str | None = None) -> dict[str, Verdict]:
        """Proposition → verdict on the signed margins at ``rule`` (default: the primary boundary)."""
        chosen = self.propositions[(self.propositions["threshold"] == (rule or self.primary))
                                   & (self.propositions["measure"] == "signed")]
        return dict(zip(chosen["proposition"], chosen["verdict"]))

    def propositions_table(self) -> pd.DataFrame:
        """The propositions as the page shows them first: per rule and proposition, the ratio better / other with
        its simultaneous interval and verdict on the signed margins, the unsigned margins' beside."""
        rows = []
        for (rule, name), group in self.propositions.groupby(["threshold", "proposition"], sort=False):
            by = group.set_index("measure")
            signed, unsigned = by.loc["signed"], by.loc["margin"]
            rows.append({"boundary": RULE_NAMES[rule], "proposition": name,
                         f"signed margins: ratio [{signed['level']:.1%} interval]":
                             f"{signed['ratio']:.2f} {interval_text(signed['lower'], signed['upper'])}",
                         "verdict": str(signed["verdict"]),
                         "unsigned margins: ratio, interval, verdict":
                             f"{unsigned['ratio']:.2f} {interval_text(unsigned['lower'], unsigned['upper'])}, "
                             f"{unsigned['verdict']}",
                         "seeds × pairs": f"{signed['seeds']} × {signed['pairs']}"})
        return pd.DataFrame(rows).set_index(["boundary", "proposition"])

    @cached_property
    def correlations(self) -> pd.DataFrame:
        """Per rule and order: does a larger signed margin go with a lower FDD (``fdd``) among the critics of one
        cell? (:func:`mmgan.critics.report.within_cell_correlation`, the pooled ρ beside as a second view)."""
        rows = [report.within_cell_correlation(self.critics, rule, p, "signed", self.fdd)
                for rule in self.rules for p in sorted(self.critics["p"].unique())]
        return pd.DataFrame(rows)

    @cached_property
    def second_correlations(self) -> pd.DataFrame | None:
        """:attr:`correlations` on the eval-mode critics (the second view), None when only one view was measured."""
        if self.second is None:
            return None
        return pd.DataFrame([report.within_cell_correlation(self.second, rule, p, "signed", self.fdd)
                             for rule in self.rules for p in sorted(self.second["p"].unique())])

    def margins_table(self) -> pd.DataFrame:
        """Per boundary and cell: the signed margin of each order (mean over seeds [95% t interval]), the
        unsigned L¹ margin, accuracy, real–fake score gap and FDD (the statistic the margins are set against)."""
        rows = []
        ordered = self.critics.assign(rank=self.critics["threshold_rule"].map(self.rules.index))
        for (_, rule, cell), group in ordered.groupby(["rank", "threshold_rule", "cell"], sort=True):
            row: dict[str, Any] = {"boundary": RULE_NAMES[rule], "cell": cell}
            for p, at in group.groupby("p", sort=True):
                mean = at["signed"].mean()
                interval = report.paired_t_interval(at["signed"])
                row[f"{ORDER_NAMES[p]} signed margin"] = f"{mean:.3g} {interval_text(interval.lower, interval.upper)}"
            row["L1 unsigned margin"] = f"{group[group['p'] == 1.0]['margin'].mean():.3g}"
            row["accuracy"] = round(float(group["accuracy"].mean()), 2)
            row["score gap (real − fake)"] = round(float(group["score_gap"].mean()), 2)
            row[FDD_NAMES[self.fdd]] = round(float(group[self.fdd].mean()), 1)
            row["seeds"] = group["seed"].nunique()
            rows.append(row)
        return pd.DataFrame(rows).set_index(["boundary", "cell"])

    def bracket_table(self) -> pd.DataFrame:
        """Per boundary and order, over every measured image of every critic: how the bounds relate (counts where
        a few cases fail, medians of ratios)."""
        measured = report.with_best_upper(self.measurements)
        rows = []
        for (rule, p), group in measured.groupby(["threshold_rule", "p"], sort=False):
            n = len(group)
            shorter = group["fmn_shorter"]
            excess = (group["upper"] / group["fmn"])[shorter]
            rows.append({
                "boundary": RULE_NAMES[rule], "order": ORDER_NAMES[p], "images × critics": n,
                "sign change checked": f"{int(group['sign_change'].sum()):,} of {n:,}",
                "search converged": f"{int(group['converged'].sum()):,} of {n:,}",
                "FMN shorter than the estimator": f"{int(shorter.sum()):,} of {n:,}",
                "estimator excess where FMN is shorter (median)": ("—" if not shorter.any()
                                                                   else f"{excess.median() - 1:.1%}"),
                "best upper / Lipschitz lower (median)": _lipschitz_text(group),
                "best upper / CROWN lower (median)": f"{(group['margin'] / group['certified']).median():.2f}×",
                "CROWN below the best upper": f"{int((group['certified'] <= group['margin']).sum()):,} of {n:,}",
                "Taylor / best upper (median)": f"{(group['taylor'] / group['margin']).median():.2f}"})
        return pd.DataFrame(rows).set_index(["boundary", "order"])

    def modes_table(self) -> pd.DataFrame | str:
        """Per cell: the critic as measured (eval mode) and as the generator trained against it (train mode):
        mean L² gradient norm at interpolates and real–fake score gap, mean over seeds (or why not shown)."""
        columns = ["grad_norm_eval", "grad_norm_train", "score_gap_eval", "score_gap_train"]
        if not set(columns) <= set(self.measurements):
            return (f"Not measured: the committed measurements predate the eval- and train-mode views; "
                    f"`mmgan critic-margins {self.table}` adds them.")
        per_critic = self.measurements.groupby(["cell", "seed"], sort=False)[columns].first()
        table = per_critic.groupby(level="cell", sort=False).mean().round(2)
        return table.rename(columns={"grad_norm_eval": "‖∇f‖₂ at interpolates, eval mode",
                                     "grad_norm_train": "‖∇f‖₂ at interpolates, train mode",
                                     "score_gap_eval": "score gap, eval mode",
                                     "score_gap_train": "score gap, train mode"})

    def correlations_table(self) -> pd.DataFrame:
        """Per boundary and order: the within-cell ρ between the signed margin and the FDD with its bootstrap
        interval and verdict, each cell's own ρ, and the pooled ρ (between + within cells, a second view)."""
        frame = self.correlations
        second = (None if self.second_correlations is None
                  else self.second_correlations.set_index(["threshold", "p"]))
        rows = []
        for row in frame.to_dict("records"):
            level = f"{row['level']:.0%}"
            rows.append({
                "boundary": RULE_NAMES[row["threshold"]], "order": ORDER_NAMES[row["p"]],
                "critics (cells)": f"{row['critics']} of {row['of']} ({row['cells']})",
                f"within-cell ρ [{level} interval]": _rho_text(row["rho"], row["rho CI low"], row["rho CI high"]),
                "verdict": str(row["verdict"]),
                "each cell's ρ": ", ".join(f"{cell}: {rho:.2f}" for cell, rho in row["per cell"].items()) or "—",
                f"pooled ρ, between + within cells [{level} interval]":
                    _rho_text(row["pooled rho"], row["pooled CI low"], row["pooled CI high"])})
            if second is not None:
                other = second.loc[(row["threshold"], row["p"])]
                rows[-1]["eval-mode critic (second view): within-cell ρ, verdict"] = (
                    f"{_rho_text(other['rho'], other['rho CI low'], other['rho CI high'])}, {other['verdict']}")
        return pd.DataFrame(rows).set_index(["boundary", "order"])

    # ------------------------------------------------------------------------- along training

    @cached_property
    def training_summary(self) -> pd.DataFrame:
        """Per cell, order and iteration (:func:`mmgan.critics.report.along_training`)."""
        return pd.DataFrame() if self.training is None else report.along_training(self.training)

    def training_figure(self):
        """Margins and FDD against the iteration (:func:`mmgan.book.plots.critic_margins_along_training`), or why
        none."""
        from mmgan.book.plots import critic_margins_along_training

        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        return critic_margins_along_training(self.training_summary)

    def training_table(self) -> pd.DataFrame | str:
        """Per cell and iteration: the signed margins [95% interval], the signed L¹ margin of the fixed real images,
        the score gap, accuracy and FDD at that iteration."""
        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        summary = self.training_summary.assign(order=lambda f: f["p"].map(ORDER_NAMES))
        summary["margin [95% CI]"] = [f"{m:.3g} {interval_text(lo, hi)}" for m, lo, hi in
                                      zip(summary["margin"], summary["margin CI low"], summary["margin CI high"])]
        table = summary.pivot_table(index=["cell", "iteration"], columns="order", values="margin [95% CI]",
                                    aggfunc="first", sort=False)[list(ORDER_NAMES.values())]
        table.columns = [f"{c} signed margin" for c in table.columns]
        l1 = summary[summary["p"] == 1.0].set_index(["cell", "iteration"])
        table["L1 signed margin, real images"] = l1["real margin"].map(lambda v: f"{v:.3g}")
        table["score gap"] = l1["score gap"].round(2)
        table["accuracy"] = l1["accuracy"].round(2)
        table["FDD"] = l1["FDD"].round(1)
        return table

    #: What the growth along training is read on: the signed margin over every measured image, and the scale
    #: control, the signed margin of the fixed real images alone (the unsigned one beside).
    GROWTH_MEASURES = ("signed", "real_signed", "real_margin")

    @cached_property
    def training_growth(self) -> pd.DataFrame:
        """Growth from the first to the last measured iteration, per order (:func:`mmgan.critics.report.seed_growth`)
        of each of :attr:`GROWTH_MEASURES`."""
        if self.training is None:
            return pd.DataFrame()
        return pd.concat([report.seed_growth(self.training, measure) for measure in self.GROWTH_MEASURES],
                         ignore_index=True)

    @cached_property
    def scale_control(self) -> pd.DataFrame:
        """The scale control per order and per cell: growth of the signed margin of the fixed real images from the
        first to the last measured iteration (:func:`mmgan.critics.report.seed_growth` with ``by_cell``)."""
        if self.training is None:
            return pd.DataFrame()
        return report.seed_growth(self.training, "real_signed", by_cell=True)

    def scale_control_table(self) -> pd.DataFrame | str:
        """Per order: the ratio last / first iteration of the real images' signed margin, pooled over seeds, over all
        cells (the verdict) and per cell, with its interval; the unsigned one and all images' beside."""
        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        growth = {(row["measure"], row["p"]): row for row in self.training_growth.to_dict("records")}
        level = f"{1 - report.ALPHA / self.training['p'].nunique():.1%}"
        rows = []
        for p in sorted(self.training["p"].unique()):
            real = growth.get(("real_signed", p))
            row = {"order": ORDER_NAMES[p], f"real images, signed: ratio [{level} interval]": _ratio_text(real),
                   "verdict": str(real["verdict"] if real else Verdict.NOT_COMPARABLE)}
            for cell in self.scale_control[self.scale_control["p"] == p].to_dict("records"):
                row[cell["cell"]] = _ratio_text(cell)
            row["real images, unsigned"] = _ratio_text(growth.get(("real_margin", p)))
            row["all images, signed"] = _ratio_text(growth.get(("signed", p)))
            row["critics"] = "—" if real is None else f"{real['critics']} of {real['of']}, {real['seeds']} seeds"
            rows.append(row)
        return pd.DataFrame(rows).set_index("order")

    def growth_sentence(self, measure: str) -> str:
        """Per order, the verdict on "the margins grow along training" (the book's one vocabulary) with the ratio
        last / first iteration of ``measure`` pooled over seeds and its interval."""
        frame = self.training_growth[self.training_growth["measure"] == measure]
        if frame.empty:
            return (f"not measured: no critic passes the sanity gate at both ends, or the committed measurements "
                    f"along training predate the {measure} margins")
        parts = [f"{ORDER_TEXT[row['p']]}: {str(row['verdict'])}"
                 + ("" if row["verdict"] == Verdict.NOT_COMPARABLE else
                    f", {row['ratio']:.2f}× {interval_text(row['lower'], row['upper'])} ({row['critics']} of "
                    f"{row['of']} critics, {row['seeds']} seeds)")
                 for row in frame.to_dict("records")]
        first, last = int(frame["from"].iloc[0]), int(frame["to"].iloc[0])
        return f"from iteration {first:,} to {last:,}, " + "; ".join(parts)

    def training_verdicts(self) -> str:
        """The dual-norm propositions at every measured iteration, on the signed margins (one sentence)."""
        parts = []
        for iteration, group in self.training.groupby("iteration", sort=True):
            judged = report.critic_propositions(group, self.primary)
            parts.append(f"at {int(iteration):,}: " + ", ".join(
                f"{_short(name)} → {str(v)}" for name, v in zip(judged["proposition"], judged["verdict"])))
        return "; ".join(parts)

    # ------------------------------------------------------------------------- glue

    def status_note(self) -> str:
        """The introduction's status note for this chapter: the verdicts at the primary boundary, in words, and
        whether a larger L¹ margin goes with a better GAN within cells."""
        chosen = self.propositions[(self.propositions["threshold"] == self.primary)
                                   & (self.propositions["measure"] == "signed")]
        mode = "train" if self.second is not None else "eval"
        return (f"Table {self.table}'s critics ({self.critics[['cell', 'seed']].drop_duplicates().shape[0]}, "
                f"{mode}-mode), {RULE_NAMES[self.primary]} boundary, signed margins: " + "; ".join(
                    f"{r.proposition}: {r.verdict} ({r.ratio:.2f} {interval_text(r.lower, r.upper)})"
                    for r in chosen.itertuples())
                + f"; a larger signed L¹ margin goes with a lower {FDD_NAMES[self.fdd]} among the critics of one "
                  f"cell: {self.correlation_sentence(self.primary, short=True)}"
                + (" " + self.stale_note() if self.stale_note() else ""))

    def glue(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "cm_table": self.table, "cm_critics": int(self.critics[["cell", "seed"]].drop_duplicates().shape[0]),
            "cm_seeds": int(self.critics["seed"].nunique()), "cm_images": int(self.meta["images"]),
            "cm_fmn_steps": int(self.meta["fmn_steps"]), "cm_minutes": views.measured_seconds(self.meta) / 60,
            "cm_workers": int(self.meta["workers"]), "cm_primary": RULE_NAMES[self.primary], "cm_view": self.view(),
            "cm_status": self.status_note(),
            "cm_stale": self.stale_note() or "Every measurement is of the study's own critics at the paper's boundary.",
            "cm_check_critics": 0 if self.check is None else len(self.check[["cell", "seed"]].drop_duplicates()),
            "cm_measurement": self.measurement(), "cm_soundness": self.soundness(),
            "cm_remeasure_images": cm.IMAGES, "cm_population": f"{cm.POPULATION:,}",
            "cm_undetermined": ("not estimated" if self.thresholds is None
                                else views.undetermined_text(self.thresholds)),
        }
        measured = report.with_best_upper(self.measurements)
        gap = report.certificate_gap(measured[measured["threshold_rule"] == self.primary])
        values["cm_certified_ratio"] = f"{gap.min():.1f}–{gap.max():.1f}"
        values["cm_sign_failures"] = int((~measured["sign_change"]).sum())
        values["cm_sign_total"] = len(measured)
        values["cm_fdd_name"] = FDD_NAMES[self.fdd]
        primary_l1 = self.correlations.set_index(["threshold", "p"]).loc[(self.primary, 1.0)]
        values["cm_fdd_cells"] = ", ".join(f"{cell} {rho:.2f}" for cell, rho in primary_l1["per cell"].items())
        values["cm_fdd_min_cell"] = report.MIN_CELL_CRITICS
        values["cm_fdd_resamples"] = f"{report.RESAMPLES:,}"
        for rule in self.rules:
            values[f"cm_fdd_{rule}"] = self.correlation_sentence(rule)
            values[f"cm_fdd_pooled_{rule}"] = self.pooled_sentence(rule)
            at_rule = self.critics[self.critics["threshold_rule"] == rule]
            values[f"cm_accuracy_{rule}"] = f"{at_rule['accuracy'].min():.2f}–{at_rule['accuracy'].max():.2f}"
            values[f"cm_wrong_side_{rule}"] = float(1 - at_rule["accuracy"].mean())
        if self.training is not None:
            iterations = sorted(self.training["iteration"].unique())
            values.update(cm_training_iterations=", ".join(f"{i:,}" for i in iterations),
                          cm_training_images=int(self.training_meta["images"]),
                          cm_training_minutes=views.measured_seconds(self.training_meta) / 60,
                          cm_training_verdicts=self.training_verdicts(),
                          cm_growth_level=f"{1 - report.ALPHA / self.training['p'].nunique():.1%}",
                          cm_training_growth=self.growth_sentence("signed"),
                          cm_training_growth_real=self.growth_sentence("real_signed"),
                          cm_training_growth_real_unsigned=self.growth_sentence("real_margin"))
        return values

    def correlation_sentence(self, rule: str, short: bool = False) -> str:
        """At one threshold rule, the within-cell correlation between the signed L¹ margin and the FDD as the chapter
        states it (the verdict last); ``short``: the verdict first, then ρ and its interval."""
        row = self.correlations.set_index(["threshold", "p"]).loc[(rule, 1.0)]
        if row["verdict"] == Verdict.NOT_COMPARABLE:
            return (f"{row['verdict']}: no cell has {report.MIN_CELL_CRITICS} critics that pass the sanity gate "
                    f"({row['critics']} of {row['of']} critics kept)")
        rho = f"ρ = {_rho_text(row['rho'], row['rho CI low'], row['rho CI high'])}"
        if short:
            return f"{row['verdict']} ({rho}, {row['cells']} cells)"
        return (f"signed L¹ margin against the {FDD_NAMES[self.fdd]}, ranked within each of {row['cells']} cells: "
                f"{rho} over {row['critics']} of {row['of']} critics: {row['verdict']}")

    def pooled_sentence(self, rule: str) -> str:
        """The pooled ρ (between + within cells) of the same critics at one rule, the second view."""
        row = self.correlations.set_index(["threshold", "p"]).loc[(rule, 1.0)]
        return f"ρ = {_rho_text(row['pooled rho'], row['pooled CI low'], row['pooled CI high'])}"

    def scatter(self):
        """The critics' unsigned margins against their runs' final FDD, one colour per cell
        (:func:`mmgan.book.plots.critic_margin_scatter`)."""
        from mmgan.book.plots import critic_margin_scatter

        return critic_margin_scatter(self.critics)

    def check_table(self) -> pd.DataFrame | str:
        if self.check is None:
            return "No critic was measured live (check_runs = 0)."
        critics = report.per_critic(self.check)
        shown = critics[["cell", "seed", "mode", "threshold_rule", "p", "margin", "signed", "lower", "certified",
                         "accuracy"]].round(4)
        # the Lipschitz lower bound needs fixed BatchNorm statistics: the eval view has one, the train view none
        if shown.loc[shown["mode"] != "train", "lower"].isna().any():
            raise ValueError("an eval-mode critic of the live check has no Lipschitz lower bound")
        lower = [f"{value:.4f}" if mode != "train" else "none (train mode)"
                 for value, mode in zip(shown["lower"], shown["mode"])]
        return shown.assign(lower=lower).rename(columns={"lower": "Lipschitz lower bound"})


def _growth_propositions(training: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The scale control at boundary ``rule`` as propositions (one per order): "the signed L^p margins of the fixed
    real images grow along training", with the pooled ratio last / first iteration
    (:func:`mmgan.critics.report.seed_growth`)."""
    growth = report.seed_growth(training[training["threshold_rule"] == rule], "real_signed")
    if growth.empty:  # no critic passes the sanity gate at both ends
        return pd.DataFrame(columns=["proposition", "verdict", "ratio", "lower", "upper", "seeds"])
    return pd.DataFrame({
        "proposition": [f"the signed {ORDER_TEXT[p]} margins of the fixed real images grow along training"
                        for p in growth["p"]],
        "verdict": growth["verdict"], "ratio": growth["ratio"], "lower": growth["lower"], "upper": growth["upper"],
        "seeds": growth["seeds"]})


def _lipschitz_text(group: pd.DataFrame) -> str:
    """The median best upper / Lipschitz lower bound over the images that have one; the train-mode critic has none
    (its batch statistics move with the image, so the product of the layers' norms bounds nothing)."""
    bounded = group[group["lower"].notna()]
    if bounded.empty:
        return "none (train mode)"
    return f"{(bounded['margin'] / bounded['lower']).median():,.0f}×"


def _short(proposition: str) -> str:
    """A dual-norm proposition "A gives B than C" shortened to "A: B" (``'q = ∞: larger L¹ margins'``)."""
    better, rest = proposition.split(" gives ", 1)
    return f"{better}: {rest.split(' than ', 1)[0]}"


def _rho_text(rho: float, low: float, high: float) -> str:
    """``'-0.01 [-0.53, 0.47]'``, or ``'—'`` without a ρ."""
    return "—" if math.isnan(rho) else f"{rho:.2f} {interval_text(low, high)}"


def _ratio_text(row: dict[str, Any] | None) -> str:
    """A growth row's ratio with its interval (``'0.43× [0.33, 0.55]'``), or *not comparable* (also without a row: no
    critic passed the sanity gate at both ends)."""
    if row is None or row["verdict"] == Verdict.NOT_COMPARABLE:
        return str(Verdict.NOT_COMPARABLE)
    return f"{row['ratio']:.2f}× {interval_text(row['lower'], row['upper'])}"


def runs_folder(meta: dict[str, Any], root: Path) -> Path:
    """The GAN runs folder a measurement names (``meta['runs']``, relative to the repository), under ``root``."""
    runs = Path(meta.get("runs", "results/gan"))
    return runs if runs.is_absolute() else root.joinpath(*(runs.parts[1:] if runs.parts[0] == "results"
                                                           else runs.parts))


def verified(table: str, measurements: pd.DataFrame, meta: dict[str, Any], root: Path) -> dict[str, Any]:
    """``meta``, once the critics of ``measurements`` are checked to be the committed ones
    (:func:`mmgan.critics.measure.verify_measured_weights`), where those runs are at hand."""
    folder = runs_folder(meta, root)
    if folder.is_dir():
        cm.verify_measured_weights(table, meta, folder, measurements)
    return meta


def _end_of_training_fdd(critics: pd.DataFrame, table: str, meta: dict[str, Any],
                         root: Path) -> tuple[pd.DataFrame, str, str]:
    """``critics`` with the GAN chapters' primary FDD statistic of their runs
    (:func:`mmgan.critics.report.with_end_fdd`), that column's name and "" — or, when the measured runs are not at
    hand under ``root`` (the folder the measurement names, ``meta['runs']``), ``critics`` unchanged, ``final_fdd``
    and a note saying so."""
    runs = Path(meta.get("runs", "results/gan"))
    if table in STUDIES:
        try:
            listed = cm.study_runs(table, runs_folder(meta, root), meta.get("cells"))
            return report.with_end_fdd(critics, listed), report.FDD_STATISTIC, ""
        except FileNotFoundError:
            pass
    return critics, "final_fdd", (f"The histories of the measured runs (`{runs}`) are not at hand, so the margins are "
                                  f"set against the runs' final FDD instead of the GAN chapters' end-of-training FDD.")


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
                      if not path.stem.endswith((cm.ALONG_TRAINING, cm.THRESHOLDS_ONLY)))
    check_choice(table, tuple(measured), "table (one whose critics' margins are committed)")
    check_int(images, "images", minimum=1)
    check_int(check_runs, "check_runs", minimum=0)
    check_int(fmn_steps, "fmn_steps", minimum=0)
    measurements, meta = cm.load_measurements(table, results_root)
    meta = verified(table, measurements, meta, root)
    critics, fdd, fdd_note = _end_of_training_fdd(report.per_critic(measurements), table, meta, root)
    second = None
    if views.both_views(meta):
        eval_rows, _ = cm.load_measurements(table, results_root, mode="eval")
        second = _end_of_training_fdd(report.per_critic(eval_rows), table, meta, root)[0]
    training = training_meta = training_second = None
    if (Path(results_root) / f"table{table}{cm.ALONG_TRAINING}.csv").is_file():
        along, training_meta = cm.load_measurements(table, results_root, cm.ALONG_TRAINING)
        training_meta = verified(table, along, training_meta, root)
        training = report.per_critic(along)
        if views.both_views(training_meta):
            training_second = report.per_critic(cm.load_measurements(table, results_root, cm.ALONG_TRAINING,
                                                                     mode="eval")[0])
    check = None
    if check_runs:
        check = cm.measure_study(table, images=images, fmn_steps=fmn_steps, root=gan_root, runs=check_runs,
                                 search=dict(max_steps=30, polish_steps=1), thresholds=cm.default_thresholds(table))
    thresholds_path = Path(results_root) / f"table{table}{cm.THRESHOLDS_ONLY}.csv"
    thresholds = (read_csv(thresholds_path, f"mmgan critic-margins {table} --thresholds-only",
                           dtype={"q": str, "g": str}) if thresholds_path.is_file() else None)
    return CriticMarginsPage(table, measurements, meta, critics, check, training, training_meta, fdd, fdd_note,
                             thresholds, second, training_second)
