"""Nothing the project loads can run code: a malicious pickle given as any of its torch files is refused
before it runs, and checkpoints need no pickle (issue 23)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import Payload, tiny_gan

from mmgan.base import run_folder
from mmgan.gan import convert, train, trained
from mmgan.gan import tables as gan_tables
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant

ROOT = Path(__file__).resolve().parents[1]


def plant(path: Path, marker: Path) -> None:
    """Write a torch file that looks like a checkpoint but carries :class:`Payload`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"iteration": 4, "generator": {}, "critic": {}, "note": Payload(marker)}, path)


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def test_the_plant_works_when_loaded_with_pickle(tmp_path):
    """The check below means something: the same file does run its code through an unrestricted load."""
    marker = tmp_path / "ran"
    plant(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()


def test_a_malicious_checkpoint_is_refused_by_resume_and_by_the_command_line(tmp_path):
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    plant(run / "checkpoint.pt", marker)
    with pytest.raises(run_folder.UnsafeFile, match="only pickle can load.*mmgan convert"):
        train.train(tiny_gan(), run, resume=True, progress=False)
    (run / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(tiny_gan())))
    done = subprocess.run([sys.executable, "-m", "mmgan.gan.train", "--out", str(run), "--resume", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "refused" in done.stderr, done.stderr
    assert not marker.exists()


def test_a_malicious_checkpoint_in_a_table_folder_fails_that_run_only(tmp_path):
    """An unfinished run folder under a chapter's results root: the table records the run as failed."""
    marker = tmp_path / "ran"
    runs, base = gan_tables.table_configs("2", "smoke", cells=["hinge-q2-hinge"], iterations=4)
    folder = gan_tables.table_folder("2", "smoke", base, tmp_path) / "hinge-q2-hinge-s0"
    plant(folder / "checkpoint.pt", marker)
    with pytest.warns(UserWarning, match="refused"):
        frame = gan_tables.run_table("2", "smoke", tmp_path, cells=["hinge-q2-hinge"], iterations=4)
    assert list(frame["status"]) == ["failed"] and "UnsafeFile" in frame["error"].iloc[0]
    assert not marker.exists()


def test_malicious_table1_and_critic_files_are_refused(tmp_path):
    marker = tmp_path / "ran"
    config = table1_variant.make_config("quick", seeds=(0,), iterations=3, width=4, n_eval=4, exact_resolution=32,
                                restarts=1, max_steps=5, log_every=1)
    directory = table1.run_table1(config, tmp_path / "t1", progress=False).directory
    plant(directory / "model.pt", marker)
    with pytest.raises(ValueError, match="model.pt: differs from the file its manifest"):  # listed: refused unread
        table1_files.load_table1(directory)
    (directory / "MANIFEST.json").unlink()
    with pytest.raises(ValueError, match="model.pt holds Python objects that only pickle can load"):
        table1_files.load_table1(directory)

    run = tmp_path / "gan"
    train.train(tiny_gan(), run, progress=False)
    trained.export_networks(run)
    plant(run / "networks.pt", marker)
    with pytest.raises(ValueError, match="networks.pt holds Python objects"):
        trained.load_run(run)
    (run / "networks.pt").unlink()
    plant(run / "checkpoint.pt", marker)  # no networks.pt: the checkpoint is read instead
    with pytest.raises(run_folder.UnsafeFile):
        trained.load_run(run)
    assert not marker.exists()


def test_checkpoints_hold_only_plain_types_and_old_ones_convert(tmp_path):
    run = tmp_path / "run"
    train.train(tiny_gan(iterations=2), run, progress=False)
    payload = torch.load(run / "checkpoint.pt", weights_only=True)  # no pickle needed
    assert isinstance(payload["config"], dict) and isinstance(payload["rng"], torch.Tensor)
    # a checkpoint written with objects only pickle can load (numpy scalars, a dataclass): refused, then converted
    old = dict(payload, config=tiny_gan(iterations=2), metrics=[(2, np.float64(v)) for _, v in payload["metrics"]])
    torch.save(old, run / "checkpoint.pt")
    with pytest.raises(run_folder.UnsafeFile, match=f"mmgan convert {run}"):
        train.train(tiny_gan(iterations=4), run, resume=True, progress=False)
    assert convert.main([str(run)]) == 0
    resumed = train.train(tiny_gan(iterations=4), run, resume=True, progress=False)
    whole = train.train(tiny_gan(iterations=4), tmp_path / "whole", progress=False)
    assert resumed["history"] == whole["history"]
    with pytest.raises(TypeError, match="cannot store a Payload"):
        run_folder.plain({"x": Payload(tmp_path / "never")})


def test_the_gpu_check_reads_checkpoints_weights_only(tmp_path):
    from mmgan.gan import gpu_check

    for name in ("a", "b"):
        train.train(tiny_gan(iterations=2), tmp_path / name, progress=False)
    assert gpu_check.max_difference(tmp_path / "a", tmp_path / "b") == 0.0
    marker = tmp_path / "ran"
    shutil.rmtree(tmp_path / "b")
    plant(tmp_path / "b" / "checkpoint.pt", marker)
    with pytest.raises(run_folder.UnsafeFile):
        gpu_check.max_difference(tmp_path / "a", tmp_path / "b")
    assert not marker.exists()


# ----------------------------------------------------------------------------- results that are what they say


COMMITTED_GAN = ROOT / "results" / "gan"


def _copy_table8(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the committed Table 8 study folder (and the root above it), to damage."""
    source = next((COMMITTED_GAN / "table8").glob("cpu-*"))
    copy = tmp_path / "gan" / "table8" / source.name
    shutil.copytree(source, copy)
    return tmp_path / "gan", copy


def test_a_non_finite_metric_is_refused_naming_the_file_and_field(tmp_path):
    from mmgan.base.run_folder import read_log, read_summary

    _, copy = _copy_table8(tmp_path)
    (copy / "MANIFEST.json").unlink()  # the checks that a user's own runs, which no manifest lists, go through
    path = next(copy.glob("*-s0")) / "summary.json"
    good = path.read_text()
    read_summary(path)
    for old, new, field in (('"final": ', '"final": NaN, "x": ', "final"), ('"metric": "fdd"', '"metric": 3', "metric"),
                            ('"lowest_at": ', '"lowest_at": true, "y": ', "lowest_at")):
        path.write_text(good.replace(old, new, 1))
        with pytest.raises(ValueError, match=f"{path}: the field '{field}'"):
            read_summary(path)
    path.write_text(good.replace('"history"', '"histories"', 1))
    with pytest.raises(ValueError, match="the field 'history' is missing"):
        read_summary(path)
    log = path.parent / "log.jsonl"
    log.write_text(log.read_text().replace('"critic_loss": ', '"critic_loss": Infinity, "z": ', 1))
    with pytest.raises(ValueError, match=f"{log}, line 1: the field 'critic_loss' is inf"):
        read_log(log)


def test_a_damaged_study_is_named_by_its_manifest_and_an_unusable_run_shows_as_failed(tmp_path, monkeypatch):
    from mmgan.base.results import verify_manifest
    from mmgan.chapters import gan_tables as gan_chapter
    from mmgan.gan import tables as gan_tables

    root, copy = _copy_table8(tmp_path)
    monkeypatch.delitem(gan_tables.COMPANIONS, "8", raising=False)  # the copy holds Table 8's own runs only
    verify_manifest(copy)
    damaged = copy / "hinge-qsmax-hinge-s1" / "summary.json"
    damaged.write_text(damaged.read_text().replace('"final": ', '"final": NaN, "was": ', 1))
    with pytest.raises(ValueError, match="changed: hinge-qsmax-hinge-s1/summary.json"):
        verify_manifest(copy)
    with pytest.raises(ValueError, match="differ from its manifest"):
        gan_chapter.load_study("8", root.parent)
    # a study without a manifest (a user's own runs): the run is failed, the means use what is left
    (copy / "MANIFEST.json").unlink()
    with pytest.warns(UserWarning, match="the field 'final' is nan"):
        study = gan_chapter.load_study("8", root.parent)
    assert len(study.failed()) == 1 and "Unusable runs." in study.summary().data
    table = study.side_by_side("final")
    assert table.loc[("hinge", "smax", "hinge"), "seeds"] == len(study.seeds) - 1
    assert (table.drop(("hinge", "smax", "hinge"))["seeds"] == len(study.seeds)).all()
    assert gan_tables.finished(study.results)["final"].notna().all()
