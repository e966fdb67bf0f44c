"""Per-run iterations/s of one full GAN training iteration (critic step with penalty + generator step).

DCGAN 32 px, batch 32, hinge loss, L^inf hinge penalty (the paper's best cell), on the CPU and, when one
is present, on a CUDA GPU. Timed in the same process, per device:

* baseline: a straightforward loop — the critic run separately on real, fake and interpolated batches, a
  fixed real batch, noise drawn on the device, and Adam's per-parameter loop (``foreach=False``), as a first
  implementation would be written;
* engine: :func:`mmgan.gan.train.training_iteration` as the training loop calls it, with its ``LossWatch`` (no
  host synchronisation per step; real batches drawn from a data tensor, all random draws from the run's CPU
  generator) and PyTorch's default Adam, which is the multi-tensor (foreach) Adam on
  CUDA but the same per-parameter loop as the baseline on the CPU (PyTorch only defaults to foreach on
  accelerators; the output says which one ran): on the CPU the two differ in how they draw their
  batches, not in their optimiser;
* packed K: K runs (seeds 0..K-1 of the same cell) trained as one network by
  :func:`mmgan.gan.packed.packed_training_iteration`, reported per run (K × packed iterations/s), for
  K in ``--packs`` (default 1, 6, 12, 36).

The critic is not run on a concatenated real+fake batch: with BatchNorm in the critic that would change
the statistics each batch is normalised with, i.e. the method. Each line gives per-run iterations/s and the
ratio to the baseline; --record appends one row to benchmarks/RESULTS.md.

Width: the paper's (128) on CUDA; on the CPU 16 by default (the ``cpu`` preset's DCGAN width; at the
paper width K = 36 packed runs take minutes per iteration there), or ``--width`` for both. Every variant
gets the same number of run-iterations (``--iterations``, ×10 on CUDA; a pack of K runs makes
``iterations / K`` packed iterations, at least one) after warm-up. On one CPU thread the default takes
about 25 s on a 2-core x86_64 machine. On a machine whose cores are busy with other work, more threads
than idle cores make every small operation wait for a descheduled thread (seen: 50× slower at 2 threads
than at 1, and the pack sizes with fewer, larger operations then look many times faster): use
``--threads 1`` there.

    python benchmarks/gan_step.py [--iterations 20] [--packs 1,6,12,36] [--width W] [--threads N] [--record]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mmgan.gan.config import GANConfig
from mmgan.gan.models import ARCHITECTURES, make_gan
from mmgan.gan.packed import pack_states, packed_training_iteration
from mmgan.gan.run_state import LossWatch
from mmgan.gan.train import new_state, training_iteration
from mmgan.norms import grad_norm

CPU_WIDTH = 16
BASELINE = "straightforward loop, per-parameter Adam (foreach=False)"


def baseline_step(g, d, opt_g, opt_d, real, z_dim):
    batch = real.shape[0]
    fake = g(torch.randn(batch, z_dim, device=real.device)).detach()
    u = torch.rand(batch, 1, 1, 1, device=real.device)
    x_hat = (u * real + (1 - u) * fake).requires_grad_(True)
    out_hat = d(x_hat)
    grad = torch.autograd.grad(out_hat.sum(), x_hat, create_graph=True)[0]
    penalty = torch.relu(grad_norm(grad, math.inf) - 1).mean()
    loss = torch.relu(1 - d(real)).mean() + torch.relu(1 + d(fake)).mean() + 20 * penalty
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    fake = g(torch.randn(batch, z_dim, device=real.device))
    g_loss = -d(fake).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


CONFIG = GANConfig(dataset="shapes", arch="dcgan", image_size=32, channels=3, loss="hinge", q="inf", g="hinge",
                   lam=20.0, batch_size=32, metric="fdd", device="cpu")


def _time(step: Callable[[], object], device: torch.device, iterations: int, warmup: int = 2) -> float:
    """Calls of ``step`` per second, after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - start)


def _config(device: torch.device, width: int | None, seed: int = 1) -> GANConfig:
    return dataclasses.replace(CONFIG, device=device.type, width=width, seed=seed)


def _data(device: torch.device) -> torch.Tensor:
    return (torch.rand(512, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)


def engine_adam(device: torch.device, width: int | None) -> str:
    """Which Adam implementation the engine's default ``torch.optim.Adam`` runs on ``device``."""
    state = new_state(_config(device, width), device)
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        _, foreach = _default_to_fused_or_foreach(list(state.generator.parameters()), False, False)
    except (ImportError, TypeError):  # a private helper of PyTorch: say so rather than guess
        return "Adam default (implementation unknown)"
    return "Adam default = multi-tensor (foreach)" if foreach else "Adam default = per-parameter, as the baseline"


def engine_iterations_per_second(device: torch.device, iterations: int, width: int | None) -> float:
    """mmgan.gan.train's own training iteration as the training loop calls it: with the run's ``LossWatch``, so that
    no step waits for the device (without a watch every step checks its loss on the host)."""
    state = new_state(_config(device, width), device)
    data = _data(device)
    watch = LossWatch(1, device)
    return _time(lambda: training_iteration(state, data, device, watch=watch), device, iterations)


def packed_iterations_per_second(device: torch.device, iterations: int, width: int | None, runs: int) -> float:
    """Per-run iterations/s of ``runs`` runs trained as one packed network (``iterations`` run-iterations), with
    the pack's ``LossWatch`` as in :func:`mmgan.gan.packed_training.train_packed`."""
    pack = pack_states([new_state(_config(device, width, seed), device) for seed in range(runs)])
    data = _data(device)
    watch = LossWatch(runs, device)
    packed_iterations = max(1, round(iterations / runs))
    return runs * _time(lambda: packed_training_iteration(pack, data, device, watch), device, packed_iterations,
                        warmup=1)


def baseline_iterations_per_second(device: torch.device, iterations: int, width: int | None) -> float:
    torch.manual_seed(0)
    g, d = make_gan("dcgan", 32, width=width)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    real = torch.rand(32, 3, 32, 32, device=device) * 2 - 1
    return _time(lambda: baseline_step(g, d, opt_g, opt_d, real, 128), device, iterations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20, help="run-iterations timed per variant (×10 on CUDA)")
    parser.add_argument("--packs", default="1,6,12,36", help="pack sizes K, comma-separated ('' for none)")
    parser.add_argument("--width", type=int, help=f"network width (default: the paper's on CUDA, {CPU_WIDTH} on "
                                                  "the CPU)")
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads; default: PyTorch's)")
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    packs = [int(k) for k in args.packs.split(",") if k.strip()]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    lines = []
    for device in devices:
        n = args.iterations if device.type == "cpu" else 10 * args.iterations
        width = args.width if args.width is not None else (CPU_WIDTH if device.type == "cpu" else None)
        shown_width = width or ARCHITECTURES["dcgan"].widths[32]
        cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        name = torch.cuda.get_device_name() if device.type == "cuda" else cpu
        print(f"{device.type} ({name}): DCGAN 32 px, width {shown_width}, batch 32, hinge loss + L^inf hinge "
              f"penalty; per-run iterations/s over {n} run-iterations each", flush=True)
        base = baseline_iterations_per_second(device, n, width)
        print(f"  baseline ({BASELINE}): {base:.2f} it/s", flush=True)
        adam = engine_adam(device, width)
        ours = engine_iterations_per_second(device, n, width)
        print(f"  engine (mmgan.gan.train.training_iteration, {adam}): {ours:.2f} it/s, {ours / base:.2f}x baseline",
              flush=True)
        packed = {}
        for runs in packs:
            packed[runs] = packed_iterations_per_second(device, n, width, runs)
            print(f"  packed K={runs} (mmgan.gan.packed.packed_training_iteration, one Adam over the pack): "
                  f"{packed[runs]:.2f} it/s per run, {packed[runs] / base:.2f}x baseline", flush=True)
        cells = " | ".join(f"K={k}: {v:.2f} ({v / base:.2f}x)" for k, v in packed.items())
        lines.append(f"| {time.strftime('%Y-%m-%d')} | {device.type} ({name}) | {shown_width} | {base:.2f} | "
                     f"{ours:.2f} ({ours / base:.2f}x) | {cells} |")
    if args.record:
        path = Path(__file__).with_name("RESULTS.md")
        with path.open("a", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
