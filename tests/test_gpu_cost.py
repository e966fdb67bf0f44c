"""The arithmetic of ``mmgan gpu-check``'s table hours (issue 37, item 4), on the CPU with given timings."""

from __future__ import annotations

import pytest
import torch

from mmgan.gan import gpu_check
from mmgan.gan import tables as gan_tables


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the engine's dtype (the suite's default is float64)


def test_packs_are_the_sweeps_jobs_and_evaluations_the_presets_schedule():
    assert [len(p) for p in gpu_check.paper_packs("2", 5)] == [5, 5, 2]
    (whole,) = gpu_check.paper_packs("2")
    assert len(whole) == 12 and all(c.as_released == (c.q in ("inf", "smax")) for c in whole)
    assert all(c.tf32 and c.cudnn_benchmark and not c.channels_last for c in whole)
    assert gpu_check.evaluation_samples(whole[0]) == [10_000] * 9 + [50_000]
    assert set(gpu_check.evaluation_samples(gpu_check.paper_packs("6")[0][0])) == {50_000}  # reads "lowest"


def test_table_hours_add_each_packs_training_and_each_evaluations_samples():
    packs = gpu_check.paper_packs("2")
    cost = gpu_check.table_cost(packs, [0.036], gpu_check.FidCost(per_sample=0.5e-3, fixed=2.0))
    # training: 100k iterations × 0.036 s = 1 h; FID: 12 runs × (9 × (10k × 0.5 ms + 2 s) + (50k × 0.5 ms + 2 s))
    assert cost["training_hours"] == 1.0 and cost["metric_hours"] == pytest.approx(12 * (9 * 7 + 27) / 3600, abs=5e-3)
    assert cost["hours"] == pytest.approx(1.3) and cost["samples"] == {10_000: 108, 50_000: 12}
    split = gpu_check.table_cost(gpu_check.paper_packs("2", 6), [0.02, 0.02], gpu_check.FidCost(0.0, 0.0))
    assert split["packs"] == [6, 6] and split["training_hours"] == pytest.approx(2 * 100_000 * 0.02 / 3600, abs=5e-3)
    with pytest.raises(ValueError, match="one time per pack: 2 packs, 1 times"):
        gpu_check.table_cost(gpu_check.paper_packs("2", 6), [0.02], gpu_check.FidCost(0.0, 0.0))


def test_a_pack_is_timed_as_the_preset_runs_it(monkeypatch):
    """The timing trains the pack (toy width here) under the preset's execution settings, on data of the size given."""
    seen = []
    original = gpu_check.execution_settings
    monkeypatch.setattr(gpu_check, "execution_settings", lambda c, d: seen.append((c.tf32, c.cudnn_benchmark))
                        or original(c, d))
    pack = [gpu_check._toy(c) for c in gpu_check.paper_packs("8")[0]]
    assert gpu_check.packed_seconds_per_iteration(pack, torch.device("cpu"), iterations=1, warm=0, images=64) > 0
    assert seen == [(True, True)]
    with pytest.raises(ValueError, match="dataset"):
        gpu_check.packed_seconds_per_iteration([gan_tables.table_configs("2", "smoke")[1]], torch.device("cpu"))
