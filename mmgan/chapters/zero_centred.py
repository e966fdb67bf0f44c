"""The zero-centred chapter (issues 28 and 36), and the margins of its critics: R1, R2 and R1 + R2 set beside the
one-centred hinge penalty of the paper's GAN experiments.

:func:`chapter` sets three parts side by side: the swiss-roll check (:mod:`mmgan.table1.zero_centred`), the GAN
study (:mod:`mmgan.chapters.gan_zero_centred`) and the margins of that study's critics (this module).

The critics of the zero-centred GAN study (:mod:`mmgan.chapters.gan_zero_centred`: HingeGAN with R1, R2, R1 + R2 and
R3GAN's loss with R1 + R2, 8 seeds each) are measured as in the critic-margins chapter (:mod:`mmgan.critics.measure`,
``mmgan critic-margins r1`` ...). The one-centred critics beside them are a replicate of Table 2's HingeGAN runs in
the cells with the paper's hinge penalty at q = 2 and at the true L^∞ norm (:data:`ONE_CENTRED_CELLS`), retrained
with the same 8 seeds (the committed Table 2 runs kept no weights; retraining does not give them back bit for bit,
so the replicate has its own FDDs), kept under :data:`REPLICATE_ROOT` and measured into
``results/critic_margins/table2.csv`` by ``mmgan critic-margins 2 --root results/replicates/gan --cells
hinge-q2-hinge hinge-qinf-hinge --thresholds midpoint``. Where every table was measured in both views (issue 36),
the verdicts are drawn on the train-mode critic and the eval-mode critic is the second view.

What the margin view says (the zero-centred chapter's theory section): R1, R2 and R1 + R2 are eq. 6 with §4.1's
standard g (z² − 1 with a fixed λ, i.e. ‖∇f‖₂² up to a constant) at the data, and the one-centred hinge penalty
is one of §4.1's soft alternatives, here at interpolates (WGAN-GP's points); with the hinge loss and a linear critic
R1 + R2 is the soft-margin SVM. The framework does not rank the two kinds at the γ and λ these GANs use, so
:data:`MARGIN_PROPOSITIONS` are questions, not predictions: is the L² margin of the one-centred L² hinge penalty's
critics larger, does the first-order estimate |f(x) − t| / ‖∇f(x)‖₂ of §3 overstate R1 + R2's distances more, do
they separate their images better? Each is judged seed by seed, by the pooled rule of the critic-margins chapter
(:func:`mmgan.critics.report.paired_effect`, Bonferroni over the family), at the real/fake midpoint (:data:`RULE`);
whether the margin still ranks the GANs is Spearman's ρ between a critic's L² margin and its run's final FDD
(:func:`mmgan.critics.report.fdd_correlation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmgan.base.results import read_csv, verify_manifest
from mmgan.base.results import results_root as find_results_root
from mmgan.chapters import gan_zero_centred
from mmgan.critics import measure as cm
from mmgan.critics import report, views
from mmgan.gan import tables as gan_tables
from mmgan.table1 import zero_centred as theory
from mmgan.verdicts import ALPHA, effect_text, interval_text

#: The replicate of Table 2's one-centred HingeGAN runs whose critics are measured (relative to ``results/``).
REPLICATE_ROOT = Path("replicates") / "gan"
ONE_CENTRED_TABLE = "2"
ONE_CENTRED_CELLS: tuple[str, ...] = gan_zero_centred.ONE_CENTRED_CELLS
#: The penalty of a critic: its level of ``g`` (R1, R2, R1 + R2 for the zero-centred tables, hinge for Table 2's).
ONE_CENTRED_LEVEL = "hinge"
#: The boundary the critics are compared at: the real/fake midpoint, the one boundary every critic here is measured
#: at (R3GAN's paired loss and Table 2's measurement, which includes WGAN, have no zero boundary). The zero-centred
#: HingeGAN critics are also measured at f = 0, which means nothing for them: they score every measured image inside
#: (−1, 1), on the linear part of the hinge for both classes, where the critic loss 2 − E f(real) + E f(fake) does
#: not change when a constant is added to f; nothing pins f to 0, so where their images fall against 0 is an
#: artefact of the threshold (:meth:`ZeroCentredMargins.score_range`).
RULE = "midpoint"
#: name: (better penalty, other penalty, value); each value a ratio better / other of per-critic values at q = 2,
#: matched on the loss and the seed. ``L2``: the mean signed L² margin; ``first order / L2``: the first-order
#: estimate over the L² margin (mean over the critic's images); ``accuracy``: the share of the critic's images on
#: their class's side of the boundary (how well it separates real from generated images).
MARGIN_PROPOSITIONS: dict[str, tuple[str, str, str]] = {
    "the L² hinge penalty gives larger L² margins than R1": ("hinge", "R1", "L2"),
    "the L² hinge penalty gives larger L² margins than R2": ("hinge", "R2", "L2"),
    "the L² hinge penalty gives larger L² margins than R1 + R2": ("hinge", "R1 + R2", "L2"),
    "the first-order estimate overstates R1 + R2's L² margins more than the L² hinge penalty's":
        ("R1 + R2", "hinge", "first order / L2"),
    "the L² hinge penalty's critics separate their images better than R1 + R2's": ("hinge", "R1 + R2", "accuracy"),
}
#: The gate each value needs: a margin means something only for a critic that separates its images (and learnt);
#: a separation can be compared whenever the run learnt.
VALUE_GATES: dict[str, str] = {"L2": "gate", "first order / L2": "gate", "accuracy": "learnt"}


def measured_tables() -> tuple[str, ...]:
    """The tables whose critic measurements this chapter reads: the zero-centred ones and Table 2's replicate."""
    return (*gan_zero_centred.PENALTY_LEVELS, ONE_CENTRED_TABLE)


def load_critics(root: Path | str | None = None,
                 mode: str = "primary") -> tuple[pd.DataFrame, dict[str, dict]] | None:
    """:func:`mmgan.critics.report.per_critic` rows of every measured critic of the study, with ``penalty`` (R1,
    R2, R1 + R2, q = 2 or ∞ with the hinge penalty) and ``cell`` relabelled so that each (loss, penalty) is a cell
    of its own, and each table's measurement meta data, from the committed measurements in the view ``mode``
    (:data:`mmgan.critics.measure.LOAD_MODES`); None until every table of :func:`measured_tables` is measured. Each
    GAN folder read must match its manifest and hold the critics that were measured, and every table must have been
    measured with the same settings (``ValueError``)."""
    root = find_results_root(root)
    where = root / cm.MEASUREMENTS
    tables = list(measured_tables())
    if not all((where / f"table{table}.csv").is_file() for table in tables):
        return None
    frames, metas = [], {}
    for table in tables:
        measurements, metas[table] = cm.load_measurements(table, where, mode=mode)
        critics = report.per_critic(measurements).merge(critic_extras(measurements), on=["cell", "seed"], how="left")
        gan_root = root / (REPLICATE_ROOT if table == ONE_CENTRED_TABLE else "gan")
        cm.verify_measured_weights(table, metas[table], gan_root, measurements)
        critics = report.with_end_fdd(critics, cm.study_runs(table, gan_root, metas[table].get("cells")))
        if table == ONE_CENTRED_TABLE:
            critics = critics[critics["cell"].isin(ONE_CENTRED_CELLS)]
            verify_manifest(_study_folder(table, root / REPLICATE_ROOT))
        else:
            critics = critics.assign(g=gan_zero_centred.PENALTY_LEVELS[table])
            verify_manifest(_study_folder(table, root / "gan"))
        frames.append(critics)
    settings = {table: (meta["images"], meta["fmn_steps"], str(meta["search"])) for table, meta in metas.items()}
    if len(set(settings.values())) > 1:
        raise ValueError(f"the critics were measured with different settings (images, FMN steps, search): {settings}")
    return with_penalty_cells(pd.concat(frames, ignore_index=True)), metas


def with_penalty_cells(critics: pd.DataFrame) -> pd.DataFrame:
    """``critics`` (with ``loss``, ``q`` and ``g``: the penalty level, R1, R2, R1 + R2 or hinge) with ``penalty``
    and ``cell`` relabelled so that each (loss, penalty) is a cell of its own."""
    critics = critics.copy()
    critics["penalty"] = [g if g != ONE_CENTRED_LEVEL else f"q = {q}, hinge"
                          for q, g in zip(critics["q"], critics["g"])]
    critics["cell"] = critics["loss"] + ", " + critics["penalty"]
    return critics


def load_thresholds(root: Path | str | None = None) -> pd.DataFrame | None:
    """Every boundary rule of every critic of the study in both views (``table<N>-thresholds.csv`` of
    :func:`measured_tables`, ``mmgan critic-margins N --thresholds-only``); None when a table has none."""
    where = find_results_root(root) / cm.MEASUREMENTS
    paths = [where / f"table{table}{cm.THRESHOLDS_ONLY}.csv" for table in measured_tables()]
    if not all(path.is_file() for path in paths):
        return None
    frames = []
    for table, path in zip(measured_tables(), paths):
        frame = read_csv(path, "mmgan critic-margins N --thresholds-only", dtype={"q": str, "g": str})
        if table == ONE_CENTRED_TABLE:
            frames.append(frame[frame["cell"].isin(ONE_CENTRED_CELLS)])
        else:
            frames.append(frame.assign(g=gan_zero_centred.PENALTY_LEVELS[table]))
    return with_penalty_cells(pd.concat(frames, ignore_index=True))


def critic_extras(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, seed): the lowest and highest score of the critic's measured images and its mean L² input-gradient
    norm at the midpoints between its real and generated images (``grad_norm_<view>`` of
    :func:`mmgan.critics.instruments.batchnorm_views`), both in the view the rows were measured in (their
    ``mode``; eval mode where the rows predate the views)."""
    mode = measurements["mode"].iloc[0] if "mode" in measurements else "eval"
    images = measurements.drop_duplicates(["cell", "seed", "image", "index"]).assign(
        inside=lambda frame: frame["score"].abs() < 1)
    return images.groupby(["cell", "seed"], sort=False).agg(
        score_min=("score", "min"), score_max=("score", "max"), images=("inside", "size"),
        inside=("inside", "sum"), grad_norm=(f"grad_norm_{mode}", "first")).reset_index()


def _study_folder(table: str, gan_root: Path) -> Path:
    source, overrides = gan_tables.study_source(table)
    _, config = gan_tables.table_configs(source, "cpu", **overrides)
    return gan_tables.table_folder(source, "cpu", config, gan_root)


def penalty_values(critics: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Per critic at q = 2 and boundary ``rule``: its mean signed L² margin, its first-order estimate over its L²
    margin, its accuracy, whether its run learnt (``learnt``) and whether it also separates its images
    (``gate``, at every order)."""
    at = critics[(critics["threshold_rule"] == rule) & (critics["q"] == "2")]
    keys = ["loss", "g", "seed"]
    l2 = at[at["p"] == 2.0].set_index(keys)
    out = pd.DataFrame({"L2": l2["signed"], "first order / L2": l2["taylor"] / l2["margin"],
                        "accuracy": l2["accuracy"], "learnt": l2["learnt"]})
    out["gate"] = (at.assign(ok=at["learnt"] & at["separates"]).groupby(keys)["ok"].all()).reindex(out.index)
    return out.reset_index()


def margin_propositions(critics: pd.DataFrame, alpha: float = ALPHA, rule: str = RULE) -> pd.DataFrame:
    """:data:`MARGIN_PROPOSITIONS` at boundary ``rule``, each at the Bonferroni level over the propositions."""
    level = 1 - alpha / len(MARGIN_PROPOSITIONS)
    rows = []
    values = penalty_values(critics, rule)
    for name, (better, other, value) in MARGIN_PROPOSITIONS.items():
        gated = values.assign(gate=values[VALUE_GATES[value]])
        row = report.paired_effect(gated, "g", better, other, value, ["loss"], level)
        if row is not None:
            rows.append({"threshold": rule, "proposition": name, **row})
    return pd.DataFrame(rows, columns=["threshold", "proposition", "seeds", "pairs", "ratio", "lower", "upper",
                                       "level", "verdict"])


def dual_norm_propositions(critics: pd.DataFrame) -> pd.DataFrame:
    """The paper's dual-norm propositions (:data:`mmgan.critics.report.CRITIC_PROPOSITIONS`) on the one-centred
    HingeGAN critics, at :data:`RULE`."""
    return report.critic_propositions(critics[critics["g"] == ONE_CENTRED_LEVEL], RULE)


def every_proposition(critics: pd.DataFrame) -> pd.DataFrame:
    """:data:`MARGIN_PROPOSITIONS` and the dual-norm ones, each where its two sides were measured."""
    return pd.concat([margin_propositions(critics), dual_norm_propositions(critics).drop(columns="measure")],
                     ignore_index=True)


def cell_table(critics: pd.DataFrame) -> pd.DataFrame:
    """Per cell and boundary: the mean signed margin of each order over the seeds, the first-order estimate over
    the L² margin, accuracy (or that the loss leaves the boundary's level undetermined), the critics that pass the
    gate, the mean final FDD of their runs and, where measured, the mean ‖∇f‖₂ at the real/fake midpoints."""
    rows = []
    for (cell, rule), group in critics.groupby(["cell", "threshold_rule"], sort=False):
        by_p = group.groupby("p")
        gate = group.assign(ok=group["learnt"] & group["separates"]).groupby("seed")["ok"].all()
        l2 = group[group["p"] == 2.0]
        rows.append({"cell": cell, "boundary": rule, "critics": f"{int(gate.sum())} of {len(gate)}",
                     **{f"{report_name(p)} margin": by_p["signed"].mean()[p] for p in sorted(by_p.groups)},
                     "first order / L2": float((l2["taylor"] / l2["margin"]).mean()),
                     "accuracy": _accuracy(group["accuracy"]), "final FDD": float(l2["final_fdd"].mean()),
                     **({"‖∇f‖₂ at midpoints": float(l2["grad_norm"].mean())} if "grad_norm" in group else {})})
    return pd.DataFrame(rows).set_index(["cell", "boundary"])


def _accuracy(values: pd.Series) -> str:
    """The mean accuracy to 3 decimals, or :data:`mmgan.critics.views.UNDETERMINED` where no critic has one (the loss
    leaves the level of the boundary free)."""
    return views.UNDETERMINED if values.isna().all() else f"{values.mean():.3f}"


def verdict_sentence(judged: pd.DataFrame) -> str:
    """The verdicts in one sentence, each with its ratio and interval where it has one (none beside *not
    comparable*, :func:`mmgan.verdicts.effect_text`)."""
    return "; ".join(f"{row['proposition']}: {row['verdict']}"
                     + effect_text(row["verdict"], row["ratio"], row["lower"], row["upper"])
                     for _, row in judged.iterrows())


def _shown(judged: pd.DataFrame) -> pd.DataFrame:
    """Verdict rows as a page shows them: the ratio to 2 decimals with its interval, seeds, verdict."""
    return pd.DataFrame({"boundary": judged["threshold"], "proposition": judged["proposition"],
                         "ratio": [f"{r:.2f}" if math.isfinite(r) else "—" for r in judged["ratio"]],
                         "interval": [interval_text(lo, hi) for lo, hi in zip(judged["lower"], judged["upper"])],
                         "seeds": judged["seeds"], "verdict": judged["verdict"].astype(str)}).set_index(
                             ["boundary", "proposition"])


def report_name(p: float) -> str:
    return {1.0: "L1", 2.0: "L2", math.inf: "L∞"}[float(p)]


@dataclass
class ZeroCentredMargins:
    """What the zero-centred chapter shows of its critics' margins: the critics in the measurement's primary view
    (the train-mode critic where it was re-measured under issue 36, else eval mode) and, where both views were
    measured, the eval-mode critics as the second view."""

    critics: pd.DataFrame
    metas: dict[str, dict]
    #: the same critics in eval mode where the primary view is the train-mode critic, None for an eval-only measurement
    second: pd.DataFrame | None = None
    #: every boundary rule of every critic in both views (:func:`load_thresholds`), None when not estimated
    thresholds: pd.DataFrame | None = None

    def propositions(self) -> pd.DataFrame:
        return margin_propositions(self.critics)

    def view(self) -> str:
        """The view the verdicts are drawn on, in words (:func:`mmgan.critics.views.view_text`)."""
        return views.view_text(self.second is not None)

    def measurement(self) -> str:
        """What the committed measurement behind :meth:`propositions` is (:func:`mmgan.critics.views.measurement_text`,
        per table where they differ)."""
        texts = {table: views.measurement_text(meta) for table, meta in self.metas.items()}
        if len(set(texts.values())) == 1:
            return next(iter(texts.values()))
        return "; ".join(f"Table {table}: {text}" for table, text in texts.items())

    def views_table(self) -> pd.DataFrame | str:
        """Per proposition: the verdict on the train-mode critic (primary) beside the one on the eval-mode critic
        (second view), and whether the two agree (:func:`mmgan.critics.views.view_verdicts`)."""
        if self.second is None:
            return "Measured on the eval-mode critic only: there is no second view to compare."
        return views.view_verdicts(every_proposition(self.critics), every_proposition(self.second))

    def soundness(self) -> str:
        """The soundness count of the measurement (:func:`mmgan.critics.views.soundness_text`), per table checked."""
        checked = {table: meta for table, meta in self.metas.items() if (meta.get("soundness") or {}).get("critics")}
        if not checked:
            return "not run on this measurement"
        return "; ".join(f"Table {table}: {views.soundness_text(meta)}" for table, meta in checked.items())

    def thresholds_table(self) -> pd.DataFrame | str:
        """Each rule's boundary per cell and view with its standard error, the loss's level and the population's
        accuracy, or "level undetermined by the loss" (:func:`mmgan.critics.views.threshold_summary`)."""
        if self.thresholds is None:
            return "Not estimated: `mmgan critic-margins N --thresholds-only` writes them."
        return views.threshold_summary(self.thresholds)

    def propositions_table(self) -> pd.DataFrame:
        """:meth:`propositions` as the page shows them: ratio better / other with its interval, per boundary."""
        return _shown(self.propositions())

    def dual_norm(self) -> pd.DataFrame:
        """The paper's dual-norm propositions on the one-centred HingeGAN critics (:func:`dual_norm_propositions`)."""
        return dual_norm_propositions(self.critics)

    def dual_norm_table(self) -> pd.DataFrame:
        return _shown(self.dual_norm())

    def ranking(self) -> dict[str, object]:
        """Does a larger signed L² margin go with a lower end-of-training FDD among the HingeGAN critics of one
        penalty? The within-cell ρ of :func:`mmgan.critics.report.within_cell_correlation` (*holds*: its bootstrap
        interval below 0), so that penalties that differ in both margin and FDD do not make a correlation."""
        return report.within_cell_correlation(self.critics[self.critics["loss"] == "hinge"], RULE, 2.0)

    def cells(self) -> pd.DataFrame:
        return cell_table(self.critics).round(3)

    def scores_inside(self) -> str:
        """How many of the measured images of the zero-centred HingeGAN critics score inside (−1, 1), in words."""
        zero = self.critics[(self.critics["loss"] == "hinge") & (self.critics["g"] != ONE_CENTRED_LEVEL)]
        per = zero.groupby(["g", "seed"])[["images", "inside"]].first()
        images, inside = int(per["images"].sum()), int(per["inside"].sum())
        return "all of them inside" if inside == images else f"{inside:,} of their {images:,} images inside"

    def score_range(self) -> tuple[float, float, int]:
        """The lowest and highest score over every measured image of the zero-centred HingeGAN critics (in the
        primary view, :meth:`view`), and how many critics that is: inside (−1, 1), the critic loss sees only
        E f(real) − E f(fake)."""
        zero = self.critics[(self.critics["loss"] == "hinge") & (self.critics["g"] != ONE_CENTRED_LEVEL)]
        return float(zero["score_min"].min()), float(zero["score_max"].max()), zero.groupby(["g", "seed"]).ngroups

    def gradient_norms(self) -> pd.Series:
        """Per cell: the mean over its critics of ‖∇f‖₂ at the real/fake midpoints (in the primary view)."""
        per = self.critics.groupby(["cell", "seed"], sort=False)["grad_norm"].first()
        return per.groupby(level="cell", sort=False).mean()

    def glue(self) -> dict[str, object]:
        primary = self.propositions()
        ranking = self.ranking()
        values: dict[str, object] = {
            "zcm_critics": self.critics.groupby(["cell", "seed"]).ngroups,
            "zcm_images": next(iter(self.metas.values()))["images"],
            "zcm_minutes": f"{sum(views.measured_seconds(meta) for meta in self.metas.values()) / 60:.0f}",
            "zcm_verdicts": verdict_sentence(primary),
            "zcm_level": f"{primary['level'].iloc[0]:.1%}",
            "zcm_rho": f"{ranking['rho']:.2f}", "zcm_rho_interval": interval_text(ranking["rho CI low"],
                                                                                  ranking["rho CI high"]),
            "zcm_rho_verdict": str(ranking["verdict"]),
            "zcm_rho_critics": f"{ranking['critics']} of {ranking['of']}",
            "zcm_measurement": self.measurement(), "zcm_view": self.view(),
            "zcm_population": f"{cm.POPULATION:,}",
            "zcm_soundness": self.soundness(),
            "zcm_undetermined": ("not estimated" if self.thresholds is None
                                 else views.undetermined_text(self.thresholds)),
        }
        if "score_min" not in self.critics:  # constructed critics without the measurement's extras
            return values
        low, high, count = self.score_range()
        norms = self.gradient_norms()
        values.update({
            "zcm_score_low": f"{low:.2f}", "zcm_score_high": f"{high:.2f}", "zcm_score_critics": count,
            "zcm_score_linear": self.scores_inside(),
            "zcm_gradient_norms": "; ".join(f"{cell} {value:.3g}" for cell, value in norms.items()),
        })
        return values

    def status_note(self) -> str:
        primary = self.propositions()
        ranking = self.ranking()
        return ("Critic margins (L², at the real/fake midpoint, against a replicate of Table 2's L² hinge-penalty "
                "critics): "
                + verdict_sentence(primary) + "; within a penalty, a larger L² margin goes with a lower "
                  f"end-of-training FDD: {ranking['verdict']} "
                  f"(ρ = {ranking['rho']:.2f} {interval_text(ranking['rho CI low'], ranking['rho CI high'])})"
                + f" [on {self.view()}; {self.measurement()}]")


@dataclass
class Chapter:
    """The zero-centred chapter: the swiss-roll theory check, the GAN study and its critics' margins (each None
    before it is committed)."""

    theory: theory.ZeroCentredPage
    gan: gan_zero_centred.GANStudy | None
    margins: ZeroCentredMargins | None

    def glue(self) -> dict[str, object]:
        return {**self.theory.glue(), **(self.gan.glue() if self.gan else {}),
                **(self.margins.glue() if self.margins else {})}

    def status_note(self) -> str:
        note = self.theory.status_note()
        if self.gan is None:
            return note + ". The GAN study of R1/R2 is not committed yet; the margins of its critics are not measured"
        if self.margins is None:
            return f"{note}. {self.gan.status_note()}. The margins of these critics are not measured yet"
        return f"{note}. {self.gan.status_note()}. {self.margins.status_note()}"


def chapter(root: Path | str | None = None, check_iterations: int = 200,
            check_root: Path | str | None = None) -> Chapter:
    """The chapter from the committed results under ``root`` (default: the repository's): the swiss-roll variants
    with their pipeline check (:func:`mmgan.table1.zero_centred.chapter`), the GAN study
    (:func:`mmgan.chapters.gan_zero_centred.load_gan_study`) and its critics' margins (:func:`load_critics`)."""
    study = gan_zero_centred.load_gan_study(root)
    return Chapter(theory.chapter(root, check_iterations, check_root),
                   gan_zero_centred.GANStudy(study) if study else None, load_margins(root))


def load_margins(root: Path | str | None = None) -> ZeroCentredMargins | None:
    """The critics' margins in the measurement's primary view, with the eval view as the second where every table
    was measured in both (:func:`load_critics`), and the thresholds; None before every table is measured."""
    measured = load_critics(root)
    if measured is None:
        return None
    both = all(views.both_views(meta) for meta in measured[1].values())
    second = load_critics(root, mode="eval")[0] if both else None
    return ZeroCentredMargins(*measured, second, load_thresholds(root))
