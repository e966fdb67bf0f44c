"""The CROWN certificate (:func:`mmgan.critics.certify.certified_radius`) carrying each group of a convolution's units
back over only the inputs they read (``Affine.row_groups``) against the dense pass over every unit (one group of all
units over all inputs, the code before), in the same process, on committed critics.

One committed critic per study (default: R1's and Table 3's first runs), ``--images`` of its measured images (real
then generated), each order p, eval mode and train mode (each image in its class-pure batch, mates held fixed);
CPU seconds of one certificate (``--steps`` bisection steps below a start of 5), dense then grouped, their ratio,
and whether the certified radii are equal.

    python benchmarks/certify.py [--tables r1 3] [--images 16] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from unittest import mock

import torch

from mmgan.critics import certify
from mmgan.critics import measure as cm


def dense_groups(affine: certify.Affine) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One group: every output unit over every input unit (the dense pass)."""
    return [(torch.arange(math.prod(affine.out_shape)), torch.arange(math.prod(affine.in_shape)))]


def timed(critic, x, p, steps, mates) -> tuple[float, torch.Tensor]:
    started = time.process_time()
    radii = certify.certified_radius(critic, x, 0.0, p, torch.full((len(x),), 5.0), steps, mates=mates)
    return time.process_time() - started, radii


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=["r1", "3"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average {os.getloadavg()[0]:.1f}; {args.images} images, "
          f"{args.steps} bisection steps")
    ratios = []
    for table in args.tables:
        folder = cm.study_runs(table)["folder"].iloc[0]
        run = cm.load_run(folder)
        chosen = cm.measurement_set(run, args.images)
        x = torch.cat([chosen.reals, chosen.fakes])[:args.images]
        mates = chosen.mates(run.config.batch_size)[0][:args.images]
        for view, view_mates in (("eval", None), ("train", mates)):
            for p in cm.MARGIN_ORDERS:
                with mock.patch.object(certify.Affine, "row_groups", property(dense_groups)):
                    dense, dense_radii = timed(run.critic, x, p, args.steps, view_mates)
                grouped, grouped_radii = timed(run.critic, x, p, args.steps, view_mates)
                ratios.append(dense / grouped)
                print(f"Table {table:>5} {view:>5} p={p:<4} dense {dense:6.2f} s  grouped {grouped:6.2f} s  "
                      f"{dense / grouped:5.1f}x  radii equal: {bool(torch.equal(dense_radii, grouped_radii))}",
                      flush=True)
    print(f"grouped vs dense: {min(ratios):.1f}x to {max(ratios):.1f}x faster (median "
          f"{sorted(ratios)[len(ratios) // 2]:.1f}x); load average after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
