"""Generators and critics of the GAN experiments (App. E).

``make_gan(arch, image_size, ...)`` returns ``(generator, critic)``:

* ``'dcgan'`` (App. E.1, E.2; Radford et al., 2015): transposed-convolution
  generator with BatchNorm and ReLU, strided-convolution critic with LeakyReLU
  and BatchNorm after every convolution but the first. One stage per factor of
  two, so 16, 32 and 64 px are supported (the paper uses 32 and 64). ``width``
  is the number of feature maps of the widest-resolution stage (the paper: 128
  at 32 px, i.e. 128-256-512, and 64 at 64 px, i.e. 64-128-256-512).
* ``'standard_cnn'`` (App. E.3; Miyato et al., 2018), 32 px only: a linear
  layer to 4×4×8w and three upsampling stages in the generator; seven
  convolutions (3×3 stride 1 and 4×4 stride 2 alternating) and a linear output
  in the critic, LeakyReLU. ``width`` = 64 by default.

Where the appendix and the released code differ (each GAN chapter lists these in
its protocol table):

* LeakyReLU slope: the appendix says 0.2 (DCGAN) and 0.1 (standard CNN); the
  released code uses 0.02 for DCGAN and 0.1 for the standard CNN. Default: the
  released code (the paper's numbers were produced with it); ``leaky_slope=0.2``
  gives the appendix's DCGAN.
* the last critic layer of DCGAN: the appendix lists a 4×4 convolution with
  stride 2 and padding 1, which would leave a 2×2 map; we use the standard
  DCGAN 4×4 convolution with stride 1 and no padding to a single score, as the
  released code does.
* the standard CNN critic: the released code applies a LeakyReLU after the 7th
  convolution too (the appendix lists none); we follow the released code. The
  released code also puts BatchNorm after its first six convolutions unless
  ``--no_batch_norm_D`` is given, while the appendix lists none; both are
  available through ``critic_batchnorm`` (Tables 5 and 6 use the appendix's
  critic without BatchNorm, see :mod:`mmgan.gan.tables`).
* BatchNorm in the DCGAN critic: both the appendix and the release use it
  (``critic_batchnorm=True``). It couples the samples of a batch, so the
  gradient penalty is not a per-sample quantity for such a critic; set it to
  False for a critic whose input gradients are per sample.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from mmgan.base.registry import Registry, check_choice, check_int

#: BatchNorm modes for drawing the samples a metric scores (see :func:`sampling_mode`).
SAMPLING_MODES: tuple[str, ...] = ("train", "eval")


class Flatten(nn.Module):
    """(B, C, 1, 1) or (B, K) → (B,): one score per sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0])


def _dcgan(image_size: int, channels: int, z_dim: int, width: int, slope: float,
           critic_batchnorm: bool) -> tuple[nn.Module, nn.Module]:
    stages = int(math.log2(image_size)) - 2  # 4 → image_size in `stages` doublings
    widths = [width * 2 ** i for i in range(stages)]  # e.g. 128, 256, 512 at 32 px
    g: list[nn.Module] = [nn.Unflatten(1, (z_dim, 1, 1)),
                          nn.ConvTranspose2d(z_dim, widths[-1], 4, 1, 0, bias=False),
                          nn.BatchNorm2d(widths[-1]), nn.ReLU(True)]
    for c_in, c_out in zip(widths[::-1][:-1], widths[::-1][1:]):
        g += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
    g += [nn.ConvTranspose2d(widths[0], channels, 4, 2, 1, bias=False), nn.Tanh()]
    d: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(slope, True)]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        d += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
        d += [nn.BatchNorm2d(c_out)] if critic_batchnorm else []
        d += [nn.LeakyReLU(slope, True)]
    d += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), Flatten()]
    return nn.Sequential(*g), nn.Sequential(*d)


def _standard_cnn(channels: int, z_dim: int, width: int, slope: float,
                  critic_batchnorm: bool) -> tuple[nn.Module, nn.Module]:
    w = width
    g = nn.Sequential(
        nn.Linear(z_dim, 4 * 4 * 8 * w), nn.Unflatten(1, (8 * w, 4, 4)),
        nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.ReLU(True),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(True),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(True),
        nn.Conv2d(w, channels, 3, 1, 1), nn.Tanh(),
    )
    layers: list[nn.Module] = []
    c_in = channels
    convolutions = [(w, 3, 1, 1), (w, 4, 2, 1), (2 * w, 3, 1, 1), (2 * w, 4, 2, 1),
                    (4 * w, 3, 1, 1), (4 * w, 4, 2, 1), (8 * w, 3, 1, 1)]
    for index, (c_out, kernel, stride, pad) in enumerate(convolutions):
        layers.append(nn.Conv2d(c_in, c_out, kernel, stride, pad))
        if critic_batchnorm and index < len(convolutions) - 1:  # the released code: none after the 7th
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(slope, True))  # after the 7th too, as released (the appendix lists none)
        c_in = c_out
    d = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * w * 4 * 4, 1), Flatten())
    return g, d


@dataclass(frozen=True)
class Architecture:
    """A pair of networks, as registered in :data:`ARCHITECTURES`.

    Attributes:
        title: its name in prose.
        widths: image size → the released code's width there (the sizes it supports).
        slope: the released code's LeakyReLU slope of the critic.
        build: ``(image_size, channels, z_dim, width, slope, critic_batchnorm) -> (generator, critic)``.
        small: preset → (image size, width) of its small networks at each of :data:`SMALL_PRESETS`.
    """

    title: str
    widths: dict[int, int]
    slope: float
    build: Callable[[int, int, int, int, float, bool], tuple[nn.Module, nn.Module]]
    small: dict[str, tuple[int, int]]

    @property
    def sizes(self) -> tuple[int, ...]:
        """The image sizes it supports."""
        return tuple(self.widths)


def _check_architecture(name: str, arch: Architecture) -> None:
    """An architecture supports some image sizes, each with a positive width, and builds its networks."""
    if not arch.widths or not all(isinstance(k, int) and isinstance(v, int) and k > 0 and v > 0
                                  for k, v in arch.widths.items()):
        raise ValueError(f"architecture {name!r}: widths must map image sizes to widths (positive integers)")
    if not 0 <= arch.slope < 1:
        raise ValueError(f"architecture {name!r}: slope must be in [0, 1), got {arch.slope!r}")
    if not callable(arch.build):
        raise TypeError(f"architecture {name!r}: build must be callable")
    if sorted(arch.small) != sorted(SMALL_PRESETS) or not all(size in arch.widths for size, _ in arch.small.values()):
        raise ValueError(f"architecture {name!r}: small must give (image size, width) for each of {SMALL_PRESETS}, "
                         f"at sizes it supports ({tuple(arch.widths)}); got {arch.small!r}")


#: The presets that train small networks on the CPU (each architecture says which, :attr:`Architecture.small`).
SMALL_PRESETS: tuple[str, ...] = ("smoke", "cpu")
#: The architectures by name (a new one: one entry). LeakyReLU slopes as released (the appendix: 0.2 for DCGAN).
ARCHITECTURES: Registry[Architecture] = Registry("arch", Architecture, _check_architecture, {
    "dcgan": Architecture("DCGAN", {16: 64, 32: 128, 64: 64}, 0.02, _dcgan, {"smoke": (16, 4), "cpu": (16, 16)}),
    "standard_cnn": Architecture("standard CNN", {32: 64}, 0.1, lambda image_size, *rest: _standard_cnn(*rest),
                                 {"smoke": (32, 4), "cpu": (32, 8)}),
})


def make_gan(arch: str, image_size: int, channels: int = 3, z_dim: int = 128, width: int | None = None,
             leaky_slope: float | None = None, critic_batchnorm: bool = True) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, critic)``: generator (B, z_dim) → (B, channels, size, size) in [−1, 1];
    critic (B, channels, size, size) → (B,).

    Raises ``ValueError`` for an unknown ``arch`` or an unsupported ``image_size``.
    """
    spec = ARCHITECTURES[arch]
    check_choice(image_size, spec.sizes, f"image_size for arch={arch!r}")
    check_int(channels, "channels", minimum=1)
    check_int(z_dim, "z_dim", minimum=1)
    width = spec.widths[image_size] if width is None else check_int(width, "width", minimum=1)
    slope = spec.slope if leaky_slope is None else float(leaky_slope)
    if not 0 <= slope < 1:
        raise ValueError(f"leaky_slope must be in [0, 1), got {leaky_slope!r}")
    generator, critic = spec.build(image_size, channels, z_dim, width, slope, critic_batchnorm)
    init_weights(generator)
    init_weights(critic)
    return generator, critic


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) for convolutions and linear maps, N(1, 0.02) for BatchNorm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def sampling_mode(module: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Run ``module`` for sampling with BatchNorm in ``mode``: ``'eval'`` (running statistics) or ``'train'``.

    ``'train'`` is how the released code draws the samples it scores (it never
    calls ``.eval()``): each sampling batch is normalised with its own
    statistics. The running statistics are restored afterwards, so sampling in
    ``'train'`` mode leaves the model exactly as it was (training and resume
    are unaffected). Gradients are off in both modes.
    """
    check_choice(mode, SAMPLING_MODES, "sample_mode")
    was_training = module.training
    module.train(mode == "train")
    try:
        with torch.no_grad(), kept_statistics(module):
            yield module
    finally:
        module.train(was_training)


@contextlib.contextmanager
def kept_statistics(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` (e.g. in train mode, for a measurement that is not a training step) and restore its
    buffers afterwards: BatchNorm's running statistics and batch count stay those of training alone."""
    saved = {name: buffer.clone() for name, buffer in module.named_buffers()}
    try:
        yield module
    finally:
        with torch.no_grad():
            for name, buffer in module.named_buffers():
                buffer.copy_(saved[name])
