"""The critic-margin chapter's statistics that relate margins to the GANs' quality (issue 36, items 5 and 6): the
within-cell correlation, the end-of-training FDD it reads, and the scale control along training."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmgan.critics import measure as cm
from mmgan.critics import report
from mmgan.verdicts import Verdict

CELLS = ("hinge-q2-hinge", "hinge-q2-ls", "hinge-qinf-hinge")


def critics(margins: dict[str, np.ndarray], fdds: dict[str, np.ndarray], gate: bool = True) -> pd.DataFrame:
    """Per-critic rows (one order, one rule) of the cells in ``margins``, one critic per seed."""
    rows = []
    for cell, values in margins.items():
        for seed, (margin, fdd) in enumerate(zip(values, fdds[cell])):
            rows.append({"cell": cell, "seed": seed, "threshold_rule": "zero", "p": 1.0, "signed": margin,
                         "margin": abs(margin), "end_fdd": fdd, "final_fdd": fdd, "learnt": True, "separates": gate})
    return pd.DataFrame(rows)


def test_a_between_cell_confound_is_not_a_within_cell_link():
    """Cells that differ in both margin and FDD, with no relation inside a cell: the pooled ρ is strongly negative,
    the within-cell verdict does not say *holds*."""
    rng = np.random.default_rng(0)
    levels = {"hinge-q2-hinge": (3.0, 10.0), "hinge-q2-ls": (2.0, 20.0), "hinge-qinf-hinge": (1.0, 30.0)}
    margins = {cell: m + 0.1 * rng.normal(size=8) for cell, (m, _) in levels.items()}
    fdds = {cell: f + rng.normal(size=8) for cell, (_, f) in levels.items()}
    result = report.within_cell_correlation(critics(margins, fdds), "zero", 1.0)
    assert result["pooled rho"] < -0.6 and result["pooled CI high"] < 0  # the confound, seen pooled
    assert result["verdict"] is not Verdict.HOLDS
    assert result["rho CI low"] < result["rho"] < result["rho CI high"]
    assert result["cells"] == 3 and result["critics"] == 24 and result["seeds"] == 8
    # the pooled view of the old rule calls the same critics a link
    assert report.fdd_correlation(critics(margins, fdds), "zero", 1.0, measure="signed",
                                  fdd="end_fdd")["verdict"] is Verdict.HOLDS


def test_a_true_within_cell_link_holds_even_against_the_between_cell_trend():
    """Inside every cell a larger margin goes with a lower FDD, while the cells with larger margins have the worse
    FDD: the within-cell ρ holds, the pooled one points the other way."""
    rng = np.random.default_rng(1)
    margins, fdds = {}, {}
    for k, cell in enumerate(CELLS):
        margins[cell] = 1.0 + k + 0.3 * rng.normal(size=8)
        fdds[cell] = 10.0 + 40 * k - 5 * (margins[cell] - margins[cell].mean()) + 0.3 * rng.normal(size=8)
    result = report.within_cell_correlation(critics(margins, fdds), "zero", 1.0)
    assert result["verdict"] is Verdict.HOLDS and result["rho CI high"] < 0 and result["rho"] < -0.8
    assert result["pooled rho"] > 0
    reverse = {cell: 100 - values for cell, values in fdds.items()}  # a larger margin, a worse FDD
    assert report.within_cell_correlation(critics(margins, reverse), "zero", 1.0)["verdict"] is Verdict.DOES_NOT_HOLD


def test_with_equal_cells_the_statistic_is_the_mean_of_the_cells_rho():
    rng = np.random.default_rng(2)
    margins = {cell: rng.normal(size=6) for cell in CELLS}
    fdds = {cell: rng.normal(size=6) for cell in CELLS}
    result = report.within_cell_correlation(critics(margins, fdds), "zero", 1.0, resamples=200)
    per_cell = [stats.spearmanr(margins[c], fdds[c]).statistic for c in CELLS]
    assert result["rho"] == pytest.approx(np.mean(per_cell), abs=1e-12)
    assert result["per cell"] == pytest.approx(dict(zip(CELLS, per_cell)))
    pooled = stats.spearmanr(np.concatenate(list(margins.values())), np.concatenate(list(fdds.values()))).statistic
    assert result["pooled rho"] == pytest.approx(pooled, abs=1e-12)


def test_small_cells_are_left_out_and_nothing_left_is_not_comparable():
    rng = np.random.default_rng(3)
    margins = {cell: rng.normal(size=6) for cell in CELLS}
    frame = critics(margins, {cell: rng.normal(size=6) for cell in CELLS})
    frame.loc[(frame["cell"] == CELLS[0]) & (frame["seed"] >= 2), "separates"] = False  # 2 critics pass in that cell
    result = report.within_cell_correlation(frame, "zero", 1.0, resamples=100)
    assert result["cells"] == 2 and result["cells left out"] == 1 and result["critics"] == 12 and result["of"] == 18
    assert CELLS[0] not in result["per cell"]
    frame["separates"] = False
    nothing = report.within_cell_correlation(frame, "zero", 1.0)
    assert nothing["verdict"] is Verdict.NOT_COMPARABLE and math.isnan(nothing["rho"])
    with pytest.raises(ValueError, match="'volume' is not a column"):
        report.within_cell_correlation(frame, "zero", 1.0, measure="volume")


def test_the_bootstrap_takes_the_seed_as_the_unit():
    """A missing critic (a seed gated out in one cell) leaves that seed in the others; the result is reproducible."""
    rng = np.random.default_rng(4)
    frame = critics({cell: rng.normal(size=8) for cell in CELLS}, {cell: rng.normal(size=8) for cell in CELLS})
    frame.loc[(frame["cell"] == CELLS[1]) & (frame["seed"] == 5), "learnt"] = False
    first = report.within_cell_correlation(frame, "zero", 1.0, resamples=300, seed=7)
    again = report.within_cell_correlation(frame, "zero", 1.0, resamples=300, seed=7)
    assert first["critics"] == 23 and first["seeds"] == 8 and first["rho CI low"] == again["rho CI low"]
    assert -1 <= first["rho CI low"] <= first["rho CI high"] <= 1


def write_run(folder, history, iterations=1000):
    folder.mkdir(parents=True)
    values = [v for _, v in history]
    (folder / "summary.json").write_text(json.dumps({
        "iterations": iterations, "metric": "fdd", "final": values[-1], "lowest": min(values),
        "lowest_at": history[values.index(min(values))][0], "history": history, "config": {}}))


def test_end_of_training_fdd_is_the_mean_of_the_last_tenth(tmp_path):
    history = [[i, float(v)] for i, v in zip(range(100, 1100, 100), (90, 50, 40, 30, 20, 15, 12, 11, 10, 14))]
    write_run(tmp_path / "a-s0", history)
    runs = pd.DataFrame([{"cell": "a", "loss": "hinge", "q": "2", "g": "hinge", "seed": 0,
                          "folder": str(tmp_path / "a-s0")}])
    frame = pd.DataFrame({"cell": ["a", "a"], "seed": [0, 0], "p": [1.0, 2.0], "final_fdd": [14.0, 14.0]})
    out = report.with_end_fdd(frame, runs)
    assert out["end_fdd"].tolist() == [14.0, 14.0]  # iterations above 900 of 1000: only the last
    history = [[i, float(v)] for i, v in zip(range(50, 1050, 50), range(20, 0, -1))]
    write_run(tmp_path / "a-s1", history)
    runs.loc[0, ["seed", "folder"]] = [1, str(tmp_path / "a-s1")]
    out = report.with_end_fdd(frame.assign(seed=1, final_fdd=1.0), runs)
    assert out["end_fdd"].iloc[0] == pytest.approx(np.mean([2, 1]))  # 950 and 1000
    with pytest.raises(ValueError, match="other runs than those measured"):
        report.with_end_fdd(frame.assign(seed=1, final_fdd=3.0), runs)
    with pytest.raises(ValueError, match="no run listed"):
        report.with_end_fdd(frame.assign(seed=2), runs)


def along_training_rows(real_factor: float, fake_factor: float) -> pd.DataFrame:
    """Raw rows measured at iterations 500 and 10,000: two cells × 4 seeds, one real and one generated image."""
    rows = []
    for iteration, real, fake in ((500, 1.0, 1.0), (10_000, real_factor, fake_factor)):
        for cell in CELLS[:2]:
            for seed in range(4):
                for image, scale in (("real", real), ("fake", fake)):
                    upper = scale * (1 + 0.1 * seed)
                    rows.append({"cell": cell, "loss": "hinge", "q": "2", "g": "hinge", "seed": seed,
                                 "threshold_rule": "zero", "p": 1.0, "image": image, "index": 0,
                                 "score": 1.0 if image == "real" else -1.0, "threshold": 0.0, "upper": upper,
                                 "fmn": np.nan, "lower": upper / 10, "taylor": upper, "sign_change": True,
                                 "converged": True, "final_fdd": 10.0, "lowest_fdd": 10.0, "first_fdd": 100.0,
                                 "iteration": iteration, "fdd_at_iteration": 50.0 if iteration == 500 else 10.0})
    return pd.DataFrame(rows)


def test_the_scale_control_reads_the_fixed_real_images():
    """Generated images that move close to the data shrink the margin over all images; the real images' margins
    stay: the scale control sees no shrinking, per cell as well."""
    per = report.per_critic(along_training_rows(real_factor=1.0, fake_factor=0.1))
    assert per["real_signed"].tolist() == pytest.approx(per["real_margin"].tolist())
    everything = report.seed_growth(per, "signed").iloc[0]
    assert everything["verdict"] is Verdict.DOES_NOT_HOLD and everything["ratio"] == pytest.approx(0.55)
    real = report.seed_growth(per, "real_signed").iloc[0]
    assert real["ratio"] == pytest.approx(1.0) and real["verdict"] is Verdict.NO_LARGE_EFFECT
    cells = report.seed_growth(per, "real_signed", by_cell=True)
    assert cells["cell"].tolist() == list(CELLS[:2]) and cells["ratio"].tolist() == pytest.approx([1.0, 1.0])
    assert (cells["seeds"] == 4).all() and (cells["critics"] == 4).all()
    shrinking = report.per_critic(along_training_rows(real_factor=0.5, fake_factor=0.5))
    assert report.seed_growth(shrinking, "real_signed").iloc[0]["ratio"] == pytest.approx(0.5)
    assert report.along_training(shrinking).set_index("iteration").loc[10_000, "real margin"].mean() == \
        pytest.approx(0.5 * np.mean([1, 1.1, 1.2, 1.3]))


def test_the_chapter_judges_the_fdd_link_within_cells(tmp_path):
    """The chapter's sentences and status note use the within-cell statistic; without the runs' histories it sets
    the margins against the final FDD and says so."""
    from mmgan.chapters import critic_margins as critic_margins_chapter

    rows = along_training_rows(1.0, 1.0)
    rows = rows[rows["iteration"] == 500].drop(columns=["iteration", "fdd_at_iteration"])
    rows = pd.concat([rows.assign(p=p) for p in (1.0, 2.0)], ignore_index=True)
    rows["certified"] = rows["upper"] / 2
    # within each cell a larger margin (a larger seed) goes with a lower FDD; the cells differ the other way
    rows["final_fdd"] = 20.0 - rows["seed"] + 30.0 * (rows["cell"] == CELLS[0])
    cm.save_measurements(rows, "9", {"images": 1, "fmn_steps": 0, "seconds": 6.0, "workers": 1},
                         tmp_path / "critic_margins")
    page = critic_margins_chapter.chapter("9", check_runs=0, results_root=tmp_path)
    assert page.fdd == "final_fdd" and "instead of the GAN chapters' end-of-training FDD" in page.stale_note()
    values = page.glue()
    assert values["cm_fdd_zero"] == ("signed L¹ margin against the final FDD, ranked within each of 2 cells: "
                                     "ρ = -1.00 [-1.00, -1.00] over 8 of 8 critics: holds")
    assert values["cm_fdd_pooled_zero"].startswith("ρ = ")
    assert ("a larger signed L¹ margin goes with a lower final FDD among the critics of one cell: holds "
            "(ρ = -1.00 [-1.00, -1.00], 2 cells)") in values["cm_status"]
    shown = page.correlations_table()
    assert shown["verdict"].eq("holds").all() and "final FDD" in page.margins_table().columns
