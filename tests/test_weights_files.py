"""Weights the project loads from outside a run can run no code either: pytorch-fid's Inception file is checked
against its published digest and read weights-only, the digits-classifier cache is read weights-only and rebuilt
when unusable, ``mmgan convert`` unpickles nothing beyond an allow-list, and a plain Python pickle given as a
torch file is named as such."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Payload, tiny_gan

from mmgan.base import run_folder
from mmgan.base.results import read_torch
from mmgan.gan import convert, metrics


def plant(path: Path, marker: Path) -> None:
    """A torch file (a zip archive, as ``torch.save`` writes) whose pickle carries :class:`Payload`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"iteration": 4, "note": Payload(marker)}, path)


def plant_plain(path: Path, marker: Path) -> None:
    """A plain Python pickle (no torch container) carrying :class:`Payload`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"iteration": 4, "note": Payload(marker)}))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the engine's dtype (conftest's default is float64)


# ----------------------------------------------------------------------------- pytorch-fid's Inception weights


@pytest.fixture
def inception_file(tmp_path, monkeypatch) -> Path:
    """Where the FID extractor looks for pytorch-fid's weights, under a ``TORCH_HOME`` of this test's own."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a folder set earlier in this process would win over TORCH_HOME
    path = Path(torch.hub.get_dir()) / "checkpoints" / metrics.INCEPTION_WEIGHTS
    path.parent.mkdir(parents=True)
    return path


def fid_inception_state(monkeypatch) -> dict[str, torch.Tensor]:
    """A state dict of pytorch-fid's FID Inception architecture, with random weights: pytorch-fid builds the
    network, and its loader is handed the network's own weights."""
    from pytorch_fid import inception

    built = []
    build = inception._inception_v3

    def recording(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    with monkeypatch.context() as patch:
        patch.setattr(inception, "_inception_v3", recording)
        patch.setattr(inception, "load_state_dict_from_url", lambda url, **_: built[-1].state_dict())
        inception.fid_inception_v3()
    return built[-1].state_dict()


def test_a_malicious_inception_file_is_refused_before_it_is_read(inception_file, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    plant(inception_file, marker)
    with pytest.raises(ValueError, match=f"{inception_file} is not pytorch-fid's .*expected {metrics.INCEPTION_SHA256}"
                                         f".*{metrics.INCEPTION_URL}"):
        metrics.make_extractor("fid", 32, 3)
    # even a file with the expected digest is read weights-only: refused as needing pickle
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", sha256(inception_file))
    with pytest.raises(ValueError, match="holds Python objects that only pickle can load"):
        metrics.make_extractor("fid", 32, 3)
    plant_plain(inception_file, marker)
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", sha256(inception_file))
    with pytest.raises(ValueError, match="is a plain Python pickle, not a torch file: refused"):
        metrics.make_extractor("fid", 32, 3)
    assert not marker.exists()


def test_a_damaged_inception_file_is_named_by_its_digest(inception_file):
    for damaged in (b"\x00garbage" * 50, b"PK\x03\x04" + bytes(1000)):
        inception_file.write_bytes(damaged)
        found = hashlib.sha256(damaged).hexdigest()
        with pytest.raises(ValueError, match=f"its SHA-256 is {found}, expected {metrics.INCEPTION_SHA256}"):
            metrics.make_extractor("fid", 32, 3)
    inception_file.unlink()
    with pytest.raises(FileNotFoundError, match="FID needs pytorch-fid's Inception weights"):
        metrics.make_extractor("fid", 32, 3)


def test_verified_inception_weights_build_pytorch_fids_network(inception_file, monkeypatch):
    state = fid_inception_state(monkeypatch)
    torch.save(state, inception_file)
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", sha256(inception_file))
    extractor = metrics.make_extractor("fid", 32, 3)
    loaded = extractor.net.state_dict()
    used = {name: tensor for name, tensor in state.items() if not name.startswith("fc.")}  # no classifier head
    assert len(loaded) == len(used) and all(torch.equal(a, b) for a, b in zip(loaded.values(), used.values(),
                                                                                strict=True))
    with torch.no_grad():
        assert extractor(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 2048)
        assert extractor(torch.rand(2, 1, 32, 32) * 2 - 1).shape == (2, 2048)
    # a pytorch-fid that asked for other weights would not be handed these
    from pytorch_fid import inception

    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", "https://example.org/other-weights.pth")
    with pytest.raises(ValueError, match="asks for the weights https://example.org/other-weights.pth"):
        metrics.make_extractor("fid", 32, 3)


# ----------------------------------------------------------------------------- the digits-classifier cache


def test_an_unusable_digits_cache_is_retrained_into_the_classifier_of_a_fresh_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGAN_CACHE", str(tmp_path / "fresh"))
    fresh, fresh_accuracy = metrics.train_digits_classifier(8, 1, epochs=1)
    (cached,) = (tmp_path / "fresh").iterdir()
    marker = tmp_path / "ran"
    good = cached.read_bytes()
    damages = {"truncated": lambda path: path.write_bytes(good[: len(good) // 2]),
               "garbage": lambda path: path.write_bytes(b"\x00garbage" * 20),
               "malicious": lambda path: plant(path, marker),
               "plain-pickle": lambda path: plant_plain(path, marker),
               "other-shapes": lambda path: torch.save({"features.0.weight": torch.zeros(3)}, path)}
    for name, damage in damages.items():
        monkeypatch.setenv("MMGAN_CACHE", str(tmp_path / name))
        path = tmp_path / name / cached.name
        path.parent.mkdir()
        damage(path)
        with pytest.warns(UserWarning, match=f"{path}.*retrained and replaced") as caught:
            model, accuracy = metrics.train_digits_classifier(8, 1, epochs=1)
        assert len(caught) == 1, name
        assert accuracy == fresh_accuracy, name
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(),
                                                     strict=True)), name
        replaced = read_torch(path)  # the cache was replaced by one that loads weights-only
        assert all(torch.equal(replaced[k], v) for k, v in fresh.state_dict().items()), name
    assert not marker.exists()


# ----------------------------------------------------------------------------- mmgan convert


def test_convert_refuses_a_malicious_checkpoint_before_loading_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    plant(run / run_folder.CHECKPOINT, marker)
    before = (run / run_folder.CHECKPOINT).read_bytes()
    assert convert.main([str(run)]) == 2
    error = capsys.readouterr().err
    assert "needs posix.system" in error and "refused, nothing was loaded" in error, error
    assert (run / run_folder.CHECKPOINT).read_bytes() == before
    plant_plain(run / run_folder.CHECKPOINT, marker)
    assert convert.main([str(run)]) == 2
    assert "is a plain Python pickle, not a torch file: refused" in capsys.readouterr().err
    assert not marker.exists()


def test_convert_refuses_numpy_objects_beyond_numbers(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"iteration": 1, "x": np.array([1, "a"], dtype=object)}, run / run_folder.CHECKPOINT)
    assert convert.main([str(run)]) == 2
    assert "holds objects beyond what `mmgan convert` allows" in capsys.readouterr().err


def test_convert_reads_old_checkpoints_of_numpy_values_and_a_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config, state = tiny_gan(iterations=2), np.random.RandomState(0).get_state()
    old = {"iteration": 2, "config": config, "metrics": [(2, np.float64(1.5))], "rng": state,
           "x": np.zeros(3, np.float32), "count": np.int64(7), "flag": np.bool_(True), "w": torch.ones(2)}
    torch.save(old, run / run_folder.CHECKPOINT)
    assert convert.main([str(run)]) == 0
    payload = torch.load(run / run_folder.CHECKPOINT, weights_only=True)
    assert payload["config"] == dataclasses.asdict(config) and payload["metrics"] == [(2, 1.5)]
    assert payload["rng"][0] == "MT19937" and payload["rng"][1].dtype == torch.uint32
    assert np.array_equal(payload["rng"][1].numpy(), state[1]) and payload["rng"][2:] == state[2:]
    assert torch.equal(payload["x"], torch.zeros(3)) and payload["count"] == 7 and payload["flag"] is True


def test_convert_reads_numpy_1_names(tmp_path):
    """NumPy 1 pickled its scalars and arrays under ``numpy.core.multiarray`` (NumPy 2: ``numpy._core``)."""
    buffer = io.BytesIO()
    torch.save({"iteration": 1, "metric": np.float64(2.5), "x": np.arange(3)}, buffer)
    written = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(written, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(member.filename, data)
    run = tmp_path / "run"
    run.mkdir()
    (run / run_folder.CHECKPOINT).write_bytes(written.getvalue())
    assert "numpy.core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(
        run / run_folder.CHECKPOINT)
    assert convert.main([str(run)]) == 0
    payload = torch.load(run / run_folder.CHECKPOINT, weights_only=True)
    assert payload["metric"] == 2.5 and torch.equal(payload["x"], torch.arange(3))


# ----------------------------------------------------------------------------- plain pickles named as such


def test_a_plain_pickle_is_named_by_both_torch_readers(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "run" / run_folder.CHECKPOINT
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pickle.dumps({"iteration": 4, "note": Payload(marker)}, protocol=protocol))
        with pytest.raises(ValueError, match=f"{path} is a plain Python pickle, not a torch file: refused "
                                             r"\(loading it could run code\) — delete the folder"):
            read_torch(path)
        with pytest.raises(run_folder.UnsafeFile, match=r"plain Python pickle, not a torch file: refused \(loading "
                                                        r"it could run code\); delete it and rerun with --overwrite"):
            run_folder.read_checkpoint(path)
    assert not marker.exists()
    # a damaged pickle is not called a plain one: the readers' truncated-or-corrupt messages stay
    path.write_bytes(pickle.dumps({"iteration": 4, "weights": list(range(100))}, protocol=2)[:50])
    with pytest.raises(ValueError, match="the file is truncated or corrupt"):
        read_torch(path)
    with pytest.raises(ValueError, match="probably truncated .*delete it and rerun with --overwrite"):
        run_folder.read_checkpoint(path)


def test_torch_files_old_and_new_are_not_taken_for_plain_pickles(tmp_path):
    path = tmp_path / "run" / run_folder.CHECKPOINT
    path.parent.mkdir()
    for legacy in (False, True):
        torch.save({"iteration": 3, "w": torch.arange(4.0)}, path, _use_new_zipfile_serialization=not legacy)
        assert torch.equal(read_torch(path)["w"], torch.arange(4.0))
        assert run_folder.read_checkpoint(path)["iteration"] == 3
