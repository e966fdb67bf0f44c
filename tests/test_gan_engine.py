"""The GAN engine: models, training loop, resume, failures, data and configuration errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from mmgan.gan import data as images
from mmgan.gan import models, train
from mmgan.gan import tables as gan_tables
from mmgan.losses import gan_losses


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(("arch", "size", "g_params", "d_params"), [
    ("dcgan", 32, 3_677_952, 2_637_312),
    ("dcgan", 64, 3_806_080, 2_765_568),
    ("standard_cnn", 32, 3_812_355, 2_935_873),
])
def test_paper_models_shapes_and_parameter_counts(arch, size, g_params, d_params):
    g, d = models.make_gan(arch, size, critic_batchnorm=arch == "dcgan")  # the appendix: no BN in the standard CNN
    z = torch.randn(3, 128)
    x = g(z)
    assert x.shape == (3, 3, size, size) and x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)
    assert (models.parameter_count(g), models.parameter_count(d)) == (g_params, d_params)


def test_dcgan_counts_follow_the_appendix():
    """Hand count of App. E.1: 4×4 kernels, no biases, BatchNorm (2 parameters per channel)."""
    g, d = models.make_gan("dcgan", 32)
    g_count = 128 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 3 * 16 + 2 * (512 + 256 + 128)
    d_count = 3 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 1 * 16 + 2 * (256 + 512)
    assert models.parameter_count(g) == g_count and models.parameter_count(d) == d_count


@pytest.mark.parametrize(("arch", "size", "message"), [
    ("resnet", 32, "unknown arch='resnet'; valid choices: 'dcgan', 'standard_cnn'"),
    ("dcgan", 48, "invalid image_size for arch='dcgan'=48; valid choices: 16, 32, 64"),
    ("standard_cnn", 64, "valid choices: 32"),
])
def test_bad_architectures(arch, size, message):
    with pytest.raises(ValueError, match=message):
        models.make_gan(arch, size)


def tiny(**changes) -> train.GANConfig:
    base = dict(dataset="digits", image_size=16, channels=1, arch="dcgan", width=4, metric="fdd",
                metric_samples=64, metric_every=1000, iterations=4, checkpoint_every=2, log_every=2,
                batch_size=8, device="cpu", seed=0)
    base.update(changes)
    return train.config_from(base)


@pytest.fixture(scope="module")
def digits16():
    return images.load_images("digits", 16, 1)


@pytest.mark.parametrize("loss", gan_losses())  # every registered loss trains
@pytest.mark.parametrize(("q", "g"), [("1", "ls"), ("2", "hinge"), ("inf", "hinge"), ("smax", "ls")])
def test_every_loss_and_penalty_trains(loss, q, g, tmp_path, digits16):
    summary = train.train(tiny(loss=loss, q=q, g=g, iterations=2), tmp_path, progress=False, data=digits16)
    assert summary["iterations"] == 2 and math.isfinite(summary["final"])
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [line for line in lines if "critic_loss" in line]
    expected = {"penalty", "grad_norm_real", "grad_norm_fake", "grad_norm_interpolates", "iterations_per_s"}
    assert expected <= set(logged[0])


def test_resume_is_bit_for_bit(tmp_path, digits16):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train.train(tiny(iterations=6, q="inf", g="hinge", as_released=True), whole, progress=False, data=digits16)
    train.train(tiny(iterations=3, q="inf", g="hinge", as_released=True), split, progress=False, data=digits16)
    train.train(tiny(iterations=6, q="inf", g="hinge", as_released=True), split, resume=True, progress=False,
                data=digits16)
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(split / "checkpoint.pt", weights_only=True)
    for part in ("generator", "critic"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert a["iteration"] == b["iteration"] == 6


def test_resume_refuses_a_different_configuration(tmp_path, digits16):
    train.train(tiny(iterations=2), tmp_path, progress=False, data=digits16)
    with pytest.raises(ValueError, match=r"differs from the checkpoint's in \['lam'\]"):
        train.train(tiny(iterations=4, lam=5.0), tmp_path, resume=True, progress=False, data=digits16)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.train(tiny(iterations=4), tmp_path / "empty", resume=True, progress=False, data=digits16)


def _execution(run) -> dict:
    return json.loads((run / "summary.json").read_text())["execution"]


def test_the_command_sets_records_and_keeps_the_thread_count(tmp_path, capsys, monkeypatch):
    """Another thread count rounds differently (issue 37): `mmgan train` trains a new run with 1 thread unless told
    (or $OMP_NUM_THREADS says otherwise), records it (and the rest of the execution record) in the checkpoint and
    summary, resumes with the recorded count, refuses another unless --inexact, which records the change; the
    process's own count is restored."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    config, run = tmp_path / "run.yaml", tmp_path / "run"
    config.write_text("dataset: digits\nimage_size: 16\nchannels: 1\nwidth: 4\nmetric: fdd\nmetric_samples: 64\n"
                      "iterations: 2\ncheckpoint_every: 2\nmetric_every: 2\nbatch_size: 8\ndevice: cpu\n")
    try:
        torch.set_num_threads(2)
        assert train.main(["--config", str(config), "--out", str(run), "--no-progress"]) == 0
        assert torch.get_num_threads() == 2
        record = _execution(run)
        assert record["threads"] == 1 and not record["packed"] and record["pack"] == [] and record["dtype"] == "float32"
        assert record["platform"] == train.platform_record("cpu") and record["commit"] and record["reason"] == "start"
        assert torch.load(run / "checkpoint.pt", weights_only=True)["execution"] == record
        capsys.readouterr()
        assert train.main(["--out", str(run), "--resume", "--iterations", "4", "--threads", "2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "trained with 1 thread(s); --threads 2 would continue it with other rounding" in err
        assert "leave --threads out (it resumes with 1)" in err and "--inexact" in err
        assert train.main(["--out", str(run), "--resume", "--iterations", "4", "--no-progress"]) == 0
        assert _execution(run) == record  # the same arrangement: nothing to add
        assert train.main(["--out", str(run), "--resume", "--iterations", "6", "--threads", "2", "--inexact",
                           "--no-progress"]) == 0
        changed = _execution(run)
        assert changed["threads"] == 2 and changed["from_iteration"] == 4 and changed["reason"] == "resume"
        assert changed["earlier"] == [record]
        assert train.main(["--out", str(tmp_path / "other"), "--config", str(config), "--threads", "0"]) == 2
        assert "threads must be a whole number >= 1" in capsys.readouterr().err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, digits16, monkeypatch):
    config = tiny(iterations=4, checkpoint_every=2)
    train.train(dataclasses.replace(config, iterations=2), tmp_path, progress=False, data=digits16)
    good = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    original = train.critic_loss
    monkeypatch.setattr(train, "critic_loss", lambda *a, **k: original(*a, **k) * float("nan"))
    with pytest.raises(train.NonFiniteLoss, match="iteration 3; the checkpoint of iteration 2 in .* is kept"):
        train.train(config, tmp_path, resume=True, progress=False, data=digits16)
    kept = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert kept["iteration"] == good["iteration"] == 2


def test_metric_history_keeps_final_and_lowest(tmp_path, digits16):
    summary = train.train(tiny(iterations=4, metric_every=2), tmp_path, progress=False, data=digits16)
    assert [it for it, _ in summary["history"]] == [2, 4]
    assert summary["lowest"] == min(v for _, v in summary["history"])
    assert summary["final"] == summary["history"][-1][1]


@pytest.mark.parametrize(("changes", "message"), [
    (dict(loss="gan"), "invalid loss='gan'; valid choices: 'sgan', 'lsgan', 'hinge', 'wgan'"),
    (dict(q="3"), "invalid q='3'; valid choices: '1', '2', 'inf', 'smax'"),
    (dict(g="abs"), "invalid g='abs'"),
    (dict(arch="vgg"), "invalid arch='vgg'"),
    (dict(image_size=20), "image_size"),
    (dict(dataset="mnist"), "invalid dataset='mnist'"),
    (dict(metric="is"), "invalid metric='is'"),
    (dict(iterations=0), "iterations must be >= 1"),
    (dict(q="2", as_released=True), "as_released only applies"),
    (dict(epochs=3), r"unknown GAN config key\(s\) \['epochs'\]"),
])
def test_bad_config_values_stop_before_training(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny(**changes)


def test_command_line_rejects_bad_values_and_reads_yaml(tmp_path, capsys):
    assert train.main(["--out", str(tmp_path), "--loss", "nope"]) == 2
    assert "invalid loss='nope'" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("dataset: digits\nimage_size: 16\nchannels: 1\nwidth: 4\nmetric: fdd\nmetric_samples: 64\n"
                      "iterations: 2\nbatch_size: 8\ndevice: cpu\n")
    assert train.main(["--config", str(config), "--out", str(tmp_path / "run"), "--no-progress", "--q", "inf"]) == 0
    assert (tmp_path / "run" / "summary.json").is_file()


def test_missing_data_and_weights_give_the_documented_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        images.load_images("cifar10", 32, 3, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CAT data set was not found"):
        images.load_images("cat", 64, 3, str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        from mmgan.gan.metrics import make_extractor

        monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # restored after the test
        make_extractor("fid", 32, 3)


def test_image_folder_loader_on_bundled_sample_images(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    for i, array in enumerate(load_sample_images().images):
        Image.fromarray(array).save(tmp_path / f"cat{i}.jpg")
    loaded = images.load_images("cat", 32, 3, str(tmp_path))
    assert loaded.shape == (2, 3, 32, 32) and loaded.min() >= -1 and loaded.max() <= 1
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        images.load_images("cat", 32, 3, str(tmp_path))


def test_generated_and_bundled_datasets():
    shapes = images.load_images("shapes", 16, 3)
    digits = images.load_images("digits", 32, 3)
    assert shapes.shape[1:] == (3, 16, 16) and digits.shape == (1797, 3, 32, 32)
    assert -1 <= float(digits.min()) and float(digits.max()) <= 1
    with pytest.raises(ValueError, match="unknown dataset='svhn'"):
        images.load_images("svhn", 32, 3)


def test_table_runs_and_cell_selection():
    runs, config = gan_tables.table_configs("2", "smoke")
    assert len(runs) == 12 and config.dataset == "digits"
    runs, _ = gan_tables.table_configs("3", "paper", cells=["rphinge-qsmax-hinge"])
    assert runs == [("rphinge", "smax", "hinge", 1)]
    _, paper = gan_tables.table_configs("4", "paper")
    assert (paper.beta1, paper.beta2, paper.iterations, paper.metric) == (0.0, 0.9, 100_000, "fid")
    with pytest.raises(ValueError, match="unknown cells"):
        gan_tables.table_configs("2", "smoke", cells=["hinge-q3-ls"])
    with pytest.raises(ValueError, match="unknown preset='gpu'"):
        gan_tables.table_configs("2", "gpu")
