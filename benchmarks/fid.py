"""The statistics and distance of one FID evaluation (2048-d Inception features of 50,000 samples), before and
after issue 27, timed in one process on random features (the Inception network itself is unchanged by it and its
weights cannot be downloaded here):

* before: features moved to the host per sampling batch of 100 and accumulated with a float64 NumPy outer product
  (one host round trip per batch), then pytorch-fid's ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``);
* after: :class:`mmgan.gan.metrics.RunningStatistics` on the features' device in batches of
  :data:`mmgan.gan.metrics.EXTRACT_BATCH`, then :func:`mmgan.gan.metrics.frechet_distance` (eigenvalues), on the
  CPU and, when one
  is present, on a CUDA GPU.

    python benchmarks/fid.py [--samples 50000] [--dim 2048] [--record]

The random features are drawn before the clock starts (in sampling batches of 100, on the device that would have
produced them), so the times are those of the statistics and the distance alone. Prints seconds per part and the
ratios, and checks that both give the same distance (relative 1e-6).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from mmgan.gan import metrics as fid

SHIFTS = (0.0, 0.3)


def features(samples: int, dim: int, batch: int, shift: float, device: torch.device) -> list[torch.Tensor]:
    """Correlated random 'features' in batches of ``batch`` rows, on ``device`` (the same on every call)."""
    gen = torch.Generator().manual_seed(int(shift * 10))
    mix = torch.randn(dim, dim, generator=gen) / dim ** 0.5
    out, done = [], 0
    while done < samples:
        size = min(batch, samples - done)
        done += size
        out.append(((torch.randn(size, dim, generator=gen) + shift) @ mix).to(device))
    return out


def before(drawn: list[list[torch.Tensor]], dim: int) -> tuple[float, float, tuple]:
    start = time.perf_counter()
    out = []
    for batches in drawn:
        total, outer, n = np.zeros(dim), np.zeros((dim, dim)), 0
        for batch in batches:
            x = batch.cpu().double().numpy()
            n += len(x)
            total += x.sum(0)
            outer += x.T @ x
        mu = total / n
        out.append((mu, (outer - n * np.outer(mu, mu)) / (n - 1)))
    accumulate = time.perf_counter() - start
    start = time.perf_counter()
    distance = calculate_frechet_distance(out[0][0], out[0][1], out[1][0], out[1][1])
    return accumulate, time.perf_counter() - start, (distance, out)


def after(drawn: list[list[torch.Tensor]], dim: int, device: torch.device) -> tuple[float, float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stats = []
    for batches in drawn:
        running = fid.RunningStatistics(dim, device)
        for batch in fid.rebatched(iter(batches), fid.EXTRACT_BATCH):
            running.update(batch)
        stats.append(running.result())
    accumulate = time.perf_counter() - start
    start = time.perf_counter()
    sigma1 = torch.as_tensor(stats[0].sigma, device=device)
    distance = fid.frechet_distance(stats[0].mu, sigma1, stats[1].mu, stats[1].sigma)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return accumulate, time.perf_counter() - start, distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    cpu = [features(args.samples, args.dim, 100, shift, torch.device("cpu")) for shift in SHIFTS]
    base_acc, base_dist, (base_value, _) = before(cpu, args.dim)
    lines = [f"{args.samples:,} samples, {args.dim}-d features, {torch.get_num_threads()} CPU threads"]
    lines.append(f"before (NumPy per batch of 100, scipy sqrtm): statistics {base_acc:.1f} s, "
                 f"distance {base_dist:.1f} s")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        drawn = cpu if device.type == "cpu" else [[b.to(device) for b in batches] for batches in cpu]
        slab, fid.SLAB = fid.SLAB, args.dim  # one slab: the whole of XᵀX, to show what the triangle saves
        full, _, _ = after(drawn, args.dim, device)
        fid.SLAB = slab
        acc, dist, value = after(drawn, args.dim, device)
        if abs(value - base_value) > 1e-6 * abs(base_value):
            raise AssertionError(f"the distances differ: {value} vs {base_value}")
        lines.append(f"after on {device.type} (RunningStatistics in upper-triangle slabs, eigenvalues): "
                     f"statistics {acc:.1f} s "
                     f"({base_acc / acc:.1f}x), distance {dist:.2f} s ({base_dist / dist:.1f}x), whole "
                     f"{(base_acc + base_dist) / (acc + dist):.1f}x; same distance to "
                     f"{abs(value / base_value - 1):.1e} (statistics with the whole XᵀX instead of its upper "
                     f"triangle: {full:.1f} s)")
    print("\n".join(lines))
    if args.record:
        with Path(__file__).with_name("RESULTS.md").open("a", encoding="utf-8") as stream:
            stream.write(f"\n{time.strftime('%Y-%m-%d')}, `benchmarks/fid.py`: " + "; ".join(lines) + "\n")


if __name__ == "__main__":
    main()
