"""One-command check of the GAN engine on a GPU: no network, no data set, no Inception weights.

    mmgan gpu-check                  # on the first CUDA device, ≤ 8 minutes on one GPU
    mmgan gpu-check --record         # and append the summary to benchmarks/RESULTS.md
    mmgan gpu-check --device cpu --quick   # the same steps at toy size (what the tests run)

Steps, on scikit-learn's digits at 32 px × 3 channels with the FDD as metric:

1. the ``smoke`` preset of Tables 2 (DCGAN) and 5 (standard CNN) on the device, every cell;
2. one paper-width DCGAN-32 run (width 128, hinge loss, L^∞ hinge penalty, the released protocol
   otherwise) for ``--iterations`` generator iterations, twice uninterrupted (the run-to-run noise of
   the device), and once in a separate process that is killed (SIGKILL) after its mid-run checkpoint
   and then resumed;
3. iterations/s of the paper-width DCGAN-32 and standard CNN;

then one summary: the largest weight difference between the resumed and the uninterrupted run beside
the one between the two uninterrupted runs (bit-exact when both are 0; on CUDA, cuDNN's
non-deterministic kernels make two identical runs differ, so "within run-to-run noise" is the best a
resume can do there), the FDDs, and the speeds.
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
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgan.base.run_folder import CHECKPOINT, LOG, read_checkpoint
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import GANConfig, resolve_device
from mmgan.gan.data import load_images
from mmgan.gan.train import train


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


def fid_seconds(device: torch.device, samples: int = 50_000, timed: int = 2000) -> float:
    """Seconds of one FID evaluation of ``samples`` images on ``device``: ``timed`` random 32 px images through an
    InceptionV3 of pytorch-fid's size and input (299 px, 2048-d pool features; random weights: the weights change
    nothing in the time and cannot be downloaded here) into :class:`mmgan.gan.metrics.RunningStatistics`, scaled to
    ``samples``, plus the Fréchet distance of 2048-d statistics."""
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
    extract = (time.perf_counter() - start) * samples / timed
    start = time.perf_counter()
    frechet_distance(stats.mu, stats.sigma, stats.mu, stats.sigma)
    return extract + time.perf_counter() - start


def table_hours(iterations_per_s: dict[str, float], fid_s: float) -> dict[str, float]:
    """Estimated hours of each table at the paper preset, its runs one after another on this device:
    runs × (iterations / iterations per second + evaluations × seconds per FID evaluation)."""
    hours = {}
    for table in gan_tables.TABLES:
        runs, base = gan_tables.table_configs(table, "paper")
        evaluations = base.iterations // base.metric_every
        per_run = base.iterations / iterations_per_s[base.arch] + evaluations * fid_s
        hours[table] = round(len(runs) * per_run / 3600, 1)
    return hours


def run_check(device: str, iterations: int, quick: bool, root: Path) -> dict[str, Any]:
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
    report["iterations_per_s"] = {
        arch: round(speed(dataclasses.replace(paper_width_config(device, short, quick, arch),
                                              critic_batchnorm=arch == "dcgan"), root / f"speed-{arch}", data), 2)
        for arch in ("dcgan", "standard_cnn")}
    report["fid_seconds"] = round(fid_seconds(resolved, timed=64 if quick else 2000), 1)
    report["table_hours"] = table_hours(report["iterations_per_s"], report["fid_seconds"])
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
        f"standard CNN {report['iterations_per_s']['standard_cnn']}; one FID evaluation of 50k samples "
        f"{report['fid_seconds']} s",
        "- estimated hours per table at the paper preset, runs one after another (packing and several processes "
        "per GPU would shorten them): " + ", ".join(f"Table {t} {h} h" for t, h in report["table_hours"].items()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmgan gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="'cuda', 'cuda:<index>' or 'cpu' (default: cuda)")
    parser.add_argument("--iterations", type=int, default=2000, help="length of the paper-width run (default 2000)")
    parser.add_argument("--quick", action="store_true", help="toy widths and lengths (CPU tests)")
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--record", action="store_true", help="append the summary to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    iterations = 40 if args.quick and args.iterations == 2000 else args.iterations
    if iterations < 4 or iterations % 2:
        parser.error("--iterations must be an even number >= 4")
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
        report = run_check(args.device, iterations, args.quick, root)
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
