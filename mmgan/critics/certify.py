"""Certified lower bounds of a critic's margin by linear bound propagation (CROWN).

A margin search (:mod:`mmgan.margins`) or an attack returns a point where f − t changes
sign: an *upper* bound of the L^p distance from x to {f = t} (eq. 3). A *lower* bound needs
a proof that f − t keeps its sign on the whole ball B_p(x, ε). The Lipschitz bound of
:func:`mmgan.critics.instruments.lipschitz_bound` gives one, but it multiplies worst cases of
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

**Train mode** (the critic as trained, :mod:`mmgan.critics.held_batch`): each image x is
scored in its class-pure batch [x, mates], the mates held fixed, and BatchNorm normalises with
the batch's mean μ and variance σ² per channel, which contain x's share. That is no longer an
affine step, and the certificate stays sound by bounding it (:class:`BatchStatistics`): the
BatchNorm input a (the unit's pre-activation) lies in [l, u] on the ball (CROWN, as for any
activation); the channel mean μ = (n_m·m_m + Σ_x a)/n in an interval from CROWN bounds of x's
channel sum; the variance σ² = min_m (1/n)[M2_m + n_m(m_m − m)² + Σ_x (a − m)²] between a lower
bound (that minimum with each (a − m)² replaced by the squared distance from m to [l, u],
minimised over m by bisection) and an upper bound (the same sum with the largest (a − m̂)² on
[l, u], at m̂ the middle of μ's interval). The unit's output γ·(a − μ)/√(σ² + eps) + β is then
k·w + β with k = γ/√(σ² + eps) and w = a − μ in intervals, and McCormick's planes, with the
worst case over k and μ taken, give lines below and above it in a (:func:`_batchnorm_relaxation`).
μ and σ² are treated as free in their intervals though they move with a (sound, a little loose;
x's share of each statistic is 1/b). All bounds are exact at ε = 0. Implemented for critics with
one BatchNorm layer (every committed CPU study's 16-px DCGAN critic): with more, the mates'
activations after the first BatchNorm move with x too.

An auto_LiRPA release compatible with this project's pinned torch does not exist on the
package index (its 0.3 requires torch < 1.13), hence this small implementation for
sequential networks of the layers the GAN critics use.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from mmgan.base.registry import check_choice, check_int
from mmgan.critics.held_batch import HeldBatchCritic
from mmgan.gan.models import Flatten
from mmgan.margins import MARGIN_ORDERS
from mmgan.norms import dual

#: Convolutions with at most this many (out units × in units) are applied as dense float64 matrices (32 MB).
DENSE_LIMIT = 1 << 22


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

    @functools.cached_property
    def matrix(self) -> torch.Tensor | None:
        """The convolution as a dense (out units, in units) matrix where it is small (:data:`DENSE_LIMIT` entries):
        float64 convolutions have no fast CPU kernel, a float64 matrix product has; None otherwise."""
        if self.stride is None:
            return self.weight
        units_in, units_out = math.prod(self.in_shape), math.prod(self.out_shape)
        if units_in * units_out > DENSE_LIMIT:
            return None
        eye = torch.eye(units_in, dtype=self.weight.dtype, device=self.weight.device).reshape(-1, *self.in_shape)
        return nn.functional.conv2d(eye, self.weight, None, self.stride, self.padding).flatten(1).T.contiguous()

    @functools.cached_property
    def jacobian(self) -> torch.Tensor:
        """The map's (out units, in units) Jacobian, scale included: each output unit's row of coefficients."""
        return self.transpose(torch.eye(math.prod(self.out_shape), dtype=torch.float64, device=self.weight.device))

    @functools.cached_property
    def _row_norms(self) -> dict[float, torch.Tensor]:
        return {}

    def row_norms(self, q: float) -> torch.Tensor:
        """‖row‖_q of every row of :attr:`jacobian` (cached per q)."""
        if q not in self._row_norms:
            self._row_norms[q] = torch.linalg.vector_norm(self.jacobian, ord=q, dim=1)
        return self._row_norms[q]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, in units) → (N, out units)."""
        if self.matrix is not None:
            out = z @ self.matrix.T
        else:
            out = nn.functional.conv2d(z.reshape(-1, *self.in_shape), self.weight, None, self.stride,
                                       self.padding).flatten(1)
        return out * self.scale + self.shift

    def transpose(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Coefficients on the outputs carried to the inputs (the Jacobian's transpose): (N, out) → (N, in)."""
        coefficients = coefficients * self.scale
        if self.matrix is not None:
            return coefficients @ self.matrix
        grad = coefficients.reshape(-1, *self.out_shape)
        return nn.grad.conv2d_input((grad.shape[0], *self.in_shape), self.weight, grad, self.stride,
                                    self.padding).flatten(1)

    @functools.cached_property
    def _blocks(self) -> dict[bytes, tuple[torch.Tensor, torch.Tensor]]:
        return {}

    def transpose_on(self, coefficients: torch.Tensor,
                     columns: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`transpose` of coefficients that are zero outside the output units ``columns`` (N, len(columns)),
        which it holds: the coefficients on the input units that any of those outputs reads (N, len(inputs)) and
        those ``inputs``, the others' coefficients being exactly zero. A small block of the dense matrix instead of
        all of it (a convolution's output unit reads a patch); all units (None) where there is no dense matrix."""
        if columns is None or self.matrix is None:
            if columns is not None:
                coefficients = coefficients.new_zeros(coefficients.shape[0], math.prod(self.out_shape)).index_copy_(
                    1, columns, coefficients)
            return self.transpose(coefficients), None
        key = columns.cpu().numpy().tobytes()
        if key not in self._blocks:
            rows = self.matrix[columns]
            inputs = rows.ne(0).any(0).nonzero().flatten()
            self._blocks[key] = rows[:, inputs].contiguous(), inputs
        block, inputs = self._blocks[key]
        return (coefficients * self.scale[columns]) @ block, inputs

    @functools.cached_property
    def row_groups(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The output units grouped by the input units they read (a convolution's: one group per position and
        padding pattern): (units, the inputs they read) per group, from :attr:`jacobian`'s non-zeros."""
        reads = self.jacobian.ne(0)
        patterns, group = torch.unique(reads, dim=0, return_inverse=True)
        return [((group == g).nonzero().flatten(), patterns[g].nonzero().flatten()) for g in range(len(patterns))]


@dataclass(frozen=True)
class LeakyReLU:
    """max(z, 0) + slope · min(z, 0), element-wise (slope 0: ReLU)."""

    slope: float

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, z, self.slope * z)


@dataclass(frozen=True)
class BatchStatistics:
    """Train-mode BatchNorm of each image in its own batch, the image's b − 1 mates held fixed: per channel,
    the mates' activations have mean ``mate_mean`` (B, C) and sum of squared deviations ``mate_m2`` (B, C) over
    ``mate_count`` values; the image adds its H·W values of the channel. All tensors float64."""

    weight: torch.Tensor  # (C,)
    bias: torch.Tensor  # (C,)
    eps: float
    shape: tuple[int, ...]  # (C, H, W) or (C,)
    mate_mean: torch.Tensor
    mate_m2: torch.Tensor
    mate_count: int

    @property
    def per_channel(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape

    def select(self, rows: slice | torch.Tensor) -> BatchStatistics:
        """The step for some of its images."""
        return dataclasses.replace(self, mate_mean=self.mate_mean[rows], mate_m2=self.mate_m2[rows])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, units) → (B, units), row i normalised in image i's batch."""
        a = z.reshape(z.shape[0], self.shape[0], self.per_channel)
        own = self.per_channel
        total = self.mate_count + own
        own_mean = a.mean(2)
        delta = own_mean - self.mate_mean
        mean = self.mate_mean + delta * (own / total)
        m2 = self.mate_m2 + (a - own_mean[:, :, None]).square().sum(2) + delta.square() * (self.mate_count * own
                                                                                            / total)
        out = (a - mean[:, :, None]) / torch.sqrt(m2[:, :, None] / total + self.eps)
        return (out * self.weight[None, :, None] + self.bias[None, :, None]).flatten(1)


Step = Affine | LeakyReLU | BatchStatistics


def evaluate(steps: list[Step], x: torch.Tensor) -> torch.Tensor:
    """The critic computed from its steps, in float64: (B, ...) → (B,)."""
    z = x.double().flatten(1)
    for step in steps:
        z = step.forward(z)
    return z[:, 0]


def _batchnorm(layer: nn.BatchNorm2d | nn.BatchNorm1d, previous: Affine) -> Affine:
    """Eval-mode BatchNorm (running statistics) folded into the affine map before it."""
    scale = layer.weight.detach().double() / torch.sqrt(layer.running_var.double() + layer.eps)
    shift = layer.bias.detach().double() - layer.running_mean.double() * scale
    per_unit = math.prod(previous.out_shape[1:])
    scale, shift = scale.repeat_interleave(per_unit), shift.repeat_interleave(per_unit)
    return dataclasses.replace(previous, scale=previous.scale * scale, shift=previous.shift * scale + shift)


def _batch_statistics(layer: nn.BatchNorm2d | nn.BatchNorm1d, before: list[Step], mates: torch.Tensor,
                      shape: tuple[int, ...]) -> BatchStatistics:
    """Train-mode BatchNorm after ``before``: the mates' activations there (fixed) and their channel moments."""
    images, others = mates.shape[:2]
    with torch.no_grad():
        z = mates.detach().double().flatten(0, 1).flatten(1)
        for step in before:
            z = step.forward(z)
    values = z.reshape(images, others, shape[0], -1)
    mean = values.mean((1, 3))
    m2 = (values - mean[:, None, :, None]).square().sum((1, 3))
    weight = (layer.weight.detach().double() if layer.affine else torch.ones(shape[0], dtype=torch.float64))
    bias = (layer.bias.detach().double() if layer.affine else torch.zeros(shape[0], dtype=torch.float64))
    return BatchStatistics(weight.to(z.device), bias.to(z.device), float(layer.eps), tuple(shape), mean, m2,
                           others * values.shape[3])


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


def affine_steps(critic: nn.Sequential, input_shape: tuple[int, ...],
                 mates: torch.Tensor | None = None) -> list[Step]:
    """The critic as :class:`Affine` maps and :class:`LeakyReLU` steps on flattened activations, ending with an
    affine map to one output; eval-mode BatchNorm is folded into the map before it, flattening is implicit.

    With ``mates`` (B, b − 1, ...), the train-mode critic of :class:`mmgan.critics.held_batch.HeldBatchCritic`
    (image i of a batch of B in the batch [image, mates[i]]): its BatchNorm becomes a :class:`BatchStatistics`
    step; one BatchNorm layer at most."""
    if critic.training and mates is None:
        raise ValueError("certify a critic in eval mode (BatchNorm with its running statistics), or give each "
                         "image's batch mates for the train-mode critic")
    if mates is not None and sum(isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d) for layer in critic) > 1:
        raise TypeError("a train-mode certificate is implemented for critics with one BatchNorm layer: with more, "
                        "the mates' activations after the first move with the image too")
    steps: list[Step] = []
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
            if mates is None:
                steps.append(_batchnorm(layer, steps.pop()))
            else:
                steps.append(_batch_statistics(layer, steps, mates, shape))
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
    """Lines below and above a leaky ReLU on [l, u], per unit: (lower slope, lower intercept, upper slope, upper
    intercept).

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
    low_slope = low_slope.to(lower.dtype)  # a where over Python numbers alone would be in the default dtype
    return low_slope, None, up_slope, up_intercept  # the lower line passes through 0


def _lowest_variance(step: BatchStatistics, lower: torch.Tensor, upper: torch.Tensor,
                     iterations: int = 64) -> torch.Tensor:
    """A lower bound of n·σ² over the image's activations a ∈ [lower, upper] (B, C, H·W): the minimum over m of
    φ(m) = M2_m + n_m(m_m − m)² + Σ dist(m, [l, u])² (convex), found by bisection on φ' and corrected by the
    remaining bracket (φ(m̃) − |φ'(m̃)|·width ≤ min φ), so that it stays a lower bound."""
    centre, count = step.mate_mean, step.mate_count
    low = torch.minimum(centre, lower.amin(2))
    high = torch.maximum(centre, upper.amax(2))

    def slope(m: torch.Tensor) -> torch.Tensor:
        m3 = m[:, :, None]
        return count * (m - centre) + (m3 - torch.minimum(torch.maximum(m3, lower), upper)).sum(2)

    for _ in range(iterations):
        middle = (low + high) / 2
        rising = slope(middle) >= 0
        low, high = torch.where(rising, low, middle), torch.where(rising, middle, high)
    m = (low + high) / 2
    m3 = m[:, :, None]
    gap = m3 - torch.minimum(torch.maximum(m3, lower), upper)
    value = step.mate_m2 + count * (centre - m).square() + gap.square().sum(2)
    return (value - 2 * slope(m).abs() * (high - low)).clamp_min(0.0)


def _batchnorm_relaxation(step: BatchStatistics, lower: torch.Tensor, upper: torch.Tensor, mean_low: torch.Tensor,
                          mean_high: torch.Tensor):
    """Lines below and above a train-mode BatchNorm unit on its input interval [l, u] (B, units), given bounds of
    the image's own channel means (B, C): (lower slope, lower intercept, upper slope, upper intercept), per unit.

    Output γ·(a − μ)/√(σ² + eps) + β = k·w + β with k ∈ [k_l, k_u] (from σ²'s bounds) and w = a − μ (μ from its
    bounds); McCormick's planes k·w ≥ k_l·w + Δ·min(w_l, 0), k·w ≥ k_u·w − Δ·max(w_u, 0), k·w ≤ k_u·w + Δ·max(−w_l, 0),
    k·w ≤ k_l·w + Δ·max(w_u, 0) (Δ = k_u − k_l), with the worst μ in k·μ; of each pair, the line better at the
    interval's middle."""
    images, channels, size = lower.shape[0], step.shape[0], step.per_channel
    a_low, a_high = lower.reshape(images, channels, size), upper.reshape(images, channels, size)
    count, total = step.mate_count, step.mate_count + size
    mu_low = (count * step.mate_mean + size * mean_low) / total
    mu_high = (count * step.mate_mean + size * mean_high) / total
    middle = (mu_low + mu_high) / 2
    worst = torch.maximum((a_low - middle[:, :, None]).square(), (a_high - middle[:, :, None]).square()).sum(2)
    var_high = (step.mate_m2 + count * (step.mate_mean - middle).square() + worst) / total
    var_low = _lowest_variance(step, a_low, a_high) / total
    ends = torch.stack([step.weight / torch.sqrt(var_high + step.eps), step.weight / torch.sqrt(var_low + step.eps)])
    k_low, k_high = ends.amin(0)[:, :, None], ends.amax(0)[:, :, None]
    spread = k_high - k_low
    w_low, w_high = a_low - mu_high[:, :, None], a_high - mu_low[:, :, None]
    mu = torch.stack([mu_low, mu_high])[:, :, :, None]

    def extreme(k: torch.Tensor, largest: bool) -> torch.Tensor:  # max or min over μ of k·μ
        products = k[None] * mu
        return products.amax(0) if largest else products.amin(0)

    lines_below = [(k_low, -extreme(k_low, True) + spread * w_low.clamp(max=0)),
                   (k_high, -extreme(k_high, True) - spread * w_high.clamp(min=0))]
    lines_above = [(k_high, -extreme(k_high, False) + spread * (-w_low).clamp(min=0)),
                   (k_low, -extreme(k_low, False) + spread * w_high.clamp(min=0))]
    centre = (a_low + a_high) / 2

    def pick(lines, better) -> tuple[torch.Tensor, torch.Tensor]:
        (s1, c1), (s2, c2) = [(s.expand_as(a_low), c.expand_as(a_low)) for s, c in lines]
        first = better(s1 * centre + c1, s2 * centre + c2)
        return torch.where(first, s1, s2), torch.where(first, c1, c2)

    low_slope, low_intercept = pick(lines_below, torch.ge)
    up_slope, up_intercept = pick(lines_above, torch.le)
    bias = step.bias[None, :, None]
    return (low_slope.flatten(1), (low_intercept + bias).flatten(1), up_slope.flatten(1),
            (up_intercept + bias).flatten(1))


def _backward(steps: list[Step], coefficients: torch.Tensor, relaxations: list,
              x0: torch.Tensor, radius: torch.Tensor, q: float, offset: torch.Tensor | None = None,
              columns: torch.Tensor | None = None) -> torch.Tensor:
    """Lower bounds over B_p(x0[i], radius[i]) of linear functions (plus ``offset``) of the last step's output.

    ``coefficients``: (1, m, n), one row per function, the same for every image, on the output units ``columns``
    of the last step (default: all of them; the other units' coefficients are zero);
    ``relaxations[k]``: the lines of the k-th element-wise step (activation or train-mode BatchNorm) of
    ``steps`` for every image. Only the units that the functions read are carried back
    (:meth:`Affine.transpose_on`). Returns (B, m).
    """
    offset = coefficients.new_zeros(1, coefficients.shape[1]) if offset is None else offset
    activation = len(relaxations) - 1
    for step in reversed(steps):
        if isinstance(step, Affine):
            offset = offset + coefficients @ (step.shift if columns is None else step.shift[columns])
            batch, rows, units = coefficients.shape
            coefficients, columns = step.transpose_on(coefficients.reshape(batch * rows, units), columns)
            coefficients = coefficients.reshape(batch, rows, -1)
        else:
            low_slope, low_intercept, up_slope, up_intercept = (
                lines if lines is None or columns is None else lines[:, columns] for lines in relaxations[activation])
            activation -= 1
            negative = coefficients.clamp(max=0)  # these rows take the upper line, the others the lower one
            offset = offset + (negative @ up_intercept[:, :, None]).squeeze(-1)
            if low_intercept is not None:
                offset = offset + ((coefficients - negative) @ low_intercept[:, :, None]).squeeze(-1)
            coefficients = coefficients * torch.where(negative < 0, up_slope[:, None, :], low_slope[:, None, :])
    x0 = x0 if columns is None else x0[:, columns]
    centre = (coefficients @ x0[:, :, None]).squeeze(-1)
    return centre + offset - radius[:, None] * torch.linalg.vector_norm(coefficients, ord=q, dim=-1)


def _through_lines(lines: tuple, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of an element-wise step's outputs from its lines and its inputs' bounds. For a unit's own row, CROWN
    carried back through the step gives exactly this (a line's slope times the unit's bound), so an element-wise
    step right after another needs no pass of its own."""
    low_slope, low_intercept, up_slope, up_intercept = lines
    below = torch.minimum(low_slope * low, low_slope * high) + (0.0 if low_intercept is None else low_intercept)
    above = torch.maximum(up_slope * low, up_slope * high) + up_intercept
    return below, above


def _both_bounds(steps: list[Step], relaxations: list, x0: torch.Tensor, radius: torch.Tensor,
                 q: float, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds, (B, m) each, of linear functions ``rows`` (m, units; default: the identity, every
    output unit) of the output of ``steps[-1]``."""
    if rows is None and isinstance(steps[-1], Affine):  # every unit of an affine map: start from its Jacobian
        last = steps[-1]
        if len(steps) == 1:  # an affine map of the image: a·x0 + c ± ε‖a‖_q in closed form
            centre = last.forward(x0)
            spread = radius[:, None] * last.row_norms(q)
            return centre - spread, centre + spread
        low = x0.new_empty(x0.shape[0], last.jacobian.shape[0])
        high = torch.empty_like(low)
        for units, reads in last.row_groups:  # each group of units carried back over the inputs it reads
            rows = last.jacobian[units][:, reads]
            bounds = _backward(steps[:-1], torch.cat([rows, -rows])[None], relaxations, x0, radius, q,
                               torch.cat([last.shift[units], -last.shift[units]])[None], reads)
            low[:, units], high[:, units] = bounds[:, :len(units)], -bounds[:, len(units):]
        return low, high
    if rows is None:
        units = math.prod(steps[-1].out_shape)
        rows = torch.eye(units, dtype=torch.float64, device=x0.device)
    bounds = _backward(steps, torch.cat([rows, -rows])[None], relaxations, x0, radius, q)
    return bounds[:, :rows.shape[0]], -bounds[:, rows.shape[0]:]


def output_bounds(steps: list[Step], x0: torch.Tensor, radius: torch.Tensor,
                  p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of the critic's output over B_p(x0[i], radius[i]) for every image i (CROWN).

    ``x0``: (B, n) flattened images; returns two (B,) float64 tensors.
    """
    q = dual(float(p))
    x0, radius = x0.double().flatten(1), radius.double()
    relaxations: list = []
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None  # the interval of the last element-wise step's input
    for index, step in enumerate(steps):
        if isinstance(step, LeakyReLU | BatchStatistics):  # the interval of its input, carried back to the image
            if index and isinstance(steps[index - 1], LeakyReLU | BatchStatistics):
                low, high = _through_lines(relaxations[-1], *inputs)
            else:
                low, high = _both_bounds(steps[:index], relaxations, x0, radius, q)
            inputs = low, high
        if isinstance(step, LeakyReLU):
            relaxations.append(_relaxation(low, high, step.slope))
        elif isinstance(step, BatchStatistics):  # and the image's channel means
            averages = torch.eye(step.shape[0], dtype=torch.float64, device=x0.device).repeat_interleave(
                step.per_channel, 1) / step.per_channel
            mean_low, mean_high = _both_bounds(steps[:index], relaxations, x0, radius, q, averages)
            channel = (step.shape[0], step.per_channel)
            mean_low = torch.maximum(mean_low, low.unflatten(1, channel).mean(2))
            mean_high = torch.minimum(mean_high, high.unflatten(1, channel).mean(2))
            relaxations.append(_batchnorm_relaxation(step, low, high, mean_low, mean_high))
    low, high = _both_bounds(steps, relaxations, x0, radius, q)
    return low[:, 0], high[:, 0]


#: Doublings of the bisection's start when a certificate is not capped (``expand``): up to 2^EXPAND × ``upper``.
EXPAND = 8


def certified_radius(critic: nn.Sequential, x: torch.Tensor, threshold: float, p: float, upper: torch.Tensor,
                     steps: int = 20, chunk: int = 16, mates: torch.Tensor | None = None,
                     expand: bool = False) -> torch.Tensor:
    """A certified L^p margin of each image: the largest ε (within ``upper`` / 2^steps, rounded down) such that
    CROWN proves f − ``threshold`` keeps the sign it has at the image on all of B_p(x, ε).

    ``upper``: a known upper bound of each margin (a found boundary point), the bisection's
    start. Images exactly on the threshold get 0. Images are bounded ``chunk`` at a time (memory).
    ``mates`` (B, b − 1, ...): certify the train-mode critic, each image in its batch with its mates held fixed
    (:class:`mmgan.critics.held_batch.HeldBatchCritic`). ``expand``: the certificate is not capped at ``upper``:
    the bisection's end first doubles while the ball is still proven (up to :data:`EXPAND` times), so an unsound
    certificate could exceed a known boundary point (the soundness check, :mod:`mmgan.critics.soundness`).
    """
    check_choice(p, MARGIN_ORDERS, "p")
    check_int(steps, "steps", minimum=1)
    check_int(chunk, "chunk", minimum=1)
    layers = affine_steps(critic, tuple(x.shape[1:]), mates)
    with torch.no_grad():
        f = critic if mates is None else HeldBatchCritic(critic, mates)
        score = f(x).double().flatten() - threshold
    x0, upper = x.detach().double().flatten(1), upper.detach().double().to(x.device)
    radii = []
    for start in range(0, x0.shape[0], chunk):
        part = slice(start, start + chunk)
        chunk_layers = [step.select(part) if isinstance(step, BatchStatistics) else step for step in layers]

        def proven(radius: torch.Tensor, part: slice = part, chunk_layers: list = chunk_layers) -> torch.Tensor:
            below, above = output_bounds(chunk_layers, x0[part], radius, p)
            return torch.where(score[part] > 0, below > threshold, above < threshold)

        low, high = torch.zeros_like(upper[part]), upper[part].clone()
        for _ in range(EXPAND if expand else 0):  # one host synchronisation per doubling, to stop when none grows
            grow = proven(high)
            if not bool(grow.any()):
                break
            low, high = torch.where(grow, high, low), torch.where(grow, 2 * high, high)
        for _ in range(steps):
            middle = (low + high) / 2
            inside = proven(middle)
            low, high = torch.where(inside, middle, low), torch.where(inside, high, middle)
        radii.append(low)
    return torch.where(score == 0, 0.0, torch.cat(radii))
