"""K GAN networks of one architecture as one packed network: grouped convolutions (the runs of §6's tables).

A batch-32 DCGAN leaves a GPU mostly idle.
The cells of a table (loss × q × g × seed) share the architecture, the image size
and the optimiser, so K of them can be trained as *one* network whose layers are
K independent copies side by side:

==========================  ====================================================
one run                     packed (K runs)
==========================  ====================================================
input (B, C, H, W)          (B, K·C, H, W): run k's channels are k·C … k·C+C−1
noise (B, z)                (B, K·z)
Conv2d / ConvTranspose2d    ``groups=K`` (times the run's own groups), K× the
                            channels: group k only sees run k's channels
Linear (standard CNN)       :class:`PackedLinear`, K matrices in one ``bmm``
BatchNorm2d                 :class:`PackedBatchNorm2d` over K·C channels: the
                            statistics are per channel, so each run's channels
                            are normalised exactly as alone (train and eval)
ReLU, LeakyReLU, Tanh       unchanged (elementwise)
Unflatten(1, (c, h, w))     Unflatten(1, (K·c, h, w)): run k's block of c·h·w
                            features becomes its c channels
Flatten / scores            run k's block of features stays contiguous;
                            the critic returns (B, K), :func:`packed_critic_scores`
                            (K, B)
==========================  ====================================================

Every weight, Adam moment and BatchNorm statistic of the packed network is the K
runs' tensors concatenated along dimension 0 (a 0-d buffer becomes a (K,) one),
so :func:`pack_modules` / :func:`unpack_modules` (and :func:`mmgan.gan.packed.pack_adam` /
:func:`mmgan.gan.packed.unpack_adam`) are a concatenation and a reshape.

Why the runs stay independent in the network, exactly:

* forward: a group of a grouped convolution reads its own run's channels only,
  BatchNorm is per channel, the other layers are elementwise or per run;
* the gradient penalty: the gradient of the summed scores ``Σ_{k,i} C_k(x̂_{k,i})``
  with respect to ``x̂_k`` is run k's input gradient, because run k's scores
  depend on ``x̂_k`` only (BatchNorm in train mode mixes the samples of one run,
  exactly as in the unpacked critic); the double backward goes through the
  grouped convolutions like through plain ones.

The training step over packed networks (Adam, random draws, losses) is :mod:`mmgan.gan.packed`.

Why not ``torch.func.vmap`` over ``functional_call`` with stacked weights (checked
with torch 2.14): the penalty's ``torch.autograd.grad(..., create_graph=True)``
cannot run inside ``vmap`` ("You are attempting to call Tensor.requires_grad_()
... inside of a function being transformed by a functorch transform"); rewriting
it with ``torch.func.grad`` inside ``vmap`` works only once BatchNorm no longer
updates its running statistics ("attempted to call in-place operation
(aten::add_.Tensor) that would mutate a captured Tensor"), i.e. after
``torch.func.replace_all_batch_norm_modules_``, which changes what a run
checkpoints and samples in eval mode; and vmap batches a convolution over
stacked weights into a grouped convolution anyway. Grouped layers are ordinary
modules: ordinary autograd, double backward and ``state_dict``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmgan.gan.models import Flatten
from mmgan.norms import GradNormOrder, grad_norm
from mmgan.penalties import batched_gradient_penalty, penalty_shape, per_model

__all__ = ["PackedBatchNorm2d", "PackedFlatten", "PackedLinear", "PackedSequential", "check_runs", "pack_modules",
           "packed_critic_scores", "packed_generate", "packed_gradient_penalty", "unpack_modules"]

#: Layers copied unchanged into the packed network (they act elementwise).
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity)
_SUPPORTED = ("Conv2d", "ConvTranspose2d", "Linear", "BatchNorm2d", "Unflatten", "Flatten", "mmgan Flatten",
              *(t.__name__ for t in _ELEMENTWISE))


# ----------------------------------------------------------------------------- packed layers


class PackedLinear(nn.Module):
    """K linear maps ``in → out``: (B, K·in) → (B, K·out), run k reading and writing its own block.

    ``weight`` is (K·out, in) and ``bias`` (K·out,): the K runs' ``nn.Linear`` tensors concatenated.
    """

    def __init__(self, runs: int, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.runs, self.in_features, self.out_features = runs, in_features, out_features
        self.weight = nn.Parameter(torch.empty(runs * out_features, in_features, device=device, dtype=dtype))
        self.bias = (nn.Parameter(torch.zeros(runs * out_features, device=device, dtype=dtype)) if bias
                     else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        per_run = x.reshape(batch, self.runs, self.in_features).transpose(0, 1)  # (K, B, in)
        weight = self.weight.view(self.runs, self.out_features, self.in_features).transpose(1, 2)
        if self.bias is None:
            out = torch.bmm(per_run, weight)
        else:
            out = torch.baddbmm(self.bias.view(self.runs, 1, self.out_features), per_run, weight)
        return out.transpose(0, 1).reshape(batch, self.runs * self.out_features)

    def extra_repr(self) -> str:
        return (f"runs={self.runs}, in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class PackedBatchNorm2d(nn.Module):
    """BatchNorm2d of K runs over K·C channels, with one ``num_batches_tracked`` per run.

    The computation is ``nn.BatchNorm2d``'s (affine, running statistics with a
    fixed momentum). :attr:`update_runs` (a (K,) bool tensor, normally None) makes
    a train-mode forward update the running statistics of the chosen runs only, for
    a critic pass that some runs make and the others do not (the relativistic
    generator step scores real images, the plain losses do not).
    """

    def __init__(self, runs: int, num_features: int, eps: float, momentum: float,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.runs, self.num_features, self.eps, self.momentum = runs, num_features, eps, momentum
        channels = runs * num_features
        self.weight = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(channels, device=device, dtype=dtype))
        self.register_buffer("running_var", torch.ones(channels, device=device, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.zeros(runs, dtype=torch.long, device=device))
        self.update_runs: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D input (B, K·C, H, W), got {tuple(x.shape)}")
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        if self.update_runs is None:
            self.num_batches_tracked.add_(1)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                                self.momentum, self.eps)
        mean, var = self.running_mean.clone(), self.running_var.clone()
        out = F.batch_norm(x, mean, var, self.weight, self.bias, True, self.momentum, self.eps)
        update = self.update_runs.to(self.running_mean.device, non_blocking=True)  # no host synchronisation
        keep = update.repeat_interleave(self.num_features)
        with torch.no_grad():
            self.running_mean.copy_(torch.where(keep, mean, self.running_mean))
            self.running_var.copy_(torch.where(keep, var, self.running_var))
            self.num_batches_tracked.add_(update.long())
        return out

    def extra_repr(self) -> str:
        return f"runs={self.runs}, num_features={self.num_features}, eps={self.eps}, momentum={self.momentum}"


class PackedFlatten(nn.Module):
    """The packed :class:`mmgan.gan.models.Flatten`: (B, K, 1, 1) or (B, K) → (B, K), one score per run and sample."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.runs)

    def extra_repr(self) -> str:
        return f"runs={self.runs}"


class PackedSequential(nn.Sequential):
    """The packed network of K runs (same layer indices, hence the same ``state_dict`` keys, as one run's)."""

    def __init__(self, runs: int, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self.runs = runs


def _packed_layer(layers: list[nn.Module], runs: int, index: int) -> nn.Module:
    first = layers[0]
    for other in layers[1:]:
        if type(other) is not type(first) or repr(other) != repr(first):
            raise ValueError(f"pack_modules: layer {index} differs between the runs ({first!r} vs {other!r}); "
                             "packed runs must share the architecture")
    tensors = [dict(layer.named_parameters()) | dict(layer.named_buffers()) for layer in layers]
    for name, value in tensors[0].items():
        for other in tensors[1:]:
            if other[name].shape != value.shape or other[name].dtype != value.dtype \
                    or other[name].device != value.device:
                raise ValueError(f"pack_modules: {name} of layer {index} ({type(first).__name__}) differs in shape, "
                                 "dtype or device between the runs")
    weight = next(iter(first.parameters()), None)
    factory = {"device": weight.device, "dtype": weight.dtype} if weight is not None else {}
    kind = type(first)
    if kind is nn.Conv2d:
        return nn.Conv2d(runs * first.in_channels, runs * first.out_channels, first.kernel_size, first.stride,
                         first.padding, first.dilation, runs * first.groups, first.bias is not None,
                         first.padding_mode, **factory)
    if kind is nn.ConvTranspose2d:
        return nn.ConvTranspose2d(runs * first.in_channels, runs * first.out_channels, first.kernel_size,
                                  first.stride, first.padding, first.output_padding, runs * first.groups,
                                  first.bias is not None, first.dilation, first.padding_mode, **factory)
    if kind is nn.Linear:
        return PackedLinear(runs, first.in_features, first.out_features, first.bias is not None, **factory)
    if kind is nn.BatchNorm2d:
        if not (first.affine and first.track_running_stats and first.momentum is not None):
            raise ValueError(f"pack_modules: layer {index} {first!r} is not supported in packed mode: BatchNorm2d "
                             "needs affine=True, track_running_stats=True and a momentum (not None)")
        return PackedBatchNorm2d(runs, first.num_features, first.eps, first.momentum, **factory)
    if kind is nn.Unflatten:
        if first.dim != 1:
            raise ValueError(f"pack_modules: layer {index} {first!r} is not supported in packed mode (dim must be 1)")
        channels, *rest = first.unflattened_size
        return nn.Unflatten(1, (runs * channels, *rest))
    if kind is nn.Flatten:
        if (first.start_dim, first.end_dim) != (1, -1):
            raise ValueError(f"pack_modules: layer {index} {first!r} is not supported in packed mode "
                             "(only Flatten(1, -1))")
        return nn.Flatten()
    if kind is Flatten:
        return PackedFlatten(runs)
    if kind in _ELEMENTWISE:
        return copy.deepcopy(first)
    raise ValueError(f"pack_modules: layer {index} ({kind.__name__}) is not supported in packed mode; "
                     f"supported layers: {', '.join(_SUPPORTED)}")


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def check_runs(packed: nn.Module, count: int, what: str) -> int:
    """The run count of ``packed`` (a :class:`PackedSequential`), checked to be ``count`` (``ValueError`` naming
    ``what`` otherwise)."""
    runs = getattr(packed, "runs", None)
    if not isinstance(packed, PackedSequential) or runs is None:
        raise ValueError(f"{what}: expected a PackedSequential from pack_modules, got {type(packed).__name__}")
    if count != runs:
        raise ValueError(f"{what}: the packed network holds {runs} runs, got {count}")
    return runs


def pack_modules(models: Sequence[nn.Module]) -> PackedSequential:
    """The packed network of K identically shaped ``nn.Sequential`` networks (e.g. from
    :func:`mmgan.gan.models.make_gan`), holding copies of their weights and BatchNorm statistics.

    The packed generator maps (B, K·z_dim) to (B, K·C, H, W) and the packed critic
    (B, K·C, H, W) to (B, K); :func:`packed_generate` and :func:`packed_critic_scores`
    take and return the runs on a leading axis. The packed network is in the
    train/eval mode of the runs. Raises ``ValueError`` naming an unsupported layer,
    or a layer that differs between the runs.
    """
    models = list(models)
    if not models:
        raise ValueError("pack_modules needs at least one network")
    for model in models:
        if not isinstance(model, nn.Sequential):
            raise ValueError(f"pack_modules packs nn.Sequential networks, got {type(model).__name__}")
    if len({len(m) for m in models}) != 1:
        raise ValueError(f"pack_modules: the networks differ in length ({[len(m) for m in models]})")
    if len({m.training for m in models}) != 1:
        raise ValueError("pack_modules: the networks must all be in train mode or all in eval mode")
    runs = len(models)
    packed = PackedSequential(runs, *(_packed_layer([m[i] for m in models], runs, i) for i in range(len(models[0]))))
    sources = [_state_tensors(m) for m in models]
    targets = _state_tensors(packed)
    if set(targets) != set(sources[0]):
        raise ValueError(f"pack_modules: unexpected tensors {sorted(set(targets) ^ set(sources[0]))}")
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(torch.stack([s[name] for s in sources]).reshape(target.shape))
    return packed.train(models[0].training)


def unpack_modules(packed: PackedSequential, template_models: Sequence[nn.Module]) -> list[nn.Module]:
    """Write the packed weights and BatchNorm statistics back into the K networks ``template_models``
    (in place, so optimisers holding their parameters stay valid); returns them."""
    models = list(template_models)
    runs = check_runs(packed, len(models), "unpack_modules")
    source = _state_tensors(packed)
    with torch.no_grad():
        for k, model in enumerate(models):
            targets = _state_tensors(model)
            if set(targets) != set(source):
                raise ValueError(f"unpack_modules: network {k} does not match the packed one "
                                 f"(tensors {sorted(set(targets) ^ set(source))})")
            for name, target in targets.items():
                target.copy_(source[name].reshape(runs, *target.shape)[k])
    return models


# ----------------------------------------------------------------------------- packed forward and penalty


def packed_generate(packed_gen: PackedSequential, z: torch.Tensor) -> torch.Tensor:
    """Samples of the K generators: noise (K, B, z_dim) → images (K, B, C, H, W)."""
    runs = packed_gen.runs
    if z.dim() != 3 or z.shape[0] != runs:
        raise ValueError(f"expected noise of shape ({runs}, B, z_dim), got {tuple(z.shape)}")
    batch = z.shape[1]
    out = packed_gen(z.transpose(0, 1).reshape(batch, runs * z.shape[2]))
    return out.reshape(batch, runs, out.shape[1] // runs, *out.shape[2:]).transpose(0, 1)


def packed_critic_scores(packed_critic: PackedSequential, x: torch.Tensor) -> torch.Tensor:
    """Scores of the K critics, each on its own batch: (K, B, C, H, W) → (K, B)."""
    runs = packed_critic.runs
    if x.dim() < 3 or x.shape[0] != runs:
        raise ValueError(f"expected inputs of shape ({runs}, B, C, ...), got {tuple(x.shape)}")
    batch = x.shape[1]
    scores = packed_critic(x.transpose(0, 1).reshape(batch, runs * x.shape[2], *x.shape[3:]))
    if scores.shape != (batch, runs):
        raise ValueError(f"the packed critic must return ({batch}, {runs}), got {tuple(scores.shape)}")
    return scores.transpose(0, 1)


def packed_gradient_penalty(packed_critic: PackedSequential, x_hat: torch.Tensor,
                            q: GradNormOrder | Sequence[GradNormOrder] = 2, g: str | Sequence[str] = "ls",
                            as_released: bool | Sequence[bool] = False, *, create_graph: bool = True
                            ) -> torch.Tensor:
    """(K,) run k's ``mean_i g_k(‖∇ₓ C_k(x̂_{k,i})‖_{q_k})`` at its points ``x_hat[k]`` (K, B, C, H, W).

    Run by run this is :func:`mmgan.penalties.gradient_penalty` at these points
    (``at='real'`` with ``real = x_hat[k]``): one backward of the summed scores gives
    every run's input gradients, as the groups never mix runs. Without
    ``as_released`` it is :func:`mmgan.penalties.batched_gradient_penalty` on the
    packed critic (whose contract, (M, B, ...) → (M, B), it fits); that function
    has no ``as_released``, so runs using the released code's signed max or pooled
    smooth max are penalised here with :func:`mmgan.norms.grad_norm` run by run.
    """
    runs = packed_critic.runs
    qs, gs = per_model(q, runs, "q"), per_model(g, runs, "g")
    released = per_model(as_released, runs, "as_released")
    if not any(released):
        return batched_gradient_penalty(lambda x: packed_critic_scores(packed_critic, x), x_hat, qs, gs,
                                        create_graph=create_graph).penalty
    points = x_hat.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = packed_critic_scores(packed_critic, points)
        (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=create_graph)
    return torch.stack([penalty_shape(gs[k])(grad_norm(grad[k], qs[k], as_released=released[k])).mean()
                        for k in range(runs)])
