"""No blocking host→device copy inside a training step (issue 37, item 4).

The host-read test (``tests/test_packed_table.py``) counts the operations that hand a device value to Python;
a copy the other way does not show there, yet ``torch.tensor([...], device='cuda')`` or a CPU index into a
CUDA tensor copies from pageable memory and waits for it. :class:`BlockingHostCopies` counts them on any
device other than the CPU; the tests below run the steps on ``meta`` (no data, every shape and dispatch as on
a GPU), so a CPU-only machine checks what a GPU would do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mmgan import penalties
from mmgan.gan import packed, train
from mmgan.gan import tables as gan_tables
from mmgan.gan.data import load_images

META = torch.device("meta")
#: Constructors that copy Python data (or a CPU array) to the device they are given, waiting for the copy.
FROM_HOST_DATA = {"tensor", "as_tensor", "asarray"}


class _Constructors(TorchFunctionMode):
    """Records ``torch.tensor(data, device=<not CPU>)`` and its kin: they never reach the dispatcher as a copy."""

    def __init__(self, found: list[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = kwargs.get("device")
        on_device = device is not None and torch.device(device).type != "cpu"
        if getattr(func, "__name__", "") in FROM_HOST_DATA and on_device:
            self.found.append(f"torch.{func.__name__}(..., device={device!r})")
        return func(*args, **kwargs)


class _Copies(TorchDispatchMode):
    """Records copies from a CPU tensor to another device that are not ``non_blocking``, and operations on
    device tensors given a CPU tensor of at least one dimension (an implicit, blocking copy; 0-d CPU tensors
    are passed by value, as Adam's step counts are)."""

    def __init__(self, found: list[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        name = str(func.overloadpacket.__name__)
        if name == "_to_copy":
            target = kwargs.get("device")
            if (tensors[0].device.type == "cpu" and target is not None and torch.device(target).type != "cpu"
                    and not kwargs.get("non_blocking", False)):
                self.found.append(f"{name} cpu → {target}")
        elif name == "copy_":
            destination, source = args[0], args[1]
            blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
            if source.device.type == "cpu" and destination.device.type != "cpu" and blocking:
                self.found.append(f"{name} cpu → {destination.device}")
        elif any(t.device.type != "cpu" for t in tensors) and any(t.device.type == "cpu" and t.dim() > 0
                                                                  for t in tensors):
            self.found.append(f"{name} with a CPU tensor")
        return func(*args, **kwargs)


class BlockingHostCopies:
    """``with BlockingHostCopies() as copies: ...``; ``copies.found`` names each blocking host→device copy."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self._modes = (_Constructors(self.found), _Copies(self.found))

    def __enter__(self) -> BlockingHostCopies:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)


def _old_select(choices: list, compute: Callable[[Any], torch.Tensor]) -> torch.Tensor:
    """``penalties._select`` before issue 37: its index built from Python data at every call."""
    distinct = list(dict.fromkeys(choices))
    if len(distinct) == 1:
        return compute(distinct[0])
    stacked = torch.stack([compute(c) for c in distinct])
    index = torch.tensor([distinct.index(c) for c in choices], device=stacked.device)
    return stacked[index, torch.arange(len(choices), device=stacked.device)]


def test_the_counter_sees_each_kind_of_blocking_copy_and_not_a_non_blocking_one():
    host = torch.arange(4)
    device = torch.zeros(4, device=META)
    cases = {"constructor": lambda: torch.tensor([0, 1], device=META), "to": lambda: host.to(META),
             "copy_": lambda: device.copy_(host.float()), "CPU index": lambda: device[host]}
    for what, make in cases.items():
        with BlockingHostCopies() as copies:
            make()
        assert len(copies.found) == 1, what
    with BlockingHostCopies() as copies:
        device[host.to(META, non_blocking=True)]
        device * torch.tensor(2.0)  # a 0-d CPU tensor is passed by value
    assert copies.found == []


def _mixed_pack() -> tuple[packed.PackedState, torch.Tensor]:
    """A pack of two smoke-size runs with different q and g (what makes ``_select`` index) on ``meta``."""
    _, base = gan_tables.table_configs("2", "smoke", batch_size=8)
    configs = [dataclasses.replace(base, loss="hinge", q=q, g=g, seed=seed)
               for seed, (q, g) in enumerate((("1", "ls"), ("inf", "hinge")))]
    data = load_images("digits", base.image_size, base.channels)[:64].to(META)
    return packed.pack_states([train.new_state(c, META) for c in configs]), data


def test_the_counter_catches_the_old_select_index_in_a_mixed_pack(monkeypatch):
    pack, data = _mixed_pack()
    monkeypatch.setattr(penalties, "_select", _old_select)
    with BlockingHostCopies() as copies:
        packed.packed_training_iteration(pack, data, META, watch=train.LossWatch(2, META))
    assert copies.found == ["torch.tensor(..., device=device(type='meta'))"] * 2  # q's index and g's


@pytest.mark.parametrize("steps", [1, 2])
def test_a_packed_iteration_makes_no_blocking_copy_once_its_pack_is_built(steps):
    pack, data = _mixed_pack()
    pack.configs = [dataclasses.replace(c, critic_steps=steps) for c in pack.configs]
    packed.packed_training_iteration(pack, data, META, watch=train.LossWatch(2, META))  # builds the indices
    with BlockingHostCopies() as copies:
        packed.packed_training_iteration(pack, data, META, watch=train.LossWatch(2, META))
    assert copies.found == []


def test_a_single_run_iteration_makes_no_blocking_copy():
    _, base = gan_tables.table_configs("2", "smoke", batch_size=8, loss="rphinge")
    state = train.new_state(base, META)
    data = load_images("digits", base.image_size, base.channels)[:64].to(META)
    with BlockingHostCopies() as copies:
        train.training_iteration(state, data, META, watch=train.LossWatch(1, META))
    assert copies.found == []
