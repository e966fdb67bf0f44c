"""Certified lower bounds of a critic's margin by linear bound propagation (CROWN).

A margin search (:mod:`mmgan.margins`) or an attack returns a point where f − t changes
sign: an *upper* bound of the L^p distance from x to {f = t} (eq. 3). A *lower* bound needs
a proof that f − t keeps its sign on the whole ball B_p(x, ε). The Lipschitz bound of
:func:`mmgan.critics.measure.lipschitz_bound` gives one, but it multiplies worst cases of
every layer and is hundreds of times too small for the GAN critics. CROWN (Zhang et al.,
2018, "Efficient neural network robustness certification with general activation
functions") is much tighter: it bounds each (leaky) ReLU between two lines valid on the
pre-activation's interval [l, u] and carries the resulting linear bounds back to the input,
where the extreme of a linear function a·x + c over B_p(x₀, ε) is a·x₀ + c ± ε‖a‖_q with q
the dual of p (Hölder). Pre-activation intervals of each layer come from the same
backward pass started at that layer.

The critic (eval mode) is first written as a sequence of steps (:func:`affine_steps`):
affine maps (a convolution, applied and transposed as a convolution, or a matrix; eval-mode
BatchNorm folded into the map before it) with (leaky) ReLUs between them.
:func:`certified_radius` then bisects on ε: the largest ε at which the bounds exclude t is a
certified margin. The bounds of all images are computed at once, in float64 (the
arithmetic's rounding is far below the bisection's resolution).

An auto_LiRPA release compatible with this project's pinned torch does not exist on the
package index (its 0.3 requires torch < 1.13), hence this small implementation for
sequential networks of the layers the GAN critics use.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from mmgan.base.registry import check_choice, check_int
from mmgan.gan.models import Flatten
from mmgan.margins import MARGIN_ORDERS
from mmgan.norms import dual


@dataclass(frozen=True)
class Affine:
    """An affine map between flattened activations: a convolution (``stride`` and ``padding`` set) or a matrix,
    followed by a per-unit ``scale`` and ``shift`` (where an eval-mode BatchNorm and any bias are folded in).
    All tensors float64."""

    weight: torch.Tensor  # conv kernel (C_out, C_in, k, k) or matrix (out, in)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    scale: torch.Tensor  # (out units,)
    shift: torch.Tensor  # (out units,)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, in units) → (N, out units)."""
        if self.stride is None:
            out = z @ self.weight.T
        else:
            out = nn.functional.conv2d(z.reshape(-1, *self.in_shape), self.weight, None, self.stride,
                                       self.padding).flatten(1)
        return out * self.scale + self.shift

    def transpose(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Coefficients on the outputs carried to the inputs (the Jacobian's transpose): (N, out) → (N, in)."""
        coefficients = coefficients * self.scale
        if self.stride is None:
            return coefficients @ self.weight
        grad = coefficients.reshape(-1, *self.out_shape)
        return nn.grad.conv2d_input((grad.shape[0], *self.in_shape), self.weight, grad, self.stride,
                                    self.padding).flatten(1)


@dataclass(frozen=True)
class LeakyReLU:
    """max(z, 0) + slope · min(z, 0), element-wise (slope 0: ReLU)."""

    slope: float


def _batchnorm(layer: nn.BatchNorm2d | nn.BatchNorm1d, previous: Affine) -> Affine:
    """Eval-mode BatchNorm (running statistics) folded into the affine map before it."""
    scale = layer.weight.detach().double() / torch.sqrt(layer.running_var.double() + layer.eps)
    shift = layer.bias.detach().double() - layer.running_mean.double() * scale
    per_unit = math.prod(previous.out_shape[1:])
    scale, shift = scale.repeat_interleave(per_unit), shift.repeat_interleave(per_unit)
    return dataclasses.replace(previous, scale=previous.scale * scale, shift=previous.shift * scale + shift)


def _affine(layer: nn.Conv2d | nn.Linear, shape: tuple[int, ...]) -> Affine:
    weight = layer.weight.detach().double()
    if isinstance(layer, nn.Linear):
        out_shape = (layer.out_features,)
        stride = padding = None
    else:
        if layer.groups != 1 or layer.dilation != (1, 1) or not isinstance(layer.padding, tuple):
            raise TypeError("only convolutions without groups, dilation or string padding are certified")
        stride, padding = layer.stride, layer.padding
        out_shape = tuple(nn.functional.conv2d(weight.new_zeros(1, *shape), weight, None, stride, padding).shape[1:])
    units = math.prod(out_shape)
    bias = (weight.new_zeros(units) if layer.bias is None else
            layer.bias.detach().double().repeat_interleave(units // layer.bias.numel()))
    return Affine(weight, tuple(shape), out_shape, weight.new_ones(units), bias, stride, padding)


def affine_steps(critic: nn.Sequential, input_shape: tuple[int, ...]) -> list[Affine | LeakyReLU]:
    """The critic as :class:`Affine` maps and :class:`LeakyReLU` steps on flattened activations, ending with an
    affine map to one output; eval-mode BatchNorm is folded into the map before it, flattening is implicit."""
    if critic.training:
        raise ValueError("certify a critic in eval mode (BatchNorm with its running statistics)")
    steps: list[Affine | LeakyReLU] = []
    shape = tuple(input_shape)
    for layer in critic:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            if isinstance(layer, nn.Linear):
                shape = (math.prod(shape),)
            steps.append(_affine(layer, shape))
            shape = steps[-1].out_shape
        elif isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d):
            if not steps or not isinstance(steps[-1], Affine):
                raise TypeError("BatchNorm is certified only right after a convolution or linear layer")
            steps.append(_batchnorm(layer, steps.pop()))
        elif isinstance(layer, nn.LeakyReLU | nn.ReLU):
            steps.append(LeakyReLU(float(getattr(layer, "negative_slope", 0.0))))
        elif isinstance(layer, Flatten | nn.Flatten):
            shape = (math.prod(shape),)
        else:
            raise TypeError(f"cannot certify a {type(layer).__name__} layer")
    if not steps or not isinstance(steps[-1], Affine) or math.prod(steps[-1].out_shape) != 1:
        raise TypeError("the critic must end with an affine map to one output per image")
    return steps


def _relaxation(lower: torch.Tensor, upper: torch.Tensor, slope: float):
    """Lines below and above a leaky ReLU on [l, u], per unit: (lower slope, upper slope, upper intercept).

    Stable units are exact (slope 1 or ``slope``). On a crossing unit (l < 0 < u) the upper
    line is the chord through (l, σ(l)) and (u, u); the lower line passes through 0 with slope
    1 when u ≥ −l and ``slope`` otherwise (CROWN's adaptive choice; any slope in [slope, 1]
    is valid).
    """
    active, inactive = lower >= 0, upper <= 0
    crossing = ~(active | inactive)
    width = torch.where(crossing, upper - lower, torch.ones_like(lower))
    chord = (upper - slope * lower) / width
    up_slope = torch.where(active, 1.0, torch.where(inactive, slope, chord))
    up_intercept = torch.where(crossing, slope * lower - chord * lower, 0.0)
    low_slope = torch.where(active, 1.0, torch.where(inactive, slope, torch.where(upper >= -lower, 1.0, slope)))
    return low_slope, up_slope, up_intercept


def _backward(steps: list[Affine | LeakyReLU], coefficients: torch.Tensor, relaxations: list,
              x0: torch.Tensor, radius: torch.Tensor, q: float) -> torch.Tensor:
    """Lower bounds over B_p(x0[i], radius[i]) of linear functions of the last step's output.

    ``coefficients``: (1, m, n_out), one row per function, the same for every image;
    ``relaxations[k]``: the lines of the k-th activation of ``steps`` for every image.
    Returns (B, m).
    """
    offset = coefficients.new_zeros(1, coefficients.shape[1])
    activation = len(relaxations) - 1
    for step in reversed(steps):
        if isinstance(step, Affine):
            offset = offset + coefficients @ step.shift
            batch, rows, units = coefficients.shape
            coefficients = step.transpose(coefficients.reshape(batch * rows, units)).reshape(batch, rows, -1)
        else:
            low_slope, up_slope, up_intercept = relaxations[activation]
            activation -= 1
            negative = coefficients.clamp(max=0)  # these rows take the upper line, the others the lower one
            offset = offset + (negative @ up_intercept[:, :, None]).squeeze(-1)
            coefficients = coefficients * low_slope[:, None, :] + negative * (up_slope - low_slope)[:, None, :]
    centre = (coefficients @ x0[:, :, None]).squeeze(-1)
    return centre + offset - radius[:, None] * torch.linalg.vector_norm(coefficients, ord=q, dim=-1)


def _both_bounds(steps: list[Affine | LeakyReLU], relaxations: list, x0: torch.Tensor, radius: torch.Tensor,
                 q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds, (B, units) each, of every output unit of ``steps[-1]``."""
    units = math.prod(steps[-1].out_shape)
    eye = torch.eye(units, dtype=torch.float64, device=x0.device)
    bounds = _backward(steps, torch.cat([eye, -eye])[None], relaxations, x0, radius, q)
    return bounds[:, :units], -bounds[:, units:]


def output_bounds(steps: list[Affine | LeakyReLU], x0: torch.Tensor, radius: torch.Tensor,
                  p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of the critic's output over B_p(x0[i], radius[i]) for every image i (CROWN).

    ``x0``: (B, n) flattened images; returns two (B,) float64 tensors.
    """
    q = dual(float(p))
    x0, radius = x0.double().flatten(1), radius.double()
    relaxations: list = []
    for index, step in enumerate(steps):
        if isinstance(step, LeakyReLU):  # the interval of its input, carried back to the image
            low, high = _both_bounds(steps[:index], relaxations, x0, radius, q)
            relaxations.append(_relaxation(low, high, step.slope))
    low, high = _both_bounds(steps, relaxations, x0, radius, q)
    return low[:, 0], high[:, 0]


def certified_radius(critic: nn.Sequential, x: torch.Tensor, threshold: float, p: float, upper: torch.Tensor,
                     steps: int = 20, chunk: int = 16) -> torch.Tensor:
    """A certified L^p margin of each image: the largest ε (within ``upper`` / 2^steps, rounded down) such that
    CROWN proves f − ``threshold`` keeps the sign it has at the image on all of B_p(x, ε).

    ``upper``: a known upper bound of each margin (a found boundary point), the bisection's
    start. Images exactly on the threshold get 0. Images are bounded ``chunk`` at a time (memory).
    """
    check_choice(p, MARGIN_ORDERS, "p")
    check_int(steps, "steps", minimum=1)
    check_int(chunk, "chunk", minimum=1)
    layers = affine_steps(critic, tuple(x.shape[1:]))
    with torch.no_grad():
        score = critic(x).double().flatten() - threshold
    x0, upper = x.detach().double().flatten(1), upper.detach().double().to(x.device)
    radii = []
    for start in range(0, x0.shape[0], chunk):
        part = slice(start, start + chunk)
        low, high = torch.zeros_like(upper[part]), upper[part].clone()
        for _ in range(steps):
            middle = (low + high) / 2
            below, above = output_bounds(layers, x0[part], middle, p)
            proven = torch.where(score[part] > 0, below > threshold, above < threshold)
            low, high = torch.where(proven, middle, low), torch.where(proven, high, middle)
        radii.append(low)
    return torch.where(score == 0, 0.0, torch.cat(radii))
