"""Speed of the two training cells of the toy chapter (notebooks/toy_sigmoid.ipynb): all runs in one batch vs
one run at a time.

Prints, from one process (so all sides see the same machine load), wall seconds and ratios for

  * ``mmgan.toys.sigmoid.learned_discriminators`` (4 penalties × 2 λ + no penalty, × the seeds, training and
    measurements) and
  * ``mmgan.toys.gan.train_line_gans`` (2 generator losses × 3 λ × the seeds),

each three ways: one run at a time (a loop written here: each run a batch of one, the same training code, one
thread), all runs in one batch (the package's functions, one thread), and all runs in one batch with torch's
default thread count (as the functions ran before they set one thread; ``--skip-default-threads`` leaves it out:
on a busy machine it is the slow one). The loop's runs of the toy GAN draw their own samples (in the batch all
runs share one stream), which changes what they compute, not how long it takes.

    python benchmarks/toys.py [--seeds 0 1 2 3 4] [--disc-iterations 1000] [--gan-iterations 1500] \
        [--skip-default-threads]

The defaults are the chapter's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import time
from unittest import mock

import pandas as pd
import torch

from mmgan.base.processes import using_threads
from mmgan.mlp import BatchedMLP
from mmgan.toys import gan as toy_gan
from mmgan.toys import sigmoid as toy
from mmgan.toys.classifiers import PenaltySpec, train_penalized_classifiers

SPECS = [PenaltySpec("ls", 2.0), PenaltySpec("hinge", 2.0), PenaltySpec("ls", 1.0), PenaltySpec("ls", math.inf)]
LAMS = (1.0, 10.0)
GAN_LAMS = [0.0, 1.0, 10.0]


def discriminators_one_by_one(seeds: list[int], iterations: int, width: int = 16, lr: float = 1e-3,
                              n: int = 1000) -> pd.DataFrame:
    """The models of ``toy.learned_discriminators`` trained and measured one after the other."""
    runs = [(PenaltySpec(None, None), 0.0)] + [(spec, lam) for spec in SPECS for lam in LAMS]
    probe, _ = toy.segments(200, 99)
    rows = []
    with using_threads(1):
        for spec, lam in runs:
            for seed in seeds:
                model = BatchedMLP([seed], 2, width)
                x, y = toy.segments(n, seed)
                train_penalized_classifiers(model, [spec], [0], [(x.float(), y.float())], iterations,
                                            stream_seeds=[seed], lam=[lam], lr=lr, penalty_at="interpolates",
                                            log_every=iterations, progress=False)
                net = model.model(0)
                at_fake = toy.gradient_summary(net, probe[200:].float())
                at_real = toy.gradient_summary(net, probe[:200].float())
                rows.append({"penalty": spec.label, "lam": lam, "seed": seed, "boundary x1": toy.boundary_crossing(net),
                             "D grad at fake": at_fake["disc_grad"], "D grad at real": at_real["disc_grad"]})
    return pd.DataFrame(rows)


def line_gans_one_by_one(config: toy_gan.LineGANConfig, seeds: list[int]) -> pd.DataFrame:
    """The runs of ``toy_gan.train_line_gans`` trained one after the other (each a batch of one)."""
    rows = []
    with using_threads(1):
        for loss in toy_gan.GENERATOR_LOSSES:
            for lam in GAN_LAMS:
                for seed in seeds:
                    rows.extend(toy_gan._train(config, [(loss, lam, seed)], seed + 7))
    return pd.DataFrame(rows)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--disc-iterations", type=int, default=1000)
    parser.add_argument("--gan-iterations", type=int, default=1500)
    parser.add_argument("--skip-default-threads", action="store_true",
                        help="leave out the batched runs with torch's default thread count")
    args = parser.parse_args()
    seeds = args.seeds
    config = toy_gan.LineGANConfig(iterations=args.gan_iterations)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"default threads {torch.get_num_threads()}, seeds {seeds}")

    def batched_disc():
        return toy.learned_discriminators(LAMS, SPECS, tuple(seeds), iterations=args.disc_iterations)

    def batched_gan():
        return toy_gan.train_line_gans(config, GAN_LAMS, seeds)

    def with_default_threads(fn):
        def run():
            with mock.patch.object(toy, "using_threads", contextlib.nullcontext), \
                    mock.patch.object(toy_gan, "using_threads", contextlib.nullcontext):
                return fn()
        return run

    cases = [("learned_discriminators", f"{1 + len(SPECS) * len(LAMS)} settings × {len(seeds)} seeds, "
              f"{args.disc_iterations} iterations", lambda: discriminators_one_by_one(seeds, args.disc_iterations),
              batched_disc),
             ("train_line_gans", f"{len(toy_gan.GENERATOR_LOSSES) * len(GAN_LAMS)} settings × {len(seeds)} seeds, "
              f"{args.gan_iterations} iterations", lambda: line_gans_one_by_one(config, seeds), batched_gan)]
    for name, what, one_by_one, batched in cases:
        print(f"\n{name} ({what})", flush=True)
        loop, _ = timed(one_by_one)
        print(f"  one run at a time, 1 thread:        {loop:8.1f} s", flush=True)
        batch, _ = timed(batched)
        print(f"  one batch, 1 thread (the package):  {batch:8.1f} s   loop / batch = {loop / batch:.1f}x",
              flush=True)
        if not args.skip_default_threads:
            default, _ = timed(with_default_threads(batched))
            print(f"  one batch, {torch.get_num_threads()} threads (before):      {default:8.1f} s   "
                  f"before / now = {default / batch:.1f}x", flush=True)


if __name__ == "__main__":
    main()
