"""Iterations per second of one full GAN training iteration (critic step with penalty + generator step).

DCGAN 32 px, batch 32, hinge loss, L^inf hinge penalty (the paper's best cell), on the CPU and, when one
is present, on a CUDA GPU. In the same process a straightforward baseline is timed: the critic is run
separately on real, fake and interpolated batches, and Adam uses its per-parameter loop (foreach=False),
as a first implementation would. The engine runs the same computation through its own
`mmgan.train.training_iteration` (batches drawn from a data tensor, multi-tensor Adam). The critic is not
run on a concatenated real+fake batch: with BatchNorm in the critic that would change the statistics
each batch is normalised with, i.e. the method. Prints iterations/s of both and their ratio; --record
appends to benchmarks/RESULTS.md.

    python benchmarks/gan_step.py [--iterations 20] [--record]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import time
from pathlib import Path

import torch

from mmgan.models import make_gan
from mmgan.norms import grad_norm
from mmgan.train import GANConfig, new_state, training_iteration


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


def _time(step, device: torch.device, iterations: int) -> float:
    for _ in range(2):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - start)


def engine_iterations_per_second(device: torch.device, iterations: int) -> float:
    """mmgan.train's own training iteration (batches drawn from a data tensor, penalty at interpolates)."""
    config = dataclasses.replace(CONFIG, device=device.type)
    state = new_state(config, device)
    data = torch.rand(512, 3, 32, 32) * 2 - 1
    return _time(lambda: training_iteration(state, data, device), device, iterations)


def baseline_iterations_per_second(device: torch.device, iterations: int) -> float:
    torch.manual_seed(0)
    g, d = make_gan("dcgan", 32)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    real = torch.rand(32, 3, 32, 32, device=device) * 2 - 1
    return _time(lambda: baseline_step(g, d, opt_g, opt_d, real, 128), device, iterations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    lines = []
    for device in devices:
        n = args.iterations if device.type == "cpu" else 10 * args.iterations
        base = baseline_iterations_per_second(device, n)
        ours = engine_iterations_per_second(device, n)
        cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        name = torch.cuda.get_device_name() if device.type == "cuda" else cpu
        line = (f"| {time.strftime('%Y-%m-%d')} | {device.type} ({name}) | {base:.2f} | {ours:.2f} "
                f"| {ours / base:.2f}x |")
        print(f"{device.type}: baseline {base:.2f} it/s, engine {ours:.2f} it/s, ratio {ours / base:.2f}")
        lines.append(line)
    if args.record:
        path = Path(__file__).with_name("RESULTS.md")
        with path.open("a", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
