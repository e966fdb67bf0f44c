"""Everything a GAN table chapter (Tables 2–8) shows, from one call: :func:`chapter`.

A table chapter is its papermill parameters, ``page = chapter(TABLE, **parameters)`` and its
prose. The page has two parts:

* the **committed CPU study** of the table (preset ``cpu``, listed in
  :data:`mmgan.gan_tables.STUDIES`), loaded from ``results/gan/`` without retraining: the
  comparison with the paper, ranks, the three claims with paired-seed verdicts
  (:func:`mmgan.gan_report.claims`), curves, whether the runs learnt and levelled off, and the
  protocol table. A table without a committed study says so and gives the command that makes one.
* **this run**: the runs the chapter's own parameters ask for. At the default ``smoke`` preset
  that is a pipeline check (seconds on a CPU) shown without verdicts and without curves; at
  ``cpu`` or ``paper`` it is the rerun the reader asked for, with its claims.

Gate: a study's verdicts are shown only if every run *learnt*, i.e. its best metric is at least
:data:`LEARNT_FACTOR` times lower than its first evaluation; otherwise every claim is
``not comparable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from mmgan import gan_report, gan_tables, paper, plots, protocol
from mmgan.gan_config import GANConfig
from mmgan.norms import order_text
from mmgan.registry import lookup
from mmgan.results import results_root as find_results_root
from mmgan.verdicts import Verdict

#: A run has learnt when its best metric is at least this many times lower than its first evaluation.
LEARNT_FACTOR = 2.0
#: The share of training whose improvement tells whether a run had levelled off (gan_report.late_improvement).
TAIL = 0.25
#: A run has levelled off when its last quarter improved its best metric by less than this share.
LEVELLED = 0.10
ARCH_NAMES = {"dcgan": "DCGAN", "standard_cnn": "standard CNN"}
STUDY_CAPTIONS: dict[str, str | None] = {
    "tables": "Cell means ± standard deviation over seeds beside the paper's FIDs, with the rank of each within "
              "its table (`mmgan.gan_report.side_by_side`):",
    "claims": "The paper's three claims in the paper's table and in the study (rule above):",
    "comparisons": "Every comparison behind the claims: the mean gain (other − better, in the study's metric) "
                   "and its 95% paired-t interval over seeds:",
    # the curves are a captioned figure in the chapter (cell metadata): a second output would repeat its label
    "curves": None,
    "levelling": "Has training levelled off? Per cell, mean over seeds of the first and best metric and the "
                 "improvement of the best metric within the last quarter of training "
                 "(`mmgan.gan_report.late_improvement`; near 0: levelled off):",
    "protocol": "The study's protocol: each setting as the paper states it, as the released code "
                "(`Code/GAN.py` with the flags of `Code/experiments.sh`) ran it, and as the study has it "
                "(`mmgan.protocol.protocol_table`); the rows marked \"no\" are where the study departs from the "
                "released protocol (scale, metric, and the settings the committed Table 2 study was run with).",
}


@dataclass
class Run:
    """A set of finished runs of one table at one preset, with everything a chapter derives from them."""

    table: str
    preset: str
    results: pd.DataFrame
    config: GANConfig
    folder: Path
    stats: tuple[str, ...]
    curves: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.curves = gan_tables.metric_curves(self.results)

    @property
    def evaluations(self) -> int:
        """Metric evaluations per run (the fewest over runs; 0 without finished runs)."""
        if self.curves.empty:
            return 0
        return int(self.curves.groupby(["loss", "q", "g", "seed"]).size().min())

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.results["seed"].unique()))

    def scale_text(self) -> str:
        """What was run, in words: data, networks, length, metric, seeds."""
        c = self.config
        cells = self.results[["loss", "q", "g"]].drop_duplicates().shape[0]
        seeds = len(self.seeds)
        return (f"{len(self.results)} runs ({cells} cells × {seeds} seed{'s' if seeds > 1 else ''}): "
                f"{ARCH_NAMES[c.arch]} of width {c.width} at {c.image_size} px on {c.dataset} "
                f"({c.channels} channel{'s' if c.channels > 1 else ''}), {c.iterations:,} generator iterations, "
                f"{c.metric.upper()} of {c.metric_samples:,} samples every {c.metric_every:,} iterations")

    def side_by_side(self, stat: str = "final") -> pd.DataFrame:
        return gan_report.side_by_side(gan_tables.finished(self.results), self.table, stat)

    def failed(self) -> pd.DataFrame:
        return self.results[self.results["status"] != "finished"][["loss", "q", "g", "seed", "error"]]


@dataclass
class Study(Run):
    """A committed study (preset ``cpu``): adds learning checks, claims and their verdicts."""

    late: pd.DataFrame = field(init=False)
    learnt: bool = field(init=False)
    #: set when the study is another table's runs (:data:`mmgan.gan_tables.STAND_INS`)
    stand_in: gan_tables.StandIn | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.late = gan_report.late_improvement(self.curves, tail=TAIL)
        self.learnt = bool((self.late["first"] / self.late["best"] >= LEARNT_FACTOR).all())

    def _gated(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with every verdict ``not comparable`` when a run did not learn (the gate)."""
        return frame if self.learnt else frame.assign(verdict=Verdict.NOT_COMPARABLE)

    @cached_property
    def judged_claims(self) -> pd.DataFrame:
        """:func:`mmgan.gan_report.claims` of the final metric, gated; verdicts as :class:`Verdict`."""
        return self._gated(gan_report.claims(gan_tables.finished(self.results), self.table))

    def claims(self) -> pd.DataFrame:
        """The claims table with its verdicts as text."""
        return self.judged_claims.assign(verdict=self.judged_claims["verdict"].map(str))

    def verdicts(self) -> dict[str, Verdict]:
        return dict(self.judged_claims["verdict"])

    def comparisons(self) -> pd.DataFrame:
        """Every comparison behind the claims (:func:`mmgan.gan_report.comparisons`), gated, verdicts as text."""
        frame = self._gated(gan_report.comparisons(gan_tables.finished(self.results)))
        return frame.assign(verdict=frame["verdict"].map(str))

    def levelling(self) -> pd.DataFrame:
        """Per cell (mean over seeds): first and best metric and the improvement within the last quarter."""
        means = self.late.groupby(["loss", "q", "g"], sort=False)[["first", "best", "late improvement"]].mean()
        metric = self.config.metric.upper()
        return means.round({"first": 1, "best": 1, "late improvement": 3}).rename(columns={
            "first": f"first {metric}", "best": f"best {metric}", "late improvement": "late improvement (share)"})

    def protocol(self) -> pd.DataFrame:
        table = protocol.protocol_table(self.config, gan_tables.TABLES[self.table].losses, self.seeds)
        return table.set_index("setting")

    def values(self) -> dict[str, Any]:
        """The study's numbers as one mapping (glue names ``study_*``)."""
        means = gan_report.cell_means(gan_tables.finished(self.results))
        best = means.loc[means["mean"].idxmin()]
        ratio = self.late["first"] / self.late["best"]
        return {"study_runs": len(self.results), "study_seeds": len(self.seeds),
                "study_iterations": int(self.config.iterations), "study_best": float(means["mean"].min()),
                "study_worst": float(means["mean"].max()),
                "study_best_cell": gan_report.cell_text(best["loss"], best["q"], best["g"]),
                "study_rank_corr": gan_report.rank_agreement(gan_tables.finished(self.results), self.table),
                "study_first_to_best_min": float(ratio.min()),
                "study_late_median": float(self.late["late improvement"].median()),
                "study_late_max": float(self.late["late improvement"].max()),
                "study_levelled": int((self.late["late improvement"] < LEVELLED).sum())}

    def not_learnt(self) -> list[str]:
        """The runs whose best metric is less than :data:`LEARNT_FACTOR` times below their first evaluation."""
        ratio = self.late["first"] / self.late["best"]
        rows = self.late[ratio < LEARNT_FACTOR]
        return [f"{gan_report.cell_text(r.loss, r.q, r.g)}, seed {r.seed}" for r in rows.itertuples()]

    def learning_text(self) -> str:
        """One or two sentences on the learning gate: passed, or which runs failed it."""
        metric = self.config.metric.upper()
        smallest = float((self.late["first"] / self.late["best"]).min())
        failed = self.not_learnt()
        if not failed:
            return (f"Every run lowered its {metric} by a factor of at least {smallest:.1f} from its first "
                    f"evaluation (gate: {LEARNT_FACTOR:g}; passed).")
        return (f"{len(self.late) - len(failed)} of {len(self.late)} runs lowered their {metric} by at least the gate "
                f"factor {LEARNT_FACTOR:g} from their first evaluation; {len(failed)} did not "
                f"({'; '.join(failed)}: smallest factor {smallest:.2f}), so the gate failed and no verdict is drawn.")

    def summary(self) -> Markdown:
        """The study in a few sentences, every number computed here."""
        v = self.values()
        metric = self.config.metric.upper()
        corr = v["study_rank_corr"]
        all_cells = len(gan_tables.table_configs(self.table, "cpu", seeds=0)[0])
        cells = self.results[["loss", "q", "g"]].drop_duplicates()
        shrunk = (f" It covers {len(cells)} of the table's {all_cells} cells "
                  f"({'; '.join(gan_report.cell_text(*c) for c in cells.itertuples(index=False))}): the whole table "
                  f"did not fit the machine it was run on." if len(cells) < all_cells else "")
        lines = [] if self.stand_in is None else [
            f"**A stand-in.** The data of Table {self.table} are not available offline, so its study is the committed "
            f"study of Table {self.stand_in.runs_of} in this table's cells: at preset `cpu` both tables train the "
            f"same networks on the same digits (checked when loading), so these are the runs Table {self.table} "
            f"would train, read here with its own statistics and set beside its paper numbers. It can tell about "
            f"{self.stand_in.answers}; it cannot tell {self.stand_in.cannot_answer}."]
        lines += [
            f"**Scale.** {self.scale_text()}.{shrunk} Committed under "
            f"`results/{self.folder.as_posix().split('results/', 1)[-1]}` and loaded without retraining.",
            f"**Did the runs learn?** {self.learning_text()} In the last quarter of training "
            f"the best {metric} improved by a median {v['study_late_median']:.0%} over the best before it "
            f"(at most {v['study_late_max']:.0%}); {v['study_levelled']} of {v['study_runs']} runs gained less "
            f"than {LEVELLED:.0%} there.",
            f"**Results.** Cell means range from {v['study_best']:.1f} (best: {v['study_best_cell']}) to "
            f"{v['study_worst']:.1f} {metric}; the rank correlation with the paper's FIDs is "
            + ("not reported (runs that did not learn would set it)." if not self.learnt else
               f"{corr:.2f} (Spearman)." if corr == corr else "not defined (fewer than three cells)."),
            "**The paper's claims at this scale** (rule below): "
            + "; ".join(f"{claim}: *{verdict}*" for claim, verdict in self.verdicts().items()) + ".",
        ]
        return Markdown("\n\n".join(lines))


@dataclass
class GANChapter:
    """What a table chapter shows: the paper's table, the committed study and the chapter's own run."""

    table: str
    preset: str
    run: Run
    study: Study | None

    def paper_table(self) -> pd.DataFrame:
        """The paper's numbers (FID, lower is better), one row per (stat, q, g), one column per loss."""
        frame = paper.paper_table(self.table)
        frame["q"] = frame["q"].map(order_text)
        return frame.pivot_table(index=["stat", "q", "g"], columns="loss", values="value", sort=False)

    def study_summary(self) -> Markdown:
        if self.study is not None:
            return self.study.summary()
        return Markdown(
            f"No CPU study of Table {self.table} is committed yet (the 2-core machine this book is built on "
            f"has not had the hours it needs). Make one with `python -m mmgan.gan_tables {self.table} cpu` "
            f"(about {len(gan_tables.table_configs(self.table, 'cpu')[0])} runs of a few minutes each on one "
            f"core); this page then shows it.")

    @cached_property
    def study_parts(self) -> dict[str, tuple[str | None, list[Any]]]:
        """Each part of the committed study as (caption, objects to display); empty without a study."""
        study = self.study
        if study is None:
            return {}
        comparisons = study.comparisons()
        c = study.config
        curves = plots.gan_metric_curves(study.curves, f"{c.metric.upper()} ({c.dataset} {c.image_size} px, "
                                                       f"preset cpu; lower is better)")
        plt.close(curves)
        return {
            "tables": (STUDY_CAPTIONS["tables"], [study.side_by_side(stat) for stat in study.stats]),
            "claims": (STUDY_CAPTIONS["claims"], [study.claims()]),
            "comparisons": (STUDY_CAPTIONS["comparisons"], [
                comparisons.set_index(["claim", "better", "other"]).round({"mean gain": 2, "lower": 2, "upper": 2})
                .rename(columns={"mean gain": f"mean gain ({c.metric.upper()})", "lower": "95% CI low",
                                 "upper": "95% CI high"})]),
            "curves": (STUDY_CAPTIONS["curves"], [curves]),
            "levelling": (STUDY_CAPTIONS["levelling"], [study.levelling()]),
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
        return protocol.protocol_table(self.run.config, gan_tables.TABLES[self.table].losses,
                                       self.run.seeds).set_index("setting")

    def setting(self) -> pd.Series:
        """The chapter's own run against the paper's setting."""
        info, c = paper.table_info(self.table), self.run.config
        return pd.Series({"paper: data set": info["dataset"], "paper: protocol": info["protocol"],
                          "paper: metric": info["metric"], "this run: preset": self.preset,
                          "this run": self.run.scale_text(),
                          "this run: q = inf / smax as released": c.as_released}).to_frame("value")

    def run_tables(self) -> list[pd.DataFrame]:
        """The chapter's own run beside the paper, one table per reported statistic."""
        return [self.run.side_by_side(stat) for stat in self.run.stats]

    def run_claims(self) -> pd.DataFrame | Markdown:
        """Claims for a study-scale run (``cpu`` or ``paper``); none for the ``smoke`` pipeline check."""
        if self.preset == "smoke":
            return Markdown("The `smoke` preset only checks the pipeline: no claim is judged on it.")
        table = gan_report.claims(gan_tables.finished(self.run.results), self.table)
        return table.assign(verdict=table["verdict"].map(str))

    def glue(self) -> dict[str, Any]:
        """The page's numbers as one mapping (``run_*`` and, with a study, ``study_*``), for ``book.glue_all``:
        the chapter's prose and other pages can then cite them by name."""
        values: dict[str, Any] = {"run_preset": self.preset, "run_runs": len(self.run.results),
                                  "run_failed": int((self.run.results["status"] != "finished").sum())}
        if self.study is not None:
            values.update(self.study.values())
        return values


def load_study(table: str, root: Path | str | None = None) -> Study | None:
    """The committed ``cpu`` study of a table (None if the table has none in :data:`gan_tables.STUDIES`).

    ``root`` defaults to the repository's ``results/`` (or ``$MMGAN_RESULTS``), where studies are committed,
    whatever folder the chapter's own runs go to.
    """
    if table not in gan_tables.STUDIES:
        return None
    root = find_results_root(root) / "gan"
    source, overrides = gan_tables.study_source(table)
    results = gan_tables.run_table(source, "cpu", root, load_only=True, **overrides)
    _, config = gan_tables.table_configs(source, "cpu", **overrides)
    return Study(table, "cpu", results, config, gan_tables.table_folder(source, "cpu", config, root),
                 gan_tables.TABLES[table].stats, stand_in=gan_tables.STAND_INS.get(table))


def chapter(table: str, preset: str = "smoke", seeds: Any = None, iterations: Any = None, cells: Any = None,
            data_root: str | None = None, device: str | None = None, as_released: Any = None,
            results_root: str | None = None, progress: bool = False) -> GANChapter:
    """Run (or load) the chapter's own runs and load the table's committed study.

    Every parameter is checked (by :func:`mmgan.gan_tables.table_configs`) before any data is
    loaded or any network trained; the parameters are those of the chapter's papermill cell.
    """
    table = str(table)
    overrides = dict(seeds=seeds, iterations=iterations, cells=cells, data_root=data_root, device=device,
                     as_released=as_released)
    _, config = gan_tables.table_configs(table, preset, **overrides)
    root = find_results_root(results_root) / "gan"
    results = gan_tables.run_table(table, preset, root, progress=progress, **overrides)
    run = Run(table, preset, results, config, gan_tables.table_folder(table, preset, config, root),
              gan_tables.TABLES[table].stats)
    study = load_study(table)
    return GANChapter(table, preset, run, study)


def claims_overview(root: Path | str | None = None) -> pd.DataFrame:
    """Every GAN table (2–8) and claim: how often it holds in the paper's own table, and the verdict of
    our committed CPU study of that table (with its comparisons for / against beyond seed noise)."""
    rows = []
    for table in gan_tables.TABLES:
        study = load_study(table, root)
        ours = study.claims() if study is not None else None
        for claim, (agree, total) in gan_report.paper_claim_counts(table).items():
            row = {"table": f"Table {table}", "claim": claim, "paper's table": f"{agree} of {total}"}
            if ours is None or claim not in ours.index:
                row.update({"our CPU study": "no study yet", "beyond seed noise (for / against)": "—"})
            else:
                row.update({"our CPU study": ours.loc[claim, "verdict"],
                            "beyond seed noise (for / against)": ours.loc[claim, "beyond seed noise (for / against)"]})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["table", "claim"])
