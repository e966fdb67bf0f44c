"""Zero-centred penalties (R1, R2, R1 + R2) through the margin lens, on the swiss roll (issue 28).

The variant is Table 1's headline protocol (:data:`mmgan.table1.study.HEADLINE`: the 'fitted' preset, 2-D,
raw coordinates, the same seeds, data, λ and optimiser) with the rows of
:data:`mmgan.table1.study.ROW_SETS` ``['zero_centred']``: no penalty, the one-centred LS and hinge penalties at
q = 2, and R1, R2, R1 + R2 (:func:`mmgan.penalties.zero_centred_penalty`; λ = γ/2, so Table 1's λ = 10 is γ = 20).
Margins are the L² distances of Table 1's verified estimator (eq. 3); beside them the first-order estimate
|f(x)| / ‖∇f(x)‖₂ that §3.2 approximates the margin with, and the gradient norm at the test points.

Propositions (rule of :mod:`mmgan.book.propositions`: per seed the log ratio better / other of the seed's mean L²
margin, pooled over seeds with a t interval at the Bonferroni level over :data:`PROPOSITIONS` at every λ of
:data:`LAMBDAS`; a seed counts only
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
from mmgan.book.propositions import ALPHA, pooled_effect
from mmgan.book.verdicts import Verdict, effect_text, interval_text
from mmgan.margins import taylor_margin
from mmgan.table1 import study as table1
from mmgan.table1.report import ACCURACY_BAR, MIN_PAIRS, statistics

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


PROPOSITIONS: tuple[MarginProposition, ...] = (
    MarginProposition("R1 enlarges the margin over no penalty", "r1", "none"),
    MarginProposition("R2 enlarges the margin over no penalty", "r2", "none"),
    MarginProposition("R1 + R2 enlarges the margin over no penalty", "r1+r2", "none"),
    MarginProposition("the one-centred hinge penalty beats R1", "hinge-q2", "r1"),
    MarginProposition("the one-centred hinge penalty beats R1 + R2", "hinge-q2", "r1+r2"),
)


#: The committed variants, by λ of every row: Table 1's own (10, i.e. γ = 20 for R1), and a weak one (γ = 0.2) at
#: which every zero-centred classifier still fits the roll (at λ = 10 none does; found with ``mmgan table1 --probe``).
LAMBDAS: tuple[float, ...] = (10.0, 0.1)


def headline_config(**overrides) -> table1.Table1Config:
    """The zero-centred rows under Table 1's headline protocol (overrides as :func:`make_config`)."""
    preset, dim, scale = table1.HEADLINE
    return table1.make_config(overrides.pop("preset", preset), dim=dim, scale=scale, rows=ROWS, **overrides)


def load(root: Path | str | None = None, lam: float = LAMBDAS[0]) -> table1.Table1Result:
    """A committed variant (``mmgan table1 --preset fitted --dim 2 --scale raw --rows zero_centred --lam LAM``) under
    ``root`` (default: the repository's ``results/table1``)."""
    root = Path(root) if root is not None else results_root() / "table1"
    return table1.load_table1(table1.result_directory(headline_config(lam=lam), root))


def first_order(result: table1.Table1Result) -> pd.DataFrame:
    """Per (row, seed): the median over correctly classified test points of the first-order L² estimate
    |f(x)| / ‖∇f(x)‖₂ over the measured L² distance, and the mean ‖∇f(x)‖₂ at the test points."""
    samples, model = result.samples, result.model
    x = torch.as_tensor(samples["x"], dtype=torch.float32)
    m, n, _ = x.shape
    flat = model.flat(n)
    estimate = taylor_margin(flat, x.reshape(m * n, -1), 2.0).reshape(m, n).numpy()
    x_grad = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x_grad).sum(), x_grad)
    norms = grad.norm(dim=2).numpy()
    distance = samples["distance"][:, list(samples["orders"]).index(2.0)]
    correct = samples["score"] * samples["y"] > 0
    rows = []
    for i, (label, seed) in enumerate(result.models):
        kept = correct[i] & np.isfinite(distance[i]) & (distance[i] > 0)
        ratio = float(np.median(estimate[i][kept] / distance[i][kept])) if kept.any() else math.nan
        rows.append({"row": label, "seed": seed, "first order / distance": ratio,
                     "gradient norm": float(norms[i].mean())})
    return pd.DataFrame(rows)


def row_table(result: table1.Table1Result) -> pd.DataFrame:
    """Per row: held-out accuracy, seeds that learnt, the L² margin, the first-order ratio and ‖∇f‖₂ (means over
    seeds; the margin also over the learnt seeds only: a classifier that did not fit has no margin to speak of)."""
    stats = statistics(result)
    l2 = stats[stats.p == 2.0].merge(first_order(result), on=["row", "seed"])
    learnt = l2[l2.accuracy >= ACCURACY_BAR]
    order = [spec.label for spec in result.config.specs]
    table = pd.DataFrame({
        "penalty": [ROW_NAMES[r] for r in order],
        "accuracy": l2.groupby("row")["accuracy"].mean().reindex(order).to_numpy(),
        "seeds learnt": learnt.groupby("row").size().reindex(order, fill_value=0).astype(int).to_numpy(),
        "L² margin (all seeds)": l2.groupby("row")["distance"].mean().reindex(order).to_numpy(),
        "L² margin (learnt seeds)": learnt.groupby("row")["distance"].mean().reindex(order).to_numpy(),
        "first order / distance": l2.groupby("row")["first order / distance"].median().reindex(order).to_numpy(),
        "‖∇f‖₂ at test points": l2.groupby("row")["gradient norm"].mean().reindex(order).to_numpy(),
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


def first_order_overstates(rows: pd.DataFrame, tolerance: float = 0.05) -> bool:
    """Prediction 2 of the chapter: the first-order estimate over the distance of every zero-centred row exceeds
    that of both one-centred rows by more than ``tolerance`` (relative)."""
    one = rows.loc[[ROW_NAMES["ls-q2"], ROW_NAMES["hinge-q2"]], "first order / distance"].max()
    zero = rows.loc[[ROW_NAMES[r] for r in ("r1", "r2", "r1+r2")], "first order / distance"].min()
    return bool(zero > one * (1 + tolerance))


@dataclass
class Variant:
    """One committed λ: the result, its rows table and its verdicts."""

    lam: float
    result: table1.Table1Result
    rows: pd.DataFrame
    judged: pd.DataFrame


@dataclass
class ZeroCentredPage:
    """What the chapter shows: the committed variants (one per λ of :data:`LAMBDAS`), and the page's own check."""

    variants: list[Variant]
    check: pd.DataFrame | None

    def glue(self) -> dict[str, object]:
        table1_lam, weak = self.variants[0], self.variants[-1]
        config = table1_lam.result.config
        values: dict[str, object] = {
            "zc_seeds": len(config.seeds), "zc_iterations": f"{config.iterations:,}", "zc_width": config.width,
            "zc_bar": f"{ACCURACY_BAR:.0%}",
            "zc_minutes": f"{sum(sum(v.result.meta.get('seconds', {}).values()) for v in self.variants) / 60:.0f}",
        }
        for name, variant in (("t1", table1_lam), ("weak", weak)):
            rows = variant.rows
            zero = rows.loc[[ROW_NAMES[r] for r in ("r1", "r2", "r1+r2")]]
            one = rows.loc[[ROW_NAMES["ls-q2"], ROW_NAMES["hinge-q2"]]]
            values.update({
                f"zc_{name}_lam": f"{variant.lam:g}", f"zc_{name}_gamma": f"{2 * variant.lam:g}",
                f"zc_{name}_verdicts": verdict_sentence(variant.judged),
                f"zc_{name}_accuracy_zero": _range(zero["accuracy"], "{:.1%}"),
                f"zc_{name}_accuracy_one": _range(one["accuracy"], "{:.1%}"),
                f"zc_{name}_learnt_zero": int(zero["seeds learnt"].sum()),
                f"zc_{name}_first_order_one": _range(one["first order / distance"], "{:.2f}"),
                f"zc_{name}_first_order_zero": _range(zero["first order / distance"], "{:.2f}"),
                f"zc_{name}_first_order_word": ("holds" if first_order_overstates(rows) else "does not hold"),
                f"zc_{name}_gradient_zero": _range(zero["‖∇f‖₂ at test points"], "{:.3g}"),
                f"zc_{name}_gradient_one": _range(one["‖∇f‖₂ at test points"], "{:.3g}"),
            })
        return values

    def status_note(self) -> str:
        """The introduction's line for this chapter: the verdicts, at what scale, and what is not done."""
        parts = []
        for variant in self.variants:
            judged = variant.judged
            comparable = judged[judged["verdict"] != Verdict.NOT_COMPARABLE]
            if comparable.empty:
                parts.append(f"at λ = {variant.lam:g} no zero-centred classifier fits the roll (not comparable)")
            else:
                parts.append(f"at λ = {variant.lam:g}, L² margin ratio better / other: " + "; ".join(
                    f"{name}: {row['verdict']}{effect_text(row['verdict'], row['ratio'], row['lower'], row['upper'])}"
                    for name, row in comparable.iterrows()))
        config = self.variants[0].result.config
        return f"swiss roll, Table 1's headline protocol ({len(config.seeds)} seeds): " + "; ".join(parts)

    def propositions_table(self) -> pd.DataFrame:
        frames = []
        for variant in self.variants:
            out = variant.judged.copy()
            out["ratio better / other"] = [f"{r:.2f}" if math.isfinite(r) else "—" for r in out["ratio"]]
            out["interval"] = [interval_text(lo, hi) for lo, hi in zip(out["lower"], out["upper"])]
            out["verdict"] = out["verdict"].map(str)
            out["λ (γ = 2λ)"] = f"{variant.lam:g}"
            frames.append(out.reset_index().set_index(["λ (γ = 2λ)", "proposition"]))
        return pd.concat(frames)[["ratio better / other", "interval", "seeds", "verdict", "left out"]]

    def rows_table(self) -> pd.DataFrame:
        return _styled(pd.concat({f"{v.lam:g}": v.rows for v in self.variants}, names=["λ (γ = 2λ)", "penalty"]),
                       "— (none learnt)")

    def check_table(self) -> pd.DataFrame | None:
        """The pipeline check's rows (no verdict; '—' where its short run found no estimate)."""
        return None if self.check is None else _styled(self.check, "—")


#: How :func:`row_table`'s columns are shown.
FORMATS = {"accuracy": "{:.1%}", "seeds learnt": "{:d}", "L² margin (all seeds)": "{:.3f}",
           "L² margin (learnt seeds)": "{:.3f}", "first order / distance": "{:.2f}", "‖∇f‖₂ at test points": "{:.3g}"}


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
    family = len(PROPOSITIONS) * len(LAMBDAS)
    variants = []
    for lam in LAMBDAS:
        result = load(root, lam)
        variants.append(Variant(lam, result, row_table(result), judge_margins(statistics(result), family=family)))
    check = None
    if check_iterations:
        with tempfile.TemporaryDirectory() as scratch:
            check = check_run(check_iterations, Path(check_root or scratch))
    return ZeroCentredPage(variants, check)
