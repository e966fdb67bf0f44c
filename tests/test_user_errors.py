"""Errors a user can act on (issue 23): each names the file, field or flag at fault and what to do, before any
expensive work where it can."""

from __future__ import annotations

import dataclasses
import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_gan

from mmgan.base import results
from mmgan.gan import run_state, train
from mmgan.gan import tables as gan_tables

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_resume_from_the_command_line_reads_the_runs_own_configuration(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in dataclasses.asdict(tiny_gan(iterations=2)).items()}))
    first = cli("mmgan.gan.train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress")
    assert first.returncode == 0, first.stderr
    again = cli("mmgan.gan.train", "--out", str(tmp_path / "run"), "--resume", "--iterations", "4", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert '"iterations": 4' in again.stdout


def test_a_run_killed_before_its_first_checkpoint_resumes_from_scratch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(tiny_gan())))
    (run / "log.jsonl").write_text('{"iteration": 1, "critic_lo')  # cut short by the kill
    with pytest.raises(FileExistsError, match="no checkpoint yet, so resume=True .* starts it over"):
        train.train(tiny_gan(), run, progress=False)
    summary = train.train(tiny_gan(), run, resume=True, progress=False)
    assert summary["iterations"] == 4


def test_a_batch_larger_than_the_data_set_names_batch_size_and_leaves_no_run(tmp_path):
    from mmgan.base.run_folder import folder_state

    with pytest.raises(ValueError, match=r"batch_size=2000 is larger than the \d+ images of dataset='digits'"):
        train.train(tiny_gan(batch_size=2000), tmp_path / "run", progress=False)
    assert folder_state(tmp_path / "run") == "empty"  # at most an empty lock file: a fresh run may start there
    train.train(tiny_gan(), tmp_path / "run", progress=False)


def test_a_full_disk_during_a_checkpoint_says_the_previous_one_is_intact(tmp_path, monkeypatch):
    run = tmp_path / "run"
    calls = {"n": 0}
    original = run_state.atomic_torch_save

    def failing(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(obj, path)

    monkeypatch.setattr(run_state, "atomic_torch_save", failing)
    with pytest.raises(OSError, match="iteration 4 .*No space left on device.*previous checkpoint \\(iteration 2\\) "
                                      "is intact"):
        train.train(tiny_gan(), run, progress=False)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("lr: [0.1\n", "not a valid configuration file"),
    ("loss: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
    ("lr: 0.1\nlr: 0.2\n", "the key 'lr' appears twice"),
])
def test_bad_yaml_names_the_file(tmp_path, text, expected):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as error:
        results.read_yaml(path)
    assert str(path) in str(error.value) and "unicode string" not in str(error.value)
    done = cli("mmgan.gan.train", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 2 and str(path) in done.stderr and "Traceback" not in done.stderr


def test_the_table_command_line_answers_bad_values_with_a_sentence(tmp_path):
    done = cli("mmgan", "table", "2", "--preset", "smoke", "--cells", "hinge-q3-hinge", "--root", str(tmp_path))
    assert done.returncode == 2 and "valid cells of table 2" in done.stderr and "Traceback" not in done.stderr
    threads = cli("mmgan", "table", "2", "--preset", "smoke", "--threads", "0", "--root", str(tmp_path))
    assert threads.returncode == 2 and "threads must be a whole number >= 1" in threads.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was made


def test_the_digits_metric_is_refused_for_other_data_sets():
    with pytest.raises(ValueError, match="metric='fdd' .* dataset='cat'"):
        tiny_gan(dataset="cat")
    with pytest.raises(ValueError, match="dataset='cifar10'"):
        gan_tables.table_configs("2", "smoke", dataset="cifar10")
