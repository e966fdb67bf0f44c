"""The comparison of our GAN runs with the paper's tables and its three claims."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmgan import gan_report
from mmgan.results import results_root
from mmgan.verdicts import Verdict


def _results(values: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    rows = [{"loss": loss, "q": q, "g": g, "seed": s, "final": v, "lowest": v, "metric": "fdd",
             "dataset": "digits", "preset": "cpu", "iterations": 100}
            for (loss, q, g), vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def _table2_like(better_with_q: bool) -> dict[tuple[str, str, str], list[float]]:
    out = {}
    for loss, base in (("wgan", 50.0), ("hinge", 40.0)):
        for g, shift in (("ls", 5.0), ("hinge", 0.0)):
            for q, rank in (("1", 2), ("2", 1), ("inf", 0)):
                value = base + shift + (rank if better_with_q else -rank) * 10
                out[(loss, q, g)] = [value - 0.1, value, value + 0.1]
    return out


def test_claims_count_paired_comparisons_and_noise():
    table = gan_report.claims(_results(_table2_like(True)), "2")
    assert table.loc["larger q", "our runs"] == "8 of 8"
    assert table.loc["larger q", "verdict"] is Verdict.HOLDS
    assert table.loc["hinge penalty", "our runs"] == "6 of 6"
    assert table.loc["HingeGAN over WGAN", "beyond seed noise (for / against)"] == "6 / 0"
    # the paper's own Table 2: 7 of 8 comparisons favour the larger q
    assert table.loc["larger q", "paper's table"] == "7 of 8"
    reversed_q = gan_report.claims(_results(_table2_like(False)), "2")
    assert reversed_q.loc["larger q", "verdict"] is Verdict.DOES_NOT_HOLD
    assert reversed_q.loc["larger q", "beyond seed noise (for / against)"] == "0 / 8"


def test_claims_within_noise_cannot_be_told():
    noisy = {k: [v[1] - 30, v[1] + 30, v[1] - 10] for k, v in _table2_like(True).items()}
    rng = np.random.default_rng(0)
    for key in noisy:  # unpaired seed noise: each cell gets its own seed effects
        noisy[key] = list(np.asarray(noisy[key])[rng.permutation(3)])
    table = gan_report.claims(_results(noisy), "2")
    assert table.loc["larger q", "verdict"] is Verdict.CANNOT_TELL
    assert table.loc["larger q", "beyond seed noise (for / against)"] != "8 / 0"


def test_paired_seed_noise_cancels():
    """A seed effect shared by every cell (same seed, same data and noise) does not hide a small gain."""
    shared = [0.0, 40.0, -25.0]
    values = {k: [v[1] + s for s in shared] for k, v in _table2_like(True).items()}
    comparisons = gan_report.comparisons(_results(values))
    assert (comparisons["verdict"] == Verdict.HOLDS).all() and len(comparisons) == 20


def test_one_seed_cannot_tell_and_mixed_claims_cannot_tell():
    one_seed = {k: v[:1] for k, v in _table2_like(True).items()}
    table = gan_report.claims(_results(one_seed), "2")
    assert (table["verdict"] == Verdict.CANNOT_TELL).all()
    assert table.loc["larger q", "our runs"] == "8 of 8"
    assert gan_report.claim_verdict([Verdict.HOLDS] * 3 + [Verdict.DOES_NOT_HOLD]) is Verdict.CANNOT_TELL
    assert gan_report.claim_verdict([Verdict.HOLDS] * 2 + [Verdict.CANNOT_TELL] * 2) is Verdict.CANNOT_TELL
    assert gan_report.claim_verdict([Verdict.DOES_NOT_HOLD] * 3 + [Verdict.CANNOT_TELL]) is Verdict.DOES_NOT_HOLD
    with pytest.raises(ValueError):
        gan_report.claim_verdict([])


def test_rank_agreement_and_side_by_side():
    paper = gan_report.paper_cells("2")
    values = {(r.loss, r.q, r.g): [r.value] for r in paper.itertuples()}
    results = _results(values)
    assert gan_report.rank_agreement(results, "2") == pytest.approx(1.0)
    table = gan_report.side_by_side(results, "2")
    assert len(table) == 12 and "ours: FDD (digits, cpu, 100 it.)" in table.columns
    assert math.isnan(gan_report.rank_agreement(results.iloc[:2], "2"))


def test_results_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MMGAN_RESULTS", raising=False)
    (tmp_path / "mmgan").mkdir()
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
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
        rows.append({"loss": loss, "q": "1", "g": "ls", "seed": 0, "run": str(run)})
    gap = gan_report.loss_gap(pd.DataFrame(rows))
    assert len(gap) == 1 and gap["gap min"].iloc[0] == pytest.approx(2.0) == gap["gap max"].iloc[0]
    assert gap["logged iterations"].iloc[0] == 2


def test_late_improvement():
    histories = {"flat": [[100, 50.0], [200, 10.0], [300, 10.5], [400, 10.2]],
                 "improving": [[100, 50.0], [200, 20.0], [300, 15.0], [400, 10.0]]}
    curves = pd.DataFrame([{"loss": "wgan", "q": "2", "g": name, "seed": 0, "iteration": i, "value": v}
                           for name, history in histories.items() for i, v in history])
    late = gan_report.late_improvement(curves).set_index("g")
    assert late.loc["flat", "late improvement"] == 0.0
    assert late.loc["improving", "late improvement"] == pytest.approx(1 / 3)  # best 15 up to 300, 10 after
    assert late.loc["improving", "first"] == 50.0 and late.loc["improving", "best"] == 10.0
    with pytest.raises(ValueError, match="tail"):
        gan_report.late_improvement(curves, tail=1.5)
