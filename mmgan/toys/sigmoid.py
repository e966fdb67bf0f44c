"""The two-dimensional toy problem of §5.2.2 (Figure 1) and learned versions of it.

Real data (class 1) lie uniformly on the segment x₁ = 1, x₂ ∈ [−1, 1]; fake
data (class 2) on x₁ = −1. The maximum-margin boundary is x₁ = 0. The paper
looks at hand-set classifiers f(x) = sigmoid(w₁x₁ + w₀); here we also learn
them, with and without a gradient penalty.
"""

from __future__ import annotations

import math

import torch

from mmgan.base.processes import using_threads
from mmgan.base.registry import check_int
from mmgan.exact import parameter_dtype

REAL_X1 = 1.0
FAKE_X1 = -1.0


def sigmoid_example(w1: float, w0: float) -> dict[str, float]:
    """Outputs and gradient norms of f(x) = sigmoid(w1·x₁ + w0) at the real and fake segments.

    Because f depends on x₁ only, ‖∇ₓf‖ = |w1|·σ(z)·σ(−z) with z = w1·x₁ + w0, the same
    for every L^p norm, and constant along each segment.

    Returns:
        ``{'f_real', 'f_fake', 'grad_real', 'grad_fake'}`` at x₁ = 1 and x₁ = −1.
    """
    for name, value in (("w1", w1), ("w0", w0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")

    def at(x1: float) -> tuple[float, float]:
        z = torch.tensor(w1 * x1 + w0, dtype=torch.float64)
        f = torch.sigmoid(z)
        return float(f), abs(w1) * float(f * (1 - f))

    f_real, grad_real = at(REAL_X1)
    f_fake, grad_fake = at(FAKE_X1)
    return {"f_real": f_real, "f_fake": f_fake, "grad_real": grad_real, "grad_fake": grad_fake}


def lipschitz_weight(k: float) -> float:
    """The slope w₁ for which sigmoid(w₁x₁ + w₀) is K-Lipschitz: max σ' = 1/4, so w₁ = 4K."""
    if not k > 0:
        raise ValueError(f"the Lipschitz constant must be > 0, got {k!r}")
    return 4.0 * k


def boundary_position(w1: float, w0: float) -> float:
    """x₁ where sigmoid(w₁x₁ + w₀) = 1/2."""
    if w1 == 0:
        raise ValueError("w1 = 0 gives a constant classifier without a boundary")
    return -w0 / w1


def segments(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n real and n fake points (float64), real first, with labels +1 / −1."""
    check_int(n, "n", minimum=1)
    gen = torch.Generator().manual_seed(seed)
    heights = 2 * torch.rand(2 * n, generator=gen, dtype=torch.float64) - 1
    x1 = torch.cat([torch.full((n,), REAL_X1), torch.full((n,), FAKE_X1)]).to(torch.float64)
    y = torch.cat([torch.ones(n), -torch.ones(n)]).to(torch.float64)
    return torch.stack([x1, heights], 1), y


def boundary_crossing(f, x2: float = 0.0, lo: float = -1.5, hi: float = 1.5, steps: int = 50) -> float:
    """x₁ in [lo, hi] where f(x₁, x2) changes sign (bisection), NaN if it does not."""
    with torch.no_grad():

        def value(x1: float) -> float:
            point = torch.tensor([[x1, x2]], dtype=parameter_dtype(f))
            out = f(point)
            return float(out.reshape(-1)[0])

        f_lo, f_hi = value(lo), value(hi)
        if f_lo == 0:
            return lo
        if math.copysign(1, f_lo) == math.copysign(1, f_hi):
            return math.nan
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            f_mid = value(mid)
            if math.copysign(1, f_mid) == math.copysign(1, f_lo):
                lo, f_lo = mid, f_mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


def gradient_summary(f, x: torch.Tensor) -> dict[str, float]:
    """Mean ‖∇C‖₂ of the critic C = f and ‖∇D‖₂ of the discriminator D = sigmoid(C) at points x."""
    x = x.to(parameter_dtype(f)).detach().requires_grad_(True)
    with torch.enable_grad():
        c = f(x).reshape(-1)
        (grad_c,) = torch.autograd.grad(c.sum(), x)
    d_prime = torch.sigmoid(c) * torch.sigmoid(-c)
    c, grad_c, d_prime = c.detach(), grad_c.detach(), d_prime.detach()
    return {"critic_grad": float(grad_c.norm(dim=1).mean()),
            "disc_grad": float((d_prime[:, None] * grad_c).norm(dim=1).mean()),
            "disc_value": float(torch.sigmoid(c).mean())}


def learned_discriminators(lams: tuple[float, ...], specs, seeds: tuple[int, ...], iterations: int = 1000,
                           width: int = 16, lr: float = 1e-3, n: int = 1000):
    """Train sigmoid discriminators (logit critics) on the segments with eq. 6 and measure them.

    One model per (penalty spec, λ, seed), all in one batch; the penalty sits at
    interpolates between real and fake points (as in WGAN-GP). Returns one row per
    model: the boundary crossing on the x₁ axis, the critic and discriminator
    gradient norms and the discriminator value at the fake and the real segment.

    A model's initial weights, data, minibatches and interpolation weights come from
    its seed alone, so its row does not depend on which other models share the batch
    (bit for bit in batches of two models or more; tested).
    """
    import pandas as pd

    from mmgan.mlp import BatchedMLP
    from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers

    runs = [(PenaltySpec(None, None), 0.0)] + [(spec, lam) for spec in specs for lam in lams if lam > 0]
    models = [(spec, lam, s) for spec, lam in runs for s in range(len(seeds))]
    with using_threads(1):  # small batched products (mmgan.base.processes.using_threads)
        batched = BatchedMLP([seeds[s] for *_, s in models], 2, width)
        data = [segments(n, seed) for seed in seeds]
        train_penalized_classifiers(batched, [m[0] for m in models], [m[2] for m in models],
                                    [(x.float(), y.float()) for x, y in data], iterations, stream_seeds=list(seeds),
                                    lam=[m[1] for m in models], lr=lr, penalty_at="interpolates",
                                    log_every=iterations, progress=False)
        probe, _ = segments(200, 99)  # 200 real then 200 fake points
        rows = []
        for i, (spec, lam, s) in enumerate(models):
            net = batched.model(i)
            at_fake, at_real = gradient_summary(net, probe[200:].float()), gradient_summary(net, probe[:200].float())
            rows.append({"penalty": spec.label, "lam": lam, "seed": seeds[s], "boundary x1": boundary_crossing(net),
                         "critic grad at fake": at_fake["critic_grad"], "D grad at fake": at_fake["disc_grad"],
                         "D grad at real": at_real["disc_grad"], "D at fake": at_fake["disc_value"],
                         "D at real": at_real["disc_value"]})
    return pd.DataFrame(rows)
