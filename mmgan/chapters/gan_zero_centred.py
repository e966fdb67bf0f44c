"""Beyond the paper: GANs trained with the zero-centred penalties R1, R2 and R1 + R2 (issue 28); the chapter that
sets this study beside the swiss-roll check and the critics' margins is :mod:`mmgan.chapters.zero_centred`.

The study trains HingeGAN on Table 2's DCGAN at preset ``cpu`` with each zero-centred penalty of
:data:`mmgan.gan.table_specs.ZERO_CENTRED_TABLES` (eq. 6 with §4.1's standard g, z² − 1 with a fixed λ, less its
constant: g(z) = z², q = 2, at the real batch, the fake batch or both, γ = 10), and R3GAN's relativistic pairing loss
with R1 + R2 (``r3gan``); it judges them against Table 2's committed HingeGAN runs with the paper's hinge penalty
max(0, z − 1) at interpolates (one of §4.1's one-centred soft alternatives; q = 2 and the true L^∞ norm), seed by
seed (the same seeds: the same data order, noise and initial weights), by the pooled rule of
:mod:`mmgan.gan.propositions` over the propositions of :data:`GAN_PROPOSITIONS`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from mmgan.base.results import results_root as find_results_root
from mmgan.book import plots
from mmgan.chapters.gan_runs import LEVELLED, PRIMARY, Study
from mmgan.gan import propositions, protocol, table_specs
from mmgan.gan import report as gan_report
from mmgan.gan import tables as gan_tables
from mmgan.verdicts import Verdict, interval_text

#: The level of ``g`` each zero-centred table's runs take in the propositions (their ``norm`` is q = 2).
PENALTY_LEVELS: dict[str, str] = {"r1": "R1", "r2": "R2", "r1r2": "R1 + R2", "r3gan": "R1 + R2"}
#: Each zero-centred table's cell in the study: HingeGAN, and R3GAN's relativistic pairing loss (``rpsgan``).
STUDY_CELLS: dict[str, str] = {"r1": "hinge-q2-zero_centered", "r2": "hinge-q2-zero_centered",
                               "r1r2": "hinge-q2-zero_centered", "r3gan": "rpsgan-q2-zero_centered"}
#: Table 2's committed one-centred cells the study is judged against: HingeGAN with the hinge penalty at q = 2 and
#: at the true L^∞ norm (the two best one-centred penalties of that study).
ONE_CENTRED_CELLS: tuple[str, ...] = ("hinge-q2-hinge", "hinge-qinf-hinge")
SEEDS: tuple[int, ...] = tuple(table_specs.EIGHT)
#: The propositions this study judges (:data:`mmgan.gan.propositions.PROPOSITIONS`), one Bonferroni family.
GAN_PROPOSITIONS: tuple[str, ...] = (
    "R1 + R2 beats the L^∞ hinge penalty", "R1 + R2 beats the L² hinge penalty", "R1 + R2 beats R1", "R1 beats R2",
    "R3GAN's loss beats HingeGAN (both with R1 + R2)", "R3GAN beats the paper's L^∞ HingeGAN")
#: Configuration fields in which a zero-centred table may differ from Table 2's study (the penalty itself, and
#: the factor on the paired loss, which only the relativistic runs use).
PENALTY_FIELDS: tuple[str, ...] = ("penalty_at", "lam", "paired_critic_scale")


def _shared_without_penalty(config: gan_tables.GANConfig) -> dict[str, object]:
    shared = gan_tables.shared_fields(dataclasses.replace(config, as_released=False))
    return {k: v for k, v in shared.items() if k not in PENALTY_FIELDS}


def load_gan_study(root: Path | str | None = None) -> Study | None:
    """The committed zero-centred runs (relabelled with :data:`PENALTY_LEVELS`) with Table 2's one-centred runs as
    companions; None when a zero-centred table has no committed runs. Every folder read must match its manifest
    (checked by :func:`mmgan.gan.tables.run_table`), and each zero-centred table must train what Table 2's study
    trains but for the penalty (``ValueError``)."""
    root = find_results_root(root) / "gan"
    _, table2 = gan_tables.table_configs("2", "cpu", **gan_tables.STUDIES["2"])
    frames, configs = [], []
    for table, level in PENALTY_LEVELS.items():
        _, config = gan_tables.table_configs(table, "cpu", seeds=list(SEEDS), cells=[STUDY_CELLS[table]])
        if _shared_without_penalty(config) != _shared_without_penalty(table2):
            raise ValueError(f"table {table} differs from Table 2's study in more than {PENALTY_FIELDS}")
        folder = gan_tables.table_folder(table, "cpu", config, root)
        if not folder.is_dir():
            return None
        frame = gan_tables.run_table(table, "cpu", root, load_only=True, seeds=list(SEEDS),
                                     cells=[STUDY_CELLS[table]])
        frames.append(frame.assign(norm="2", g=level))
        configs.append(config)
    companions = gan_tables.run_table("2", "cpu", root, load_only=True, seeds=list(SEEDS),
                                      cells=list(ONE_CENTRED_CELLS))
    r1r2 = configs[list(PENALTY_LEVELS).index("r1r2")]
    return Study("r1r2", "cpu", pd.concat(frames, ignore_index=True), r1r2,
                 gan_tables.table_folder("r1r2", "cpu", r1r2, root), ("final",), companions)


@dataclass
class GANStudy:
    """What the chapter shows of the zero-centred GAN study."""

    study: Study

    @property
    def judged(self) -> dict[str, pd.DataFrame]:
        """Statistic → the verdicts of :data:`GAN_PROPOSITIONS`, all ``not comparable`` when the study's gate fails."""
        reason = self.study.gate()
        frames = {}
        for stat in (PRIMARY, "final"):
            frame = propositions.judge(self.study.judged_runs, stat, GAN_PROPOSITIONS)
            frames[stat] = frame if reason is None else frame.assign(verdict=Verdict.NOT_COMPARABLE,
                                                                     reliability=Verdict.NOT_COMPARABLE)
        return frames

    def propositions_table(self) -> pd.DataFrame:
        """The propositions as the GAN chapters show theirs (the paper tested none of them)."""
        empty = pd.DataFrame(columns=["paper ratio", "paper pairs"]).rename_axis("proposition")
        table = gan_report.proposition_table(self.judged, empty, PRIMARY, self.study.config.metric)
        reason = self.study.gate()
        table = table.drop(columns="paper: FID ratio on the same pairs (pairs the predicted way)")
        return table if reason is None else table.assign(verdict=f"not comparable: {reason}")

    def cell_table(self) -> pd.DataFrame:
        """Per cell: the end-of-training and final metric, median [interquartile range] over seeds, and its rank by
        the median (1: lowest)."""
        metric = self.study.config.metric.upper()
        columns = {}
        for stat in (PRIMARY, "final"):
            means = gan_report.cell_means(self.study.statistics, stat).set_index(list(propositions.CELL))
            columns[f"{stat} {metric}, median [IQR]"] = [f"{m:.1f} [{a:.1f}, {b:.1f}]" for m, a, b in
                                                         zip(means["median"], means["q1"], means["q3"])]
            if stat == PRIMARY:
                columns["rank"] = means["median"].rank(method="min").astype(int).tolist()
                columns["seeds"] = means["count"].astype(int).tolist()
                index = [f"{loss}, {_penalty_text(norm, g)}" for loss, norm, g in means.index]
        return pd.DataFrame(columns, index=pd.Index(index, name="cell"))

    def levelling(self) -> pd.DataFrame:
        table = self.study.levelling()
        table.index = [f"{loss}, {_penalty_text(norm, g)}" for loss, norm, g in table.index]
        return table.rename_axis("cell")

    def curves(self) -> Figure:
        return plots.gan_metric_curves(self.study.curves, f"{self.study.config.metric.upper()} (log scale)")

    def verdict_sentence(self) -> str:
        """The verdicts in one sentence, each with its ratio and interval."""
        reason = self.study.gate()
        if reason is not None:
            return f"every proposition not comparable ({reason})"
        judged = self.judged[PRIMARY]
        return "; ".join(
            (f"{name}: {row['verdict']} among runs that learnt ({row['ratio']:.2f} "
             f"{interval_text(row['lower'], row['upper'])})" if math.isfinite(row["ratio"]) else
             f"{name}: no pair of runs that both learnt") +
            f", {row['reliability']} on how often runs fail ({int(row['failed better'])} vs "
            f"{int(row['failed other'])} of {int(row['comparisons'])} did not learn)"
            for name, row in judged.iterrows())

    def glue(self) -> dict[str, object]:
        study, judged = self.study, self.judged[PRIMARY]
        late = study.learning["late change"]
        means = gan_report.cell_means(study.statistics, PRIMARY)
        best = means.loc[means["median"].idxmin()]
        values: dict[str, object] = {
            "zcg_runs": len(study.results), "zcg_companion_runs": len(study.companions), "zcg_seeds": len(study.seeds),
            "zcg_iterations": f"{study.config.iterations:,}", "zcg_scale": study.scale_text(),
            "zcg_verdicts": self.verdict_sentence(), "zcg_learning": study.learning_text(),
            "zcg_levelled": f"{int((late > -LEVELLED).sum())} of {len(late)}", "zcg_levelled_share": f"{LEVELLED:.0%}",
            "zcg_late_median": f"{late.median():+.0%}", "zcg_best_cell": f"{best['loss']}, "
            f"{_penalty_text(best['norm'], best['g'])}", "zcg_level": f"{judged['level'].iloc[0]:.1%}",
            "zcg_differences": "; ".join(protocol.differences(protocol.protocol_table(
                study.config, gan_tables.TABLES["r1r2"].losses, study.seeds, ("2",)))),
            "zcg_propositions": len(judged),
        }
        values["zcg_levelling_kinds"] = self.levelling_kinds()
        for name, row in judged.iterrows():
            key = propositions.PROPOSITIONS[name].key
            values.update({f"zcg_{key}_ratio": f"{row['ratio']:.2f}",
                           f"zcg_{key}_interval": interval_text(row["lower"], row["upper"]),
                           f"zcg_{key}_verdict": str(row["verdict"])})
        return values

    def levelling_kinds(self) -> str:
        """The zero-centred runs against Table 2's one-centred ones: whether each kind had levelled off (by the rule
        of the levelling table: its median run fell by less than :data:`LEVELLED` over the last quarter of
        training), how many of its runs had, its median change, and its median first FDD."""
        learning = self.study.learning
        zero = learning["g"].isin(set(PENALTY_LEVELS.values()))
        parts = []
        for name, runs in (("the zero-centred runs", learning[zero]), ("Table 2's one-centred runs", learning[~zero])):
            late = runs["late change"]
            state = "had levelled off" if late.median() > -LEVELLED else "had not levelled off"
            parts.append(f"{name} {state} ({int((late > -LEVELLED).sum())} of {len(late)} runs; median change "
                         f"{late.median():+.1%}; median first FDD {runs['first'].median():.3g})")
        return "; ".join(parts)

    def status_note(self) -> str:
        return (f"GAN study (HingeGAN and R3GAN's loss, digits, {len(self.study.seeds)} seeds, `cpu` preset, "
                "end-of-training FDD): "
                + self.verdict_sentence())


def _penalty_text(norm: str, g: str) -> str:
    return f"{g} penalty" if g in PENALTY_LEVELS.values() else f"q = {norm}, {g} penalty"
