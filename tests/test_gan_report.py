"""The comparison of our GAN runs with the paper's tables and its three claims."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmgan import verdicts
from mmgan.base.results import results_root
from mmgan.gan import report as gan_report
from mmgan.gan.propositions import SIGNED_MAX, judge


def _results(values: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    rows = [{"loss": loss, "q": q, "norm": q, "g": g, "seed": s, "final": v, "lowest": v, "metric": "fdd",
             "dataset": "digits", "preset": "cpu", "iterations": 100}
            for (loss, q, g), vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_rank_agreement_and_side_by_side():
    paper = gan_report.paper_cells("2")
    values = {(r.loss, r.q, r.g): [r.value] for r in paper.itertuples()}
    results = _results(values)
    assert gan_report.rank_agreement(results, "2") == pytest.approx(1.0)
    table = gan_report.side_by_side(results, "2")
    assert len(table) == 12 and "ours: FDD (digits, cpu, 100 it., final), median [IQR]" in table.columns
    assert math.isnan(gan_report.rank_agreement(results.iloc[:2], "2"))
    # a signed-maximum cell sits beside the true L^inf cell, both beside the paper's (signed) q = inf value
    signed = results[results["q"] == "inf"].assign(norm=SIGNED_MAX)
    both = gan_report.side_by_side(pd.concat([results, signed]), "2")
    assert both.loc[("hinge", SIGNED_MAX, "hinge"), "paper: FID (TF, 100k it.)"] == 27.1
    assert gan_report.rank_agreement(pd.concat([results, signed]), "2") == pytest.approx(1.0)


def test_results_root(tmp_path, monkeypatch):
    """The checkout's results/ wherever one stands; for a package installed outside a checkout, the repository
    around the working directory."""
    from mmgan.base import paths

    monkeypatch.delenv("MMGAN_RESULTS", raising=False)
    (tmp_path / "mmgan").mkdir()
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert results_root() == Path(__file__).resolve().parents[1] / "results"
    monkeypatch.setattr(paths, "project_root", lambda: None)
    assert results_root() == tmp_path.resolve() / "results"
    assert results_root("elsewhere") == Path("elsewhere")
    monkeypatch.setenv("MMGAN_RESULTS", str(tmp_path / "r"))
    assert results_root() == tmp_path / "r"


def test_loss_gap_reads_paired_logs(tmp_path):
    import json

    rows = []
    for loss, offset in (("wgan", 0.0), ("hinge", 2.0)):
        run = tmp_path / loss
        run.mkdir()
        lines = [{"iteration": i, "critic_loss": 0.1 * i + offset} for i in (10, 20)] + [{"iteration": 20, "fdd": 3.0}]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        rows.append({"loss": loss, "q": "1", "norm": "1", "g": "ls", "seed": 0, "run": str(run)})
    gap = gan_report.loss_gap(pd.DataFrame(rows))
    assert len(gap) == 1 and gap["gap min"].iloc[0] == pytest.approx(2.0) == gap["gap max"].iloc[0]
    assert gap["logged iterations"].iloc[0] == 2
    ties = gan_report.loss_ties(pd.DataFrame(rows))
    assert bool(ties.loc[("1", "ls"), "tied"]) and "q = 1 with the ls penalty" in gan_report.tie_sentence(ties)
    apart = '{"iteration": 10, "critic_loss": 2.0}\n{"iteration": 20, "critic_loss": 9.0}\n'
    (tmp_path / "hinge" / "log.jsonl").write_text(apart)
    ties = gan_report.loss_ties(pd.DataFrame(rows))
    assert not ties["tied"].any() and "none of the 1 compared" in gan_report.tie_sentence(ties)
    nothing = gan_report.loss_ties(pd.DataFrame(rows[:1]))
    assert nothing.empty and "no WGAN and HingeGAN runs" in gan_report.tie_sentence(nothing)


def _curves(histories: dict[str, list[list[float]]]) -> pd.DataFrame:
    return pd.DataFrame([{"loss": "wgan", "q": "2", "norm": "2", "g": name, "seed": 0, "iteration": i, "value": v}
                         for name, history in histories.items() for i, v in history])


def test_learning_and_levelling_are_smoothed():
    flat = [[i * 100, 50.0 if i == 1 else 10.0 + (i % 2)] for i in range(1, 41)]  # noisy but level after 100
    improving = [[i * 100, 1000.0 / i] for i in range(1, 41)]  # still falling at the end
    late = gan_report.learning(_curves({"flat": flat, "improving": improving})).set_index("g")
    assert abs(late.loc["flat", "late change"]) < 0.01  # one evaluation's noise does not move it
    expected = np.mean([1000 / i for i in (37, 38, 39, 40)]) / np.mean([1000 / i for i in (27, 28, 29, 30)]) - 1
    assert late.loc["improving", "late change"] == pytest.approx(expected)
    assert late.loc["improving", "first"] == 1000.0 and late.loc["improving", "best"] == 25.0
    short = gan_report.learning(_curves({"two": [[250, 30.0], [500, 20.0]]}))
    assert math.isnan(short["late change"].iloc[0])  # too few evaluations to tell, not an error
    with pytest.raises(ValueError, match="share"):
        gan_report.learning(_curves({"flat": flat}), share=0.9)


def test_end_of_training_averages_the_last_tenth():
    history = [[i * 250, float(i)] for i in range(1, 41)]  # 40 evaluations to 10,000 iterations
    end = gan_report.end_of_training(_curves({"ls": history}))
    assert end.iloc[0] == pytest.approx(np.mean([37, 38, 39, 40]))  # iterations 9,250 to 10,000
    one = gan_report.end_of_training(_curves({"ls": [[20, 7.0]]}))
    assert one.iloc[0] == 7.0


def test_proposition_table_shows_every_statistic_the_paper_and_what_was_left_out():
    rng = np.random.default_rng(1)
    rows = [{"loss": loss, "norm": q, "g": g, "seed": s, "end": v * (1.5 if q == "2" else 1.0) * rng.lognormal(0, 0.05),
             "final": v * rng.lognormal(0, 0.3)}
            for loss in ("wgan", "hinge") for q in ("2", "inf") for g in ("ls", "hinge") for s in range(6)
            for v in [20.0]]
    frame = pd.DataFrame(rows)
    judged = {stat: judge(frame, stat) for stat in ("end", "final")}
    paper = pd.DataFrame({"paper ratio": [1.1], "paper pairs": ["3 of 4"]}, index=["q = ∞ beats q = 2"])
    table = gan_report.proposition_table(judged, paper, "end", "fdd")
    row = table.loc["q = ∞ beats q = 2"]
    assert row["verdict"] == "holds" and row["seeds × pairs"] == "6 × 4"
    assert row["paper: FID ratio on the same pairs (pairs the predicted way)"] == "1.10 (3 of 4)"
    assert row["runs that did not learn (better / other)"] == "0 / 0 of 24"
    assert row["reliability: Δ failure share [interval], p"].startswith("+0.00 [") and row["robust: Hodges–Lehmann " \
        "ratio [interval]"].startswith("1.5")
    assert "final FDD: ratio, interval, verdict" in table.columns
    assert table.loc["hinge penalty beats LS", "paper: FID ratio on the same pairs (pairs the predicted way)"] \
        == "not tested"
    assert verdicts.interval_text(math.nan, math.nan) == "—"
