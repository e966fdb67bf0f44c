"""Result files that are missing, empty, truncated, corrupt or edited by hand stop with an error naming them."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgan.base.results import read_csv, read_json, read_npz, read_torch
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "table1"


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def _names(path: Path) -> str:
    return re.escape(str(path))


# ----------------------------------------------------------------------------- the readers


@pytest.mark.parametrize("content", [b"", b"  \n", b'{"config": {"dim": 2', b"\x00\xff\xfe binary", b"{'a': 1}"],
                         ids=["empty", "blank", "truncated", "binary", "not-json"])
def test_read_json_names_the_file_and_the_remedy(tmp_path, content):
    path = tmp_path / "run" / "meta.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=_names(path) + r": not valid JSON \(.*\) — delete the folder"):
        read_json(path)
    with pytest.raises(ValueError, match="rerun it all"):
        read_json(path, remedy="rerun it all")


def test_read_json_reads_valid_files_and_names_missing_ones(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"final": 1.5, "runs": [1, 2]}))
    assert read_json(path) == {"final": 1.5, "runs": [1, 2]}
    with pytest.raises(FileNotFoundError, match=_names(tmp_path / "absent.json")):
        read_json(tmp_path / "absent.json")


@pytest.mark.parametrize("content", [b"", b"row,seed,p\nls,0,1.0\nhinge,0,2", b"a,b\n1,2\n1,2,3,4\n",
                                     b"a,b\n\xff\xfe,3\n"],
                         ids=["empty", "truncated", "ragged", "not-utf8"])
def test_read_csv_names_the_file(tmp_path, content):
    path = tmp_path / "summary.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=_names(path) + ": not valid CSV"):
        read_csv(path)


def test_read_csv_reads_valid_files_and_names_missing_ones(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("row,seed\nls,0\nhinge,1\n")
    assert read_csv(path).seed.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match=_names(tmp_path / "absent.csv")):
        read_csv(tmp_path / "absent.csv")


def test_read_npz_and_read_torch_name_corrupt_files(tmp_path):
    npz, pt = tmp_path / "samples.npz", tmp_path / "model.pt"
    np.savez_compressed(npz, a=np.arange(1000.0), b=np.ones((30, 30)))
    torch.save({"w": torch.arange(1000.0)}, pt)
    assert read_npz(npz)["b"].shape == (30, 30)
    assert torch.equal(read_torch(pt)["w"], torch.arange(1000.0))
    for path, reader, what in ((npz, read_npz, "npz archive"), (pt, read_torch, "torch file")):
        data = path.read_bytes()
        for broken in (b"", data[: len(data) // 2], b"\x00garbage" * 20, data[:-40] + b"\x00" * 40):
            path.write_bytes(broken)
            with pytest.raises(ValueError, match=_names(path) + f": not (a )?valid {what}|{_names(path)}: not valid"):
                reader(path)
        path.unlink()
        with pytest.raises(FileNotFoundError, match=_names(path)):
            reader(path)


# ----------------------------------------------------------------------------- Table 1 folders


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Table 1 run (seconds), saved to a folder that each test copies before damaging it."""
    torch.set_default_dtype(torch.float32)
    config = table1_variant.make_config("quick", seeds=(0,), iterations=5, width=4, n_eval=4, exact_resolution=64,
                                restarts=1, max_steps=20, log_every=1)
    return table1.run_table1(config, tmp_path_factory.mktemp("table1"), progress=False).directory


def _copy(directory: Path, tmp_path: Path, name: str | None = None, keep_manifest: bool = False) -> Path:
    """A copy of a Table 1 folder; without its manifest unless asked (the content checks below are those that a
    user's own results, which no manifest lists, go through)."""
    copy = Path(shutil.copytree(directory, tmp_path / (name or directory.name)))
    if not keep_manifest:
        (copy / "MANIFEST.json").unlink()
    return copy


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif how == "last-line-dropped":
        path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])
    else:
        raise AssertionError(how)


DAMAGES = [(name, how) for name in table1_files.RESULT_FILES for how in ("empty", "truncated", "garbage")] + [
    (name, "last-line-dropped") for name in table1_files.RESULT_FILES if name.endswith(".csv")]


@pytest.mark.parametrize(("name", "how"), DAMAGES)
def test_every_corrupt_table1_file_is_named(saved, tmp_path, name, how):
    directory = _copy(saved, tmp_path)
    table1_files.load_table1(directory)  # intact
    _damage(directory / name, how)
    with pytest.raises(ValueError, match=_names(directory / name)) as error:
        table1_files.load_table1(directory)
    assert "mmgan table1" in str(error.value)


@pytest.mark.parametrize("edit", [{"iterations": 6}, {"lam": 1.0}, {"lr": 0.001}, {"seeds": [0, 1]},
                                  {"scale": "raw"}])
def test_hand_edited_meta_is_refused_naming_file_and_keys(saved, tmp_path, edit):
    directory = _copy(saved, tmp_path)
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["config"].update(edit)
    meta_path.write_text(json.dumps(meta, indent=2))
    expected = saved.name.rsplit("-", 1)[1]
    found = table1_variant.Table1Config(**{**meta["config"], "seeds": tuple(meta["config"]["seeds"])}).key()
    assert found != expected
    with pytest.raises(ValueError, match=_names(meta_path)) as error:
        table1_files.load_table1(directory)
    message = str(error.value)
    assert f"expected key {expected}" in message and f"found key {found}" in message, message


def test_renamed_folder_is_refused_and_device_is_not_part_of_the_key(saved, tmp_path):
    renamed = _copy(saved, tmp_path, saved.name[:-12] + "0123456789ab")
    with pytest.raises(ValueError, match=_names(renamed / "meta.json") + ".*expected key 0123456789ab"):
        table1_files.load_table1(renamed)
    moved = _copy(saved, tmp_path)
    meta = json.loads((moved / "meta.json").read_text())
    meta["config"]["device"] = "cuda"  # where a run ran does not change its results or its key
    (moved / "meta.json").write_text(json.dumps(meta))
    assert table1_files.load_table1(moved).config.device == "cuda"
    meta["key"] = "0123456789ab"  # a recorded key that disagrees with the folder and the configuration
    (moved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=_names(moved / "meta.json") + ".*records key 0123456789ab"):
        table1_files.load_table1(moved)


@pytest.mark.parametrize("folder", sorted(p.name for p in COMMITTED.iterdir() if p.is_dir())
                         if COMMITTED.is_dir() else [])
def test_committed_results_load_and_an_edited_copy_does_not(tmp_path, folder):
    result = table1_files.load_table1(COMMITTED / folder)
    assert folder == table1_files.result_directory(result.config, Path()).name
    copy = _copy(COMMITTED / folder, tmp_path, keep_manifest=True)
    meta = json.loads((copy / "meta.json").read_text())
    meta["config"]["iterations"] += 1
    (copy / "meta.json").write_text(json.dumps(meta, indent=2))
    with pytest.raises(ValueError, match=_names(copy / "meta.json") + ": differs from the file its manifest"):
        table1_files.load_table1(copy)
    (copy / "MANIFEST.json").unlink()  # without it, the configuration itself disagrees with the folder's key
    with pytest.raises(ValueError, match=_names(copy / "meta.json") + f".*expected key {folder[-12:]}"):
        table1_files.load_table1(copy)


def test_the_committed_protocol_search_reads_and_a_truncated_copy_is_named(tmp_path):
    probes = table1_files.read_probes(COMMITTED)
    assert {"raw", "standardized"} <= set(probes.scale) and probes.held_out_accuracy.between(0, 1).all()
    text = (COMMITTED / table1_files.PROBE_FILE).read_text()
    (tmp_path / table1_files.PROBE_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=table1_files.PROBE_FILE):
        table1_files.read_probes(tmp_path)
