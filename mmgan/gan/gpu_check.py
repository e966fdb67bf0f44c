"""One-command check of the GAN engine on a GPU: no network, no data set, no Inception weights.

    mmgan gpu-check                  # on the first CUDA device (minutes; not yet timed on a GPU)
    mmgan gpu-check --pack 4         # the table hours for jobs of 4 runs (`mmgan sweep --pack 4`)
    mmgan gpu-check --record         # and append the summary to benchmarks/RESULTS.md
    mmgan gpu-check --device cpu --quick   # the same steps at toy size (what the tests run)

Steps, on scikit-learn's digits at 32 px × 3 channels with the FDD as metric:

1. the ``smoke`` preset of Tables 2 (DCGAN) and 5 (standard CNN) on the device, every cell;
2. one paper-width DCGAN-32 run (width 128, hinge loss, L^∞ hinge penalty, the released protocol
   otherwise) for ``--iterations`` generator iterations, twice uninterrupted (the run-to-run noise of
   the device), and once in a separate process that is killed (SIGKILL) after its mid-run checkpoint
   and then resumed;
3. iterations/s of the paper-width DCGAN-32 and standard CNN, one run at a time, with the paper preset's TF32 and
   cuDNN autotuning (the runs of step 2 keep both off: their resume is compared bit for bit);
4. the cost of each table at the paper preset as it runs (:func:`table_cost`): every pack of its runs, grouped
   as ``mmgan sweep <table> --preset paper --pack K`` groups them (``--pack``; default: the whole table in one
   pack, as ``mmgan table`` trains it), timed for a few packed iterations with the preset's TF32, cuDNN
   autotuning and memory format, and one FID evaluation's seconds per sample (timed), summed over the preset's
   evaluations with their sample counts (:meth:`mmgan.gan.config.GANConfig.metric_samples_at`);

then one summary: the largest weight difference between the resumed and the uninterrupted run beside
the one between the two uninterrupted runs (bit-exact when both are 0; on CUDA, cuDNN's
non-deterministic kernels make two identical runs differ, so "within run-to-run noise" is the best a
resume can do there), the FDDs, the speeds, and the hours of each table with what they assume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgan.base.registry import lookup
from mmgan.base.run_folder import CHECKPOINT, LOG, read_checkpoint
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig, resolve_device
from mmgan.gan.data import load_images
from mmgan.gan.loop import due, execution_settings
from mmgan.gan.packed import pack_states, packed_training_iteration
from mmgan.gan.run_state import LossWatch
from mmgan.gan.sweep_jobs import group_runs
from mmgan.gan.train import new_state, train

#: Images in each data set the paper preset trains on: only the length of the permutation a real batch's
#: indices come from depends on it (CAT: the RaGAN paper's 9,304 faces of at least 64 px).
TRAINING_SET_SIZES: dict[str, int] = {"cifar10": 50_000, "cat": 9_304}
#: Packed iterations timed per pack (after :data:`WARM_ITERATIONS`, which include cuDNN's autotuning).
TIMED_ITERATIONS, WARM_ITERATIONS = 30, 5


def paper_width_config(device: str, iterations: int, quick: bool, arch: str = "dcgan") -> GANConfig:
    """The released protocol at paper width on digits (32 px, 3 channels, FDD); with ``quick`` toy widths and
    one channel (the smoke tables' digits classifier then serves the metric: nothing more to train)."""
    return GANConfig(dataset="digits", image_size=32, channels=1 if quick else 3, arch=arch,
                     width=4 if quick else None,
                     loss="hinge", q="inf", g="hinge", metric="fdd", metric_samples=256 if quick else 2048,
                     iterations=iterations, metric_every=iterations // 2, checkpoint_every=iterations // 2,
                     log_every=1 if quick else 50, seed=1, device=device).validate()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    payload = read_checkpoint(folder / CHECKPOINT)
    return {f"{part}.{k}": v for part in ("generator", "critic") for k, v in payload[part].items()
            if v.is_floating_point()}


def max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between the network weights of two run folders' checkpoints."""
    wa, wb = _weights(a), _weights(b)
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def _last_iteration(folder: Path) -> int:
    path = folder / LOG
    if not path.is_file():
        return 0
    last = 0
    for line in path.read_text().splitlines():
        try:
            last = max(last, int(json.loads(line).get("iteration", 0)))
        except (json.JSONDecodeError, ValueError):
            continue
    return last


def killed_and_resumed(config: GANConfig, folder: Path, data: torch.Tensor, timeout: float) -> dict[str, Any]:
    """Train ``config`` in a child process, SIGKILL it once it has logged past its mid-run checkpoint,
    then resume here. Returns where it was killed and the resumed summary."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder.parent / f"{folder.name}.yaml"
    config_file.write_text(yaml.safe_dump(dataclasses.asdict(config)))
    # the child computes with as many CPU threads as this process, which resumes its run: a reduction split over
    # another number of threads rounds differently, and the resumed run is compared bit for bit on the CPU
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    child = subprocess.Popen([sys.executable, "-m", "mmgan.gan.train", "--config", str(config_file), "--out",
                              str(folder),
                              "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    while _last_iteration(folder) <= config.checkpoint_every:
        if child.poll() is not None:
            raise RuntimeError(f"the child run ended before it could be killed: {child.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise TimeoutError(f"the child run did not pass iteration {config.checkpoint_every} in {timeout:.0f} s")
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = _last_iteration(folder)
    summary = train(config, folder, resume=True, progress=False, data=data)
    return {"killed_after_iteration": killed_at, "summary": summary}


def speed(config: GANConfig, folder: Path, data: torch.Tensor) -> float:
    """Median iterations/s logged by a short run of ``config``."""
    train(config, folder, progress=False, data=data, overwrite=True)
    rates = [json.loads(line)["iterations_per_s"] for line in (folder / LOG).read_text().splitlines()
             if "iterations_per_s" in line]
    return statistics.median(rates[1:] or rates)  # the first interval includes warm-up


@dataclass(frozen=True)
class FidCost:
    """Seconds of one metric evaluation: ``per_sample`` × samples + ``fixed`` (the Fréchet distance)."""

    per_sample: float
    fixed: float

    def seconds(self, samples: int) -> float:
        return self.per_sample * samples + self.fixed


def fid_cost(device: torch.device, timed: int = 2000) -> FidCost:
    """One FID evaluation's cost on ``device``: ``timed`` random 32 px images through an InceptionV3 of
    pytorch-fid's size and input (299 px, 2048-d pool features; random weights: the weights change nothing in the
    time and cannot be downloaded here) into :class:`mmgan.gan.metrics.RunningStatistics` (per sample), and the
    Fréchet distance of 2048-d statistics (fixed). Drawing the samples from the generator is not timed."""
    from torchvision.models import inception_v3

    from mmgan.gan.metrics import EXTRACT_BATCH, RunningStatistics, frechet_distance, no_tf32

    net = inception_v3(weights=None, aux_logits=False, init_weights=False).to(device).eval()
    net.fc = torch.nn.Identity()
    running = RunningStatistics(2048, device)
    images = torch.rand(timed, 3, 32, 32, device=device) * 2 - 1
    with torch.no_grad(), no_tf32():
        warm = torch.nn.functional.interpolate(images[:8], size=(299, 299), mode="bilinear")
        net(warm)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for batch in images.split(EXTRACT_BATCH):
            running.update(net(torch.nn.functional.interpolate(batch, size=(299, 299), mode="bilinear")))
        stats = running.result()
    per_sample = (time.perf_counter() - start) / timed
    start = time.perf_counter()
    frechet_distance(stats.mu, stats.sigma, stats.mu, stats.sigma)
    return FidCost(per_sample, time.perf_counter() - start)


def paper_packs(table: str, pack: int | None = None) -> list[list[GANConfig]]:
    """The runs of ``table`` at the paper preset grouped as ``mmgan sweep <table> --preset paper --pack <pack>``
    groups them into jobs (:func:`mmgan.gan.sweep_jobs.group_runs`); ``pack=None``: all in one pack, as ``mmgan table``
    trains them."""
    runs, base = gan_tables.table_configs(table, "paper")
    return [[gan_tables.run_config(base, *run) for run in group] for group in group_runs(runs, pack or len(runs))]


def evaluation_samples(config: GANConfig) -> list[int]:
    """The sample count of each metric evaluation of a run of ``config``, at the iterations the loop evaluates
    (:func:`mmgan.gan.loop.due`)."""
    return [config.metric_samples_at(i) for i in range(1, config.iterations + 1) if due(config, i, False)[1]]


def packed_seconds_per_iteration(configs: list[GANConfig], device: torch.device, iterations: int = TIMED_ITERATIONS,
                                 warm: int = WARM_ITERATIONS, images: int | None = None) -> float:
    """Seconds per generator iteration of ``configs`` trained as one pack on ``device`` as the preset sets it:
    TF32, cuDNN autotuning and memory format from the configuration, real batches drawn as training draws them
    (on a CUDA device, on the device) from a data set of the training set's size (random images: the time does
    not depend on them), losses watched without host reads; log lines, metric evaluations and checkpoints left
    out (:func:`table_cost` adds the evaluations). ``images``: another data set size (the CPU self-test)."""
    config = configs[0]
    size = images or lookup(TRAINING_SET_SIZES, config.dataset, "dataset (of the paper preset)")
    data = (torch.rand(size, config.channels, config.image_size, config.image_size, device=device) * 2 - 1)
    data = data.contiguous(memory_format=config.memory_format)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with execution_settings(config, device):
        pack = pack_states([new_state(c, device) for c in configs])
        watch = LossWatch(len(configs), device)
        for _ in range(warm):
            packed_training_iteration(pack, data, device, watch)
        synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            packed_training_iteration(pack, data, device, watch)
        synchronize()
    return (time.perf_counter() - start) / iterations


def table_cost(packs: Sequence[Sequence[GANConfig]], seconds_per_iteration: Sequence[float],
               fid: FidCost) -> dict[str, Any]:
    """Hours of a table whose ``packs`` train one after another on one device: Σ_packs iterations ×
    ``seconds_per_iteration[pack]`` + Σ_runs Σ_evaluations ``fid.seconds(samples)``, with the evaluations'
    sample counts (``samples``: count → evaluations of that count, over all runs)."""
    if len(packs) != len(seconds_per_iteration):
        raise ValueError(f"one time per pack: {len(packs)} packs, {len(seconds_per_iteration)} times")
    training = sum(pack[0].iterations * seconds for pack, seconds in zip(packs, seconds_per_iteration))
    counts: dict[int, int] = {}
    for config in (c for pack in packs for c in pack):
        for samples in evaluation_samples(config):
            counts[samples] = counts.get(samples, 0) + 1
    metric = sum(n * fid.seconds(samples) for samples, n in counts.items())
    return {"runs": sum(len(p) for p in packs), "packs": [len(p) for p in packs],
            "seconds_per_packed_iteration": [round(t, 5) for t in seconds_per_iteration],
            "samples": dict(sorted(counts.items())), "training_hours": round(training / 3600, 2),
            "metric_hours": round(metric / 3600, 2), "hours": round((training + metric) / 3600, 2)}


def table_costs(device: torch.device, pack: int | None, fid: FidCost,
                shrink: Callable[[GANConfig], GANConfig] | None = None, iterations: int = TIMED_ITERATIONS,
                warm: int = WARM_ITERATIONS, images: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`table_cost` of every table at the paper preset, each pack timed on ``device``; ``shrink`` and
    ``images`` (the CPU self-test) time smaller networks and data in their stead, which makes the hours no
    estimate."""
    costs = {}
    for table in gan_tables.TABLES:
        packs = paper_packs(table, pack)
        timed = [[shrink(c) for c in p] if shrink else p for p in packs]
        seconds = [packed_seconds_per_iteration(p, device, iterations, warm, images) for p in timed]
        costs[table] = table_cost(packs, seconds, fid)
    return costs


def cost_assumptions(pack: int | None) -> str:
    """What :func:`table_costs` assumes, in words (printed with the hours)."""
    _, paper = gan_tables.table_configs("2", "paper")
    jobs = "the whole table in one pack (`mmgan table N --preset paper`)" if pack is None else (
        f"`mmgan sweep N --preset paper --pack {pack}`")
    return (f"{jobs}, packs one after another on this device; TF32 {'on' if paper.tf32 else 'off'}, cuDNN "
            f"autotuning {'on' if paper.cudnn_benchmark else 'off'}, channels_last "
            f"{'on' if paper.channels_last else 'off'} (as the paper preset sets them); FID every "
            f"{paper.metric_every:,} iterations, of {paper.metric_samples_text} (tables reading the lowest value: "
            f"all at full size); timed: {TIMED_ITERATIONS} packed iterations per pack after {WARM_ITERATIONS} "
            "warm-up ones, and the Inception features of random images; not timed: log lines every "
            f"{paper.log_every} iterations, checkpoints every {paper.checkpoint_every:,}, drawing the metric's "
            "samples, loading the data and its reference statistics")


def _toy(config: GANConfig) -> GANConfig:
    """A paper-preset run at toy width (the CPU self-test of :func:`table_costs`)."""
    return dataclasses.replace(config, width=4)


def run_check(device: str, iterations: int, quick: bool, root: Path, pack: int | None = None) -> dict[str, Any]:
    resolved = resolve_device(device)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "device": str(resolved),
        "device_name": torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else platform.machine(),
    }
    clock = time.perf_counter()
    for table in ("2", "5"):
        frame = gan_tables.run_table(table, "smoke", root / "smoke", device=device,
                                     iterations=4 if quick else None)
        report[f"smoke_table{table}"] = {"runs": len(frame), "failed": int((frame["status"] == "failed").sum())}
    report["smoke_seconds"] = round(time.perf_counter() - clock, 1)

    config = paper_width_config(device, iterations, quick)
    data = load_images(config.dataset, config.image_size, config.channels)
    whole = [train(config, root / f"whole{i}", progress=False, data=data) for i in (1, 2)]
    resumed = killed_and_resumed(config, root / "killed", data, timeout=600)
    noise = max_difference(root / "whole1", root / "whole2")
    resume_error = max_difference(root / "whole1", root / "killed")
    verdict = ("bit-exact" if resume_error == 0 and noise == 0 else
               "within run-to-run noise" if resume_error <= 2 * noise + 1e-6 else "differs")
    report["paper_width_run"] = {
        "iterations": iterations, "width": 4 if quick else 128, "fdd_uninterrupted": [w["final"] for w in whole],
        "fdd_resumed": resumed["summary"]["final"], "killed_after_iteration": resumed["killed_after_iteration"],
        "max_weight_difference_between_uninterrupted_runs": noise,
        "max_weight_difference_resumed_vs_uninterrupted": resume_error, "resume": verdict,
    }
    short = max(20, iterations // 10)
    _, paper = gan_tables.table_configs("2", "paper")  # its TF32 and autotuning: the speed the preset would see
    report["iterations_per_s"] = {
        arch: round(speed(dataclasses.replace(paper_width_config(device, short, quick, arch),
                                              critic_batchnorm=arch == "dcgan", tf32=paper.tf32,
                                              cudnn_benchmark=paper.cudnn_benchmark), root / f"speed-{arch}", data), 2)
        for arch in ("dcgan", "standard_cnn")}
    fid = fid_cost(resolved, timed=64 if quick else 2000)
    report["fid_seconds_per_sample"], report["fid_fixed_seconds"] = fid.per_sample, round(fid.fixed, 3)
    report["table_costs"] = (table_costs(resolved, pack, fid, shrink=_toy, iterations=1, warm=0, images=256)
                             if quick else table_costs(resolved, pack, fid))
    report["cost_assumptions"] = cost_assumptions(pack) + (" — TOY WIDTHS: tests the arithmetic, not an estimate"
                                                           if quick else "")
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["ok"] = (verdict != "differs" and all(report[f"smoke_table{t}"]["failed"] == 0 for t in ("2", "5")))
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    run = report["paper_width_run"]
    return [
        f"gpu_check {report['date']} on {report['device']} ({report['device_name']}), torch {report['torch']}: "
        f"{'OK' if report['ok'] else 'FAILED'} in {report['seconds']} s",
        f"- smoke tables 2 and 5 on the device: {report['smoke_table2']['runs']} + {report['smoke_table5']['runs']} "
        f"runs, {report['smoke_table2']['failed'] + report['smoke_table5']['failed']} failed, "
        f"{report['smoke_seconds']} s",
        f"- DCGAN-32 width {run['width']}, {run['iterations']} iterations: FDD {run['fdd_uninterrupted'][0]:.2f} / "
        f"{run['fdd_uninterrupted'][1]:.2f} (two uninterrupted runs), {run['fdd_resumed']:.2f} (killed after "
        f"iteration {run['killed_after_iteration']}, resumed); max |Δweight| resumed vs uninterrupted "
        f"{run['max_weight_difference_resumed_vs_uninterrupted']:.3g}, between uninterrupted runs "
        f"{run['max_weight_difference_between_uninterrupted_runs']:.3g}: {run['resume']}",
        f"- iterations/s (batch 32, widths {'4 / 4' if run['width'] == 4 else '128 / 64'}): "
        f"DCGAN-32 {report['iterations_per_s']['dcgan']}, "
        f"standard CNN {report['iterations_per_s']['standard_cnn']} (one run at a time); FID "
        f"{report['fid_seconds_per_sample'] * 1e3:.3f} ms per sample + {report['fid_fixed_seconds']} s",
        "- estimated hours per table at the paper preset (training + FID): " + ", ".join(
            f"Table {t} {c['hours']} h ({c['training_hours']} + {c['metric_hours']})"
            for t, c in report["table_costs"].items()),
        f"  assuming {report['cost_assumptions']}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmgan gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="'cuda', 'cuda:<index>' or 'cpu' (default: cuda)")
    parser.add_argument("--iterations", type=int, default=2000, help="length of the paper-width run (default 2000)")
    parser.add_argument("--quick", action="store_true", help="toy widths and lengths (CPU tests)")
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--record", action="store_true", help="append the summary to benchmarks/RESULTS.md")
    parser.add_argument("--pack", type=int, help="runs per pack for the table hours, as `mmgan sweep --pack` "
                                                 "(default: each table in one pack, as `mmgan table`)")
    args = parser.parse_args(argv)
    iterations = 40 if args.quick and args.iterations == 2000 else args.iterations
    if iterations < 4 or iterations % 2:
        parser.error("--iterations must be an even number >= 4")
    if args.pack is not None and args.pack < 1:
        parser.error(f"--pack must be a number of runs >= 1, got {args.pack}")
    try:
        resolve_device(args.device)
    except ValueError as error:
        raise ValueError(f"{error}; this check needs the GPU it checks — on a machine without one, "
                         "`mmgan gpu-check --device cpu --quick` tests the check itself (no hours estimate)") from None
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder (it is created if missing)")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        os.environ.setdefault("MMGAN_CACHE", str(root / "cache"))
        report = run_check(args.device, iterations, args.quick, root, args.pack)
    lines = summary_lines(report)
    print("\n".join(lines))
    print(json.dumps(report))
    if args.record:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
        with path.open("a", encoding="utf-8") as stream:
            stream.write("\n" + "\n".join(lines) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
