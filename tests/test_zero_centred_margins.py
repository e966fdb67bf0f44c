"""Margins of the zero-centred critics (issue 28, item 4): the margin propositions and the ranking, on constructed
critics whose answer is known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mmgan.chapters import zero_centred
from mmgan.critics import views
from mmgan.verdicts import Verdict

SEEDS = range(8)


def _critics(l2: dict[str, float], first_order: dict[str, float] | None = None,
             fdd: dict[str, float] | None = None) -> pd.DataFrame:
    """per_critic-like rows: HingeGAN critics of each penalty (q = 2; 'inf' for the L^∞ hinge cell), 8 seeds, both
    boundaries, orders 1, 2, ∞; the L² signed margin of a penalty is ``l2[penalty]`` times a seed factor shared by
    every penalty (± 1% by penalty and seed); its final and end-of-training FDD fall with the seed (so within each
penalty a larger margin goes with a lower FDD)."""
    rows = []
    first_order = first_order or {}
    fdd = fdd or {}
    for penalty, margin in l2.items():
        q, g = ("inf", "hinge") if penalty == "inf" else ("2", penalty)
        for seed in SEEDS:
            wobble = 1 + 0.01 * ((seed + len(penalty)) % 3 - 1)
            for rule in ("zero", "midpoint"):
                for p in (1.0, 2.0, math.inf):
                    value = margin * (1 + 0.3 * seed) * wobble * {1.0: 3.0, 2.0: 1.0, math.inf: 0.1}[p]
                    rows.append({"cell": f"hinge-q{q}-{g}", "loss": "hinge", "q": q, "g": g, "seed": seed,
                                 "threshold_rule": rule, "p": p, "margin": abs(value), "signed": value,
                                 "taylor": abs(value) * first_order.get(penalty, 1.0), "learnt": True,
                                 "separates": True, "accuracy": 0.9, "final_fdd": fdd.get(penalty, 10.0) - 0.1 * seed,
                                 "end_fdd": fdd.get(penalty, 10.0) - 0.1 * seed})
    return pd.DataFrame(rows)


def _verdicts(critics: pd.DataFrame) -> dict[str, Verdict]:
    judged = zero_centred.margin_propositions(critics)
    assert set(judged["threshold"]) == {zero_centred.RULE}
    return dict(judged.set_index("proposition")["verdict"])


def test_the_margin_propositions_find_the_constructed_effects():
    critics = _critics({"hinge": 1.0, "R1": 0.5, "R2": 1.0, "R1 + R2": 2.0}, first_order={"R1 + R2": 1.5})
    verdicts = _verdicts(critics)
    assert verdicts == {
        "the L² hinge penalty gives larger L² margins than R1": Verdict.HOLDS,  # 2x in every seed
        "the L² hinge penalty gives larger L² margins than R2": Verdict.NO_LARGE_EFFECT,  # ±1%
        "the L² hinge penalty gives larger L² margins than R1 + R2": Verdict.DOES_NOT_HOLD,  # 0.5x
        "the first-order estimate overstates R1 + R2's L² margins more than the L² hinge penalty's": Verdict.HOLDS,
        "the L² hinge penalty's critics separate their images better than R1 + R2's": Verdict.NO_LARGE_EFFECT,  # =
    }
    judged = zero_centred.margin_propositions(critics)
    row = judged[judged["proposition"].str.endswith("than R1")].iloc[0]
    assert row["ratio"] == pytest.approx(2.0, rel=0.03) and row["seeds"] == 8
    assert row["level"] == pytest.approx(1 - 0.05 / len(zero_centred.MARGIN_PROPOSITIONS))


def test_a_critic_that_fails_its_gate_or_sits_on_the_wrong_side_carries_no_verdict():
    critics = _critics({"hinge": 1.0, "R1": 0.5, "R2": 1.0, "R1 + R2": 2.0})
    failing = (critics["g"] == "R1") & (critics["seed"] == 3)
    verdicts = _verdicts(critics.assign(separates=~failing))
    assert verdicts["the L² hinge penalty gives larger L² margins than R1"] == Verdict.NOT_COMPARABLE
    assert verdicts["the L² hinge penalty gives larger L² margins than R2"] == Verdict.NO_LARGE_EFFECT
    wrong = critics.copy()
    wrong.loc[(wrong["g"] == "R2") & (wrong["seed"] == 0), "signed"] *= -1
    assert _verdicts(wrong)["the L² hinge penalty gives larger L² margins than R2"] == Verdict.NOT_COMPARABLE


def test_a_critic_that_does_not_separate_its_images_is_judged_on_its_separation_not_its_margins():
    critics = _critics({"hinge": 1.0, "R1": 0.5, "R2": 1.0, "R1 + R2": 2.0})
    apart = critics["g"] == "R1 + R2"
    critics.loc[apart, "accuracy"] = 0.5 + 0.01 * (critics.loc[apart, "seed"] % 2)  # every image on one side
    critics.loc[apart, "separates"] = False
    verdicts = _verdicts(critics)
    assert verdicts["the L² hinge penalty gives larger L² margins than R1 + R2"] == Verdict.NOT_COMPARABLE
    assert verdicts["the L² hinge penalty's critics separate their images better than R1 + R2's"] == Verdict.HOLDS
    critics.loc[apart & (critics["seed"] == 2), "learnt"] = False  # a run that did not learn: nothing to compare
    assert _verdicts(critics)["the L² hinge penalty's critics separate their images better than R1 + R2's"] \
        == Verdict.NOT_COMPARABLE


def test_the_ranking_holds_when_larger_margins_go_with_lower_fdds():
    critics = _critics({"hinge": 1.0, "R1": 0.5, "R2": 2.0, "R1 + R2": 4.0, "inf": 8.0},
                       fdd={"hinge": 40.0, "R1": 80.0, "R2": 20.0, "R1 + R2": 10.0, "inf": 5.0})
    margins = zero_centred.ZeroCentredMargins(critics, {})  # larger margins, lower FDDs, across and within
    ranking = margins.ranking()
    assert ranking["verdict"] == Verdict.HOLDS and ranking["rho"] < -0.5
    assert ranking["critics"] == ranking["of"] == 40


def test_the_paper_dual_norm_claim_is_judged_on_the_one_centred_critics_only():
    critics = _critics({"hinge": 1.0, "inf": 0.5, "R1": 5.0, "R2": 5.0, "R1 + R2": 5.0})
    judged = zero_centred.ZeroCentredMargins(critics, {}).dual_norm()
    assert set(judged["threshold"]) == {"midpoint"} and (judged["pairs"] == 1).all()
    verdicts = dict(judged.set_index("proposition")["verdict"])
    assert verdicts["q = 2 gives larger L² margins than q = ∞"] == Verdict.HOLDS  # 2x


def test_the_chapter_waits_for_every_measurement(tmp_path):
    (tmp_path / "critic_margins").mkdir()
    assert zero_centred.load_critics(tmp_path) is None


def test_the_score_range_and_gradient_norms_come_from_the_measured_images():
    """Per critic the lowest and highest measured score and the midpoint gradient norm; the score range is read over
    the zero-centred HingeGAN critics only (f = 0 means nothing for them when every score lies inside (−1, 1))."""
    measurements = pd.DataFrame({
        "cell": ["hinge-q2-zero_centered"] * 4 + ["hinge-q2-hinge"] * 2, "seed": [0, 0, 1, 1, 0, 0],
        "image": ["real", "fake"] * 3, "index": 0,
        "score": [0.3, 1.2, 0.2, 0.5, -0.8, 0.4], "grad_norm_eval": [0.6, 0.6, 0.2, 0.2, 1.3, 1.3]})
    extras = zero_centred.critic_extras(measurements).set_index(["cell", "seed"])
    assert extras.loc[("hinge-q2-zero_centered", 1)].tolist() == [0.2, 0.5, 2, 2, 0.2]
    assert extras.loc[("hinge-q2-zero_centered", 0), "inside"] == 1  # 1.2 lies outside (−1, 1)
    critics = pd.DataFrame({"cell": ["hinge, R1", "hinge, R1", "hinge, q = 2, hinge"], "loss": "hinge",
                            "g": ["R1", "R1", "hinge"], "seed": [0, 1, 0], "score_min": [0.3, 0.2, -0.8],
                            "score_max": [0.9, 0.5, 0.4], "grad_norm": [0.6, 0.2, 1.3], "images": 2,
                            "inside": [1, 2, 2]})
    margins = zero_centred.ZeroCentredMargins(critics, {})
    assert margins.score_range() == (0.2, 0.9, 2)
    assert margins.scores_inside() == "3 of their 4 images inside"
    assert margins.gradient_norms().to_dict() == pytest.approx({"hinge, R1": 0.4, "hinge, q = 2, hinge": 1.3})


def test_the_verdicts_are_drawn_on_the_train_view_with_the_eval_view_beside_them():
    """Where every table was measured in both views, the propositions are judged on the train-mode critic and the
    eval-mode critic's verdict stands beside each, with their agreement; an eval-only measurement says it has no
    second view."""
    train = _critics({"hinge": 1.0, "inf": 0.5})  # q = 2 gives 2x the L² margin of q = ∞: holds
    flat = _critics({"hinge": 1.0, "inf": 1.0})  # the same margins in eval mode: no difference
    meta = {"images": 64, "modes": ["train", "eval"], "population": 1024, "seconds": 10.0,
            "parts": {"commits": ["c"], "seconds": 600.0}, "soundness": {"critics": 1, "balls": 384, "violations": 0,
                                                                        "by_mode": {"train": 0, "eval": 0}}}
    margins = zero_centred.ZeroCentredMargins(train, {"2": meta}, second=flat)
    table = margins.views_table()
    row = table.loc["q = 2 gives larger L² margins than q = ∞"]
    assert row["train-mode critic (primary)"].startswith("holds (2.00") and row["views"] == "the eval view differs"
    assert "train-mode" in margins.view()
    assert margins.soundness().startswith("Table 2: 0 violations in 384 certified balls of 1 critic")
    assert views.measured_seconds(meta) == 600.0  # a resumed study: its parts' seconds, not the last command's
    first = zero_centred.ZeroCentredMargins(flat, {"2": {"images": 8, "seconds": 5.0}})
    assert isinstance(first.views_table(), str) and "eval-mode" in first.view()
    assert "first measurement: 8 + 8 images" in first.measurement()
    assert first.soundness() == "not run on this measurement" and views.measured_seconds({"seconds": 5.0}) == 5.0
