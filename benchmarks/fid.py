"""The statistics and distance of one FID evaluation (2048-d Inception features of 50,000 samples against as many
reference features), timed in one process on random features, three ways (the Inception network itself is the same
in all three and its weights cannot be downloaded here):

* pytorch-fid's route, the one a user would pick: the activations of each set as one array (as pytorch-fid's
  ``get_activations`` returns them), ``np.mean`` and one ``np.cov`` over it, then pytorch-fid's
  ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``);
* this project's previous code (before issue 27): features moved to the host per sampling batch of 100 and
  accumulated with a float64 NumPy outer product, then the same ``calculate_frechet_distance``;
* ours: :class:`mmgan.gan.metrics.RunningStatistics` on the features' device in batches of
  :data:`mmgan.gan.metrics.EXTRACT_BATCH`, then :func:`mmgan.gan.metrics.frechet_distance` (eigenvalues), on the
  CPU and, when one is present, on a CUDA GPU.

    python benchmarks/fid.py [--samples 50000] [--dim 2048] [--threads 1] [--record]

The random features are drawn before the clock starts (in sampling batches of 100, on the device that would have
produced them, and joined into one array for pytorch-fid's route), so the times are those of the statistics and
the distance alone. ``--threads`` caps PyTorch's threads and NumPy's BLAS alike. Prints seconds per part, the
ratios of ours to each baseline, and how far the distances lie apart; stops if ours differs from pytorch-fid's by
more than 1e-6 relative. (pytorch-fid's ``np.mean`` of float32 activations is a float32 mean, which moves its
distance in the eighth digit; the two float64 routes agree to rounding.)
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from threadpoolctl import threadpool_limits

from mmgan.gan import metrics as fid

SHIFTS = (0.0, 0.3)

#: Seconds of the statistics (both sets), seconds of the distance, and the distance.
Timing = tuple[float, float, float]


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


def timed(statistics: Callable[[], list[tuple]], distance: Callable[..., float],
          sync: Callable[[], None] = lambda: None) -> Timing:
    """Time ``statistics()`` (one (mu, sigma) per set), then ``distance`` of the two; ``sync`` waits for the
    device before each reading of the clock."""
    sync()
    start = time.perf_counter()
    (mu1, sigma1), (mu2, sigma2) = statistics()
    sync()
    middle = time.perf_counter()
    value = distance(mu1, sigma1, mu2, sigma2)
    sync()
    return middle - start, time.perf_counter() - middle, value


def pytorch_fid(arrays: list[np.ndarray]) -> Timing:
    """pytorch-fid's route: ``np.mean`` and ``np.cov`` over all activations, ``calculate_frechet_distance``."""
    return timed(lambda: [(np.mean(a, axis=0), np.cov(a, rowvar=False)) for a in arrays], calculate_frechet_distance)


def previous(drawn: list[list[torch.Tensor]], dim: int) -> Timing:
    """This project's code before issue 27: a float64 NumPy sum per sampling batch, pytorch-fid's distance."""
    def statistics() -> list[tuple]:
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
        return out

    return timed(statistics, calculate_frechet_distance)


def ours(drawn: list[list[torch.Tensor]], dim: int, device: torch.device) -> Timing:
    """:class:`~mmgan.gan.metrics.RunningStatistics` and :func:`~mmgan.gan.metrics.frechet_distance` on ``device``."""
    def statistics() -> list[tuple]:
        out = []
        for batches in drawn:
            running = fid.RunningStatistics(dim, device)
            for batch in fid.rebatched(iter(batches), fid.EXTRACT_BATCH):
                running.update(batch)
            stats = running.result()
            out.append((stats.mu, stats.sigma))
        return out

    def distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
        return fid.frechet_distance(mu1, torch.as_tensor(sigma1, device=device), mu2, sigma2)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return timed(statistics, distance, sync)


def ratios(mine: Timing, baseline: Timing) -> str:
    """Ours against a baseline: how many times faster, per part and whole."""
    return (f"statistics {baseline[0] / mine[0]:.1f}x, distance {baseline[1] / mine[1]:.1f}x, "
            f"whole {sum(baseline[:2]) / sum(mine[:2]):.1f}x")


def report_line(name: str, timing: Timing) -> str:
    """One route's seconds and distance, as printed."""
    return f"  {name:44s} statistics {timing[0]:6.2f} s, distance {timing[1]:6.2f} s, FD {timing[2]:.9f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of PyTorch and of NumPy's BLAS")
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        lines = measure(args.samples, args.dim)
    print("\n".join(lines))
    if args.record:
        with Path(__file__).with_name("RESULTS.md").open("a", encoding="utf-8") as stream:
            stream.write(f"\n{time.strftime('%Y-%m-%d')}, `benchmarks/fid.py` ({platform.machine()}):\n\n"
                         + "\n".join(f"    {line}" for line in lines) + "\n")


def measure(samples: int, dim: int) -> list[str]:
    """Time the three routes (ours on every device present) and return the printed lines."""
    cpu = [features(samples, dim, 100, shift, torch.device("cpu")) for shift in SHIFTS]
    arrays = [torch.cat(batches).numpy() for batches in cpu]
    reference = pytorch_fid(arrays)
    del arrays
    before = previous(cpu, dim)
    lines = [f"{samples:,} + {samples:,} samples, {dim}-d float32 features, {torch.get_num_threads()} thread(s) "
             "for PyTorch and NumPy",
             report_line("pytorch-fid (np.mean + np.cov, its distance)", reference),
             report_line("previous (NumPy per batch of 100, same)", before)]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        drawn = cpu if device.type == "cpu" else [[b.to(device) for b in batches] for batches in cpu]
        slab, fid.SLAB = fid.SLAB, dim  # one slab: the whole of XᵀX, to show what the triangle saves
        full = ours(drawn, dim, device)[0]
        fid.SLAB = slab
        mine = ours(drawn, dim, device)
        if abs(mine[2] - reference[2]) > 1e-6 * abs(reference[2]):
            raise AssertionError(f"the distances differ: {mine[2]} (ours) vs {reference[2]} (pytorch-fid)")
        lines += [report_line(f"ours on {device.type} (RunningStatistics, eigenvalues)", mine),
                  f"    vs pytorch-fid: {ratios(mine, reference)}",
                  f"    vs previous:    {ratios(mine, before)}",
                  f"    statistics with the whole XᵀX instead of its upper triangle: {full:.2f} s",
                  f"    agreement: |FD ours - pytorch-fid| {abs(mine[2] - reference[2]):.1e} (relative "
                  f"{abs(mine[2] / reference[2] - 1):.1e}), |FD ours - previous| {abs(mine[2] - before[2]):.1e}"]
    return lines


if __name__ == "__main__":
    main()
