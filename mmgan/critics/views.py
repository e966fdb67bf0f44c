"""Which measurement and which view of the critic a verdict comes from (issue 36, items 2, 3 and 7).

* **Provenance** (:class:`Provenance`, :func:`provenance`): a committed measurement is either the *first* one
  (few images per critic, the eval-mode critic only, each boundary estimated from the measured images themselves)
  or *re-measured* under issue 36 (the train-mode critic, class-pure batches of the training batch size with each
  measured image's batch held fixed, as the primary view and eval mode as the second; thresholds from population
  forward passes). A page never shows a verdict of a first measurement as if it were re-measured:
  :func:`measurement_text` says which one each number comes from.
* **Views** (:func:`view_verdicts`): a proposition judged on the train-mode critic (primary) and on the eval-mode
  critic (second) by the same rule; the page states the primary verdict, with its ratio and interval (*cannot tell*
  always with its interval), the second beside it, and whether the two agree (:class:`Agreement`).
* **Thresholds** (:func:`threshold_summary`): the boundary values of each rule
  (:mod:`mmgan.critics.thresholds`: relativistic, App. C.1; the midpoint; f = 0 where the loss pins the level) with
  their standard errors, and the population's accuracy, or "level undetermined by the loss" instead of an
  accuracy where the loss leaves the critic's level free.
* **Soundness** (:func:`soundness_text`): the count of flips found inside uncapped certified balls (expected 0).
"""

from __future__ import annotations

import enum
import math
from typing import Any

import pandas as pd

from mmgan.critics.held_batch import MODES
from mmgan.verdicts import Verdict, effect_text

#: What a page writes instead of an accuracy where the loss does not pin the critic's level.
UNDETERMINED = "level undetermined by the loss"


class Provenance(enum.Enum):
    """Which measurement a committed file holds."""

    FIRST = "first measurement"
    REMEASURED = "re-measured (issue 36)"

    def __str__(self) -> str:
        return self.value


def provenance(meta: dict[str, Any]) -> Provenance:
    """:attr:`Provenance.REMEASURED` where the measurement recorded its views and population (issue 36), else
    :attr:`Provenance.FIRST`."""
    return Provenance.REMEASURED if "modes" in meta and "population" in meta else Provenance.FIRST


def both_views(meta: dict[str, Any]) -> bool:
    """Whether a measurement measured the train-mode critic (primary) and the eval-mode one (second view)."""
    return set(MODES) <= set(meta.get("modes", ()))


def view_text(both: bool) -> str:
    """The view a page's verdicts are drawn on, in words: the critic as trained where both views were measured
    (``both``), else the eval-mode critic."""
    return ("the train-mode critic (the critic as trained)" if both
            else "the eval-mode critic (BatchNorm with its running statistics)")


def measurement_text(meta: dict[str, Any]) -> str:
    """What a measurement is, in words: its images per critic, its views and where its thresholds come from."""
    images = int(meta["images"])
    if provenance(meta) is Provenance.FIRST:
        return (f"the first measurement: {images} + {images} images per critic, the eval-mode critic only, each "
                f"boundary from the measured images themselves; not re-measured under issue 36")
    views = ("the train-mode critic (class-pure batches of the training batch size, each measured image's batch "
             "held fixed), eval mode as the second view") if "train" in meta["modes"] else "the eval-mode critic only"
    seeds = meta.get("seeds") or []
    runs = f", seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} of each cell" if seeds else ""
    return (f"re-measured under issue 36: {images} + {images} images per critic (the real ones shared by every "
            f"critic){runs}, {views}, thresholds from {int(meta['population']):,} images per class")


def measured_seconds(meta: dict[str, Any]) -> float:
    """The seconds a measurement took: the sum over its critics' parts where it was resumed over sessions
    (:func:`mmgan.critics.parts.parts_record`; one process's seconds per critic, so core-seconds when several ran
    at once), else the one command's wall seconds."""
    return float(meta["parts"]["seconds"]) if meta.get("parts") else float(meta["seconds"])


class Agreement(enum.Enum):
    """Whether a verdict on the eval-mode critic (second view) is the one on the train-mode critic (primary)."""

    AGREES = "the eval view agrees"
    DIFFERS = "the eval view differs"

    def __str__(self) -> str:
        return self.value


def agreement(primary: Verdict, second: Verdict) -> Agreement:
    """:attr:`Agreement.AGREES` when both views reach the same verdict."""
    return Agreement.AGREES if primary == second else Agreement.DIFFERS


def verdict_text(verdict: Verdict, ratio: float, lower: float, upper: float) -> str:
    """A verdict with its ratio and interval; *cannot tell* always with its interval (or why it has none)."""
    if verdict == Verdict.CANNOT_TELL and not (math.isfinite(lower) and math.isfinite(upper)):
        ratio_text = f"{ratio:.2f}, " if math.isfinite(ratio) else ""
        return f"{verdict} ({ratio_text}no interval: fewer than 2 seeds)"
    return f"{verdict}{effect_text(verdict, ratio, lower, upper)}"


def view_verdicts(primary: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Per proposition judged in both views (rows of ``primary``, the train-mode critic, and ``second``, the
    eval-mode one, each with ``proposition``, ``verdict``, ``ratio``, ``lower``, ``upper``, ``seeds``): the primary
    verdict in words, the second's, and whether they agree. A proposition judged in one view only is left out."""
    both = primary.merge(second, on="proposition", suffixes=(" train", " eval"))
    return pd.DataFrame({
        "proposition": both["proposition"], "seeds": both["seeds train"],
        "train-mode critic (primary)": [verdict_text(v, r, lo, hi) for v, r, lo, hi in zip(
            both["verdict train"], both["ratio train"], both["lower train"], both["upper train"])],
        "eval-mode critic (second view)": [verdict_text(v, r, lo, hi) for v, r, lo, hi in zip(
            both["verdict eval"], both["ratio eval"], both["lower eval"], both["upper eval"])],
        "views": [str(agreement(a, b)) for a, b in zip(both["verdict train"], both["verdict eval"])],
    }).set_index("proposition")


def threshold_summary(thresholds: pd.DataFrame) -> pd.DataFrame:
    """Per cell, view and boundary rule of ``table<N>-thresholds.csv`` rows: the boundary for real and for generated
    images (mean over the critics) with the largest standard error of one critic's estimate, the loss's level (how
    many critics it leaves undetermined) and the population's mean accuracy over the critics whose level is not
    undetermined, :data:`UNDETERMINED` where the loss leaves the level of every critic free."""
    rows = []
    for (cell, mode, rule), group in thresholds.groupby(["cell", "mode", "rule"], sort=False):
        undetermined = int((group["level"] == "undetermined").sum())
        rows.append({
            "cell": cell, "view": mode, "boundary": rule, "critics": len(group),
            "t, real images [max SE]": f"{group['real'].mean():.4f} [{group['real_se'].max():.4f}]",
            "t, generated images [max SE]": f"{group['fake'].mean():.4f} [{group['fake_se'].max():.4f}]",
            "level": (f"undetermined for {undetermined} of {len(group)}" if undetermined
                      else str(group["level"].iloc[0])),
            "accuracy (population)": _accuracy_text(group, undetermined)})
    return pd.DataFrame(rows).set_index(["cell", "view", "boundary"])


def _accuracy_text(group: pd.DataFrame, undetermined: int) -> str:
    """The mean accuracy of the critics whose level is not undetermined, and how many are left out for it."""
    if undetermined == len(group):
        return UNDETERMINED
    mean = f"{group.loc[group['level'] != 'undetermined', 'accuracy'].mean():.3f}"
    kept = len(group) - undetermined
    return mean if not undetermined else f"{mean} over {kept} critics ({undetermined}: {UNDETERMINED})"


def undetermined_text(thresholds: pd.DataFrame) -> str:
    """How many critics (in either view) the loss leaves with an undetermined level at f = 0, and their losses."""
    zero = thresholds[thresholds["rule"] == "zero"]
    free = zero[zero["level"] == "undetermined"]
    critics = zero.groupby(["cell", "seed"]).ngroups
    losses = ", ".join(sorted(free["loss"].unique())) or "none"
    return (f"{free.groupby(['cell', 'seed']).ngroups} of {critics} critics in at least one view "
            f"(losses: {losses})")


def soundness_text(meta: dict[str, Any]) -> str:
    """The soundness check's count as a page states it: violations found in how many certified balls of how many
    critics, per view; or that it was not run."""
    found = meta.get("soundness") or {}
    if not found.get("critics"):
        return "not run on this measurement"
    views = ", ".join(f"{mode} mode {count}" for mode, count in found.get("by_mode", {}).items())
    return (f"{found['violations']} violations in {found['balls']:,} certified balls of {found['critics']} "
            f"critic(s) ({views})")
