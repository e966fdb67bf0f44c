"""FID evaluations sized to what the tables read (issue 37, item 4): full size where ``final`` and ``end`` read,
fewer samples before, each evaluation labelled with its count; the CPU presets unchanged."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from mmgan.base.run_folder import LOG
from mmgan.gan import report as gan_report
from mmgan.gan import tables as gan_tables
from mmgan.gan import train
from mmgan.gan.config import END_SHARE
from mmgan.gan.data import load_images


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the engine's dtype (the suite's default is float64)


def test_the_paper_preset_evaluates_at_full_size_only_where_the_end_statistics_read():
    _, config = gan_tables.table_configs("2", "paper")
    evaluations = range(config.metric_every, config.iterations + 1, config.metric_every)
    counts = [config.metric_samples_at(i) for i in evaluations]
    assert counts == [10_000] * 9 + [50_000]
    curves = pd.DataFrame({"loss": "hinge", "norm": "2", "g": "ls", "seed": 1, "iteration": list(evaluations),
                           "value": [float(i) for i in range(10)], "samples": counts})
    assert gan_report.end_of_training(curves).iloc[0] == 9.0  # the last 10 % of training: its full-size evaluation
    with pytest.raises(ValueError, match=r"used fewer samples \(10000\) than the run's full count \(50000\)"):
        gan_report.end_of_training(curves, share=0.25)
    assert "50,000 samples in the last 10% of training, 10,000 before" in config.metric_samples_text
    assert END_SHARE == gan_report.END_SHARE


def test_tables_reading_the_lowest_value_and_the_cpu_presets_evaluate_every_point_at_full_size():
    assert gan_tables.table_configs("6", "paper")[1].early_metric_samples is None  # "lowest" reads every evaluation
    for preset in ("cpu", "smoke"):
        _, config = gan_tables.table_configs("2", preset)
        assert config.early_metric_samples is None and "early_metric_samples" not in gan_tables.shared_fields(config)
    # the committed study keeps its folder (the new field is part of a key only when set)
    _, study = gan_tables.table_configs("2", "cpu", **gan_tables.STUDIES["2"])
    assert gan_tables.table_folder("2", "cpu", study, "results/gan").is_dir()


def test_early_samples_are_checked():
    _, config = gan_tables.table_configs("2", "smoke")
    with pytest.raises(ValueError, match="invalid early_metric_samples=257: at most metric_samples=256"):
        dataclasses.replace(config, early_metric_samples=257).validate()
    with pytest.raises(ValueError, match="early_metric_samples"):
        dataclasses.replace(config, early_metric_samples=1).validate()


@pytest.mark.parametrize("early", [None, 32])
def test_each_evaluation_says_how_many_samples_it_used(tmp_path, early):
    _, config = gan_tables.table_configs("2", "smoke", iterations=4, metric_every=1, checkpoint_every=4, log_every=4,
                                         metric_samples=64, batch_size=8, early_metric_samples=early)
    summary = train.train(config, tmp_path, progress=False, data=load_images("digits", 16, 1))
    expected = [64] * 4 if early is None else [32, 32, 32, 64]  # 4 > (1 - END_SHARE) · 4 = 3.6
    assert summary["history_samples"] == expected
    metric_lines = [json.loads(line) for line in (tmp_path / LOG).read_text().splitlines() if "fdd" in line]
    assert [line.get("samples") for line in metric_lines] == ([None] * 4 if early is None else expected)
