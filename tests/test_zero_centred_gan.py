"""The zero-centred GAN study (issue 28): the engine's R1/R2 tables, their propositions and the study's page."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from mmgan.chapters import gan_runs
from mmgan.chapters import gan_zero_centred as zero_centred
from mmgan.gan import propositions, table_specs
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig
from mmgan.penalties import DEFAULT_GAMMA, gradient_penalty, zero_centred_penalty
from mmgan.verdicts import Verdict


@pytest.mark.parametrize(("table", "which"), [("r1", "r1"), ("r2", "r2"), ("r1r2", "r1+r2"), ("r3gan", "r1+r2")])
def test_each_zero_centred_table_trains_the_named_penalty(table, which):  # r3gan: the r1r2 penalty
    """λ · (eq. 6 penalty at the table's points) is γ/2 · Σ_class E‖∇f‖₂², the penalty of the literature."""
    _, config = gan_tables.table_configs(table, "smoke")
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2) + 1.0
    assert (config.q, config.g) == ("2", "zero_centered")
    engine = config.lam * gradient_penalty(critic, real, fake, q=2, g=config.g, at=config.penalty_at)
    expected = zero_centred_penalty(critic, real, fake, which, DEFAULT_GAMMA)
    assert torch.allclose(engine, expected, rtol=1e-6)
    assert gan_tables.TABLES[table].cells == (("2", "zero_centered"),)


def test_the_zero_centred_tables_differ_from_table2s_study_only_in_the_penalty():
    _, table2 = gan_tables.table_configs("2", "cpu", **gan_tables.STUDIES["2"])
    for table in table_specs.ZERO_CENTRED_TABLES:
        _, config = gan_tables.table_configs(table, "cpu")
        mine, theirs = gan_tables.shared_fields(config), gan_tables.shared_fields(table2)
        expected = {"penalty_at", "lam"} | ({"paired_critic_scale"} if table == "r3gan" else set())
        assert {k for k in mine if mine[k] != theirs[k]} == expected, table
    assert gan_tables.table_folder("2", "cpu", table2, "r").name == "cpu-c001dc6bbf3d"  # Table 2's key is unchanged


def test_a_proposition_on_two_columns_pairs_cells_that_differ_in_both():
    proposition = propositions.PROPOSITIONS["R1 + R2 beats the L^∞ hinge penalty"]
    cells = [("hinge", "inf", "hinge"), ("hinge", "2", "R1 + R2"), ("hinge", "2", "hinge"), ("wgan", "inf", "hinge")]
    assert proposition.pairs(cells) == [(("hinge", "2", "R1 + R2"), ("hinge", "inf", "hinge"))]
    assert propositions.PROPOSITIONS["R1 + R2 beats R1"].pairs(cells) == []
    r3gan = propositions.PROPOSITIONS["R3GAN beats the paper's L^∞ HingeGAN"]  # all three columns differ
    expected = [(("rpsgan", "2", "R1 + R2"), ("hinge", "inf", "hinge"))]
    assert r3gan.pairs([*cells, ("rpsgan", "2", "R1 + R2")]) == expected


def _fake_runs(folder, cells: dict[tuple[str, str, str], float | list[float]], seeds: int,
               improvement: float = 10.0):
    """One run per cell and seed whose metric falls by the factor ``improvement`` to ``level · (1 + 0.01 · seed)``
    (``level``: one value, or one per seed)."""
    rows = []
    for (loss, norm, g), level in cells.items():
        for seed in range(seeds):
            run = folder / f"{loss}-{norm}-{g.replace(' ', '')}-s{seed}"
            run.mkdir(parents=True)
            at = level[seed] if isinstance(level, list) else level
            last = at * (1 + 0.01 * seed + 0.002 * (seed % 3))
            first = last * improvement
            history = [[250 * (i + 1), first + (last - first) * min(1.0, (i + 1) / 20)] for i in range(39)]
            history.append([10_000, last])
            lowest = min(v for _, v in history)
            (run / "summary.json").write_text(json.dumps({
                "iterations": 10_000, "metric": "fdd", "final": last, "lowest": lowest,
                "lowest_at": next(i for i, v in history if v == lowest), "history": history, "config": {}}))
            rows.append({"loss": loss, "q": norm, "norm": norm, "g": g, "seed": seed, "as_released": False,
                         "run": str(run), "status": "finished", "error": "", "final": last, "lowest": last,
                         "lowest_at": 10_000, "iterations": 10_000, "metric": "fdd"})
    return pd.DataFrame(rows)


def _fake_study(folder, improvement: float = 10.0) -> zero_centred.GANStudy:
    zero = _fake_runs(folder / "zero", {("hinge", "2", "R1"): 10.0, ("hinge", "2", "R2"): 20.0,
                                        ("hinge", "2", "R1 + R2"): [10.2, 9.8] * 4,
                                        ("rpsgan", "2", "R1 + R2"): 5.0}, 8, improvement)
    one = _fake_runs(folder / "one", {("hinge", "2", "hinge"): 15.0, ("hinge", "inf", "hinge"): 30.0}, 8, improvement)
    config = GANConfig(dataset="digits", channels=1, metric="fdd", iterations=10_000, image_size=16, width=16)
    return zero_centred.GANStudy(gan_runs.Study("r1r2", "cpu", zero, config, folder, ("final",), one))


def test_the_study_judges_its_four_propositions_by_the_pooled_rule(tmp_path):
    page = _fake_study(tmp_path)
    verdicts = dict(page.judged["end"]["verdict"])
    assert verdicts == {"R1 + R2 beats the L^∞ hinge penalty": Verdict.HOLDS,  # 3x in every seed
                        "R1 + R2 beats the L² hinge penalty": Verdict.HOLDS,  # 1.5x
                        "R1 + R2 beats R1": Verdict.NO_LARGE_EFFECT,  # ±2% by seed
                        "R1 beats R2": Verdict.HOLDS,
                        "R3GAN's loss beats HingeGAN (both with R1 + R2)": Verdict.HOLDS,  # 2x
                        "R3GAN beats the paper's L^∞ HingeGAN": Verdict.HOLDS}  # 6x
    assert page.judged["end"].loc["R1 beats R2", "ratio"] == pytest.approx(2.0, rel=1e-6)
    assert page.judged["end"]["level"].iloc[0] == pytest.approx(1 - 0.05 / 6)
    values = page.glue()
    assert values["zcg_r1_r2_ratio"] == "2.00" and values["zcg_r1r2_qinf_verdict"] == "holds"
    assert values["zcg_best_cell"] == "rpsgan, R1 + R2 penalty" and values["zcg_propositions"] == 6
    assert "not comparable" not in page.verdict_sentence()
    ranks = page.cell_table()["rank"]
    assert ranks["hinge, q = inf, hinge penalty"] == 6 and ranks["hinge, R2 penalty"] == 5
    assert ranks["rpsgan, R1 + R2 penalty"] == 1


def test_runs_that_did_not_learn_are_counted_not_compared(tmp_path):
    page = _fake_study(tmp_path, improvement=1.5)  # no run halves its first FDD: none started
    assert set(page.judged["end"]["verdict"]) == {Verdict.NOT_COMPARABLE}  # no pair of runs that both learnt
    assert set(page.judged["end"]["reliability"]) == {Verdict.CANNOT_TELL}  # every run fails at both levels
    assert page.propositions_table()["verdict"].str.startswith("not comparable").all()
    sentence = page.verdict_sentence()
    assert "R1 beats R2: no pair of runs that both learnt, cannot tell at this noise on how often runs fail " \
           "(8 vs 8 of 8 did not learn)" in sentence and "nan" not in sentence


def test_the_levelling_of_each_kind_is_read_by_the_rule(tmp_path, monkeypatch):
    """Each kind (zero-centred, one-centred) had levelled off when its median run fell by less than 10% over the
    last quarter of training; the sentence counts its runs and gives its medians."""
    page = _fake_study(tmp_path)  # every fake run is flat after half of training
    assert page.glue()["zcg_levelling_kinds"].startswith(
        "the zero-centred runs had levelled off (32 of 32 runs; median change +0.0%; median first FDD")
    learning = page.study.learning.copy()
    learning.loc[~learning["g"].isin({"R1", "R2", "R1 + R2"}), "late change"] = -0.3  # still falling by 30%
    monkeypatch.setitem(page.study.__dict__, "learning", learning)
    assert "Table 2's one-centred runs had not levelled off (0 of 16 runs; median change -30.0%" in \
        page.levelling_kinds()
