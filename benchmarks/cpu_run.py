"""Where a ``cpu``-preset GAN run spends its time, and what would make it faster per core.

The ``cpu`` preset (DCGAN at 16 px, width 16, batch 32, 10,000 generator iterations, FDD of 1,000 samples
every 250 iterations, a log line with gradient norms every 50) on one thread, timed in one process:

* the training step per run and iteration: one run alone (:func:`mmgan.gan.train.training_iteration` with its
  ``LossWatch``, as the loop calls it), and K runs packed (:func:`mmgan.gan.packed.packed_training_iteration`,
  what ``run_table`` trains by default), and the packed runs with channels_last memory format;
* the other work of a run, per 250 iterations: one FDD evaluation and five log lines' gradient norms;
* candidate speed-ups that keep what is computed up to float rounding, each as a ratio to today's path
  (packed K runs): channels_last, flush-to-zero for denormals.

    python benchmarks/cpu_run.py [--runs 8] [--iterations 200] [--warmup 300] [--record]

Prints every figure and ratio; nothing is timed against numbers from another process.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mmgan.gan.data import load_images
from mmgan.gan.loop import evaluate
from mmgan.gan.metrics import dataset_statistics, make_extractor
from mmgan.gan.packed import pack_states, packed_training_iteration
from mmgan.gan.run_state import LossWatch
from mmgan.gan.tables import table_configs
from mmgan.gan.train import gradient_norms, new_state, training_iteration

DEVICE = torch.device("cpu")


def seconds_per_call(step: Callable[[], object], calls: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per pack (default 8, as the sweeps of the study)")
    parser.add_argument("--iterations", type=int, default=200, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=300, help="iterations before timing (the weights settle)")
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, base = table_configs("2", "cpu")
    config = dataclasses.replace(base, loss="hinge", q="inf", g="hinge", seed=0)
    data = load_images(config.dataset, config.image_size, config.channels, config.data_root)

    single = new_state(config, DEVICE)
    watch = LossWatch(1, DEVICE)
    one = seconds_per_call(lambda: training_iteration(single, data, DEVICE, watch=watch), args.iterations,
                           args.warmup)

    def packed(channels_last: bool = False, flush_denormal: bool = False) -> float:
        torch.set_flush_denormal(flush_denormal)
        states = [new_state(dataclasses.replace(config, seed=s), DEVICE) for s in range(args.runs)]
        pack = pack_states(states)
        if channels_last:
            pack.generator.to(memory_format=torch.channels_last)
            pack.critic.to(memory_format=torch.channels_last)
        pack_watch = LossWatch(args.runs, DEVICE)
        seconds = seconds_per_call(lambda: packed_training_iteration(pack, data, DEVICE, pack_watch),
                                   max(1, args.iterations // 4), max(1, args.warmup // 4))
        torch.set_flush_denormal(False)
        return seconds / args.runs

    today = packed()
    variants = {"channels_last": packed(channels_last=True), "flush denormals to zero": packed(flush_denormal=True)}

    extractor = make_extractor(config.metric, config.image_size, config.channels, DEVICE)
    reference = dataset_statistics(extractor, data, f"{config.dataset}-{config.image_size}px-{config.channels}ch",
                                   DEVICE)
    evaluation = seconds_per_call(lambda: evaluate(single, extractor, reference, DEVICE,
                                                   single.config.metric_samples), 3, 1)
    real, fake = data[:config.batch_size], single.generator(torch.randn(config.batch_size, config.z_dim)).detach()
    logging = seconds_per_call(lambda: gradient_norms(single, real, fake), 20, 2)

    every = config.metric_every
    per_window = {"training (packed, per run)": today * every, "one FDD evaluation": evaluation,
                  "gradient norms of the log lines": logging * every / config.log_every}
    total = sum(per_window.values())
    lines: list[str] = []
    lines.append(f"cpu preset, one thread, {args.runs} runs per pack; per run and {every} iterations:")
    for name, seconds in per_window.items():
        lines.append(f"  {name:34s} {seconds:7.2f} s  ({seconds / total:5.1%})")
    minutes = total * config.iterations / every / 60
    lines.append(f"  a whole run of {config.iterations:,} iterations: about {minutes:.1f} min per run on one core")
    lines.append("training step per run and iteration:")
    lines.append(f"  one run alone                      {one * 1e3:7.2f} ms  ({one / today:.2f}x today's)")
    lines.append(f"  packed, {args.runs} runs (today)             {today * 1e3:7.2f} ms  (1.00x)")
    for name, seconds in variants.items():
        lines.append(f"  packed + {name:26s} {seconds * 1e3:7.2f} ms  ({today / seconds:.2f}x the speed of today's)")
    best = max(today / s for s in variants.values())
    ceiling = total / (total - per_window["one FDD evaluation"] - per_window["gradient norms of the log lines"])
    lines.append(f"best candidate: {best:.2f}x on the step; dropping every evaluation and log line would give "
                 f"at most {ceiling:.2f}x")

    print("\n".join(lines))
    if args.record:
        with Path(__file__).with_name("RESULTS.md").open("a", encoding="utf-8") as stream:
            stream.write(f"\n{time.strftime('%Y-%m-%d')}, `benchmarks/cpu_run.py` ({platform.machine()}):\n\n"
                         + "\n".join(f"    {line}" for line in lines) + "\n")

if __name__ == "__main__":
    main()
