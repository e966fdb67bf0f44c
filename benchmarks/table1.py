"""Speed of the Table 1 pipeline: batched training of all runs vs one run at a time.

Prints, from one process (so all sides see the same machine load):
  * seconds per training run (10k iterations) when the 35 runs of a preset
    (default: 'fitted', the chapter's headline) train together as one batched
    model, when each trains alone, and when the batched model is split over
    ``--workers`` processes (one thread each; process start-up included);
  * their ratios;
  * seconds of one margin search (p = 1, all points of all 35 models, ``--search-steps``
    optimisation steps) with f called in blocks of ``margins.SEARCH_BLOCK_ROWS`` rows
    against one call on all rows, and whether both give the same distances bit for bit;
  * with --full, the wall time of the whole preset in 2-D (training + margins)
    with ``--workers`` processes, against the target of 10 minutes on 2 cores.

    python benchmarks/table1.py [--preset fitted] [--iterations 200] [--search-steps 50] [--workers 2] [--full] \
        [--record benchmarks/results/table1.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from mmgan.base.processes import available_cores
from mmgan.base.results import file_digest
from mmgan.margins import SEARCH_BLOCK_ROWS
from mmgan.mlp import BatchedMLP
from mmgan.table1 import files as table1_files
from mmgan.table1 import study as table1
from mmgan.table1 import variant as table1_variant
from mmgan.toys.classifiers import train_penalized_classifiers


def seconds_per_iteration(config: table1_variant.Table1Config, iterations: int, batched: bool) -> float:
    """Wall seconds per iteration to advance every run of ``config`` by one step."""
    model, specs, seed_index = table1_variant.build_model(config)
    data = table1.training_data(config)
    kwargs = dict(lam=config.lam, batch_size=config.batch_size, lr=config.lr,
                  penalty_at=config.penalty_at, log_every=iterations, progress=False)
    start = time.perf_counter()
    if batched:
        train_penalized_classifiers(model, specs, seed_index, data, iterations,
                                    stream_seeds=list(config.seeds), **kwargs)
    else:
        for spec, s in zip(specs, seed_index):
            alone = BatchedMLP([config.seeds[s]], config.dim, config.width, config.layers)
            train_penalized_classifiers(alone, [spec], [0], [data[s]], iterations,
                                        stream_seeds=[config.seeds[s]], **kwargs)
    return (time.perf_counter() - start) / iterations


def seconds_per_iteration_in_workers(config: table1_variant.Table1Config, iterations: int, workers: int) -> float:
    """As the batched path of :func:`seconds_per_iteration`, its models split over ``workers`` processes."""
    short = table1_variant.make_config(config.preset, dim=config.dim, scale=config.scale, iterations=iterations,
                               log_every=iterations)
    start = time.perf_counter()
    table1._train_models(short, torch.device("cpu"), workers)
    return (time.perf_counter() - start) / iterations


def margin_search(config: table1_variant.Table1Config, steps: int, block_rows: int) -> tuple[float, torch.Tensor]:
    """Wall seconds and distances of one p = 1 search over every test point of the variant's (untrained) models."""
    model, _, seed_index = table1_variant.build_model(config)
    evaluation = table1.evaluation_data(config)
    x = torch.stack([evaluation[i][0] for i in seed_index]).to(torch.float32)
    m, n, _ = x.shape
    search = dict(tol=config.tol, max_steps=steps, restarts=config.restarts, polish_steps=config.polish_steps,
                  data_restarts=config.data_restarts, groups=torch.arange(m).repeat_interleave(n),
                  block_rows=block_rows)
    start = time.perf_counter()
    found = table1._search_order(model.layers(), x.reshape(m * n, -1), n, 1.0, search)
    return time.perf_counter() - start, found.distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200, help="iterations timed per path")
    parser.add_argument("--preset", default="fitted", choices=sorted(table1_variant.PRESETS))
    parser.add_argument("--search-steps", type=int, default=50, help="optimisation steps of the timed search")
    parser.add_argument("--workers", type=int, default=available_cores(), help="processes (default: the cores)")
    parser.add_argument("--full", action="store_true", help="also time the whole preset (2-D)")
    parser.add_argument("--record", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args()
    config = table1_variant.make_config(args.preset)
    runs = len(table1_variant.TABLE1_ROWS) * len(config.seeds)
    torch.manual_seed(0)
    alone = seconds_per_iteration(config, args.iterations, batched=False)
    together = seconds_per_iteration(config, args.iterations, batched=True)
    spread = seconds_per_iteration_in_workers(config, args.iterations, args.workers)
    per_run_alone = alone * config.iterations / runs
    per_run_together = together * config.iterations / runs
    per_run_spread = spread * config.iterations / runs
    record = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "device": "cpu", "preset": args.preset, "runs": runs, "iterations_timed": args.iterations,
        "seconds_per_run_one_at_a_time": per_run_alone, "seconds_per_run_batched": per_run_together,
        "speedup": per_run_alone / per_run_together, "workers": args.workers,
        "seconds_per_run_batched_in_workers": per_run_spread, "workers_speedup": per_run_together / per_run_spread,
    }
    print(f"{runs} runs of {config.iterations} iterations (timed over {args.iterations}):")
    print(f"  one at a time: {per_run_alone:8.1f} s per run")
    print(f"  batched:       {per_run_together:8.1f} s per run")
    print(f"  ratio:         {record['speedup']:8.1f}x")
    print(f"  batched, {args.workers} processes: {per_run_spread:8.1f} s per run "
          f"({record['workers_speedup']:.2f}x the batched path in one process)")
    one_call, distance_one_call = margin_search(config, args.search_steps, block_rows=10**9)
    blocked, distance_blocked = margin_search(config, args.search_steps, block_rows=SEARCH_BLOCK_ROWS)
    record.update(search_steps=args.search_steps, search_seconds_one_call=one_call, search_seconds_blocked=blocked,
                  search_speedup=one_call / blocked,
                  search_same_distances=bool(torch.equal(distance_one_call, distance_blocked)))
    print(f"  margin search (p = 1, {args.search_steps} steps): one call {one_call:.1f} s, blocks of "
          f"{SEARCH_BLOCK_ROWS} rows {blocked:.1f} s ({record['search_speedup']:.1f}x), "
          f"same distances: {record['search_same_distances']}")
    if args.full:
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            result = table1.run_table1(config, root, force=True, progress=False, workers=args.workers)
            record["full_preset_wall_seconds"] = time.perf_counter() - start
            record["full_preset_phases"] = result.meta["seconds"]
            record["full_preset_summary_sha256"] = file_digest(result.directory / "summary.csv")
        committed = table1_files.result_directory(config, Path("results/table1")) / "summary.csv"
        if committed.exists():
            record["same_summary_as_committed"] = file_digest(committed) == record["full_preset_summary_sha256"]
            same = record["same_summary_as_committed"]
            print(f"  summary.csv identical to the committed {committed.parent.name}: {same}")
        print(f"  full '{args.preset}' preset (train + margins, {args.workers} processes): "
              f"{record['full_preset_wall_seconds']:.0f} s (target: 600 s on 2 cores)")
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
