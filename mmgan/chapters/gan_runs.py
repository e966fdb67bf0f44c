"""The judged runs of a GAN table (:class:`Run`: one run of the chapter's own parameters, or the runs of a
committed study) and the committed study of a table (:class:`Study`), as a chapter shows them
(:mod:`mmgan.chapters.gan_tables`).

Gates (:func:`verdict_gate`): no verdict word is shown for runs that cannot carry one, i.e. a
preset that only checks the pipeline, fewer than two metric evaluations per run, or a single seed;
every proposition is then ``not comparable``, with the reason. A run that stalled, did not start or
diverged (:mod:`mmgan.gan.outcomes`) is an outcome, not a gate: it counts in the reliability judgement
of each proposition and is left out of the quality judgement (:func:`mmgan.gan.propositions.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Markdown

from mmgan.gan import outcomes as gan_outcomes
from mmgan.gan import propositions, protocol, table_specs, trained
from mmgan.gan import report as gan_report
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig
from mmgan.gan.models import ARCHITECTURES
from mmgan.verdicts import Verdict, interval_text

#: A run has levelled off when its metric fell by less than this share in the last quarter of training
#: (smoothed, :func:`mmgan.gan.report.learning`).
LEVELLED = 0.10
#: The statistic the verdicts are drawn from (:data:`mmgan.gan.report.STATISTICS`); the others are shown beside.
PRIMARY = "end"
#: Runs per cell whose samples a study page shows (those that did not learn first).
SAMPLE_RUNS = 6


def verdict_gate(preset: str, evaluations: int, seeds: int) -> str | None:
    """Why no verdict can be drawn from a set of runs (None when one can): the rule of the module docstring."""
    if preset == "smoke":
        return "the smoke preset only checks the pipeline"
    if evaluations < 2:
        return f"each run has {evaluations} metric evaluation(s); at least 2 are needed to tell whether it learnt"
    if seeds < 2:
        return "one seed: no interval over seeds"
    return None


@dataclass
class Run:
    """A set of finished runs of one table at one preset, with everything a chapter derives from them.

    ``companions`` are runs of other committed studies that join this table's comparisons
    (:data:`mmgan.gan.table_specs.COMPANIONS`); they take part in the propositions, not in the table."""

    table: str
    preset: str
    results: pd.DataFrame
    config: GANConfig
    folder: Path
    stats: tuple[str, ...]
    companions: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.everything = pd.concat([self.results, self.companions], ignore_index=True)
        self.curves = gan_tables.metric_curves(self.everything)

    @property
    def evaluations(self) -> int:
        """Metric evaluations per run (the fewest over runs; 0 without finished runs)."""
        if self.curves.empty:
            return 0
        return int(self.curves.groupby(["loss", "norm", "g", "seed"]).size().min())

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.results["seed"].unique()))

    def scale_text(self) -> str:
        """What was run, in words: data, networks, length, metric, seeds."""
        c = self.config
        per_cell = self.results.groupby(list(propositions.CELL), sort=False)["seed"].nunique()
        counts = per_cell.value_counts().sort_index()
        shape = (f"{len(per_cell)} cells × {counts.index[0]} seed{'s' if counts.index[0] > 1 else ''}"
                 if len(counts) == 1 else "; ".join(f"{n} cells with {seeds} seeds" for seeds, n in counts.items()))
        return (f"{len(self.results)} runs ({shape}): "
                f"{ARCHITECTURES[c.arch].title} of width {c.width} at {c.image_size} px on {c.dataset} "
                f"({c.channels} channel{'s' if c.channels > 1 else ''}), {c.iterations:,} generator iterations, "
                f"{c.metric.upper()} of {c.metric_samples_text} every {c.metric_every:,} iterations")

    def side_by_side(self, stat: str = "final") -> pd.DataFrame:
        finished = gan_tables.finished(self.results)
        if stat not in finished:
            finished = finished.merge(self.statistics[[*propositions.CELL, "seed", stat]],
                                      on=[*propositions.CELL, "seed"])
        return gan_report.side_by_side(finished, gan_tables.TABLES[self.table].paper, stat,
                                       verdicts=self.gate() is None)

    def failed(self) -> pd.DataFrame:
        return self.everything[self.everything["status"] != "finished"][["loss", "norm", "g", "seed", "error"]]

    @cached_property
    def learning(self) -> pd.DataFrame:
        """:func:`mmgan.gan.report.learning` of every finished run (companions included)."""
        return gan_report.learning(self.curves)

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        """:func:`mmgan.gan.outcomes.run_outcomes` of every run (companions and failed runs included)."""
        return gan_outcomes.run_outcomes(self.everything, self.curves, self.config.iterations)

    def not_learnt(self) -> list[str]:
        """The runs that stalled, did not start or diverged, in words."""
        rows = self.outcomes[~self.outcomes["learnt"]]
        return [f"{propositions.cell_text(r.loss, r.norm, r.g)}, seed {r.seed}: {r.outcome}" for r in rows.itertuples()]

    def gate(self) -> str | None:
        """Why these runs cannot carry a verdict (:func:`verdict_gate`), or None."""
        return verdict_gate(self.preset, self.evaluations, len(self.seeds))

    @cached_property
    def statistics(self) -> pd.DataFrame:
        """:func:`mmgan.gan.report.run_statistics` of every finished run (companions included)."""
        return gan_report.run_statistics(self.everything, self.curves)

    @cached_property
    def judged_runs(self) -> pd.DataFrame:
        """What the propositions are judged on: every run's statistics (NaN for a run that diverged), whether it
        learnt and when it started (its last evaluation if never; :attr:`outcomes`)."""
        learnt = self.outcomes[[*propositions.CELL, "seed", "learnt", "time"]].rename(columns={"time": "start"})
        return learnt.merge(self.statistics, on=[*propositions.CELL, "seed"], how="left")

    @cached_property
    def judged(self) -> dict[str, pd.DataFrame]:
        """Statistic → :func:`mmgan.gan.propositions.judge` of that statistic, every verdict ``not comparable``
        when :meth:`gate` gives a reason. The primary statistic first, then the table's own statistics."""
        frames = {}
        for stat in dict.fromkeys((PRIMARY, *self.stats)):
            frame = propositions.judge(self.judged_runs, stat)
            frames[stat] = frame if self.gate() is None else frame.assign(verdict=Verdict.NOT_COMPARABLE,
                                                                           reliability=Verdict.NOT_COMPARABLE)
        return frames

    def verdicts(self) -> dict[str, Verdict]:
        """Proposition → its quality verdict (among runs that learnt) on the primary statistic."""
        return dict(self.judged[PRIMARY]["verdict"])

    def reliability(self) -> dict[str, Verdict]:
        """Proposition → its reliability verdict (which level fails less often)."""
        return dict(self.judged[PRIMARY]["reliability"])

    def matched_pairs(self) -> dict[str, list[tuple[tuple, tuple]]]:
        """Proposition → the (better cell, other cell) pairs its verdicts are drawn from."""
        finished = self.judged_runs.dropna(subset=[PRIMARY])
        return {name: list(propositions.match(finished, propositions.PROPOSITIONS[name], PRIMARY).cells.values())
                for name in self.judged[PRIMARY].index}

    def paper_ratios(self) -> pd.DataFrame:
        """The paper's ratio of each proposition over exactly the pairs our study tests
        (:func:`mmgan.gan.propositions.paper_ratios`), its cells read from the paper's tables of this table and of
        its companions (a cell our study does not have never enters)."""
        tables = dict.fromkeys(gan_tables.TABLES[t].paper for t in [self.table,
                                                                    *gan_tables.companion_tables(self.table)])
        cells = pd.concat([gan_report.paper_cells(t, "final") for t in tables], ignore_index=True)
        return propositions.paper_ratios(cells.drop_duplicates(subset=list(propositions.CELL)), self.matched_pairs())

    @cached_property
    def over_training(self) -> pd.DataFrame:
        """The primary verdicts read at every metric evaluation instead of at the end of training (the statistic:
        the evaluation at that iteration; the runs that learnt by the end): one row per (iteration, proposition)
        with the ratio, its interval and the verdict (:func:`mmgan.gan.propositions.judge`; a proposition that is
        not comparable, with fewer than two seeds of pairs that both learnt, has no ratio)."""
        learnt = self.outcomes[[*propositions.CELL, "seed", "learnt"]]
        rows = []
        for iteration, at in self.curves.groupby("iteration"):
            values = learnt.merge(at[[*propositions.CELL, "seed", "value"]], on=[*propositions.CELL, "seed"])
            judged = propositions.judge(values, "value", list(self.judged[PRIMARY].index))
            for name, row in judged.iterrows():
                rows.append({"iteration": int(iteration), "proposition": name, "ratio": row["ratio"],
                             "lower": row["lower"], "upper": row["upper"], "verdict": row["verdict"]})
        return pd.DataFrame(rows, columns=["iteration", "proposition", "ratio", "lower", "upper", "verdict"])

    def stable_since(self) -> dict[str, int | None]:
        """Proposition → the first evaluation from which its verdict over training (:meth:`over_training`) stays
        the same up to the end (the last evaluation when it changes there)."""
        out: dict[str, int | None] = {}
        for name, rows in self.over_training.groupby("proposition", sort=False):
            rows = rows.sort_values("iteration")
            verdicts = rows["verdict"].tolist()
            since = None
            for iteration, verdict in zip(reversed(rows["iteration"].tolist()), reversed(verdicts)):
                if verdict != verdicts[-1]:
                    break
                since = iteration
            out[name] = since
        return out

    def propositions(self) -> pd.DataFrame:
        """The propositions table the chapter opens with (:func:`mmgan.gan.report.proposition_table`)."""
        table = gan_report.proposition_table(self.judged, self.paper_ratios(), PRIMARY, self.config.metric)
        reason = self.gate()
        if reason is None:
            return table
        numbers = [c for c in table.columns if c not in ("verdict", "seeds × pairs", "left out")
                   and not c.startswith("paper")]
        return table.assign(verdict=f"not comparable: {reason}", **{c: "—" for c in numbers})


@dataclass
class Study(Run):
    """A committed study (preset ``cpu``): adds the levelling, the protocol and the summary."""

    #: set when the study is another table's runs (:data:`mmgan.gan.table_specs.STAND_INS`)
    stand_in: table_specs.StandIn | None = None

    @property
    def learnt(self) -> bool:
        """Did every run learn (:mod:`mmgan.gan.outcomes`)?"""
        return bool(self.outcomes["learnt"].all())

    def outcome_counts(self) -> dict[str, int]:
        """How many runs (companions included) ended in each :class:`mmgan.gan.outcomes.Outcome`."""
        counts = self.outcomes["outcome"].value_counts()
        return {str(o): int(counts.get(o, 0)) for o in gan_outcomes.Outcome}

    def outcome_table(self) -> pd.DataFrame:
        """Every run that did not learn: its outcome, when it left its starting level and why it sat there
        (:func:`mmgan.gan.outcomes.stall_mechanism`)."""
        rows = self.outcomes[~self.outcomes["learnt"]]
        return pd.DataFrame({
            "run": [f"{propositions.cell_text(r.loss, r.norm, r.g)}, seed {r.seed}" for r in rows.itertuples()],
            "outcome": [str(o) for o in rows["outcome"]],
            "left its starting level at": ["never" if c else f"{int(t):,}" for c, t in zip(rows["censored"],
                                                                                           rows["time"])],
            "share of training on the plateau": [f"{x:.0%}" for x in rows["stalled share"]],
            "why (log lines over the plateau)": [
                "diverged" if o is gan_outcomes.Outcome.DIVERGED else gan_outcomes.stall_mechanism(r, t)
                for o, r, t in zip(rows["outcome"], rows["run"], rows["time"])],
        }).set_index("run")

    def levelling(self) -> pd.DataFrame:
        """Per cell (median over seeds, so one stalled run does not set it): first and best metric, the smoothed
        change over the last quarter, and how many of its runs had levelled off (changed by less than
        :data:`LEVELLED`)."""
        grouped = self.learning.groupby(list(propositions.CELL), sort=False)
        means = grouped[["first", "best", "late change"]].median()
        means["levelled off"] = grouped["late change"].agg(lambda c: f"{int((c > -LEVELLED).sum())} of {len(c)}")
        metric = self.config.metric.upper()
        return means.round({"first": 1, "best": 1, "late change": 3}).rename(columns={
            "first": f"first {metric}", "best": f"best {metric}", "late change": "late change (share)"})

    def protocol(self) -> pd.DataFrame:
        return protocol.protocol_table(self.config, gan_tables.TABLES[self.table].losses, self.seeds,
                                       tuple(self.results["q"].unique())).set_index("setting")

    def samples(self, n: int = 8, runs: int = SAMPLE_RUNS) -> tuple[dict[str, list[tuple[str, bool, Any]]], list[str]]:
        """Per cell of the study, ``n`` samples of each of up to ``runs`` of its runs whose networks are committed
        (:func:`mmgan.gan.trained.samples`) as (label, learnt, images): every run that did not learn first (so a
        stalled seed is never hidden), then the others by seed; and the cells with no committed networks."""
        grids, missing = {}, []
        outcomes = self.outcomes.set_index([*propositions.CELL, "seed"])
        finished = gan_tables.finished(self.results).sort_values("seed")
        for cell, cell_runs in finished.groupby(list(propositions.CELL), sort=False):
            kept = [run for run in cell_runs.itertuples() if (Path(run.run) / trained.NETWORKS).is_file()]
            if not kept:
                missing.append(propositions.cell_text(*cell))
                continue
            rows = [(run.seed, outcomes.loc[(*cell, run.seed)]) for run in kept]
            rows = sorted(rows, key=lambda r: (bool(r[1]["learnt"]), r[0]))[:runs]
            loss, norm, g = cell
            grids[f"{loss}, q = {norm}, {g} penalty"] = [
                (f"seed {seed}" + ("" if row["learnt"] else f": {row['outcome']}"), bool(row["learnt"]),
                 trained.samples(trained.load_run(row["run"]), n)) for seed, row in sorted(rows, key=lambda r: r[0])]
        return grids, missing

    def values(self) -> dict[str, Any]:
        """The study's numbers as one mapping (glue names ``study_*``, and ``prop_<key>_*`` per proposition)."""
        own = self.statistics.merge(self.results[[*propositions.CELL, "seed"]], on=[*propositions.CELL, "seed"])
        means = gan_report.cell_means(own, PRIMARY)  # the cells of the table shown, ranked by their medians
        best, worst = means.loc[means["median"].idxmin()], means.loc[means["median"].idxmax()]
        late = self.learning["late change"]
        counts = self.outcome_counts()
        values = {"study_runs": len(self.everything), "study_seeds": len(self.seeds),
                  "study_iterations": int(self.config.iterations), "study_best": float(best["median"]),
                  "study_worst": float(worst["median"]),
                  "study_best_cell": propositions.cell_text(best["loss"], best["norm"], best["g"]),
                  "study_worst_cell": propositions.cell_text(worst["loss"], worst["norm"], worst["g"]),
                  "study_rank_corr": gan_report.rank_agreement(self.statistics, gan_tables.TABLES[self.table].paper,
                                                                PRIMARY),
                  "study_learnt": counts["learnt"], "study_stalled": counts["stalled"],
                  "study_not_started": counts["did not start"], "study_diverged": counts["diverged"],
                  "study_late_median": float(late.median()), "study_late_min": float(late.min()),
                  "study_levelled": int((late > -LEVELLED).sum())}
        stable = self.stable_since()
        for name, row in self.judged[PRIMARY].iterrows():
            key = propositions.PROPOSITIONS[name].key
            values.update({f"prop_{key}_ratio": float(row["ratio"]), f"prop_{key}_lower": float(row["lower"]),
                           f"prop_{key}_upper": float(row["upper"]), f"prop_{key}_verdict": str(row["verdict"]),
                           f"prop_{key}_reliability": str(row["reliability"]),
                           f"prop_{key}_failed": f"{int(row['failed better'])} / {int(row['failed other'])} of "
                                                 f"{int(row['comparisons'])}",
                           f"prop_{key}_stable_since": stable.get(name)})
        return values

    def settling_text(self) -> str:
        """From which evaluation on each quality verdict keeps the word it ends with (:meth:`stable_since`)."""
        judged = self.judged[PRIMARY]
        parts = [f"{name}: {judged.loc[name, 'verdict']} since iteration {since:,}" for name, since in
                 self.stable_since().items() if since is not None and judged.loc[name, "verdict"] is not
                 Verdict.NOT_COMPARABLE]
        if not parts:
            return "No quality verdict to follow over training."
        return ("Read at every evaluation (the figure under the propositions), each quality verdict has kept the word "
                f"it ends with ({self.config.iterations:,} iterations) since: " + "; ".join(parts) + ". A verdict "
                "that settled only near the end would read otherwise after a shorter run.")

    def learning_text(self) -> str:
        """The runs' outcomes in words (:mod:`mmgan.gan.outcomes`): how many learnt, and each that did not."""
        counts = self.outcome_counts()
        failed = self.not_learnt()
        text = (f"{counts['learnt']} of {sum(counts.values())} runs learnt (left their starting level within the "
                f"first {gan_outcomes.STALL_SHARE:.0%} of training), {counts['stalled']} stalled, "
                f"{counts['did not start']} did not start and {counts['diverged']} diverged")
        return text + (f" ({'; '.join(failed)}). {mechanism_sentence(self.outcomes)}" if failed else ".")

    def companion_text(self) -> str:
        """Which runs of other studies join the comparisons, in words ('' without companions)."""
        if self.companions.empty:
            return ""
        cells = self.companions[list(propositions.CELL)].drop_duplicates()
        return (f" The comparisons also use {len(self.companions)} runs of the same configuration committed with "
                f"another study ({'; '.join(propositions.cell_text(*c) for c in cells.itertuples(index=False))}).")

    def summary(self) -> Markdown:
        """The study in a few sentences, every number computed here."""
        v = self.values()
        metric = self.config.metric.upper()
        corr = v["study_rank_corr"]
        all_cells = len(gan_tables.table_configs(self.table, "cpu", seeds=0)[0])
        own = self.results[self.results["norm"] == self.results["q"]][list(propositions.CELL)].drop_duplicates()
        shrunk = (f" It covers {len(own)} of the table's {all_cells} cells "
                  f"({'; '.join(propositions.cell_text(*c) for c in own.itertuples(index=False))}): the whole table "
                  f"did not fit the machine it was run on." if len(own) < all_cells else "")
        lines = [] if self.stand_in is None else [
            f"**A stand-in.** The data of Table {self.table} are not available offline, so its study is the committed "
            f"study of Table {self.stand_in.runs_of} in this table's cells: at preset `cpu` both tables train the "
            f"same networks on the same digits (checked when loading), so these are the runs Table {self.table} "
            f"would train, read here with its own statistics and set beside its paper numbers. It can tell about "
            f"{self.stand_in.answers}; it cannot tell {self.stand_in.cannot_answer}. Its verdicts are those of "
            f"Table {self.stand_in.runs_of}'s runs, not new evidence."]
        levelled = (f"{v['study_levelled']} of {len(self.learning)} runs fell by less than {LEVELLED:.0%} over the "
                    f"last quarter of training (smoothed: mean of the last {gan_report.END_SHARE:.0%} of evaluations "
                    f"against the same window at three quarters; median change {v['study_late_median']:+.0%}, "
                    f"largest fall {v['study_late_min']:+.0%})")
        differences = protocol.differences(self.protocol().reset_index())
        lines.append("**Departs from the released protocol in:** " + "; ".join(differences) + " (the protocol table "
                     "below gives each).")
        failed = self.failed()
        if len(failed):
            lines.append(f"**Unusable runs.** {len(failed)} run(s) failed or could not be read, and every mean, count "
                         "and comparison below leaves them out: " + "; ".join(
                             f"{propositions.cell_text(r.loss, r.norm, r.g)}, seed {r.seed}: {r.error}"
                             for r in failed.itertuples()) + ".")
        lines += [
            f"**Scale.** {self.scale_text()}.{shrunk}{self.companion_text()} Committed under "
            f"`results/{self.folder.as_posix().split('results/', 1)[-1]}` and loaded without retraining.",
            f"**Did the runs learn and level off?** {self.learning_text()} {levelled}.",
            f"**When the verdicts settle.** {self.settling_text()}",
            f"**Results.** Cell medians of the end-of-training {metric} range from {v['study_best']:.1f} "
            f"(best: {v['study_best_cell']}) to {v['study_worst']:.1f} ({v['study_worst_cell']})"
            + ("; a study beyond the paper, with no FIDs of the paper beside it."
               if gan_tables.TABLES[self.table].paper is None else "; the rank correlation of the medians with the "
               "paper's FIDs is " + (f"{corr:.2f} (Spearman)." if corr == corr
                                     else "not defined (fewer than three cells).")),
        ]
        return Markdown("\n\n".join(lines))


def mechanism_sentence(outcomes: pd.DataFrame) -> str:
    """Why the runs of ``outcomes`` that stalled or did not start sat on their plateau, counted per mechanism of
    :mod:`mmgan.gan.outcomes`, with §5.2's (a vanishing gradient at fakes) judged: does it explain most of them?"""
    counts = gan_outcomes.count_mechanisms(outcomes)
    if not counts:
        return ""
    satisfied, vanishing = counts["critic satisfied"], counts["vanishing gradient at fakes"]
    return (f"Over their plateau {satisfied.shown} of {satisfied.runs} of the runs that stalled or did not start show "
            f"a satisfied critic (critic loss and penalty exactly 0 on most log lines) and {vanishing.shown} of "
            f"{vanishing.runs} a vanishing input gradient at fakes; that §5.2's vanishing gradient explains most of "
            f"them: {vanishing.verdict} (share {vanishing.shown / vanishing.runs:.2f}, 95% interval "
            f"{interval_text(vanishing.lower, vanishing.upper)}).")
