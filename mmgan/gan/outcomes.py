"""What became of each GAN run, read from its metric history and log: the rule every GAN chapter states.

A run's metric (FID or FDD, lower is better) starts on a plateau: an untrained generator's samples are far
from the data. The run **starts** at its first evaluation at or below its first evaluation divided by
:data:`START_FACTOR` (it has left its starting level); its *time to start* is that iteration, censored at
the last evaluation when it never does. Then every run is exactly one of:

* **diverged**: it failed with a non-finite loss or weights (:class:`mmgan.gan.run_state.NonFiniteLoss`);
* **did not start**: it never left its starting level;
* **stalled**: it started, but only after :data:`STALL_SHARE` of training (it sat on its starting level for
  that share of its iterations, and had less than the rest to learn);
* **learnt**: it started within the first :data:`STALL_SHARE` of training.

The thresholds are set from the committed studies: every run that learnt in them left its plateau by 52.5%
of training (most by 5–45%), the runs named as stalls by the audit of issue 33 left it at 80–100%, and a
plateau's evaluations stay within a few percent of the first one; halving is far outside that noise and far
short of where learnt runs end (50–500× below the start).

Why a run stalled (:func:`stall_mechanism`), in the paper's terms (§5.2), from its log lines over the stall:

* **critic satisfied**: the critic loss and the penalty are exactly 0 on most log lines (every real scored
  ≥ 1 and every fake ≤ −1 under the hinge loss): the critic stops learning and gives the generator a fixed,
  uninformative target, although the input gradient at fakes need not vanish;
* **vanishing gradient at fakes**: the critic's input-gradient norm at the fake batch is below
  :data:`VANISHING` on most log lines (§5.2's failure);
* **generator saturated**: most of the generator's outputs are saturated on most log lines (logged since the
  diagnostics of :mod:`mmgan.gan.diagnostics`; older logs cannot tell);
* otherwise **none of these**.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from mmgan.base import run_folder
from mmgan.verdicts import Verdict

#: A run has started once its metric is at or below its first evaluation divided by this.
START_FACTOR = 2.0
#: A run that starts after this share of its training has stalled (it had less than a third left to learn).
STALL_SHARE = 2 / 3
#: A mechanism is named when it shows on more than this share of the stall's log lines.
MOST = 0.5
#: An input-gradient norm at fakes below this counts as vanished.
VANISHING = 1e-3
#: The errors that mean a run diverged (its loss or weights became non-finite).
DIVERGED_ERRORS = ("NonFiniteLoss", "PackedNonFiniteLoss")


class Outcome(enum.Enum):
    """What became of a run (the rule of the module docstring)."""

    LEARNT = "learnt"
    STALLED = "stalled"
    DID_NOT_START = "did not start"
    DIVERGED = "diverged"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunOutcome:
    outcome: Outcome
    #: the iteration of the first evaluation at or below first / START_FACTOR (None: never, or diverged)
    started_at: int | None
    #: the iteration the time to start is counted up to: started_at, else the last evaluation
    time: int
    iterations: int

    @property
    def censored(self) -> bool:
        """True when the run never started (its time to start is only known to exceed :attr:`time`)."""
        return self.started_at is None

    @property
    def stalled_share(self) -> float:
        """The share of training before it started (1.0 if it never did)."""
        return (self.started_at if self.started_at is not None else self.iterations) / self.iterations


def diverged(error: str) -> bool:
    """Does a failed run's error text (``'NonFiniteLoss: ...'``) say that it diverged?"""
    return error.split(":", 1)[0].strip() in DIVERGED_ERRORS


def classify(history: Sequence[tuple[int, float]], iterations: int, error: str = "") -> RunOutcome:
    """The outcome of a run from its metric history ``[(iteration, value)]`` (in order), its length and, for a
    run that failed, its error text (``'NonFiniteLoss: ...'``)."""
    if iterations <= 0:
        raise ValueError(f"iterations must be > 0, got {iterations!r}")
    if error:
        if not diverged(error):
            raise ValueError(f"a run that failed with {error!r} did not diverge; only {DIVERGED_ERRORS} count as "
                             "diverged (an unreadable run is not an outcome: repair or rerun it)")
        last = int(history[-1][0]) if history else 0
        return RunOutcome(Outcome.DIVERGED, None, last, iterations)
    if not history:
        raise ValueError("a finished run needs at least one metric evaluation")
    values = [float(v) for _, v in history]
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"metric values must be finite and > 0, got {values}")
    first = values[0]
    started = next((int(it) for it, v in history if v <= first / START_FACTOR), None)
    if started is None:
        return RunOutcome(Outcome.DID_NOT_START, None, int(history[-1][0]), iterations)
    outcome = Outcome.STALLED if started > STALL_SHARE * iterations else Outcome.LEARNT
    return RunOutcome(outcome, started, started, iterations)


def run_outcomes(results: pd.DataFrame, curves: pd.DataFrame, iterations: int) -> pd.DataFrame:
    """One row per run of ``results`` (:func:`mmgan.gan.tables.run_table`; runs that diverged included; a run that
    failed otherwise, e.g. an unreadable results file, is no outcome and is left out) with its cell,
    seed, ``outcome`` (:class:`Outcome`), ``learnt`` (bool), ``started at``, ``time`` (to start, or censored),
    ``censored`` and ``stalled share``; ``curves``: :func:`mmgan.gan.tables.metric_curves` of the same runs;
    ``iterations``: the length every run was configured to train."""
    by_run = {key: list(zip(run["iteration"], run["value"]))
              for key, run in curves.groupby(["loss", "norm", "g", "seed"], sort=False)} if len(curves) else {}
    rows = []
    for run in results.itertuples():
        if run.status != "finished" and not diverged(run.error):
            continue  # unusable (named by the chapter as such), not an outcome of training
        key = (run.loss, run.norm, run.g, run.seed)
        result = classify(by_run.get(key, []), iterations, "" if run.status == "finished" else run.error)
        rows.append({"loss": run.loss, "norm": run.norm, "g": run.g, "seed": run.seed, "run": run.run,
                     "outcome": result.outcome, "learnt": result.outcome is Outcome.LEARNT,
                     "started at": result.started_at, "time": result.time, "censored": result.censored,
                     "stalled share": result.stalled_share})
    return pd.DataFrame(rows, columns=["loss", "norm", "g", "seed", "run", "outcome", "learnt", "started at",
                                       "time", "censored", "stalled share"])


def mechanism_shares(run: str | Path, until: int) -> tuple[dict[str, float], int]:
    """For each mechanism of the module docstring, the share of the run's log lines up to iteration ``until`` that
    show it, and how many log lines there are (``generator saturated`` only where the log records it)."""
    lines = [r for r in run_folder.read_log(Path(run) / run_folder.LOG)
             if "critic_loss" in r and r["iteration"] <= until]
    if not lines:
        return {}, 0
    frame = pd.DataFrame(lines)
    share = {"critic satisfied": float(((frame["critic_loss"] == 0) & (frame["penalty"] == 0)).mean()),
             "vanishing gradient at fakes": float((frame["grad_norm_fake"] < VANISHING).mean())}
    if "saturated_share" in frame:
        share["generator saturated"] = float((frame["saturated_share"] > MOST).mean())
    return share, len(frame)


def stall_mechanism(run: str | Path, until: int) -> str:
    """Why a run sat on its starting level up to iteration ``until`` (module docstring), in words."""
    share, lines = mechanism_shares(run, until)
    if not lines:
        return "no log lines in the stall"
    named = [f"{name} ({value:.0%} of {lines} log lines)" for name, value in share.items() if value > MOST]
    if named:
        return "; ".join(named)
    return "none of these" + ("" if "generator saturated" in share else " (saturation not logged by this run)")


@dataclass(frozen=True)
class MechanismCount:
    """How many of the runs that did not learn (diverged ones aside) show one mechanism, with the exact
    (Clopper–Pearson) interval of the share at ``level`` and the verdict on "this mechanism explains most of
    them": holds when the interval lies above 1/2, does not hold when below, cannot tell otherwise."""

    mechanism: str
    shown: int
    runs: int
    lower: float
    upper: float
    verdict: Verdict


def count_mechanisms(rows: pd.DataFrame, level: float = 0.95) -> dict[str, MechanismCount]:
    """Per mechanism of the module docstring, :class:`MechanismCount` over the runs of ``rows``
    (:func:`run_outcomes`) that stalled or did not start, each run's log read once; empty when there are none."""
    stuck = rows[rows["outcome"].isin([Outcome.STALLED, Outcome.DID_NOT_START])]
    if stuck.empty:
        return {}
    shares = [mechanism_shares(run, time)[0] for run, time in zip(stuck["run"], stuck["time"])]
    n, alpha = len(stuck), 1 - level
    out = {}
    for mechanism in ("critic satisfied", "vanishing gradient at fakes", "generator saturated"):
        shown = sum(share.get(mechanism, 0.0) > MOST for share in shares)
        lower = 0.0 if shown == 0 else float(stats.beta.ppf(alpha / 2, shown, n - shown + 1))
        upper = 1.0 if shown == n else float(stats.beta.ppf(1 - alpha / 2, shown + 1, n - shown))
        verdict = Verdict.HOLDS if lower > 0.5 else Verdict.DOES_NOT_HOLD if upper < 0.5 else Verdict.CANNOT_TELL
        out[mechanism] = MechanismCount(mechanism, int(shown), n, lower, upper, verdict)
    return out
