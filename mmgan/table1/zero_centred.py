"""Zero-centred penalties (R1, R2, R1 + R2) through the margin lens, on the swiss roll (issues 28 and 36).

R1, R2 and R1 + R2 are eq. 6 with §4.1's "standard choice" of g: g(z) = z² − 1 with a fixed λ is ‖∇f‖₂² up to a
constant, so R1 is that g at the points of class +1, R2 at those of class −1 and R1 + R2 at both (each class's mean
kept apart: on balanced batches 2λ times eq. 6's mean over all data points). For a linear f with the hinge loss this
is the soft-margin SVM, which §4.1 states (``tests/test_soft_svm.py`` checks it with the project's own loss and
penalty: C = 1/(γ n)); the SVM reading predicts a larger margin for a larger weight, until the classifier no longer
fits the data.

The variants are Table 1's headline protocol (:data:`mmgan.table1.files.HEADLINE`: the 'fitted' preset, 2-D,
raw coordinates, the same seeds, data and optimiser) with the rows of
:data:`mmgan.table1.variant.ROW_SETS` ``['zero_centred']``: no penalty, the one-centred LS and hinge penalties at
q = 2, and R1, R2, R1 + R2 (:func:`mmgan.penalties.zero_centred_penalty`; λ = γ/2, so Table 1's λ = 10 is γ = 20),
one variant per λ of :data:`LAMBDAS`. Margins are the L² distances of Table 1's verified estimator (eq. 3), beside
the exact 2-D reference they are checked against (:func:`mmgan.exact.distance_to_zero_set_2d`), the first-order
estimate |f(x)| / ‖∇f(x)‖₂ that §3.2 approximates the margin with, and the gradient norm at the test points.

Propositions (rule of :mod:`mmgan.gan.propositions`: per seed the log ratio better / other of the seed's mean L²
margin, pooled over seeds with a t interval at the Bonferroni level over every proposition of the page
(:data:`PROPOSITIONS` at every λ of :data:`LAMBDAS`, and :data:`GROWTH` across λ); a seed counts only
when both classifiers reach :data:`mmgan.table1.report.ACCURACY_BAR` on held-out points, and a proposition with
fewer than :data:`mmgan.table1.report.MIN_PAIRS` such seeds is *not comparable*).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmgan.base.registry import check_int
from mmgan.base.results import results_root
from mmgan.margins import taylor_margin
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant
from mmgan.table1.report import ACCURACY_BAR, MIN_PAIRS, statistics
from mmgan.verdicts import ALPHA, Verdict, effect_text, interval_text, pooled_effect

ROWS = "zero_centred"
#: Plain names of the rows, in the order trained.
ROW_NAMES: dict[str, str] = {"none": "no penalty", "ls-q2": "LS, q = 2 (one-centred)",
                             "hinge-q2": "hinge, q = 2 (one-centred)", "r1": "R1 (class +1)",
                             "r2": "R2 (class −1)", "r1+r2": "R1 + R2"}


@dataclass(frozen=True)
class MarginProposition:
    """'``better`` gives a larger L² margin than ``other``' (row labels of the variant)."""

    name: str
    better: str
    other: str


#: Within one λ: the SVM reading predicts the first three where the classifiers fit (a penalty that shrinks ‖∇f‖₂
#: at the data while the loss keeps y f(x) up enlarges y f(x) / ‖∇f(x)‖₂); it ranks no zero-centred penalty against
#: a one-centred one at the same λ, so the last two are questions, not predictions.
PROPOSITIONS: tuple[MarginProposition, ...] = (
    MarginProposition("R1 enlarges the margin over no penalty", "r1", "none"),
    MarginProposition("R2 enlarges the margin over no penalty", "r2", "none"),
    MarginProposition("R1 + R2 enlarges the margin over no penalty", "r1+r2", "none"),
    MarginProposition("the one-centred hinge penalty gives a larger margin than R1", "hinge-q2", "r1"),
    MarginProposition("the one-centred hinge penalty gives a larger margin than R1 + R2", "hinge-q2", "r1+r2"),
)


#: The committed variants, by λ of every row: Table 1's own (10, i.e. γ = 20 for R1), a weak one (γ = 0.2) at
#: which every zero-centred classifier still fits the roll (at λ = 10 none does; found with ``mmgan table1 --probe``)
#: and λ = 1 between them, for the margin against λ (issue 36).
LAMBDAS: tuple[float, ...] = (10.0, 1.0, 0.1)
#: The glue name of each variant's values (``zc_<name>_...``).
VARIANT_NAMES: dict[float, str] = {10.0: "t1", 1.0: "mid", 0.1: "weak"}
#: Across λ, seed by seed (the variants share seeds, data and initial weights): the SVM reading's margin grows with λ
#: while the classifier fits. (label, row, larger λ, smaller λ).
GROWTH: tuple[tuple[str, str, float, float], ...] = tuple(
    (f"{ROW_NAMES[row].split(' (')[0]}'s margin grows with λ", row, 1.0, 0.1) for row in ("r1", "r2", "r1+r2"))


def headline_config(**overrides) -> table1_variant.Table1Config:
    """The zero-centred rows under Table 1's headline protocol (overrides as :func:`make_config`)."""
    preset, dim, scale = table1_files.HEADLINE
    return table1_variant.make_config(overrides.pop("preset", preset), dim=dim, scale=scale, rows=ROWS, **overrides)


def load(root: Path | str | None = None, lam: float = LAMBDAS[0]) -> table1_variant.Table1Result:
    """A committed variant (``mmgan table1 --preset fitted --dim 2 --scale raw --rows zero_centred --lam LAM``) under
    ``root`` (default: the repository's ``results/table1``)."""
    root = Path(root) if root is not None else results_root() / "table1"
    return table1_files.load_table1(table1_files.result_directory(headline_config(lam=lam), root))


def first_order(result: table1_variant.Table1Result) -> pd.DataFrame:
    """Per (row, seed): the median over correctly classified test points of the first-order L² estimate
    |f(x)| / ‖∇f(x)‖₂ over the measured L² distance, the mean ‖∇f(x)‖₂ at the test points, the mean exact L²
    distance of the 2-D reference (over the points where it found the boundary) and the training accuracy."""
    samples, model = result.samples, result.model
    x = torch.as_tensor(samples["x"], dtype=torch.float32)
    m, n, _ = x.shape
    flat = model.flat(n)
    estimate = taylor_margin(flat, x.reshape(m * n, -1), 2.0).reshape(m, n).numpy()
    x_grad = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x_grad).sum(), x_grad)
    norms = grad.norm(dim=2).numpy()
    l2 = list(samples["orders"]).index(2.0)
    distance = samples["distance"][:, l2]
    exact = samples["exact"][:, l2] if "exact" in samples else np.full_like(distance, np.nan)
    correct = samples["score"] * samples["y"] > 0
    train = result.summary[result.summary["p"] == 2.0].set_index(["row", "seed"])["train_accuracy"]
    rows = []
    for i, (label, seed) in enumerate(result.models):
        kept = correct[i] & np.isfinite(distance[i]) & (distance[i] > 0)
        ratio = float(np.median(estimate[i][kept] / distance[i][kept])) if kept.any() else math.nan
        found = np.isfinite(exact[i])
        rows.append({"row": label, "seed": seed, "first order / distance": ratio,
                     "gradient norm": float(norms[i].mean()),
                     "exact": float(exact[i][found].mean()) if found.any() else math.nan,
                     "training accuracy": float(train.loc[(label, seed)])})
    return pd.DataFrame(rows)


def row_table(result: table1_variant.Table1Result) -> pd.DataFrame:
    """Per row: training and held-out accuracy, seeds that learnt, the L² margin, the exact reference's, the
    first-order ratio and ‖∇f‖₂ (means over seeds; the margins also over the learnt seeds only: a classifier that
    did not fit has no margin to speak of)."""
    stats = statistics(result)
    l2 = stats[stats.p == 2.0].merge(first_order(result), on=["row", "seed"])
    learnt = l2[l2.accuracy >= ACCURACY_BAR]
    order = [spec.label for spec in result.config.specs]

    def mean(frame: pd.DataFrame, column: str) -> np.ndarray:
        return frame.groupby("row")[column].mean().reindex(order).to_numpy()

    table = pd.DataFrame({
        "penalty": [ROW_NAMES[r] for r in order],
        "training accuracy": mean(l2, "training accuracy"),
        "accuracy": mean(l2, "accuracy"),
        "seeds learnt": learnt.groupby("row").size().reindex(order, fill_value=0).astype(int).to_numpy(),
        "L² margin (all seeds)": mean(l2, "distance"),
        "L² margin (learnt seeds)": mean(learnt, "distance"),
        "exact L² margin (learnt seeds)": mean(learnt, "exact"),
        "first order / distance": l2.groupby("row")["first order / distance"].median().reindex(order).to_numpy(),
        "‖∇f‖₂ at test points": mean(l2, "gradient norm"),
    })
    return table.set_index("penalty")


def judge_margins(stats: pd.DataFrame, propositions: tuple[MarginProposition, ...] = PROPOSITIONS,
                  accuracy_bar: float = ACCURACY_BAR, alpha: float = ALPHA, family: int | None = None) -> pd.DataFrame:
    """The verdict of every proposition from per-(row, seed) statistics (``row``, ``seed``, ``p``, ``distance``,
    ``accuracy``), by the rule of the module docstring, at the Bonferroni level over ``family`` propositions
    (default: those given). Columns: ratio (better / other), lower, upper, level, seeds (that count), verdict
    (:class:`Verdict`), left out (seeds below the accuracy bar)."""
    l2 = stats[stats.p == 2.0].set_index(["row", "seed"])
    level = 1 - alpha / (family or len(propositions))
    records = []
    for prop in propositions:
        better, other = l2.loc[prop.better], l2.loc[prop.other]
        seeds = better.index.intersection(other.index)
        learnt = [s for s in seeds
                  if better.at[s, "accuracy"] >= accuracy_bar and other.at[s, "accuracy"] >= accuracy_bar]
        record = {"proposition": prop.name, "level": level, "seeds": len(learnt),
                  "left out": ", ".join(f"seed {s}" for s in seeds if s not in learnt)}
        if len(learnt) >= MIN_PAIRS:
            effect = pooled_effect(np.log(better.loc[learnt, "distance"].to_numpy()
                                          / other.loc[learnt, "distance"].to_numpy()), level)
            record.update(ratio=effect.ratio, lower=effect.lower, upper=effect.upper, verdict=effect.verdict)
        else:
            record.update(ratio=math.nan, lower=math.nan, upper=math.nan, verdict=Verdict.NOT_COMPARABLE)
        records.append(record)
    columns = ["proposition", "ratio", "lower", "upper", "level", "seeds", "verdict", "left out"]
    return pd.DataFrame(records, columns=columns).set_index("proposition")


def judge_growth(stats_by_lambda: dict[float, pd.DataFrame],
                 growth: tuple[tuple[str, str, float, float], ...] | None = None, family: int | None = None,
                 **rule) -> pd.DataFrame:
    """:data:`GROWTH` by :func:`judge_margins`: the statistics of each λ relabelled ``row@λ``, so that a
    proposition pairs a row at one λ with the same row at another, seed by seed."""
    growth = GROWTH if growth is None else growth
    stats = pd.concat([frame.assign(row=frame["row"] + f"@{lam:g}") for lam, frame in stats_by_lambda.items()])
    props = tuple(MarginProposition(name, f"{row}@{big:g}", f"{row}@{small:g}") for name, row, big, small in growth)
    return judge_margins(stats, props, family=family or len(props), **rule)


def verdict_sentence(judged: pd.DataFrame) -> str:
    """One clause per proposition: its verdict with the pooled ratio and interval, or why it has none (one clause
    for all when none is comparable)."""
    if (judged["verdict"] == Verdict.NOT_COMPARABLE).all():
        return (f"all {len(judged)} propositions {Verdict.NOT_COMPARABLE} (at most {judged['seeds'].max()} seed(s) "
                f"where both classifiers fit the roll; {MIN_PAIRS} needed)")
    parts = []
    for name, row in judged.iterrows():
        if row["verdict"] is Verdict.NOT_COMPARABLE:
            parts.append(f"{name}: {row['verdict']} ({row['seeds']} seed(s) where both classifiers fit the roll; "
                         f"{MIN_PAIRS} needed)")
        else:
            parts.append(f"{name}: {row['verdict']} (margin ratio {row['ratio']:.2f}, "
                         f"{row['level']:.1%} interval {interval_text(row['lower'], row['upper'])}, "
                         f"{row['seeds']} seeds)")
    return "; ".join(parts)


def _short(judged: pd.DataFrame) -> str:
    """The comparable verdicts as 'name: verdict (ratio [interval])'; those not comparable left out."""
    comparable = judged[judged["verdict"] != Verdict.NOT_COMPARABLE]
    return "; ".join(f"{name}: {row['verdict']}{effect_text(row['verdict'], row['ratio'], row['lower'], row['upper'])}"
                     for name, row in comparable.iterrows())


@dataclass
class Variant:
    """One committed λ: the result, its rows table and its verdicts."""

    lam: float
    result: table1_variant.Table1Result
    rows: pd.DataFrame
    judged: pd.DataFrame
    stats: pd.DataFrame


ZERO_ROWS: tuple[str, ...] = ("r1", "r2", "r1+r2")
ONE_ROWS: tuple[str, ...] = ("ls-q2", "hinge-q2")


@dataclass
class ZeroCentredPage:
    """What the chapter shows: the committed variants (one per λ of :data:`LAMBDAS`), the growth of the margin
    with λ, and the page's own check."""

    variants: list[Variant]
    growth: pd.DataFrame
    check: pd.DataFrame | None

    def variant(self, lam: float) -> Variant:
        return next(v for v in self.variants if v.lam == lam)

    def fitting(self) -> list[Variant]:
        """The variants at which every zero-centred row fits the roll on every seed."""
        return [v for v in self.variants
                if (v.rows.loc[[ROW_NAMES[r] for r in ZERO_ROWS], "seeds learnt"] == len(v.result.config.seeds)).all()]

    def glue(self) -> dict[str, object]:
        config = self.variants[0].result.config
        values: dict[str, object] = {
            "zc_seeds": len(config.seeds), "zc_iterations": f"{config.iterations:,}", "zc_width": config.width,
            "zc_bar": f"{ACCURACY_BAR:.0%}", "zc_variants": len(self.variants),
            "zc_lambdas": ", ".join(f"{v.lam:g}" for v in sorted(self.variants, key=lambda v: v.lam)),
            "zc_minutes": f"{sum(sum(v.result.meta.get('seconds', {}).values()) for v in self.variants) / 60:.0f}",
            "zc_growth_verdicts": verdict_sentence(self.growth), "zc_growth_span": self.growth_span(),
            "zc_level": f"{self.variants[0].judged['level'].iloc[0]:.2%}",
            "zc_family": len(PROPOSITIONS) * len(self.variants) + len(self.growth),
        }
        penalised = pd.concat([v.rows.drop(index=ROW_NAMES["none"]) for v in self.variants])
        values["zc_first_order_penalised"] = _range(penalised["first order / distance"].dropna(), "{:.2f}")
        values["zc_first_order_none"] = _range(pd.Series([v.rows.loc[ROW_NAMES["none"], "first order / distance"]
                                                          for v in self.variants]), "{:.2f}")
        for variant in self.variants:
            name, rows = VARIANT_NAMES[variant.lam], variant.rows
            zero = rows.loc[[ROW_NAMES[r] for r in ZERO_ROWS]]
            one = rows.loc[[ROW_NAMES[r] for r in ONE_ROWS]]
            values.update({
                f"zc_{name}_lam": f"{variant.lam:g}", f"zc_{name}_gamma": f"{2 * variant.lam:g}",
                f"zc_{name}_verdicts": verdict_sentence(variant.judged),
                f"zc_{name}_accuracy_zero": _range(zero["accuracy"], "{:.1%}"),
                f"zc_{name}_training_accuracy_zero": _range(zero["training accuracy"], "{:.1%}"),
                f"zc_{name}_accuracy_one": _range(one["accuracy"], "{:.1%}"),
                f"zc_{name}_learnt_zero": int(zero["seeds learnt"].sum()),
                **{f"zc_{name}_learnt_{row.replace('+', '')}": int(rows.loc[ROW_NAMES[row], "seeds learnt"])
                   for row in ZERO_ROWS},
                f"zc_{name}_runs_zero": len(ZERO_ROWS) * len(variant.result.config.seeds),
                f"zc_{name}_first_order_one": _range(one["first order / distance"], "{:.2f}"),
                f"zc_{name}_first_order_zero": _range(zero["first order / distance"], "{:.2f}"),
                f"zc_{name}_first_order_none": f"{rows.loc[ROW_NAMES['none'], 'first order / distance']:.2f}",
                f"zc_{name}_gradient_zero": _range(zero["‖∇f‖₂ at test points"], "{:.3g}"),
                f"zc_{name}_gradient_one": _range(one["‖∇f‖₂ at test points"], "{:.3g}"),
                f"zc_{name}_gradient_none": f"{rows.loc[ROW_NAMES['none'], '‖∇f‖₂ at test points']:.3g}",
                f"zc_{name}_margin_zero": _range(zero["L² margin (learnt seeds)"].dropna(), "{:.3f}")
                if zero["L² margin (learnt seeds)"].notna().any() else "—",
                f"zc_{name}_margin_none": f"{rows.loc[ROW_NAMES['none'], 'L² margin (learnt seeds)']:.3f}",
            })
        return values

    def status_note(self) -> str:
        """The introduction's line for this chapter: the verdicts, at what scale, and what is not done."""
        parts = []
        for variant in self.variants:
            judged = variant.judged
            if (judged["verdict"] == Verdict.NOT_COMPARABLE).all():
                parts.append(f"at λ = {variant.lam:g} no zero-centred classifier fits the roll (not comparable: the "
                             "soft-SVM reading's underfitting)")
            else:
                parts.append(f"at λ = {variant.lam:g}, L² margin ratio better / other: " + _short(judged))
        growth = _short(self.growth)
        config = self.variants[0].result.config
        return (f"swiss roll, Table 1's headline protocol ({len(config.seeds)} seeds; R1 + R2 is eq. 6 with §4.1's "
                "standard g at the data, for a linear f and the hinge loss the soft-margin SVM, tested): "
                + "; ".join(parts) + (f"; {self.growth_span()}, seed by seed: {growth}" if growth else ""))

    def growth_span(self) -> str:
        """Which λ the propositions of :data:`GROWTH` pair ('from λ = 0.1 to λ = 1')."""
        spans = {(small, big) for _, _, big, small in GROWTH}
        return " and ".join(f"from λ = {small:g} to λ = {big:g}" for small, big in sorted(spans))

    def propositions_table(self) -> pd.DataFrame:
        frames = []
        for variant in self.variants:
            frames.append(_shown(variant.judged, f"{variant.lam:g}"))
        frames.append(_shown(self.growth, " and ".join(f"{small:g} → {big:g}"
                                                       for small, big in sorted({(g[3], g[2]) for g in GROWTH}))))
        return pd.concat(frames)[["ratio better / other", "interval", "seeds", "verdict", "left out"]]

    def rows_table(self) -> pd.DataFrame:
        return _styled(pd.concat({f"{v.lam:g}": v.rows for v in self.variants}, names=["λ (γ = 2λ)", "penalty"]),
                       "— (none learnt)")

    def lambda_table(self) -> pd.DataFrame:
        """The margin against λ: per penalty (no penalty and the zero-centred rows) and λ, ascending, the
        accuracies, the seeds that fit and the L² margin over them (estimator and exact reference)."""
        names = [ROW_NAMES[r] for r in ("none", *ZERO_ROWS)]
        columns = ["training accuracy", "accuracy", "seeds learnt", "L² margin (learnt seeds)",
                   "exact L² margin (learnt seeds)", "‖∇f‖₂ at test points"]
        ordered = sorted(self.variants, key=lambda v: v.lam)
        frame = pd.concat([v.rows.loc[[name], columns].assign(**{"λ (γ = 2λ)": f"{v.lam:g}"})
                           for name in names for v in ordered])
        frame = frame.set_index("λ (γ = 2λ)", append=True)
        return _styled(frame, "— (none learnt)")

    def check_table(self) -> pd.DataFrame | None:
        """The pipeline check's rows (no verdict; '—' where its short run found no estimate)."""
        return None if self.check is None else _styled(self.check, "—")


def _shown(judged: pd.DataFrame, lam: str) -> pd.DataFrame:
    out = judged.copy()
    out["ratio better / other"] = [f"{r:.2f}" if math.isfinite(r) else "—" for r in out["ratio"]]
    out["interval"] = [interval_text(lo, hi) for lo, hi in zip(out["lower"], out["upper"])]
    out["verdict"] = out["verdict"].map(str)
    out["λ (γ = 2λ)"] = lam
    return out.reset_index().set_index(["λ (γ = 2λ)", "proposition"])


#: How :func:`row_table`'s columns are shown.
FORMATS = {"training accuracy": "{:.1%}", "accuracy": "{:.1%}", "seeds learnt": "{:d}",
           "L² margin (all seeds)": "{:.3f}", "L² margin (learnt seeds)": "{:.3f}",
           "exact L² margin (learnt seeds)": "{:.3f}", "first order / distance": "{:.2f}",
           "‖∇f‖₂ at test points": "{:.3g}"}


def _styled(frame: pd.DataFrame, missing: str) -> pd.DataFrame:
    """The rows as text, ``missing`` where a value is NaN (no NaN on a page)."""
    return pd.DataFrame({column: [missing if isinstance(v, float) and math.isnan(v) else FORMATS[column].format(v)
                                  for v in frame[column]] for column in frame.columns}, index=frame.index)


def _range(values: pd.Series, fmt: str) -> str:
    low, high = fmt.format(values.min()), fmt.format(values.max())
    return low if low == high else f"{low}–{high}"


def check_run(iterations: int, root: Path) -> pd.DataFrame:
    """The page's pipeline check: the six rows trained for ``iterations`` on one seed with the quick preset's
    small measurement, then :func:`row_table` (no verdict is drawn from it)."""
    config = headline_config(preset="quick", seeds=(0,), iterations=iterations, log_every=iterations)
    return row_table(table1.run_table1(config, root, progress=False, workers=1))


def chapter(root: Path | str | None = None, check_iterations: int = 200,
            check_root: Path | str | None = None) -> ZeroCentredPage:
    """The chapter from the committed variants under ``root`` (default: the repository's), with a pipeline check
    of ``check_iterations`` iterations (0: none) written under ``check_root`` (default: a temporary folder)."""
    check_int(check_iterations, "check_iterations", minimum=0)
    family = len(PROPOSITIONS) * len(LAMBDAS) + len(GROWTH)
    variants = []
    for lam in LAMBDAS:
        result = load(root, lam)
        stats = statistics(result)
        variants.append(Variant(lam, result, row_table(result), judge_margins(stats, family=family), stats))
    growth = judge_growth({v.lam: v.stats for v in variants}, family=family)
    check = None
    if check_iterations:
        with tempfile.TemporaryDirectory() as scratch:
            check = check_run(check_iterations, Path(check_root or scratch))
    return ZeroCentredPage(variants, growth, check)
