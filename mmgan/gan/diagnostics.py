"""Why a run stalls, in the paper's own terms (§5.2): what each training log line records beside the losses.

Per logged iteration and run (both training loops write the same keys):

* ``grad_l1_<points>``, ``grad_l2_<points>``, ``grad_linf_<points>``: the mean over the batch of the critic's
  input-gradient norm ‖∇ₓf(x)‖ at the real and at the fake batch, in the three dual norms of §3.2
  (whatever q the run penalises). §5.2's failure is a vanishing gradient at fakes: all three near 0.
* ``generator_grad_norm``: the 2-norm of the generator's parameter gradient of its last step (all
  parameters, one vector): near 0 when the critic gives the generator nothing to follow.
* ``saturated_share``: the share of the generator's outputs with |x| > :data:`SATURATED` (its tanh saturated,
  so its own gradient vanishes there).

These are measurements made at log time from tensors the step already holds (and the critic's gradients,
computed with its BatchNorm statistics kept, :func:`mmgan.gan.models.kept_statistics`): they draw no random
numbers and change no weight, so a run's arithmetic is the same with and without them.
"""

from __future__ import annotations

import math

import torch

from mmgan.norms import grad_norm

#: The dual norms the input gradient is logged in, by the name its log key carries.
DUAL_NORMS: dict[str, float] = {"l1": 1.0, "l2": 2.0, "linf": math.inf}
#: A generator output counts as saturated above this absolute value (its tanh's slope is then below 0.02).
SATURATED = 0.99
#: The points at which the input gradient is logged in every norm.
POINTS = ("real", "fake")


def input_gradient_norms(grads: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per run: ``grad_<norm>_<points>`` for each of :data:`POINTS` in ``grads`` (name → gradient of shape
    (runs, batch, ...)) and each norm of :data:`DUAL_NORMS`, as 0-d tensors (read back by the caller)."""
    rows: list[dict[str, torch.Tensor]] = []
    for name in POINTS:
        grad = grads[name].detach()
        for k in range(grad.shape[0]):
            if len(rows) <= k:
                rows.append({})
            for norm, order in DUAL_NORMS.items():
                rows[k][f"grad_{norm}_{name}"] = grad_norm(grad[k], order).mean()
    return rows


def parameter_gradient_norms(module: torch.nn.Module, runs: int) -> torch.Tensor:
    """(runs,) the 2-norm of each run's parameter gradient in ``module`` (a packed module stores run k's
    parameters as the k-th of ``runs`` equal slices of each tensor; an unpacked one has ``runs = 1``); 0 for a
    module without gradients."""
    squares = [p.grad.detach().reshape(runs, -1).square().sum(1) for p in module.parameters() if p.grad is not None]
    if not squares:
        return torch.zeros(runs)
    return torch.stack(squares).sum(0).sqrt()


def saturated_shares(fake: torch.Tensor) -> torch.Tensor:
    """(runs,) the share of outputs with |x| > :data:`SATURATED` in ``fake`` of shape (runs, batch, ...)."""
    return (fake.detach().abs() > SATURATED).reshape(fake.shape[0], -1).float().mean(1)


def diagnostics(grads: dict[str, torch.Tensor], generator_norms: torch.Tensor, fake: torch.Tensor
                ) -> list[dict[str, float]]:
    """Per run, the keys of the module docstring as floats (one host read for all of them).

    ``grads``: :data:`POINTS` → the critic's input gradients (runs, batch, ...); ``generator_norms``: (runs,)
    :func:`parameter_gradient_norms` of the generator step; ``fake``: that step's batch (runs, batch, ...)."""
    rows = input_gradient_norms(grads)
    shares = saturated_shares(fake)
    keys = [*rows[0], "generator_grad_norm", "saturated_share"]
    stacked = torch.stack([torch.stack([*row.values(), generator_norms[k].to(fake.device), shares[k]])
                           for k, row in enumerate(rows)])
    return [dict(zip(keys, values)) for values in stacked.tolist()]
