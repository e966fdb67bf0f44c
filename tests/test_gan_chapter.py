"""The one call behind every GAN table chapter: `mmgan.chapters.gan_tables.chapter`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from IPython.display import Markdown

from mmgan.chapters import gan_runs
from mmgan.chapters import gan_tables as gan_chapter
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig
from mmgan.verdicts import Verdict


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the GAN engine trains in float32, as its chapters do


def test_the_committed_table2_study_is_loaded_with_its_outcomes(tmp_path):
    page = gan_chapter.chapter("2", cells="hinge-q2-hinge", iterations=4, results_root=str(tmp_path))
    study = page.study
    assert study is not None and not study.learnt and study.failed().empty
    values = page.glue()
    assert values["study_runs"] >= 36 and values["study_seeds"] >= 3
    assert values["study_best"] < values["study_worst"]
    core = {"q = ∞ beats q = 2", "hinge penalty beats LS", "HingeGAN beats WGAN", "signed max beats q = 2"}
    assert core <= set(study.verdicts())
    assert all(isinstance(v, Verdict) for v in study.verdicts().values())
    assert values["prop_qinf_q2_verdict"] == str(study.verdicts()["q = ∞ beats q = 2"])
    assert set(page.study_parts) == {"propositions", "samples", "tables", "pairs", "curves", "levelling", "protocol"}
    assert values["study_learnt"] + values["study_stalled"] == values["study_runs"]  # two stalls, named below
    assert "hinge, q = inf, hinge penalty, seed 1: stalled" in study.learning_text()
    assert "Scale." in page.study_summary().data and "nan" not in page.study_summary().data.lower()
    shown = study.propositions()
    assert {"verdict", "seeds × pairs", "reliability verdict", "runs that did not learn (better / other)",
            "paper: FID ratio on the same pairs (pairs the predicted way)"} <= set(shown.columns)


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


def test_the_chapter_parses_its_parameters_once_into_a_typed_request(tmp_path, monkeypatch):
    """What papermill passes (``'0,1'``, one cell as text) becomes one :class:`TableRequest` at the chapter's
    boundary; the engine runs that request and never parses the parameters again."""
    requests, parsed = [], []
    monkeypatch.setattr(gan_tables, "STUDIES", {})  # the chapter's own runs only
    table_configs, run_request = gan_tables.table_configs, gan_tables.run_request
    monkeypatch.setattr(gan_tables, "table_configs", lambda *a, **k: parsed.append(k) or table_configs(*a, **k))
    monkeypatch.setattr(gan_tables, "run_request", lambda request, *a, **k: requests.append(request)
                        or run_request(request, *a, **k))
    page = gan_chapter.chapter("2", seeds="0,1", cells="hinge-q2-hinge", iterations=2, results_root=str(tmp_path))
    assert len(parsed) == 1 and len(requests) == 1
    request = requests[0]
    assert isinstance(request, gan_tables.TableRequest) and isinstance(request.config, GANConfig)
    assert request.runs == (("hinge", "2", "hinge", 0), ("hinge", "2", "hinge", 1))
    assert page.run.config == request.config and list(page.run.results["seed"]) == [0, 1]
    with pytest.raises(AttributeError):
        request.runs = ()  # frozen: what was checked cannot change on the way down


def _fake_study(tmp_path, improvement: float | dict[str, float], seeds: int = 3,
                evaluations: int = 40) -> gan_runs.Study:
    """Two cells × ``seeds`` seeds whose metric falls from 100 to 100 / improvement (per q with a dict;
    q = 2 below q = 1)."""
    rows = []
    for q, shift in (("1", 5.0), ("2", 0.0)):
        factor = improvement[q] if isinstance(improvement, dict) else improvement
        for seed in range(seeds):
            run = tmp_path / f"hinge-q{q}-hinge-s{seed}"
            run.mkdir()
            last = 100.0 / factor + shift + seed
            history = [[250 * (i + 1), 100.0 + (last - 100.0) * min(1.0, 2 * (i + 1) / evaluations)]
                       for i in range(evaluations)]
            values = [v for _, v in history]
            (run / "summary.json").write_text(json.dumps({
                "iterations": 250 * evaluations, "metric": "fdd", "final": values[-1], "lowest": min(values),
                "lowest_at": history[values.index(min(values))][0], "history": history, "config": {}}))
            (run / "log.jsonl").write_text("".join(json.dumps(
                {"iteration": 50 * (i + 1), "critic_loss": 0.0, "penalty": 0.0, "generator_loss": 1.0,
                 "grad_norm_fake": 0.5}) + "\n" for i in range(5 * evaluations)))
            rows.append({"loss": "hinge", "q": q, "norm": q, "g": "hinge", "seed": seed, "as_released": False,
                         "run": str(run), "status": "finished", "error": "", "final": last, "lowest": last,
                         "lowest_at": 400, "iterations": 250 * evaluations, "metric": "fdd", "dataset": "digits",
                         "preset": "cpu"})
    config = GANConfig(iterations=250 * evaluations, metric="fdd")
    return gan_runs.Study("2", "cpu", pd.DataFrame(rows), config, tmp_path, ("final",))


def test_runs_that_did_not_learn_are_outcomes_not_gates(tmp_path):
    (tmp_path / "learnt").mkdir()
    (tmp_path / "failing").mkdir()
    learnt = _fake_study(tmp_path / "learnt", improvement=10)
    assert learnt.learnt and learnt.verdicts()["q = 2 beats q = 1"] is Verdict.HOLDS
    assert learnt.propositions().loc["q = 2 beats q = 1", "verdict"] == "holds"
    assert "6 of 6 runs learnt" in learnt.summary().data
    # q = 1 never halves its metric (did not start) in any of 6 seeds, q = 2 learns in all: a reliability verdict
    failing = _fake_study(tmp_path / "failing", improvement={"1": 1.5, "2": 10}, seeds=6)
    assert not failing.learnt
    row = failing.judged["end"].loc["q = 2 beats q = 1"]
    assert (row["failed better"], row["failed other"], row["comparisons"]) == (0, 6, 6)
    assert row["failure p"] == pytest.approx(2 / 64) and row["reliability"] is Verdict.HOLDS
    assert row["verdict"] is Verdict.NOT_COMPARABLE  # no pair where both runs learnt: no quality ratio
    text = failing.summary().data
    assert "6 of 12 runs learnt" in text and "6 did not start" in text and "seed 5: did not start" in text
    table = failing.outcome_table()
    assert len(table) == 6 and (table["outcome"] == "did not start").all()
    assert table["why (log lines over the plateau)"].str.startswith("critic satisfied (100% of").all()
    assert failing.propositions().loc["q = 2 beats q = 1", "reliability verdict"] == "holds"


@pytest.mark.parametrize(("seeds", "evaluations", "reason"), [
    (1, 40, "one seed"), (3, 1, "1 metric evaluation"),
])
def test_runs_that_cannot_carry_a_verdict_show_none(tmp_path, seeds, evaluations, reason):
    study = _fake_study(tmp_path, improvement=10, seeds=seeds, evaluations=evaluations)
    assert reason in study.gate()
    assert set(study.verdicts().values()) == {Verdict.NOT_COMPARABLE}
    assert set(study.reliability().values()) == {Verdict.NOT_COMPARABLE}
    assert study.propositions()["verdict"].str.contains(reason).all()


def test_the_gate_rule():
    assert gan_runs.verdict_gate("smoke", 40, 3) == "the smoke preset only checks the pipeline"
    assert gan_runs.verdict_gate("cpu", 40, 3) is None
    assert "one seed" in gan_runs.verdict_gate("paper", 10, 1)


def test_verdicts_over_training_end_where_the_run_ends(tmp_path):
    study = _fake_study(tmp_path, improvement=10, seeds=4)
    over = study.over_training
    assert sorted(over["iteration"].unique()) == list(range(250, 250 * 41, 250))
    # the cells part as they learn: barely apart at the first evaluation, (15 + s) / (10 + s) apart at the end
    ratios = over.set_index("iteration")["ratio"]
    assert 1 < ratios[250] < 1.01 and ratios[10_000] == pytest.approx(((15 + 0.0) / 10 * 16 / 11 * 17 / 12 * 18 / 13)
                                                                       ** 0.25, rel=1e-6)
    assert over[over["iteration"] == 10_000]["verdict"].iloc[0] is Verdict.HOLDS
    since = study.stable_since()["q = 2 beats q = 1"]
    assert since == 250 and (over["verdict"] == Verdict.HOLDS).all()  # noiseless: it holds from the start


def test_a_proposition_with_one_seed_of_pairs_has_no_ratio_to_follow(tmp_path):
    """Table 4 once drew a "pooled ratio" from one pair of runs while its propositions table said *not comparable*:
    over training, as at the end, fewer than two seeds give no ratio (and so no figure)."""
    over = _fake_study(tmp_path, improvement=10, seeds=1).over_training
    assert len(over) == 40 and over["ratio"].isna().all()
    assert set(over["verdict"]) == {Verdict.NOT_COMPARABLE}


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


def test_the_papers_ratio_is_taken_over_the_studys_own_pairs():
    """Table 5's study has one pair (HingeGAN, hinge penalty, q = 2 vs q = ∞): the paper's ratio is that pair's,
    not the whole table's (which once read 0.74 and flipped the direction)."""
    from mmgan.gan import report as gan_report

    study = gan_chapter.load_study("5")
    paper = gan_report.paper_cells("5").set_index(["loss", "q", "g"])["value"]
    expected = paper[("hinge", "2", "hinge")] / paper[("hinge", "inf", "hinge")]
    row = study.paper_ratios().loc["q = ∞ beats q = 2"]
    assert row["paper ratio"] == pytest.approx(expected) and row["paper pairs"] == "1 of 1"
    assert study.matched_pairs()["q = ∞ beats q = 2"] == [(("hinge", "inf", "hinge"), ("hinge", "2", "hinge"))]


def test_the_new_figures_are_not_kept_open_and_refuse_to_be_empty(tmp_path):
    """A figure pyplot keeps open is shown twice by a notebook (and its caption label twice: a strict build fails)."""
    import matplotlib.pyplot as plt

    from mmgan.book import plots

    study = _fake_study(tmp_path, improvement=10, seeds=3)
    before = set(plt.get_fignums())
    over = plots.verdicts_over_training(study.over_training, "iterations")
    starts = plots.start_curves(study.outcomes, study.config.iterations)
    assert set(plt.get_fignums()) == before and over.axes and starts.axes
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.verdicts_over_training(study.over_training.assign(ratio=float("nan")), "iterations")


@pytest.mark.parametrize("table", ["2", "3", "4", "5", "6", "7", "8"])
def test_the_results_sentence_states_the_range_of_the_table_shown_under_it(table):
    """Issue 35: the best and worst cell medians of the "Results" sentence are those of the first table the page
    shows (the end-of-training statistic, the study's own cells), named by their cells."""
    import re

    study = gan_chapter.load_study(table)
    sentence = re.search(r"range from ([\d.]+) \(best: ([^)]+)\) to ([\d.]+) \(([^)]+)\)", study.summary().data)
    shown = study.side_by_side(gan_runs.PRIMARY)
    medians = shown[next(c for c in shown.columns if c.startswith("ours"))].str.split(" ").str[0].astype(float)
    assert float(sentence.group(1)) == pytest.approx(medians.min(), abs=0.051)
    assert float(sentence.group(3)) == pytest.approx(medians.max(), abs=0.051)
    for (loss, _q, g), cell in ((medians.idxmin(), sentence.group(2)), (medians.idxmax(), sentence.group(4))):
        assert cell.startswith(f"{loss}, q = ") and f"{g} penalty" in cell


def test_the_forest_plot_stands_alone():
    """Issue 35: the paper's propositions and the book's own in separate panels, a colour key for the verdicts, the
    paper's markers named with their metric and seed count, the paper's side named, readable ticks and text."""
    from matplotlib.text import Text

    from mmgan.book import plots

    overview = gan_chapter.propositions_overview()
    own = overview[overview["evidence"] == "own runs"]
    fig = plots.proposition_forest(own, "ratio other / predicted better")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0] == "the paper's propositions"
    assert titles[1:] == (["the book's own propositions"] if (~own["paper claim"]).any() else [])
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert {"holds", "does not hold"} <= set(labels) and any("one run (seed) per cell" in t for t in labels)
    assert "as the paper predicts →" in fig.axes[-1].get_xlabel()
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["0.1", "0.2", "0.5", "1", "2", "5", "10"]
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
    assert min(sizes) >= 10


def test_sample_grids_show_every_run_apart_and_mark_those_that_did_not_learn():
    """Issue 35: one row per run, gaps between images, a run that did not learn labelled in red, at most four
    cells per row of panels (a figure no wider than a page's column)."""
    import torch

    from mmgan.book import plots

    images = torch.ones(3, 1, 4, 4)  # white digits: the gaps between them are grey
    strip = plots._strips([images, images])
    assert strip.shape == (4 + 2 + 4, 3 * 4 + 2 * 2, 1)
    assert strip[0, 4, 0] == pytest.approx((plots.SAMPLE_GAP_LEVEL + 1) / 2) and strip[0, 0, 0] == 1.0
    cells = {f"cell {k}": [("seed 0", True, images), ("seed 1: stalled", False, images)] for k in range(6)}
    fig = plots.sample_grids(cells, "t")
    ticks = fig.axes[0].get_yticklabels()
    assert [t.get_text() for t in ticks] == ["seed 0", "seed 1: stalled"]
    assert ticks[0].get_color() == "k" and ticks[1].get_color() == "tab:red"
    assert fig.get_size_inches()[0] <= 2.3 * plots.SAMPLE_COLUMNS
    with pytest.raises(ValueError, match="no samples"):
        plots.sample_grids({}, "t")
