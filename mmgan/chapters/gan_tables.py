"""Everything a GAN table chapter (Tables 2–8) shows, from one call: :func:`chapter`.

A table chapter is its papermill parameters, ``page = chapter(TABLE, **parameters)`` and its
prose. The page has two parts:

* the **committed CPU study** of the table (preset ``cpu``, listed in
  :data:`mmgan.gan.table_specs.STUDIES`, with the runs of other studies that its comparisons need,
  :data:`mmgan.gan.table_specs.COMPANIONS`), loaded from ``results/gan/`` without retraining: first the
  paper's propositions judged by the pooled rule of :mod:`mmgan.gan.propositions` (ratio, interval,
  verdict, beside the paper's own direction), then the comparison with the paper's table, curves,
  whether the runs learnt and levelled off, and the protocol table. A table without a committed
  study says so and gives the command that makes one.
* **this run**: the runs the chapter's own parameters ask for. At the default ``smoke`` preset
  that is a pipeline check (seconds on a CPU) shown without verdicts and without curves; at
  ``cpu`` or ``paper`` it is the rerun the reader asked for, judged by the same rule and gates
  (the runs, the study and the gates: :mod:`mmgan.chapters.gan_runs`).

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from mmgan import paper
from mmgan.base.registry import lookup
from mmgan.base.results import results_root as find_results_root
from mmgan.book import plots
from mmgan.book.table_chapters import chapter_notebooks
from mmgan.chapters.gan_runs import LEVELLED, PRIMARY, Run, Study
from mmgan.gan import outcomes as gan_outcomes
from mmgan.gan import propositions, protocol
from mmgan.gan import report as gan_report
from mmgan.gan import tables as gan_tables
from mmgan.gan.propositions import PROPOSITIONS as PROPOSITIONS_BY_NAME
from mmgan.verdicts import ALPHA, EQUIVALENCE_BAND, effect_text, interval_text

STUDY_CAPTIONS: dict[str, str | None] = {
    "propositions": None,  # the chapter introduces it in its own words
    "tables": "Cell means ± standard deviation over seeds beside the paper's FIDs, with the rank of each within "
              "its table (`mmgan.gan.report.side_by_side`):",
    "pairs": "Every matched pair behind the propositions on its own, among runs that learnt (ratio other / better of "
             "the end-of-training metric over seeds, with its uncorrected 95% t interval): how much the pairs agree. "
             "The verdicts come from the pooled ratio above, not from these.",
    # the curves are a captioned figure in the chapter (cell metadata): a second output would repeat its label
    "curves": None,
    "levelling": "Have the runs learnt and levelled off? Per cell, the median over seeds of the first and best metric "
                 "and of the change of the smoothed metric over the last quarter of training "
                 "(`mmgan.gan.report.learning`; −0.20: it fell by a further 20%; near 0: levelled off), and how many "
                 f"of its runs changed by less than {LEVELLED:.0%} (levelled off):",
    "over training": "**The verdicts over training.** Each proposition's quality ratio (among runs that learnt) read "
                     "at every metric evaluation instead of at the end of training, with its {level:.1%} interval "
                     "(`mmgan.chapters.gan_runs.Run.over_training`): where the band leaves 1 for good is when the "
                     "verdict is settled; a band that is still moving at the end says the verdict depends on when "
                     "training stops.",
    "starts": "**When the runs started** (`mmgan.book.plots.start_curves`): per cell, the share of its runs still on "
              "their starting level (the metric not yet halved) against iterations; a cross at the end marks runs that "
              "never started. The time to start is compared between the levels of each proposition in its table "
              "(other − better, sign-flip test over seeds).",
    "outcomes": "**Runs that did not learn** (`mmgan.gan.outcomes`): each run that stalled, did not start or diverged, "
                "when it left its starting level, and what its log lines show over the plateau "
                "(`mmgan.gan.outcomes.stall_mechanism`):",
    "protocol": "The study's protocol: each setting as the paper states it, as the released code "
                "(`Code/GAN.py` with the flags of `Code/experiments.sh`) ran it, and as the study has it "
                "(`mmgan.gan.protocol.protocol_table`); the rows marked \"no\" are where the study departs from the "
                "released protocol (scale, metric, and the settings the `cpu` preset keeps).",
}


@dataclass
class GANChapter:
    """What a table chapter shows: the paper's table, the committed study and the chapter's own run."""

    table: str
    preset: str
    run: Run
    study: Study | None

    def check_runs(self) -> None:
        """Stop the chapter (``ValueError``) when a run of its own or of the committed study failed or cannot be
        read, naming each run's folder and its error (the warnings before it said the same, one by one)."""
        for what, part in (("the chapter's own runs", self.run), ("the committed study", self.study)):
            if part is None:
                continue
            failed = part.failed()
            if not failed.empty:
                folders = part.everything.loc[failed.index, "run"]
                raise ValueError(f"{len(failed)} of {what} failed or cannot be read: " + "; ".join(
                    f"{folder}: {error}" for folder, error in zip(folders, failed["error"]))
                    + ". Restore the committed files (git checkout -- results/), or rerun the runs named")

    def paper_table(self) -> pd.DataFrame | Markdown:
        """The paper's numbers (FID, lower is better), one row per (stat, q, g), one column per loss; a note for a
        study beyond the paper."""
        source = gan_tables.TABLES[self.table].paper
        if source is None:
            return Markdown(f"({gan_tables.TABLES[self.table].title}: not a table of the paper, no numbers of its own)")
        frame = paper.paper_table(source)
        return frame.pivot_table(index=["stat", "q", "g"], columns="loss", values="value", sort=False)

    def study_summary(self) -> Markdown:
        if self.study is not None:
            return self.study.summary()
        return Markdown(
            f"No CPU study of Table {self.table} is committed yet (the 2-core machine this book is built on "
            f"has not had the hours it needs). Make one with `mmgan table {self.table} --preset cpu` "
            f"(about {len(gan_tables.table_configs(self.table, 'cpu')[0])} runs of a few minutes each on one "
            f"core); this page then shows it.")

    @cached_property
    def study_parts(self) -> dict[str, tuple[str | None, list[Any]]]:
        """Each part of the committed study as (caption, objects to display); empty without a study."""
        study = self.study
        if study is None:
            return {}
        c = study.config
        curves = plots.gan_metric_curves(study.curves, f"{c.metric.upper()} ({c.dataset} {c.image_size} px, "
                                                       f"preset cpu; lower is better)")
        plt.close(curves)
        starts = plots.start_curves(study.outcomes, c.iterations)
        plt.close(starts)
        over = study.over_training
        if over["ratio"].notna().any():
            over_training = plots.verdicts_over_training(over, "generator iterations")
            plt.close(over_training)
        else:
            over_training = Markdown("(no proposition has two seeds of paired runs that both learnt: no ratio to "
                                     "follow)")
        pairs = propositions.pair_effects(study.judged_runs[study.judged_runs["learnt"]], PRIMARY,
                                          list(study.judged[PRIMARY].index))
        grids, missing = study.samples()
        samples: list[Any] = []
        if grids:
            figure = plots.sample_grids(grids, f"final generators, {c.dataset} {c.image_size} px, preset cpu, "
                                               f"{c.iterations:,} it.")
            plt.close(figure)
            samples.append(figure)
        if missing:
            samples.append(Markdown(f"No committed networks for: {'; '.join(missing)} (only their summaries and "
                                    "logs are committed)."))
        judged = study.judged[PRIMARY]
        return {
            "samples": (None, samples),
            "propositions": (STUDY_CAPTIONS["propositions"], [study.propositions(), Markdown(
                STUDY_CAPTIONS["over training"].format(level=judged["level"].iloc[0])), over_training]
                if len(judged) else [Markdown("(no proposition compares cells of this study alone)")]),
            "tables": (STUDY_CAPTIONS["tables"], [study.side_by_side(stat) for stat in
                                                  dict.fromkeys((PRIMARY, *study.stats))]),
            "pairs": (STUDY_CAPTIONS["pairs"], [
                pairs.set_index(["proposition", "pair"]).assign(
                    interval=[interval_text(lo, hi) for lo, hi in zip(pairs["lower"], pairs["upper"])])
                [["ratio", "interval", "seeds"]].round({"ratio": 2})]),
            "curves": (STUDY_CAPTIONS["curves"], [curves]),
            "levelling": (STUDY_CAPTIONS["levelling"], [study.levelling(), Markdown(STUDY_CAPTIONS["starts"]),
                                                         starts, Markdown(STUDY_CAPTIONS["outcomes"]),
                                                         study.outcome_table() if not study.learnt
                                                         else Markdown("(every run learnt)")]),
            "protocol": (STUDY_CAPTIONS["protocol"], [study.protocol()]),
        }

    def show_study(self, part: str) -> None:
        """Display one part of the study (its caption, then its tables or figure); nothing without a study."""
        parts = self.study_parts
        if not parts:
            return
        caption, objects = lookup(parts, part, "part")
        with pd.option_context("display.max_colwidth", None):  # every cell in full, never "..."
            if caption is not None:
                display(Markdown(caption))
            for item in objects:
                display(item)

    def run_curves(self) -> Any:
        """The chapter's own run's curves, or a note when each run has fewer than two evaluations."""
        if self.run.evaluations < 2:
            return Markdown(f"(each run of this `{self.preset}` run has {self.run.evaluations} metric evaluation(s): "
                            "no curve to draw)")
        c = self.run.config
        return plots.gan_metric_curves(self.run.curves, f"{c.metric.upper()} ({c.dataset} {c.image_size} px, "
                                                        f"preset {self.preset}; lower is better)")

    def run_protocol(self) -> pd.DataFrame:
        return protocol.protocol_table(self.run.config, gan_tables.TABLES[self.table].losses, self.run.seeds,
                                       tuple(self.run.results["q"].unique())).set_index("setting")

    def setting(self) -> pd.Series:
        """The chapter's own run against the paper's setting."""
        source, c = gan_tables.TABLES[self.table].paper, self.run.config
        info = paper.table_info(source) if source is not None else dict.fromkeys(
            ("dataset", "protocol", "metric"), "(beyond the paper)")
        return pd.Series({"paper: data set": info["dataset"], "paper: protocol": info["protocol"],
                          "paper: metric": info["metric"], "this run: preset": self.preset,
                          "this run": self.run.scale_text(),
                          "this run: q = inf / smax as released": c.as_released}).to_frame("value")

    def run_tables(self) -> list[pd.DataFrame]:
        """The chapter's own run beside the paper, one table per reported statistic."""
        return [self.run.side_by_side(stat) for stat in self.run.stats]

    def run_propositions(self) -> pd.DataFrame | Markdown:
        """The propositions judged on the chapter's own runs, or why none can be (:func:`verdict_gate`)."""
        reason = self.run.gate()
        if reason is not None:
            return Markdown(f"No proposition is judged on this run: {reason} (not comparable).")
        return self.run.propositions()

    def glue(self) -> dict[str, Any]:
        """The page's numbers as one mapping (``run_*`` and, with a study, ``study_*``), for ``book.glue_all``:
        the chapter's prose and other pages can then cite them by name."""
        values: dict[str, Any] = {"run_preset": self.preset, "run_runs": len(self.run.results),
                                  "run_failed": int((self.run.results["status"] != "finished").sum()),
                                  "rule_alpha": ALPHA, "rule_band": EQUIVALENCE_BAND,
                                  "rule_target": propositions.TARGET_HALF_WIDTH,
                                  "rule_end_share": gan_report.END_SHARE,
                                  "rule_start_factor": gan_outcomes.START_FACTOR,
                                  "rule_stall_share": gan_outcomes.STALL_SHARE,
                                  "rule_reliability_band": propositions.RELIABILITY_BAND}
        if self.study is not None:
            values.update(self.study.values())
        return values


def load_study(table: str, root: Path | str | None = None) -> Study | None:
    """The committed ``cpu`` study of a table (None if the table has none in :data:`gan_tables.STUDIES`).

    ``root`` defaults to the repository's ``results/`` (or ``$MMGAN_RESULTS``), where studies are committed,
    whatever folder the chapter's own runs go to. Every study folder read must match its manifest (checked by
    :func:`mmgan.gan.tables.run_table`), so an edited or damaged file stops the chapter, named.
    """
    if table not in gan_tables.STUDIES:
        return None
    root = find_results_root(root) / "gan"
    source, overrides = gan_tables.study_source(table)
    request = gan_tables.table_request(source, "cpu", **overrides)
    extensions = gan_tables.extension_sources(table) if source == table else []  # a stand-in keeps its own cells
    results = pd.concat([gan_tables.run_request(request, root, load_only=True)]
                        + [gan_tables.run_table(source, "cpu", root, load_only=True, **extra) for extra in extensions],
                        ignore_index=True)
    companions = [gan_tables.run_table(other, "cpu", root, load_only=True, **extra)
                  for other, extra in gan_tables.companion_sources(table)]
    config = request.config
    return Study(table, "cpu", results, config, gan_tables.table_folder(source, "cpu", config, root),
                 gan_tables.TABLES[table].stats, pd.concat(companions, ignore_index=True) if companions
                 else pd.DataFrame(), stand_in=gan_tables.STAND_INS.get(table))


def chapter(table: str, preset: str = "smoke", seeds: Any = None, iterations: Any = None, cells: Any = None,
            data_root: str | None = None, device: str | None = None, as_released: Any = None,
            results_root: str | None = None, progress: bool = False, tf32: Any = None,
            metric: str | None = None) -> GANChapter:
    """Run (or load) the chapter's own runs and load the table's committed study.

    The parameters are those of the chapter's papermill cell, as papermill passes them; they are parsed once, here,
    into a :class:`mmgan.gan.tables.TableRequest` (every value checked before any data is loaded or any network
    trained), which the engine then runs.
    """
    table = str(table)
    request = gan_tables.table_request(table, preset, seeds=seeds, iterations=iterations, cells=cells,
                                       data_root=data_root, device=device, as_released=as_released, tf32=tf32,
                                       metric=metric)
    root = find_results_root(results_root) / "gan"
    results = gan_tables.run_request(request, root, progress=progress)
    run = Run(table, preset, results, request.config,
              gan_tables.table_folder(table, preset, request.config, root), gan_tables.TABLES[table].stats)
    study = load_study(table)
    return GANChapter(table, preset, run, study)


def overview_table(overview: pd.DataFrame) -> pd.DataFrame:
    """:func:`propositions_overview` as the introduction shows it: numbers rounded, interval in one column."""
    judged = ~overview["verdict"].str.startswith("not comparable")
    return pd.DataFrame({
        "table": overview["table"], "proposition": overview["proposition"],
        "runs that did not learn (better / other)": [f if not str(r).startswith("not comparable") else "—"
                                                     for f, r in zip(overview["failed"], overview["reliability"])],
        "reliability verdict": overview["reliability"],
        "quality ratio (end FDD, runs that learnt)": [f"{r:.2f}" if ok else "—"
                                                     for r, ok in zip(overview["ratio"], judged)],
        "interval": [interval_text(lo, hi) if ok else "—"
                     for lo, hi, ok in zip(overview["lower"], overview["upper"], judged)],
        "level": [f"{level:.1%}" if ok else "—" for level, ok in zip(overview["level"], judged)],
        "seeds × pairs": [f"{s} × {p}" if ok else "—"
                          for s, p, ok in zip(overview["seeds"], overview["pairs"], judged)],
        "verdict": overview["verdict"],
        "paper ratio (FID, same pairs)": [f"{r:.2f}" if math.isfinite(r) else "not tested"
                                          for r in overview["paper ratio"]],
        "whose claim": ["the paper's" if c else "the book's own" for c in overview["paper claim"]],
        "evidence": overview["evidence"],
    }).set_index(["table", "proposition"])


def findings(overview: pd.DataFrame) -> pd.DataFrame:
    """The distinct findings about the paper's claims in :func:`propositions_overview`: one row per (claim, set
    of runs). A stand-in re-reads its source table's runs, and the signed-max rows restate the proposal on the
    runs of the same study, so each is counted once (the row of the runs' own table, the proposal's own row);
    the book's own propositions are not counted. Each table is one multiplicity family (Bonferroni inside it)."""
    rows = overview[overview["paper claim"]].copy()
    rows["claim"] = rows["proposition"].map(lambda n: PROPOSITIONS_BY_NAME[n].restates or n)
    rows["runs of"] = rows["runs of"].astype(str)
    rows = rows[rows["proposition"] == rows["claim"]]  # the restating rows go with their claim's own row
    return rows.drop_duplicates(subset=["claim", "runs of"]).reset_index(drop=True)


def stalled_runs_overview(root: Path | str | None = None) -> pd.DataFrame:
    """The outcome of every run of every committed GAN study (Tables 2–8; a run shared by several studies counted
    once): :func:`mmgan.gan.outcomes.run_outcomes` rows."""
    frames = [study.outcomes for study in (load_study(t, root) for t in gan_tables.TABLES
                                            if gan_tables.TABLES[t].paper is not None) if study is not None]
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=["run"]).reset_index(drop=True)


#: The chapter (notebook name) of each GAN table (the template's map, :mod:`mmgan.book.table_chapters`).
CHAPTERS = chapter_notebooks()


def status_notes(overview: pd.DataFrame) -> dict[str, str]:
    """Chapter → the verdicts of its committed study in words (ratio other / better and interval), for the
    introduction's status table; the same numbers as :func:`propositions_overview`, so the two agree."""
    notes = {}
    for table, rows in overview.groupby("table", sort=False):
        parts = [f"{r.proposition}: {r.verdict} among runs that learnt"
                 + effect_text(r.verdict, r.ratio, r.lower, r.upper) + f", {r.reliability} on failures"
                 + ("" if str(r.reliability).startswith("not comparable") else f" ({r.failed} did not learn)")
                 for r in rows.itertuples()]
        notes[CHAPTERS[table.removeprefix("Table ")]] = "; ".join(parts)
    return notes


def propositions_overview(root: Path | str | None = None) -> pd.DataFrame:
    """Every GAN table (2–8) with a committed study and every proposition it judges: runs that did not learn at
    each level and the reliability verdict, the pooled ratio other / better of the end-of-training metric among
    runs that learnt, its simultaneous interval and verdict, and the paper's ratio over the same pairs; whose
    claim it is, and whose runs (stand-ins re-read another table's runs, so they are not new evidence)."""
    rows = []
    for table in (t for t in gan_tables.TABLES if gan_tables.TABLES[t].paper is not None):
        study = load_study(table, root)
        if study is None:
            continue
        judged, paper_ratios, reason = study.judged[PRIMARY], study.paper_ratios(), study.gate()
        for name, row in judged.iterrows():
            proposition = propositions.PROPOSITIONS[name]
            rows.append({
                "table": f"Table {table}", "proposition": name, "ratio": row["ratio"], "lower": row["lower"],
                "upper": row["upper"], "level": row["level"], "seeds": row["seeds"], "pairs": row["pairs"],
                "verdict": str(row["verdict"]) if reason is None else f"not comparable: {reason}",
                "reliability": str(row["reliability"]) if reason is None else f"not comparable: {reason}",
                "failed": f"{int(row['failed better'])} / {int(row['failed other'])} of {int(row['comparisons'])}",
                "paper ratio": paper_ratios["paper ratio"].get(name, math.nan),
                "paper claim": proposition.in_paper,
                "runs of": study.stand_in.runs_of if study.stand_in else table,
                "evidence": (f"Table {study.stand_in.runs_of}'s runs (not new evidence)" if study.stand_in
                             else "own runs"),
            })
    return pd.DataFrame(rows, columns=["table", "proposition", "ratio", "lower", "upper", "level", "seeds", "pairs",
                                       "verdict", "reliability", "failed", "paper ratio", "paper claim", "runs of",
                                       "evidence"])
