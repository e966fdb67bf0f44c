"""Random draws that work on any device and stay reproducible and resumable.

PyTorch refuses a generator that lives on another device than the tensor it
fills (``torch.rand(..., generator=<cpu generator>, device='cuda')`` raises
"Expected a 'cuda' device type for generator but found 'cpu'"). Every run of
this project keeps **one CPU generator** and draws through the functions below:
the numbers are drawn on the generator's own device and then moved to the
device that needs them. So

* the same seed gives the same stream on a CPU-only machine and on a GPU
  (the draws never depend on the CUDA generator's algorithm);
* a checkpoint needs only ``generator.get_state()`` to continue the stream
  exactly, whichever device the run trains on;
* the cost is one host-to-device copy per draw (a batch of noise, B
  interpolation weights, B indices), negligible beside a GAN iteration; copies
  from the host are issued ``non_blocking`` and never synchronise.

Rule used across the code base (and enforced by a test that emulates CUDA's
check on the CPU): a call that passes ``generator=`` passes ``device=`` only as
that generator's own device.

One exception to the single CPU generator, for speed: on a CUDA device a run draws
the distinct indices of its real batches from a generator on that device
(:func:`device_distinct_indices`; :func:`mmgan.gan.train.index_generator`), so a
step neither permutes the whole data set on the host nor copies indices over;
that generator's state is checkpointed with the others. CPU runs draw as before.
"""

from __future__ import annotations

import torch


def _move(values: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    if device is None or torch.device(device) == values.device:
        return values
    return values.to(device, non_blocking=True)


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None = None,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """U[0, 1) samples of ``shape`` drawn from ``generator`` (on its device), returned on ``device``."""
    return _move(torch.rand(shape, generator=generator, dtype=dtype), device)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> torch.Tensor:
    """N(0, 1) samples of ``shape`` drawn from ``generator`` (on its device), returned on ``device``."""
    return _move(torch.randn(shape, generator=generator, dtype=dtype), device)


def indices(population: int, size: int, generator: torch.Generator | None, replacement: bool,
            device: torch.device | str | None = None) -> torch.Tensor:
    """``size`` indices into ``range(population)``: i.i.d. (``replacement=True``) or distinct within the draw.

    Distinct indices are the first ``size`` entries of a random permutation, as
    the released code's ``numpy.random.choice(N, B, replace=False)`` draws them.
    """
    if size > population and not replacement:
        raise ValueError(f"cannot draw {size} distinct indices from a population of {population}")
    if replacement:
        drawn = torch.randint(population, (size,), generator=generator)
    else:
        drawn = torch.randperm(population, generator=generator)[:size]
    return _move(drawn, device)


def device_distinct_indices(population: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` distinct indices into ``range(population)`` drawn on ``generator``'s own device: the first ``size``
    entries of a uniformly random permutation made there (exact, as :func:`indices` draws them on the CPU, from
    another stream), with no host work that grows with ``population`` and no copy."""
    if size > population:
        raise ValueError(f"cannot draw {size} distinct indices from a population of {population}")
    return torch.randperm(population, generator=generator, device=generator.device)[:size]
