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
from mmgan.base.results import results_root as find_results_root
from mmgan.book.verdicts import Verdict, interval_text
from mmgan.critics import measure as cm
from mmgan.critics import report

ORDER_NAMES = {1.0: "L1", 2.0: "L2", math.inf: "L∞"}
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
        if self.primary != self.paper_boundary:
            notes.append(f"The committed measurements predate the paper's {RULE_NAMES[self.paper_boundary]} "
                         f"boundary: the verdicts are drawn at the {RULE_NAMES[self.primary]} boundary until "
                         f"`mmgan critic-margins {self.table}` re-measures them.")
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
        rows = [report.fdd_correlation(self.critics, rule, p)
                for rule in self.rules for p in sorted(self.critics["p"].unique())]
        return pd.DataFrame(rows)

    def margins_table(self) -> pd.DataFrame:
        """Per boundary and cell: the signed margin of each order (mean over seeds [95% t interval]), the
        unsigned L¹ margin, accuracy, real–fake score gap and final FDD."""
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
            row["final FDD"] = round(float(group["final_fdd"].mean()), 1)
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
                "best upper / Lipschitz lower (median)": f"{(group['margin'] / group['lower']).median():,.0f}×",
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
        frame = self.correlations
        text = [("—" if math.isnan(rho) else f"{rho:.2f} [{lo:.2f}, {hi:.2f}]")
                for rho, lo, hi in zip(frame["rho"], frame["rho CI low"], frame["rho CI high"])]
        return pd.DataFrame({"boundary": frame["threshold"].map(RULE_NAMES), "order": frame["p"].map(ORDER_NAMES),
                             "critics passing the gate": [f"{k} of {n}" for k, n in zip(frame["critics"], frame["of"])],
                             "Spearman ρ [95% bootstrap interval]": text,
                             "verdict": frame["verdict"].map(str)}).set_index(["boundary", "order"])

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
        """Per cell and iteration: the signed margins [95% interval], the L¹ margin over the nearest-training-image
        scale, the score gap, accuracy and FDD at that iteration."""
        if self.training is None:
            return f"No critic of Table {self.table} was measured along training."
        summary = self.training_summary.assign(order=lambda f: f["p"].map(ORDER_NAMES))
        summary["margin [95% CI]"] = [f"{m:.3g} {interval_text(lo, hi)}" for m, lo, hi in
                                      zip(summary["margin"], summary["margin CI low"], summary["margin CI high"])]
        table = summary.pivot_table(index=["cell", "iteration"], columns="order", values="margin [95% CI]",
                                    aggfunc="first", sort=False)[list(ORDER_NAMES.values())]
        table.columns = [f"{c} signed margin" for c in table.columns]
        l1 = summary[summary["p"] == 1.0].set_index(["cell", "iteration"])
        if "normalised" in l1:
            table["L1 margin / NN distance"] = l1["normalised"].round(3)
        table["score gap"] = l1["score gap"].round(2)
        table["accuracy"] = l1["accuracy"].round(2)
        table["FDD"] = l1["FDD"].round(1)
        return table

    @cached_property
    def training_growth(self) -> pd.DataFrame:
        """Growth from the first to the last measured iteration, raw and normalised
        (:func:`mmgan.critics.report.seed_growth`)."""
        if self.training is None:
            return pd.DataFrame()
        measures = [m for m in ("margin", "normalised") if m in self.training]
        return pd.concat([report.seed_growth(self.training, measure) for measure in measures], ignore_index=True)

    def growth_sentence(self, measure: str) -> str:
        """Per order, the verdict on "the margins grow along training" (the book's one vocabulary) with the ratio
        last / first iteration of ``measure`` pooled over seeds and its interval."""
        frame = self.training_growth[self.training_growth["measure"] == measure]
        if frame.empty:
            return (f"not measured: the committed measurements along training predate the {measure} margins; "
                    f"`mmgan critic-margins {self.table} --along-training ITERATION ...` adds them")
        parts = [f"{ORDER_NAMES[row['p']]}: {str(row['verdict'])}"
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
                f"{name.split(' gives ')[0]} → {str(v)}" for name, v in zip(judged["proposition"], judged["verdict"])))
        return "; ".join(parts)

    # ------------------------------------------------------------------------- glue

    def status_note(self) -> str:
        """The introduction's status note for this chapter: the verdicts at the primary boundary, in words."""
        chosen = self.propositions[(self.propositions["threshold"] == self.primary)
                                   & (self.propositions["measure"] == "signed")]
        return (f"Table {self.table}'s critics ({self.critics[['cell', 'seed']].drop_duplicates().shape[0]}), "
                f"{RULE_NAMES[self.primary]} boundary, signed margins: " + "; ".join(
                    f"{r.proposition}: {r.verdict} ({r.ratio:.2f} {interval_text(r.lower, r.upper)})"
                    for r in chosen.itertuples())) + (" " + self.stale_note() if self.stale_note() else "")

    def glue(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "cm_table": self.table, "cm_critics": int(self.critics[["cell", "seed"]].drop_duplicates().shape[0]),
            "cm_seeds": int(self.critics["seed"].nunique()), "cm_images": int(self.meta["images"]),
            "cm_fmn_steps": int(self.meta["fmn_steps"]), "cm_minutes": self.meta["seconds"] / 60,
            "cm_workers": int(self.meta["workers"]), "cm_primary": RULE_NAMES[self.primary],
            "cm_status": self.status_note(),
            "cm_stale": self.stale_note() or "Every measurement is of the study's own critics at the paper's boundary.",
            "cm_check_critics": 0 if self.check is None else len(self.check[["cell", "seed"]].drop_duplicates()),
        }
        measured = report.with_best_upper(self.measurements)
        gap = report.certificate_gap(measured[measured["threshold_rule"] == self.primary])
        values["cm_certified_ratio"] = f"{gap.min():.1f}–{gap.max():.1f}"
        values["cm_sign_failures"] = int((~measured["sign_change"]).sum())
        values["cm_sign_total"] = len(measured)
        for rule in self.rules:
            values[f"cm_fdd_{rule}"] = self.correlation_sentence(rule)
            at_rule = self.critics[self.critics["threshold_rule"] == rule]
            values[f"cm_accuracy_{rule}"] = f"{at_rule['accuracy'].min():.2f}–{at_rule['accuracy'].max():.2f}"
            values[f"cm_wrong_side_{rule}"] = float(1 - at_rule["accuracy"].mean())
        if self.training is not None:
            iterations = sorted(self.training["iteration"].unique())
            values.update(cm_training_iterations=", ".join(f"{i:,}" for i in iterations),
                          cm_training_images=int(self.training_meta["images"]),
                          cm_training_minutes=self.training_meta["seconds"] / 60,
                          cm_training_verdicts=self.training_verdicts(),
                          cm_training_growth=self.growth_sentence("margin"),
                          cm_training_growth_normalised=self.growth_sentence("normalised"))
        return values

    def correlation_sentence(self, rule: str) -> str:
        """The L¹ margin–FDD correlation at one threshold rule, as the chapter states it."""
        row = self.correlations.set_index(["threshold", "p"]).loc[(rule, 1.0)]
        if math.isnan(row["rho"]):
            return f"no verdict: {row['critics']} of {row['of']} critics pass the sanity gate ({row['verdict']})"
        return (f"ρ = {row['rho']:.2f} [{row['rho CI low']:.2f}, {row['rho CI high']:.2f}] over {row['critics']} "
                f"of {row['of']} critics: {row['verdict']}")

    def scatter(self):
        """The critics' margins against their runs' final FDD (:func:`mmgan.book.plots.critic_margin_scatter`)."""
        from mmgan.book.plots import critic_margin_scatter

        return critic_margin_scatter(self.critics)

    def check_table(self) -> pd.DataFrame | str:
        if self.check is None:
            return "No critic was measured live (check_runs = 0)."
        critics = report.per_critic(self.check)
        return critics[["cell", "seed", "threshold_rule", "p", "margin", "signed", "lower", "certified",
                        "accuracy"]].round(4)


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
                                 search=dict(max_steps=30, polish_steps=1), thresholds=cm.default_thresholds(table))
    return CriticMarginsPage(table, measurements, meta, critics, check, training, training_meta)
