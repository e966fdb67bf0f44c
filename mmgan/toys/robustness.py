"""§5.3: are larger gradient norms q (smaller margin orders p) more robust to outliers?

Two Gaussian classes in 2-D, centred at (±1, 0); a fraction ``eps`` of the
class −1 training points is replaced by mislabelled outliers deep inside class
+1 (around (3, 0)). Classifiers trained with eq. 6 (cross-entropy, hinge
penalty, λ) for q ∈ {1, 2, ∞} and without penalty are compared by how far
their boundary moves along the x₁ axis when the outliers are added, and by
their accuracy and L^p margins on clean test data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from mmgan.base.processes import using_threads
from mmgan.base.registry import check_int
from mmgan.margins import boundary_distances
from mmgan.mlp import BatchedMLP
from mmgan.norms import order_text
from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers
from mmgan.toys.sigmoid import boundary_crossing

ROBUSTNESS_SPECS: tuple[PenaltySpec, ...] = (
    PenaltySpec(None, None), PenaltySpec("hinge", 1.0), PenaltySpec("hinge", 2.0), PenaltySpec("hinge", math.inf),
)
OUTLIER_CENTRE = (3.0, 0.0)


def contaminated_blobs(n: int, eps: float, seed: int, spread: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """n points per class; a fraction eps of class −1 moved to mislabelled outliers near (3, 0)."""
    check_int(n, "n", minimum=1)
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1), got {eps!r}")
    gen = torch.Generator().manual_seed(seed)
    f32 = torch.float32
    pos = torch.randn(n, 2, generator=gen, dtype=f32) * spread + torch.tensor([1.0, 0.0])
    neg = torch.randn(n, 2, generator=gen, dtype=f32) * spread + torch.tensor([-1.0, 0.0])
    k = int(round(eps * n))
    if k:
        neg[:k] = torch.randn(k, 2, generator=gen, dtype=f32) * 0.2 + torch.tensor(OUTLIER_CENTRE)
    return torch.cat([pos, neg]), torch.cat([torch.ones(n, dtype=f32), -torch.ones(n, dtype=f32)])


def run_outlier_experiment(epsilons: tuple[float, ...] = (0.0, 0.05, 0.1), seeds: tuple[int, ...] = (0, 1, 2),
                           iterations: int = 1500, lam: float = 10.0, lr: float = 2e-3, width: int = 32,
                           n: int = 500, n_test: int = 200, margin_points: int = 50) -> pd.DataFrame:
    """Train every (penalty, eps, seed) classifier in one batch; one row of measurements per model.

    Accuracy is measured on ``n_test`` clean points per class and model; the L^p margins on the first
    ``margin_points`` of each class (the boundary search dominates the cost).
    """
    check_int(margin_points, "margin_points", minimum=1)
    with using_threads(1):  # small batched products (mmgan.base.processes.using_threads)
        datasets = [(eps, seed) for eps in epsilons for seed in seeds]
        data = [contaminated_blobs(n, eps, seed) for eps, seed in datasets]
        models = [(spec, d) for spec in ROBUSTNESS_SPECS for d in range(len(datasets))]
        batched = BatchedMLP([datasets[d][1] for _, d in models], 2, width)
        train_penalized_classifiers(batched, [spec for spec, _ in models], [d for _, d in models], data, iterations,
                                    stream_seeds=list(range(len(datasets))), lam=lam, lr=lr, log_every=iterations,
                                    progress=False)
        clean = [contaminated_blobs(n_test, 0.0, 10_000 + seed) for _, seed in datasets]
        x_test = torch.stack([clean[d][0] for _, d in models])
        y_test = torch.stack([clean[d][1] for _, d in models])
        m = x_test.shape[0]
        with torch.no_grad():
            correct = (batched(x_test) * y_test > 0).numpy()
        per_class = min(margin_points, n_test)
        chosen = torch.cat([torch.arange(per_class), n_test + torch.arange(per_class)])
        k = len(chosen)
        searches = boundary_distances(batched.flat(k), x_test[:, chosen].reshape(m * k, 2), restarts=4, max_steps=100)
        rows = []
        for i, (spec, d) in enumerate(models):
            eps, seed = datasets[d]
            record = {"penalty": spec.label, "eps": eps, "seed": seed,
                      "boundary x1": boundary_crossing(batched.model(i)), "clean accuracy": float(correct[i].mean())}
            for p, search in searches.items():
                dist = search.distance.reshape(m, k)[i].numpy()
                signed = np.where(correct[i, chosen.numpy()], dist, -dist)
                record[f"margin p={order_text(p)}"] = float(np.mean(signed[np.isfinite(signed)]))
            rows.append(record)
        frame = pd.DataFrame(rows)
        base = frame[frame.eps == 0].set_index(["penalty", "seed"])["boundary x1"]
        frame["boundary shift"] = [abs(r["boundary x1"] - base[(r["penalty"], r["seed"])]) for _, r in frame.iterrows()]
        return frame
