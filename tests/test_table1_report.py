"""The verdict rules of the Table 1 chapter, on constructed per-seed statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmgan.table1 import report
from mmgan.verdicts import Interval, Verdict, combine, counts, interval_verdict, paired_t_interval

SEEDS = (0, 1, 2, 3, 4)


def constructed(distance, accuracy=None, noise: float = 0.01, unpaired: float = 0.0) -> pd.DataFrame:
    """A statistics frame: ``distance(row, p)`` times a seed factor shared by all rows (relative
    scatter ``noise``, paired) and one drawn per row and seed (``unpaired``)."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1, len(SEEDS))
    records = []
    for row in report.ROW_ORDER:
        own = rng.normal(0, 1, len(SEEDS))
        for p in report.P_NAMES:
            for k, seed in enumerate(SEEDS):
                d = distance(row, p) * (1 + noise * shared[k] + unpaired * own[k])
                acc = 1.0 if accuracy is None else accuracy(row, seed)
                records.append({"row": row, "seed": seed, "p": p, "distance": d, "signed": d, "correct_only": d,
                                "accuracy": acc, "nonconverged_share": 0.0, "not_found_share": 0.0})
    return pd.DataFrame(records)


def paper_like(row: str, p: float) -> float:
    """No penalty 0.25; every penalised row 0.6, and its own margin (q = dual(p)) 0.7."""
    if row == "none":
        return 0.25
    g, q = row.split("-q")
    own = {2.0: "2", 1.0: "inf", math.inf: "1"}[p]
    return 0.7 if q == own else 0.6


def test_paired_t_interval_matches_the_t_formula():
    interval = paired_t_interval([1.0, 2.0, 3.0])
    assert interval.mean == pytest.approx(2.0)
    assert interval.upper - interval.mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert math.isnan(paired_t_interval([1.0]).lower)
    with pytest.raises(ValueError, match="finite"):
        paired_t_interval([1.0, math.nan])


@pytest.mark.parametrize(("lower", "upper", "expected"), [
    (1.1, 1.5, Verdict.HOLDS), (0.5, 0.9, Verdict.DOES_NOT_HOLD), (0.9, 1.1, Verdict.CANNOT_TELL),
    (math.nan, math.nan, Verdict.CANNOT_TELL)])
def test_interval_verdict(lower, upper, expected):
    assert interval_verdict(Interval(1.0, lower, upper, 5), 1.0) is expected


def test_combine_and_counts():
    assert combine([Verdict.HOLDS, Verdict.HOLDS]) is Verdict.HOLDS
    assert combine([Verdict.HOLDS, Verdict.CANNOT_TELL]) is Verdict.CANNOT_TELL
    assert combine([Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.CANNOT_TELL]) is Verdict.DOES_NOT_HOLD
    assert combine([Verdict.NOT_COMPARABLE] * 2) is Verdict.NOT_COMPARABLE
    assert counts([Verdict.HOLDS, Verdict.HOLDS])[Verdict.HOLDS] == 2
    with pytest.raises(ValueError):
        combine([])


def test_both_claims_hold_on_a_table_built_to_satisfy_them():
    claims = report.claim_verdicts(constructed(paper_like))
    assert claims.larger is Verdict.HOLDS and claims.at_least_2x is Verdict.HOLDS
    assert claims.own_margin is Verdict.HOLDS
    assert claims.own_margin_counts[Verdict.HOLDS] == 6


def test_claim_one_does_not_hold_when_a_penalty_shrinks_the_margin():
    def shrinking(row, p):
        return 0.2 if row == "ls-q1" else paper_like(row, p)

    gains = report.gain_intervals(constructed(shrinking))
    assert (gains.loc["ls-q1", "larger"] == Verdict.DOES_NOT_HOLD).all()
    assert report.claim_verdicts(constructed(shrinking)).larger is Verdict.DOES_NOT_HOLD


def test_claim_one_larger_but_not_twice():
    def modest(row, p):
        return 0.25 if row == "none" else 0.3 + 0.05 * (paper_like(row, p) == 0.7)

    claims = report.claim_verdicts(constructed(modest))
    assert claims.larger is Verdict.HOLDS and claims.at_least_2x is Verdict.DOES_NOT_HOLD


def test_noise_larger_than_the_effect_cannot_tell():
    def tiny(row, p):
        return 0.6 + 0.005 * (paper_like(row, p) == 0.7) if row != "none" else 0.25

    claims = report.claim_verdicts(constructed(tiny, unpaired=0.2))
    assert claims.own_margin is not Verdict.HOLDS  # (a 95% interval may exclude 0 by chance in one cell)
    assert claims.own_margin_counts[Verdict.CANNOT_TELL] >= 4
    paired_only = report.claim_verdicts(constructed(tiny, noise=0.2))  # seed noise shared by the pair cancels
    assert paired_only.own_margin is Verdict.HOLDS


def test_claim_two_does_not_hold_when_a_rival_norm_wins():
    def rival_wins(row, p):
        return 0.9 if row.endswith("-q2") and p != 2.0 else paper_like(row, p)

    own = report.own_margin_intervals(constructed(rival_wins))
    assert own.loc[("ls", "p=1"), "verdict"] is Verdict.DOES_NOT_HOLD
    assert own.loc[("ls", "p=2"), "verdict"] is Verdict.HOLDS


def test_classifiers_below_the_accuracy_bar_are_not_compared():
    def acc(row, seed):
        return 0.6 if row == "hinge-q2" else 1.0

    frame = constructed(paper_like, accuracy=acc)
    gains = report.gain_intervals(frame)
    assert (gains.loc["hinge-q2", "larger"] == Verdict.NOT_COMPARABLE).all()
    assert (gains.loc["ls-q2", "larger"] == Verdict.HOLDS).all()
    own = report.own_margin_intervals(frame)
    assert (own.loc["hinge", "verdict"] == Verdict.NOT_COMPARABLE).all()  # q = 2 is rival or own in every p
    claims = report.claim_verdicts(frame)  # every comparable cell holds, yet "all penalties" is not shown
    assert claims.larger is Verdict.CANNOT_TELL
    assert claims.larger_counts == {Verdict.HOLDS: 15, Verdict.DOES_NOT_HOLD: 0, Verdict.CANNOT_TELL: 0,
                                    Verdict.NO_LARGE_EFFECT: 0,
                                    Verdict.NOT_COMPARABLE: 3}


def test_ratio_is_the_geometric_mean_of_paired_ratios():
    frame = constructed(paper_like, noise=0.0)
    gains = report.gain_intervals(frame)
    assert gains.loc[("ls-q2", "p=2"), "ratio"] == pytest.approx(0.7 / 0.25)
    assert gains.loc[("ls-q2", "p=1"), "ratio"] == pytest.approx(0.6 / 0.25)


def test_comparison_table_shows_the_paper_beside_ours():
    table = report.comparison_table(constructed(paper_like))
    assert list(table.index) == report.ROW_ORDER
    assert table.loc["none", "p=2 paper"] == "0.27"
    assert table.loc["none", "p=2 ours"].startswith("0.25 ±")
    assert table.loc["none", "held-out accuracy (ours)"] == "100.0%"
    kinds = report.margin_kinds_table(constructed(paper_like))
    assert set(report.MARGIN_KINDS.values()) <= set(kinds.columns)


def test_only_seeds_where_both_classifiers_learnt_are_paired():
    def acc(row, seed):
        if row == "ls-q1":
            return 0.7 if seed == 0 else 0.99  # one failed seed: the other four are compared
        if row == "ls-q2":
            return 0.7 if seed < 3 else 0.99  # three failed seeds: too few pairs remain
        return 1.0

    gains = report.gain_intervals(constructed(paper_like, accuracy=acc))
    assert (gains.loc["ls-q1", "seeds compared"] == 4).all()
    assert (gains.loc["ls-q1", "larger"] == Verdict.HOLDS).all()
    assert (gains.loc["ls-q2", "at least 2x"] == Verdict.NOT_COMPARABLE).all()
    assert gains.loc["ls-q2", "ratio"].isna().all()


def test_scale_fit_finds_the_scale_at_which_ours_equals_the_paper():
    paper = report.paper_means()

    def scaled(factor):
        return constructed(lambda row, p: factor * paper.loc[row, p], noise=0.0)

    fit = report.scale_fit({"tenfold": scaled(10.0), "same": scaled(1.0), "half": scaled(0.5)})
    assert fit["RMS log misfit"].idxmin() == "same"
    assert fit.loc["same", "RMS log misfit"] == pytest.approx(0.0, abs=1e-12)
    assert fit.loc["tenfold", "factor to the paper, all cells"] == pytest.approx(0.1)
    assert fit.loc["half", "RMS log misfit"] == pytest.approx(math.log(2))


def test_book_status_follows_the_claims():
    holds = report.claim_verdicts(constructed(paper_like))
    assert report.book_status(holds) == "holds"

    def modest(row, p):
        return 0.25 if row == "none" else 0.3 + 0.05 * (paper_like(row, p) == 0.7)

    assert report.book_status(report.claim_verdicts(constructed(modest))) == "does not hold"


def test_the_intro_status_of_table1_is_the_one_its_headline_verdicts_give():
    from mmgan.base.results import results_root
    from mmgan.book.status import reproduction_status

    claims = report.headline_claims(results_root(None) / "table1")
    status = reproduction_status().set_index("chapter").loc["table1_swissroll", "status"]
    assert status == report.book_status(claims)
    note = report.status_note(claims)
    assert f"a penalty gives larger margins: {claims.larger}" in note and str(claims.own_margin) in note
