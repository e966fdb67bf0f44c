"""The one call behind every GAN table chapter: `mmgan.gan.chapter.chapter`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from IPython.display import Markdown

from mmgan.book.verdicts import Verdict
from mmgan.gan import chapter as gan_chapter
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the GAN engine trains in float32, as its chapters do


def test_the_committed_table2_study_is_loaded_and_learnt(tmp_path):
    page = gan_chapter.chapter("2", cells="hinge-q2-hinge", iterations=4, results_root=str(tmp_path))
    study = page.study
    assert study is not None and study.learnt and study.failed().empty
    values = page.glue()
    assert values["study_runs"] >= 36 and values["study_seeds"] >= 3
    assert values["study_best"] < values["study_worst"]
    core = {"q = ∞ beats q = 2", "hinge penalty beats LS", "HingeGAN beats WGAN", "signed max beats q = 2"}
    assert core <= set(study.verdicts())
    assert all(isinstance(v, Verdict) for v in study.verdicts().values())
    assert values["prop_qinf_q2_verdict"] == str(study.verdicts()["q = ∞ beats q = 2"])
    assert set(page.study_parts) == {"propositions", "samples", "tables", "pairs", "curves", "levelling", "protocol"}
    assert "Scale." in page.study_summary().data and "nan" not in page.study_summary().data.lower()
    shown = study.propositions()
    assert {"verdict", "seeds × pairs", "paper: ratio (pairs the predicted way)"} <= set(shown.columns)


def test_the_pipeline_check_draws_no_verdict_and_no_empty_curve(tmp_path):
    page = gan_chapter.chapter("8", cells="hinge-qsmax-hinge", iterations=4, results_root=str(tmp_path))
    assert page.preset == "smoke" and len(page.run.results) == 1 and page.run.failed().empty
    assert isinstance(page.run_propositions(), Markdown)  # no verdict at the smoke preset
    assert "not comparable" in page.run_propositions().data
    assert page.run.evaluations == 1 and isinstance(page.run_curves(), Markdown)


def test_a_table_without_a_study_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gan_tables, "STUDIES", {})
    page = gan_chapter.chapter("2", cells="hinge-q2-hinge", iterations=4, results_root=str(tmp_path))
    assert page.study is None and "study_runs" not in page.glue()
    assert "mmgan table 2 --preset cpu" in page.study_summary().data
    page.show_study("propositions")  # shows nothing instead of an empty section
    assert capsys.readouterr().out == ""


def test_bad_parameters_stop_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        gan_chapter.chapter("2", preset="fast", results_root=str(tmp_path))
    with pytest.raises(ValueError, match="valid cells"):
        gan_chapter.chapter("2", cells="hinge-q3-hinge", results_root=str(tmp_path))
    assert not any(tmp_path.iterdir())


def _fake_study(tmp_path, improvement: float, seeds: int = 3, evaluations: int = 40) -> gan_chapter.Study:
    """Two cells × ``seeds`` seeds whose metric falls from 100 to 100 / improvement (q = 2 below q = 1)."""
    rows = []
    for q, shift in (("1", 5.0), ("2", 0.0)):
        for seed in range(seeds):
            run = tmp_path / f"hinge-q{q}-hinge-s{seed}"
            run.mkdir()
            last = 100.0 / improvement + shift + seed
            history = [[250 * (i + 1), 100.0 + (last - 100.0) * min(1.0, 2 * (i + 1) / evaluations)]
                       for i in range(evaluations)]
            values = [v for _, v in history]
            (run / "summary.json").write_text(json.dumps({
                "iterations": 250 * evaluations, "metric": "fdd", "final": values[-1], "lowest": min(values),
                "lowest_at": history[values.index(min(values))][0], "history": history, "config": {}}))
            rows.append({"loss": "hinge", "q": q, "norm": q, "g": "hinge", "seed": seed, "as_released": False,
                         "run": str(run), "status": "finished", "error": "", "final": last, "lowest": last,
                         "lowest_at": 400, "iterations": 250 * evaluations, "metric": "fdd", "dataset": "digits",
                         "preset": "cpu"})
    return gan_chapter.Study("2", "cpu", pd.DataFrame(rows), GANConfig(), tmp_path, ("final",))


def test_the_learning_gate_blocks_verdicts(tmp_path):
    (tmp_path / "learnt").mkdir()
    (tmp_path / "stalled").mkdir()
    learnt = _fake_study(tmp_path / "learnt", improvement=10)
    assert learnt.learnt and learnt.verdicts()["q = 2 beats q = 1"] is Verdict.HOLDS
    assert learnt.propositions().loc["q = 2 beats q = 1", "verdict"] == "holds"
    stalled = _fake_study(tmp_path / "stalled", improvement=1.5)
    assert not stalled.learnt
    assert stalled.verdicts()["q = 2 beats q = 1"] is Verdict.NOT_COMPARABLE
    shown = stalled.propositions()
    assert shown["verdict"].str.startswith("not comparable: 6 run(s) did not learn").all()
    assert (shown.iloc[:, 0] == "—").all() and (shown.iloc[:, 1] == "—").all()  # no numbers without a verdict
    text = stalled.summary().data
    assert "0 of 6 runs lowered their FID" in text and "the gate failed and no verdict is drawn" in text
    assert len(stalled.not_learnt()) == 6 and "seed 2" in text
    assert "rank correlation with the paper's FIDs is not reported" in text
    assert "Every run lowered its FID" in learnt.summary().data


@pytest.mark.parametrize(("seeds", "evaluations", "reason"), [
    (1, 40, "one seed"), (3, 1, "1 metric evaluation"),
])
def test_runs_that_cannot_carry_a_verdict_show_none(tmp_path, seeds, evaluations, reason):
    study = _fake_study(tmp_path, improvement=10, seeds=seeds, evaluations=evaluations)
    assert reason in study.gate()
    assert set(study.verdicts().values()) == {Verdict.NOT_COMPARABLE}
    assert study.propositions()["verdict"].str.contains(reason).all()


def test_the_gate_rule():
    assert gan_chapter.verdict_gate("smoke", 40, 3, []) == "the smoke preset only checks the pipeline"
    assert gan_chapter.verdict_gate("cpu", 40, 3, []) is None
    assert "did not learn" in gan_chapter.verdict_gate("paper", 10, 3, ["a, seed 0"])


def test_metric_curves_refuse_to_draw_an_empty_plot():
    from mmgan.book import plots

    one_point = pd.DataFrame({"loss": ["wgan"], "q": ["1"], "g": ["ls"], "seed": [0], "iteration": [20],
                              "value": [3000.0]})
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.gan_metric_curves(one_point, "FDD")
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.gan_metric_curves(one_point.iloc[:0], "FDD")


def test_a_cpu_run_of_one_iteration_carries_no_verdict(tmp_path):
    """`papermill ... -p preset cpu -p iterations 1 -p seeds 0`: one evaluation per run, one seed."""
    page = gan_chapter.chapter("2", preset="cpu", iterations=1, seeds=0, cells=["hinge-q2-hinge", "hinge-qinf-hinge"],
                               results_root=str(tmp_path))
    assert page.run.evaluations == 1 and "1 metric evaluation" in page.run.gate()
    shown = page.run_propositions()
    assert isinstance(shown, Markdown) and "not comparable" in shown.data
    assert "holds" not in shown.data and "cannot tell" not in shown.data
    assert all("no verdict" in frame.columns[0] for frame in page.run_tables())
