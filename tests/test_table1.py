"""Table 1 pipeline: batched training, margins against the exact reference, caching, validation."""

import math

import numpy as np
import pytest
import torch

from mmgan.mlp import BatchedMLP
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant
from mmgan.table1.swiss_roll import STANDARDIZED, swiss_roll
from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def test_batched_training_equals_one_run_at_a_time():
    specs = [PenaltySpec("ls", 2.0), PenaltySpec("hinge", math.inf), PenaltySpec("ls", 1.0), PenaltySpec(None, None)]
    seeds = [3, 3, 4, 4]
    data = {s: swiss_roll(200, scale=STANDARDIZED, seed=s) for s in (3, 4)}
    for penalty_at in ("data", "interpolates"):
        batched = BatchedMLP(seeds, 2, width=16)
        train_penalized_classifiers(batched, specs, [0, 0, 1, 1], [data[3], data[4]], 15, stream_seeds=[3, 4],
                                    lr=1e-3, penalty_at=penalty_at, progress=False)
        for m, (spec, seed) in enumerate(zip(specs, seeds)):
            alone = BatchedMLP([seed], 2, width=16)
            train_penalized_classifiers(alone, [spec], [0], [data[seed]], 15, stream_seeds=[seed],
                                        lr=1e-3, penalty_at=penalty_at, progress=False)
            for w_b, w_a in zip(batched.parameters(), alone.parameters()):
                torch.testing.assert_close(w_b[m], w_a[0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The 7 rows, one seed, trained briefly with a large step so the classifiers fit the roll."""
    torch.set_default_dtype(torch.float32)
    config = table1_variant.make_config("quick", seeds=(0,), iterations=400, lr=3e-3, n_eval=48, exact_resolution=768)
    root = tmp_path_factory.mktemp("table1")
    return table1.run_table1(config, root, progress=False), root


def test_estimator_matches_exact_reference_on_trained_classifiers(trained):
    result, _ = trained
    summary = result.summary
    assert (summary.test_accuracy > 0.8).any()
    assert (summary.exact_median_abs_rel <= 0.01).all(), summary[["row", "p", "exact_median_abs_rel"]]
    assert (summary.exact_p95_abs_rel <= 0.05).all(), summary[["row", "p", "exact_p95_abs_rel"]]


def test_margins_obey_norm_order_per_sample(trained):
    d = trained[0].samples["distance"]  # (M, P, N), orders 1, 2, inf
    assert list(trained[0].samples["orders"]) == [1.0, 2.0, math.inf]
    assert np.all(d[:, 0] >= d[:, 1]) and np.all(d[:, 1] >= d[:, 2])


def test_results_are_saved_and_reloaded_without_retraining(trained, monkeypatch):
    result, root = trained
    def fail(*args, **kwargs):
        raise AssertionError("run_table1 retrained although results existed")
    monkeypatch.setattr(table1, "train_penalized_classifiers", fail)
    again = table1.run_table1(result.config, root, progress=False)
    assert again.summary.equals(table1_files.load_table1(result.directory).summary)
    np.testing.assert_array_equal(again.samples["distance"], result.samples["distance"])
    assert again.meta["key"] == result.config.key()


def test_summary_is_tidy_and_labelled(trained):
    summary = trained[0].summary
    assert len(summary) == 7 * 1 * 3
    for column in ("row", "seed", "p", "margin_mean", "test_accuracy", "nonconverged_share", "dim", "scale", "preset"):
        assert column in summary
    assert set(summary.row) == {spec.label for spec in table1_variant.TABLE1_ROWS}


@pytest.mark.parametrize(("preset", "overrides", "message"), [
    ("fast", {}, "unknown preset='fast'; valid choices: 'paper', 'fitted', 'quick', 'long'"),
    ("quick", {"dim": 4}, "invalid dim=4; valid choices: 2, 3"),
    ("quick", {"iterations": 0}, "iterations must be >= 1"),
    ("quick", {"scale": "unit"}, "invalid scale='unit'"),
    ("quick", {"penalty_at": "fake"}, "invalid penalty_at='fake'"),
    ("quick", {"epochs": 3}, r"unknown Table 1 parameter\(s\) \['epochs'\]"),
    ("quick", {"seeds": (1, 1)}, "distinct"),
])
def test_bad_parameters_stop_with_a_clear_error(preset, overrides, message):
    with pytest.raises(ValueError, match=message):
        table1_variant.make_config(preset, **overrides)


def test_command_line_trains_and_remeasures(tmp_path, monkeypatch):
    from mmgan.table1.study import main

    # a smaller 'quick' preset: this test checks the command line, not the estimator
    quick = table1_variant.PRESETS["quick"]
    monkeypatch.setitem(table1_variant.PRESETS, "quick", {**quick, "n_eval": 8, "exact_resolution": 128,
                                                          "restarts": 2, "max_steps": 40})
    main(["--preset", "quick", "--seeds", "0", "--iterations", "5", "--width", "4", "--workers", "1",
          "--root", str(tmp_path)])
    (trained,) = list(tmp_path.iterdir())
    assert (trained / "summary.csv").is_file()
    main(["--remeasure", str(trained), "--root", str(tmp_path / "again"), "--workers", "1"])
    assert len(list((tmp_path / "again").iterdir())) == 1


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dim", [2, 3])
def test_two_worker_processes_reproduce_one_process_bit_for_bit(tmp_path, one_thread, dim):
    """Training split into parts and margins split into tasks give a one-thread serial run's numbers."""
    config = table1_variant.make_config("quick", dim=dim, seeds=(0,), iterations=30, n_eval=4, max_steps=20,
                                exact_resolution=96)
    one = table1.run_table1(config, tmp_path / "one", progress=False, workers=1)
    two = table1.run_table1(config, tmp_path / "two", progress=False, workers=2)
    assert set(one.samples) == set(two.samples)
    for name, values in one.samples.items():
        np.testing.assert_array_equal(two.samples[name], values, err_msg=name)
    for mine, theirs in zip(one.model.parameters(), two.model.parameters()):
        assert torch.equal(mine, theirs)
    assert one.summary.equals(two.summary) and one.curves.equals(two.curves)
    assert two.meta["workers"] == 2


def test_worker_count_is_checked_before_any_work(tmp_path):
    config = table1_variant.make_config("quick")
    with pytest.raises(ValueError, match="workers must be"):
        table1.run_table1(config, tmp_path, workers=0)
    assert not any(tmp_path.iterdir())
