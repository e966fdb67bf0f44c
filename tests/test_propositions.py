"""The pooled per-proposition rule (mmgan.gan.propositions) on constructed studies with known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmgan.gan import propositions as P
from mmgan.verdicts import Verdict, pooled_effect

LOSSES, NORMS, SHAPES = ("wgan", "hinge"), ("1", "2", "inf"), ("ls", "hinge")


def study(effect_inf: float = 1.0, effect_hinge: float = 1.0, seeds: int = 8, noise: float = 0.05,
          shared: float = 0.5, heterogeneous: float = 0.0, rng_seed: int = 0) -> pd.DataFrame:
    """A Table-2-like study: log metric = base + cell effects + a seed effect shared by every cell (the seed
    fixes data, noise and initial weights) + independent run noise. ``effect_inf`` multiplies the q = 2 cells'
    metric relative to q = inf (> 1: q = inf is better)."""
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, shared, seeds)
    rows = []
    for loss, norm, g in itertools.product(LOSSES, NORMS, SHAPES):
        cell = math.log(20.0)
        cell += {"1": math.log(3.0), "2": math.log(effect_inf), "inf": 0.0}[norm]
        cell += math.log(effect_hinge) if g == "ls" else 0.0
        cell += heterogeneous * (1 if loss == "wgan" else -1) * (norm == "2")
        for s in range(seeds):
            rows.append({"loss": loss, "norm": norm, "g": g, "seed": s,
                         "end": math.exp(cell + seed_effect[s] + rng.normal(0, noise))})
    return pd.DataFrame(rows)


def verdict(frame: pd.DataFrame, name: str) -> Verdict:
    return P.judge(frame, "end").loc[name, "verdict"]


def test_a_true_effect_holds_with_its_size():
    table = P.judge(study(effect_inf=1.5), "end")
    row = table.loc["q = ∞ beats q = 2"]
    assert row["verdict"] is Verdict.HOLDS
    assert row["lower"] < 1.5 < row["upper"] and row["ratio"] == pytest.approx(1.5, rel=0.05)
    assert row["pairs"] == 4 and row["seeds"] == 8
    q1 = table.loc["q = 2 beats q = 1"]  # q = 1 at 3x the q = inf metric, q = 2 at 1.5x: q = 2 is 2x better
    assert q1["verdict"] is Verdict.HOLDS and q1["ratio"] == pytest.approx(2.0, rel=0.05)


def test_a_reversed_effect_does_not_hold():
    row = P.judge(study(effect_inf=1 / 1.5), "end").loc["q = ∞ beats q = 2"]
    assert row["verdict"] is Verdict.DOES_NOT_HOLD and row["upper"] < 1


def test_no_effect_is_bounded_by_the_band_or_cannot_tell():
    assert verdict(study(effect_hinge=1.0, noise=0.02), "hinge penalty beats LS") is Verdict.NO_LARGE_EFFECT
    noisy = P.judge(study(effect_hinge=1.0, noise=0.3), "end").loc["hinge penalty beats LS"]
    assert noisy["verdict"] is Verdict.CANNOT_TELL
    assert noisy["lower"] < 1 / 1.1 or noisy["upper"] > 1.1  # the interval says how large an effect could hide


def test_the_shared_seed_effect_cancels():
    """A seed effect 10x the run noise does not hide a 10% gain: the seed is the unit, pairs share it."""
    assert verdict(study(effect_inf=1.10, noise=0.02, shared=1.0), "q = ∞ beats q = 2") is Verdict.HOLDS


def test_heterogeneous_pairs_widen_the_interval_but_pool_to_the_mean():
    row = P.judge(study(effect_inf=1.3, heterogeneous=0.5, noise=0.02), "end").loc["q = ∞ beats q = 2"]
    assert row["ratio"] == pytest.approx(1.3, rel=0.05)  # +0.5 and -0.5 on the log scale average out
    pairs = P.pair_effects(study(effect_inf=1.3, heterogeneous=0.5, noise=0.02), "end", ["q = ∞ beats q = 2"])
    assert pairs["ratio"].max() / pairs["ratio"].min() == pytest.approx(math.exp(1.0), rel=0.1)


def test_one_seed_is_not_comparable_and_a_missing_run_keeps_its_seeds_other_pairs():
    one = P.judge(study(effect_inf=1.5, seeds=1), "end").loc["q = ∞ beats q = 2"]
    assert one["verdict"] is Verdict.NOT_COMPARABLE and math.isnan(one["lower"])
    assert math.isnan(one["ratio"])  # one seed pools nothing: no ratio to show as a pooled one
    frame = study(effect_inf=1.5)
    frame = frame.drop(frame[(frame["norm"] == "inf") & (frame["seed"] == 3) & (frame["loss"] == "wgan")
                             & (frame["g"] == "ls")].index)
    row = P.judge(frame, "end").loc["q = ∞ beats q = 2"]
    assert row["seeds"] == 8 and "seeds with fewer pairs (a run missing or not in the study): 3" in row["left out"]
    assert P.seed_ranges([3, 8, 9, 10, 11, 13]) == "3, 8–11, 13" and P.seed_ranges([]) == ""
    full = P.match(frame, P.PROPOSITIONS["q = ∞ beats q = 2"], "end")
    d = P.learnt_log_ratios(full, P.paired_flags(frame.assign(learnt=True), full, "learnt"))
    assert d[3] == pytest.approx(full.partial.loc[3].dropna().mean()) and full.partial.loc[3].isna().sum() == 1


def test_ties_by_construction_are_left_out():
    frame = study(effect_inf=1.5)
    q1 = frame["norm"] == "1"
    frame.loc[q1 & (frame["loss"] == "hinge"), "end"] = frame.loc[q1 & (frame["loss"] == "wgan"), "end"].to_numpy()
    row = P.judge(frame, "end").loc["HingeGAN beats WGAN"]
    assert row["pairs"] == 4 and "tied by construction" in row["left out"]


def test_bonferroni_level_and_untestable_propositions():
    table = P.judge(study(), "end")
    assert set(table.index) == {"q = ∞ beats q = 2", "q = 2 beats q = 1", "hinge penalty beats LS",
                                "HingeGAN beats WGAN"}  # no signed max, smax or RaHinge cells here
    assert (table["level"] == 1 - 0.05 / 4).all()


def test_bad_input_is_refused():
    frame = study()
    frame.loc[0, "end"] = math.nan
    with pytest.raises(ValueError, match="finite"):
        P.judge(frame, "end")
    with pytest.raises(ValueError, match="valid choices"):
        P.judge(study(), "end", ["larger q"])
    with pytest.raises(ValueError, match="lack the columns"):
        P.judge(study().drop(columns="seed"), "end")
    with pytest.raises(ValueError, match="share a cell and seed"):
        P.judge(pd.concat([study(), study().head(1)]), "end")


def test_pooled_estimate_equals_a_fixed_effects_regression():
    """Independent route: on complete data, the pooled log ratio is the factor's coefficient of an OLS fit of
    log metric on fixed effects of every (other cells, seed) block plus the factor (numpy lstsq)."""
    frame = study(effect_inf=1.4, noise=0.2, heterogeneous=0.3)
    frame = frame[frame["norm"].isin(["2", "inf"])]
    blocks = frame["loss"] + "/" + frame["g"] + "/" + frame["seed"].astype(str)
    design = pd.get_dummies(blocks).astype(float)
    design["q2"] = (frame["norm"] == "2").astype(float)
    coefficients, *_ = np.linalg.lstsq(design.to_numpy(), np.log(frame["end"].to_numpy()), rcond=None)
    row = P.judge(frame, "end").loc["q = ∞ beats q = 2"]
    assert math.log(row["ratio"]) == pytest.approx(coefficients[-1], abs=1e-12)


def test_interval_agrees_with_an_exact_sign_flip_test():
    """Independent route: the exact randomisation test over seeds (flip the sign of each seed's log ratio)
    agrees with the t interval on whether the effect is beyond noise, in clear cases both ways."""
    for effect, expected in ((1.5, True), (1.0, False)):
        frame = study(effect_inf=effect, noise=0.1, seeds=10, rng_seed=3)
        d = P.match(frame, P.PROPOSITIONS["q = ∞ beats q = 2"], "end").log_ratios.mean(axis=1).to_numpy()
        flips = np.array(list(itertools.product((1, -1), repeat=len(d))))
        p_value = float((np.abs(flips @ d) >= abs(d.sum()) - 1e-12).mean())
        t_p = float(stats.ttest_1samp(d, 0).pvalue)
        assert (p_value < 0.05) is expected and (t_p < 0.05) is expected
        effect_row = pooled_effect(d, 0.95)
        assert (effect_row.lower > 1 or effect_row.upper < 1) is expected


def test_seeds_needed_reaches_the_target_width():
    n = P.seeds_needed(0.15)
    assert stats.t.ppf(0.975, n - 1) * 0.15 / math.sqrt(n) <= math.log(1.15)
    assert stats.t.ppf(0.975, n - 2) * 0.15 / math.sqrt(n - 1) > math.log(1.15)
    assert P.seeds_needed(0.0) == 2
    with pytest.raises(ValueError):
        P.seeds_needed(math.nan)


def test_paper_ratio_of_table_2():
    paper = pd.DataFrame([
        {"loss": loss, "norm": q, "g": g, "value": v} for loss, q, g, v in (
            ("wgan", "2", "ls", 37.6), ("wgan", "inf", "ls", 33.4), ("hinge", "2", "hinge", 33.9),
            ("hinge", "inf", "hinge", 27.1), ("hinge", "2", "ls", 40.0), ("hinge", "inf", "ls", 20.0))])
    pairs = {"q = ∞ beats q = 2": [(("wgan", "inf", "ls"), ("wgan", "2", "ls")),
                                   (("hinge", "inf", "hinge"), ("hinge", "2", "hinge"))],
             "signed max beats q = 2": [(("wgan", P.SIGNED_MAX, "ls"), ("wgan", "2", "ls"))],
             "signed max beats L^∞": [(("wgan", P.SIGNED_MAX, "ls"), ("wgan", "inf", "ls"))]}
    table = P.paper_ratios(paper, pairs)
    row = table.loc["q = ∞ beats q = 2"]
    # only the study's pairs: the paper's hinge-LS cells (ratio 2.0) are outside it and must not enter
    assert row["paper ratio"] == pytest.approx(math.sqrt(37.6 / 33.4 * 33.9 / 27.1))
    assert row["paper pairs"] == "2 of 2"
    # the paper's q = inf runs were signed maxima: they stand for our signed-max cells
    assert table.loc["signed max beats q = 2", "paper ratio"] == pytest.approx(37.6 / 33.4)
    assert "signed max beats L^∞" not in table.index  # the paper cannot test it


def test_paper_ratio_names_pairs_it_has_no_number_for():
    paper = pd.DataFrame([{"loss": "hinge", "norm": "2", "g": "hinge", "value": 30.0},
                          {"loss": "hinge", "norm": "inf", "g": "hinge", "value": 20.0}])
    pairs = {"q = ∞ beats q = 2": [(("hinge", "inf", "hinge"), ("hinge", "2", "hinge")),
                                   (("wgan", "inf", "ls"), ("wgan", "2", "ls"))]}
    row = P.paper_ratios(paper, pairs).loc["q = ∞ beats q = 2"]
    assert row["paper ratio"] == pytest.approx(1.5)
    assert row["paper pairs"] == "1 of 1" and "wgan" in row["paper missing"]
