"""Real-batch indices drawn on the training device (issue 37, item 4): exact, seeded, checkpointed, resumable.

No GPU here: the device path is run with a CPU generator standing in for the CUDA one (the code paths are the
same, the generator's device aside); CPU runs keep drawing from their CPU generator (``tests/test_reproduce.py``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from mmgan.base.randomness import device_distinct_indices
from mmgan.base.run_folder import CHECKPOINT, LOG, read_checkpoint
from mmgan.gan import packed, train
from mmgan.gan import tables as gan_tables
from mmgan.gan.data import load_images

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the engine's dtype (the suite's default is float64)


def _stand_in(config, device):
    """:func:`mmgan.gan.train.index_generator` as on a CUDA device, with a CPU generator."""
    return torch.Generator(device=device).manual_seed(config.seed)


def test_device_indices_are_distinct_seeded_and_a_permutations_head():
    draws = [device_distinct_indices(50_000, 64, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and len(set(draws[0].tolist())) == 64
    assert torch.equal(draws[0], torch.randperm(50_000, generator=torch.Generator().manual_seed(3))[:64])
    with pytest.raises(ValueError, match="cannot draw 65 distinct indices from a population of 64"):
        device_distinct_indices(64, 65, torch.Generator())


def test_cpu_runs_and_iid_sampling_keep_their_cpu_generator():
    _, base = gan_tables.table_configs("2", "smoke")
    assert train.new_state(base, CPU).index_rng is None
    assert train.index_generator(dataclasses.replace(base, real_sampling="with_replacement"),
                                 torch.device("cuda")) is None


def _config(**changes):
    _, base = gan_tables.table_configs("2", "smoke", iterations=4, checkpoint_every=2, log_every=1, metric_every=4,
                                       metric_samples=64, batch_size=8, **changes)
    return base


def _log(folder: Path) -> list[dict]:
    """The training lines of a run's log, without their timings (the cut run also evaluated at its end)."""
    lines = [json.loads(line) for line in (folder / LOG).read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "iterations_per_s"} for line in lines if "critic_loss" in line]


def test_a_run_drawing_on_its_device_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "index_generator", _stand_in)
    config, data = _config(), load_images("digits", 16, 1)
    whole = train.train(config, tmp_path / "whole", progress=False, data=data)
    train.train(dataclasses.replace(config, iterations=2), tmp_path / "cut", progress=False, data=data)
    saved = read_checkpoint(tmp_path / "cut" / CHECKPOINT)["index_rng"]
    assert isinstance(saved, torch.Tensor)
    resumed = train.train(config, tmp_path / "cut", resume=True, progress=False, data=data)
    assert _log(tmp_path / "whole") == _log(tmp_path / "cut")
    assert resumed["final"] == whole["final"]
    monkeypatch.undo()  # on a device without one, the run is refused, naming the devices that continue it
    with pytest.raises(ValueError, match="resume it with device='cuda' or 'cuda:<index>'"):
        train.train(dataclasses.replace(config, iterations=6), tmp_path / "cut", resume=True,
                    progress=False, data=data)


def test_a_packed_run_draws_as_it_would_alone(monkeypatch):
    monkeypatch.setattr(train, "index_generator", _stand_in)
    configs = [_config(loss=loss, seed=seed) for seed, loss in enumerate(("hinge", "rphinge"))]
    data = load_images("digits", 16, 1)
    singles = [train.new_state(c, CPU) for c in configs]
    pack = packed.pack_states([train.new_state(c, CPU) for c in configs])
    result = packed.packed_training_iteration(pack, data, CPU)
    for k, state in enumerate(singles):
        *_, real, _ = train.training_iteration(state, data, CPU)
        assert torch.equal(result.real[k], real)
        assert torch.equal(pack.index_rngs[k].get_state(), state.index_rng.get_state())
