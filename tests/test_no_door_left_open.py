"""No door left open (issue 34): every committed results file is verified wherever it is read, commands work from
any folder, γ means what the literature means, and every user error of every command is one sentence (exit 2)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_gan

from mmgan import cli
from mmgan.base import manifest
from mmgan.base.results import project_root, read_csv, read_json, read_npz, read_torch, read_yaml, results_root
from mmgan.base.run_folder import read_log, read_summary
from mmgan.gan import config as gan_config
from mmgan.gan import tables as gan_tables
from mmgan.gan import train, trained
from mmgan.penalties import zero_centred_penalty
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def committed_results() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in listed.stdout.split() if not name.endswith(("README.md", manifest.MANIFEST))]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``mmgan ARGS`` in this process: its exit status and what it wrote to stderr."""
    try:
        code = cli.main(list(args))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


# ----------------------------------------------------------------------------- every committed number verified


def test_every_committed_results_file_is_listed_by_its_manifest_with_its_digest():
    files = committed_results()
    if not files:
        pytest.skip("not a git checkout")
    unlisted = [str(p.relative_to(ROOT)) for p in files if manifest.nearest_manifest(p) is None
                or p.relative_to(manifest.nearest_manifest(p)).as_posix()
                not in manifest.read_manifest(manifest.nearest_manifest(p))]
    assert not unlisted, f"committed results files that no manifest lists: {unlisted[:5]}"
    for folder in sorted({manifest.nearest_manifest(p) for p in files}):
        manifest.verify_manifest(folder)


#: One committed file of each kind and the reader that reads it.
KINDS = {
    "gan summary.json": ("gan/table8/cpu-c001dc6bbf3d/hinge-qsmax-hinge-s0/summary.json", read_summary),
    "gan log.jsonl": ("gan/table8/cpu-c001dc6bbf3d/hinge-qsmax-hinge-s0/log.jsonl", read_log),
    "gan config.yaml": ("gan/table8/cpu-c001dc6bbf3d/hinge-qsmax-hinge-s0/config.yaml", read_yaml),
    "gan networks.pt": ("gan/table5/cpu-349046e01bb1/hinge-q2-hinge-s0/networks.pt", read_torch),
    "replicate networks.pt": ("replicates/gan/table2/cpu-c001dc6bbf3d/hinge-q2-hinge-s0/networks.pt", read_torch),
    "critic margins csv": ("critic_margins/table2.csv", read_csv),
    "critic margins json": ("critic_margins/table2.json", read_json),
    "table1 summary.csv": ("table1/fitted-dim2-raw-dd448a6b0794/summary.csv", read_csv),
    "table1 curves.csv": ("table1/fitted-dim2-raw-dd448a6b0794/curves.csv", read_csv),
    "table1 samples.npz": ("table1/fitted-dim2-raw-dd448a6b0794/samples.npz", read_npz),
    "table1 model.pt": ("table1/fitted-dim2-raw-dd448a6b0794/model.pt", read_torch),
    "table1 meta.json": ("table1/fitted-dim2-raw-dd448a6b0794/meta.json", read_json),
    "protocol search": ("table1/protocol-search.csv", read_csv),
}


def _copy_with_manifest(relative: str, tmp_path: Path) -> Path:
    """The committed file ``relative`` copied under ``tmp_path`` with its manifest, at the same relative place."""
    source = RESULTS / relative
    folder = manifest.nearest_manifest(source)
    copy = tmp_path / source.relative_to(RESULTS)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, copy)
    shutil.copy2(folder / manifest.MANIFEST, tmp_path / folder.relative_to(RESULTS) / manifest.MANIFEST)
    return copy


def _edit_one_digit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    if path.suffix in (".pt", ".npz"):  # binary: one byte of the payload
        data[len(data) // 2] ^= 0x01
    else:
        at = next(i for i, byte in enumerate(data) if chr(byte).isdigit())
        data[at] = ord("1") if chr(data[at]) != "1" else ord("2")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_edited_digit_in_any_committed_file_is_refused_by_its_reader(kind, tmp_path):
    relative, reader = KINDS[kind]
    copy = _copy_with_manifest(relative, tmp_path)
    reader(copy)  # as committed: read
    _edit_one_digit(copy)
    with pytest.raises(ValueError, match="differs from the file its manifest .* lists") as error:
        reader(copy)
    assert str(copy) in str(error.value) and "mmgan manifest" in str(error.value)


@pytest.fixture
def table8_copy(tmp_path):
    source = next((RESULTS / "gan" / "table8").glob("cpu-*"))
    copy = tmp_path / "gan" / "table8" / source.name
    shutil.copytree(source, copy)
    return tmp_path / "gan", copy


def test_the_commands_that_load_a_committed_study_refuse_an_edited_one(table8_copy, capsys):
    root, copy = table8_copy
    args = ["--preset", "cpu", "--seeds", *map(str, range(8)), "--root", str(root)]
    assert run_cli(capsys, "table", "8", *args)[0] == 0  # as committed: loaded, nothing trained
    assert run_cli(capsys, "verify", str(copy))[0] == 0
    damaged = copy / "hinge-qsmax-hinge-s3" / "summary.json"
    damaged.write_text(damaged.read_text().replace('"final": ', '"final": 1', 1))
    for command in (["table", "8", *args], ["sweep", "8", "--collect", *args], ["verify", str(copy)]):
        code, err = run_cli(capsys, *command)
        assert code == 2 and "hinge-qsmax-hinge-s3/summary.json" in err, (command, err)
    (copy / "hinge-qsmax-ls-s1" / "log.jsonl").unlink()  # a missing run is named, never retrained
    code, err = run_cli(capsys, "table", "8", *args)
    assert code == 2 and "missing: hinge-qsmax-ls-s1/log.jsonl" in err
    assert not (copy / "hinge-qsmax-ls-s1" / "checkpoint.pt").exists()


def test_commands_that_write_committed_results_keep_their_manifest(tmp_path):
    config = table1_variant.make_config("quick", seeds=(0,), iterations=3, width=4, n_eval=4, exact_resolution=32,
                                        restarts=1, max_steps=5, log_every=1)
    directory = table1.run_table1(config, tmp_path, progress=False).directory
    manifest.verify_manifest(directory)
    assert sorted(manifest.read_manifest(directory)) == ["curves.csv", "meta.json", "model.pt", "samples.npz",
                                                         "summary.csv"]
    from mmgan.critics import measure

    frame = read_csv(RESULTS / "critic_margins" / "table2.csv").head(3)
    path = measure.save_measurements(frame, "2", {"images": 1}, tmp_path / "cm")
    assert manifest.read_manifest(tmp_path / "cm") == {
        "table2.csv": manifest.file_digest(path), "table2.json": manifest.file_digest(path.with_suffix(".json"))}
    measure.load_measurements("2", tmp_path / "cm")


# ----------------------------------------------------------------------------- paths that do not depend on the cwd


def test_the_results_root_is_the_checkouts_whatever_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MMGAN_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == ROOT and results_root() == RESULTS
    args = ["table", "8", "--preset", "cpu", "--seeds", "0", "--cells", "hinge-qsmax-ls"]
    code, err = run_cli(capsys, *args)
    assert code == 0 and f"results root: {RESULTS / 'gan'}" in err
    assert not (tmp_path / "results").exists()
    code, err = run_cli(capsys, *args, "--root", "elsewhere")  # a root without these runs: asked, not trained
    assert code == 2 and "--train" in err and str(RESULTS / "gan" / "table8") in err
    assert not (tmp_path / "elsewhere").exists()
    monkeypatch.setenv("MMGAN_RESULTS", str(tmp_path / "r"))
    assert results_root() == tmp_path / "r"


# ----------------------------------------------------------------------------- γ


def test_gamma_is_the_zero_centred_weight_and_zero_is_refused(capsys):
    r1 = gan_config.config_from({"g": "zero_centered", "penalty_at": "real", "gamma": "10"})
    assert r1.lam == 5.0
    assert gan_config.config_from({"g": "zero_centered", "penalty_at": "data", "gamma": 10}).lam == 10.0
    with pytest.raises(ValueError, match="gamma is the weight of the zero-centred penalties .* set lam"):
        gan_config.config_from({"g": "hinge", "gamma": 10})
    with pytest.raises(ValueError, match="γ = 0 is no penalty"):
        gan_config.config_from({"g": "zero_centered", "penalty_at": "real", "gamma": 0})
    with pytest.raises(ValueError, match="invalid lam=0.0: lam must be a finite number > 0"):
        gan_config.config_from({"g": "zero_centered", "penalty_at": "real", "lam": 0})
    _, r1_table = gan_tables.table_configs("r1", "smoke", gamma=10)
    assert r1_table.lam == 5.0 == gan_tables.table_configs("r1", "smoke")[1].lam
    with pytest.raises(ValueError, match="here g=\\['hinge', 'ls'\\]"):
        gan_tables.table_configs("2", "smoke", gamma=10)
    with pytest.raises(ValueError, match="γ = 0 is no penalty, not R1"):
        zero_centred_penalty(lambda x: x.sum(1), torch.ones(2, 2), torch.ones(2, 2), "r1", gamma=0.0)
    code, err = run_cli(capsys, "sweep", "2", "--preset", "smoke", "--executor", "local", "--dry-run",
                        "--set", "gamma=10")
    assert code == 2 and "set lam" in err
    code, err = run_cli(capsys, "table1", "--preset", "quick", "--lam", "0")
    assert code == 2 and "invalid lam=0.0" in err
    code, err = run_cli(capsys, "table1", "--preset", "quick", "--gamma", "10")
    assert code == 2 and "--rows zero_centred" in err


# ----------------------------------------------------------------------------- one error shape


@pytest.mark.parametrize(("args", "expected"), [
    (["table1", "--preset", "quick", "--lr", "nan"], "invalid lr=nan: lr must be a finite number > 0"),
    (["table1", "--preset", "quick", "--workers", "0"], "workers must be >= 1"),
    (["critic-margins", "9"], "unknown table (a committed study)='9'; valid choices: '2'"),
    (["critic-margins", "2", "--images", "0"], "--images must be >= 1, got 0"),
    (["critic-margins", "2", "--workers", "0"], "--workers must be >= 1, got 0"),
    (["strip-timestamps", "no-such.ipynb"], "no such notebook: no-such.ipynb"),
    (["manifest", "verify", "x"], "verify is not a folder"),
    (["train", "--out", "README.md", "--iterations", "2"], "README.md is a file"),
])
def test_user_errors_are_one_sentence_with_exit_2(args, expected, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = run_cli(capsys, *args)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) <= 2, err  # argparse prints its usage line before the sentence


def test_a_debug_variable_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    assert cli.main(["critic-margins", "9"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_gpu_check_and_table1_on_cuda_stop_at_once(capsys):
    code, err = run_cli(capsys, "gpu-check")
    assert code == 2 and "--device cpu --quick" in err
    with pytest.raises(ValueError, match="no CUDA device is available here; valid choices on this machine"):
        table1_variant.make_config("quick", device="cuda")


def test_a_finished_run_without_its_checkpoint_names_the_way_that_works(tmp_path, capsys):
    run = tmp_path / "run"
    train.train(tiny_gan(iterations=2), run, progress=False)
    (run / "checkpoint.pt").unlink()  # what every committed run looks like
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(dataclasses.asdict(tiny_gan(iterations=2))))
    for flag in ([], ["--resume"]):
        code, err = run_cli(capsys, "train", "--config", str(tmp_path / "run.yaml"), "--out", str(run),
                            "--no-progress", *flag)
        assert code == 2 and "nothing to continue" in err and "--overwrite" in err, err
        assert "without --resume" not in err and "--resume starts it over" not in err
    assert run_cli(capsys, "train", "--config", str(tmp_path / "run.yaml"), "--out", str(run), "--no-progress",
                   "--overwrite")[0] == 0


def test_advice_names_the_run_not_a_placeholder(table8_copy):
    root, copy = table8_copy
    run = copy / "hinge-qsmax-ls-s2"
    advice = trained.rerun_advice(run)
    assert "TABLE" not in advice
    assert f"mmgan table 8 --preset cpu --cells hinge-qsmax-ls --seeds 2 --root {root}" in advice
    assert "--snapshot-every 500" in trained.rerun_advice(run, 500)
    with pytest.raises(FileNotFoundError, match="mmgan table 8 --preset cpu --cells hinge-qsmax-ls --seeds 2"):
        trained.load_run(run)  # committed without networks.pt nor checkpoint


def test_a_chapter_with_an_unusable_run_names_it(table8_copy, monkeypatch):
    from mmgan.chapters import gan_tables as gan_chapter

    root, copy = table8_copy
    monkeypatch.delitem(gan_tables.COMPANIONS, "8", raising=False)
    (copy / manifest.MANIFEST).unlink()  # a user's own study: read without a manifest
    damaged = copy / "hinge-qsmax-hinge-s1" / "summary.json"
    damaged.write_text(damaged.read_text().replace('"final": ', '"final": NaN, "was": ', 1))
    with pytest.warns(UserWarning):
        study = gan_chapter.load_study("8", root.parent)
    page = gan_chapter.GANChapter("8", "cpu", study, study)
    with pytest.raises(ValueError, match=f"failed or cannot be read: {damaged.parent}: .*'final' is nan"):
        page.check_runs()


def test_help_texts_show_no_internal_arguments(capsys):
    for name in ("manifest", "verify", "convert"):
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        out = capsys.readouterr().out
        assert "{" not in out.split("\n\n")[0], out  # no choice list of internal sub-commands in the usage
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    assert "Check results files against their manifests" in capsys.readouterr().out


def test_every_manifest_written_by_mmgan_manifest_lists_what_verify_checks(tmp_path, capsys):
    folder = tmp_path / "study"
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "summary.json").write_text(json.dumps({"final": 1.0}))
    (folder / "run" / ".lock").write_text("")
    (folder / "run" / "checkpoint.pt").write_bytes(b"x")
    assert run_cli(capsys, "manifest", str(folder))[0] == 0
    assert manifest.read_manifest(folder) == {"run/summary.json": manifest.file_digest(folder / "run/summary.json")}
    (folder / "run" / "extra.json").write_text("{}")
    assert cli.main(["verify", str(folder)]) == 0
    assert "1 files match; 1 not listed (e.g. run/extra.json)" in capsys.readouterr().out


def test_the_code_commit_is_dirty_for_changed_code_not_for_results_written_into_the_checkout(tmp_path):
    """code_commit marks ``+dirty`` when the package's tracked files (or its build file) differ from the commit;
    results written into the checkout, as a long study does, leave it clean."""
    import importlib.util
    import shutil
    import subprocess

    from mmgan.base import results as results_module

    repo = tmp_path / "repo"
    (repo / "mmgan" / "base").mkdir(parents=True)
    (repo / "results").mkdir()
    shutil.copyfile(results_module.__file__, repo / "mmgan" / "base" / "results.py")
    (repo / "results" / "table.csv").write_text("a\n1\n")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=repo, check=True)
    spec = importlib.util.spec_from_file_location("copied_results", repo / "mmgan" / "base" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.code_commit().endswith("+dirty")
    (repo / "results" / "table.csv").write_text("a\n2\n")  # a result rewritten: not code
    module.code_commit.cache_clear()  # (computed once per process)
    assert not module.code_commit().endswith("+dirty")
    (repo / "pyproject.toml").write_text("[project]\nname = 'changed'\n")
    module.code_commit.cache_clear()
    assert module.code_commit().endswith("+dirty")
