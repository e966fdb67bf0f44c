"""mmgan.gan.sweep: the runs of a GAN table as submitit jobs (local, killed and resumed, SLURM script), and
collecting them."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from submitit.helpers import DelayedSubmission

from mmgan.base.run_folder import CHECKPOINT, SUMMARY
from mmgan.gan import metrics as fid
from mmgan.gan import sweep, sweep_jobs
from mmgan.gan import tables as gan_tables

CELLS = ["wgan-q2-ls", "hinge-qinf-hinge"]
SEEDS = [0, 1]
#: a smoke table small enough for seconds: 4 iterations, a checkpoint after each, the metric at 2 and 4
TINY = dict(iterations=4, checkpoint_every=1, metric_every=2, log_every=1, metric_samples=16, sample_batch_size=16)
RESULT_COLUMNS = ["loss", "q", "g", "seed", "status", "final", "lowest", "lowest_at", "iterations", "metric"]


@pytest.fixture(scope="module", autouse=True)
def _float32_and_cache(tmp_path_factory):
    """float32 and one thread as in the job processes, and one metric cache for the module (shared with the
    job processes through MMGAN_CACHE). The digits classifier is deterministic (seed 0, 12 epochs): a copy
    already trained in the session's cache (tests/conftest.py) is reused rather than retrained."""
    cache = tmp_path_factory.getbasetemp() / "mmgan-cache"
    cache.mkdir(exist_ok=True)
    for trained in fid.cache_dir().glob("digits_classifier_*.pt"):
        if not (cache / trained.name).exists():
            shutil.copy2(trained, cache / trained.name)
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMGAN_CACHE", str(cache))
        # one thread in this process, in the forked job and in the local executor's job processes (new
        # interpreters, whose torch reads OMP_NUM_THREADS at start-up; otherwise they take every core): a
        # reduction split over a different number of threads rounds differently, and jobs are compared bit for bit
        patch.setenv("OMP_NUM_THREADS", "1")
        torch.set_default_dtype(torch.float32)
        torch.set_num_threads(1)
        yield
    torch.set_default_dtype(previous)
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # after conftest's float64


@contextlib.contextmanager
def _few_samples_allowed() -> Iterator[None]:
    """TINY's 16 metric samples are below what the FDD recommends: expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*recommended for a full-rank covariance")
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """The four runs trained directly with run_table (no submitit), and their root."""
    torch.set_default_dtype(torch.float32)
    root = tmp_path_factory.mktemp("reference")
    with _few_samples_allowed():
        frame = gan_tables.run_table("2", "smoke", root, cells=CELLS, seeds=SEEDS, **TINY)
    assert (frame["status"] == "finished").all()
    return frame, root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run / CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("generator", "critic") for k, v in payload[part].items()}


def _same_runs(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["loss", "q", "g", "seed"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[RESULT_COLUMNS], b[RESULT_COLUMNS])
    for run_a, run_b in zip(a["run"], b["run"]):
        wa, wb = _weights(Path(run_a)), _weights(Path(run_b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), (run_a, run_b)


# ----------------------------------------------------------------------------- local executor


def test_local_executor_runs_the_jobs_and_collect_gives_the_direct_table(tmp_path, reference, capsys):
    root = tmp_path / "runs"
    # --threads 1 as the reference: a CPU job's default is its cores, and 2 threads round otherwise (on some CPUs)
    argv = ["2", "--preset", "smoke", "--executor", "local", "--pack", "4", "--threads", "1",
            "--gpus-per-job", "0", "--timeout-min", "10", "--root", str(root), "--log-folder", str(tmp_path / "logs"),
            "--cells", *CELLS, "--seeds", *map(str, SEEDS), *[f"--set={k}={v}" for k, v in TINY.items()]]
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 unfinished runs in 1 job of up to 4" in out and "4/4 runs finished" in out
    logs = sorted(p.name for p in (tmp_path / "logs").glob("*_result.pkl"))
    assert len(logs) == 1  # the submitit job and its result pickle
    collected = sweep.collect("2", "smoke", root, cells=CELLS, seeds=SEEDS, **TINY)
    assert (collected["status"] == "finished").all() and (collected["progress"] == 4).all()
    _same_runs(collected, reference[0])
    # collect is run_table(load_only=True) over the same folders
    _same_runs(collected, gan_tables.run_table("2", "smoke", root, load_only=True, cells=CELLS, seeds=SEEDS, **TINY))
    # the same command again finds nothing to do
    assert sweep.main(argv) == 0 and "every run has finished" in capsys.readouterr().out
    assert len(list((tmp_path / "logs").glob("*_result.pkl"))) == 1


# ----------------------------------------------------------------------------- killed and resumed

def _run_and_hang_at_a_checkpoint(job: sweep_jobs.TableJob, marker: Path) -> None:
    """In a forked child: run ``job`` until the first checkpoint after each of its runs wrote one, then hang."""
    saves, original = [], torch.save

    def save(obj, *args, **kwargs):
        if isinstance(obj, dict) and "iteration" in obj:  # a run checkpoint (not a cache file)
            saves.append(obj["iteration"])
            if len(saves) == len(job.runs) + 1:
                marker.write_text(str(saves))
                time.sleep(600)
        return original(obj, *args, **kwargs)

    torch.save = save
    torch.set_num_threads(1)  # the parent's OpenMP threads do not survive the fork (the job keeps 1: planned so)
    job()


def test_a_job_killed_mid_run_and_resubmitted_by_its_checkpoint_gives_the_uninterrupted_result(tmp_path, reference):
    root, marker = tmp_path / "runs", tmp_path / "hanging"
    (job,) = sweep_jobs.plan_jobs("2", "smoke", root, pack=2, cells=CELLS[0], seeds=SEEDS, threads=1, **TINY)
    assert len(job.runs) == 2
    pid = os.fork()  # a child process without a second start-up (imports, data); SIGKILLed like a lost node
    if pid == 0:
        try:
            _run_and_hang_at_a_checkpoint(pickle.loads(pickle.dumps(job)), marker)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            pytest.fail("the job ended before it could be killed")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the job wrote no checkpoint in time")
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    killed = sweep.collect("2", "smoke", root, cells=CELLS[0], seeds=SEEDS, **TINY)
    runs = [Path(run) for run in killed["run"]]
    assert [torch.load(r / CHECKPOINT, weights_only=True)["iteration"] for r in runs] == [1, 1]
    assert not any((r / SUMMARY).exists() for r in runs)
    assert set(killed["status"]) == {"incomplete"} and (killed["progress"] == 2).all()  # logged past the checkpoint

    resubmitted = job.checkpoint()  # what submitit calls on preemption / time-out before requeueing
    assert isinstance(resubmitted, DelayedSubmission) and resubmitted.function is job and job.attempt == 2
    with _few_samples_allowed():
        resumed = resubmitted.result()
    expected = reference[0][reference[0]["loss"] == "wgan"]
    _same_runs(resumed, expected)
    _same_runs(sweep.collect("2", "smoke", root, cells=CELLS[0], seeds=SEEDS, **TINY), expected)


# ----------------------------------------------------------------------------- SLURM, without a cluster

FAKE_SBATCH = """#!/bin/sh
cp "$1" "$FAKE_SLURM_DIR/submitted-$(ls "$FAKE_SLURM_DIR" | wc -l).sh"
echo "Submitted batch job 4242"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch / srun / sacct / scancel stand-ins on PATH; sbatch keeps a copy of each script it is given."""
    bin_dir, scripts = tmp_path / "bin", tmp_path / "sbatch-scripts"
    bin_dir.mkdir()
    scripts.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    for name in ("srun", "sacct", "scancel"):
        (bin_dir / name).write_text("#!/bin/sh\necho 'JobID|State'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(scripts))
    return scripts


def test_slurm_submission_is_one_job_array_with_the_requested_resources(tmp_path, fake_slurm, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "local_roots", lambda: [Path("/node-local-only")])  # pytest's tmp_path is in /tmp
    logs, root = tmp_path / "shared" / "logs", tmp_path / "shared" / "runs"
    code = sweep.main(["2", "--preset", "paper", "--executor", "slurm", "--partition", "gpu-long", "--gpus-per-job",
                       "1", "--pack", "3", "--array-parallelism", "2", "--timeout-min", "90", "--cpus-per-job", "8",
                       "--account", "proj42", "--slurm-arg", "constraint=a100", "--root", str(root),
                       "--log-folder", str(logs), "--data-root", str(tmp_path / "shared" / "data")])
    assert code == 0
    (script,) = [p.read_text() for p in fake_slurm.iterdir()]  # one sbatch call: one array for the 4 jobs
    for line in ("#SBATCH --partition=gpu-long", "#SBATCH --gpus-per-node=1", "#SBATCH --array=0-3%2",
                 "#SBATCH --time=90", "#SBATCH --cpus-per-task=8", "#SBATCH --account=proj42",
                 "#SBATCH --constraint=a100", "#SBATCH --ntasks-per-node=1", "#SBATCH --signal=USR2@90",
                 f"#SBATCH --output={logs}/%A_%a_0_log.out", f"#SBATCH --error={logs}/%A_%a_0_log.err",
                 "#SBATCH --job-name=mmgan-table2-paper"):
        assert line in script.splitlines(), line
    assert f"-u -m submitit.core._submit {logs}" in script and sys.executable in script
    out = capsys.readouterr().out
    assert "submitted job array 4242: 4242_0 4242_1 4242_2 4242_3" in out
    assert f"collect: mmgan sweep 2 --preset paper --root {root} --collect --set data_root=" in out
    # each array task's pickle holds its TableJob, requeued with itself on preemption
    jobs = [pickle.loads((logs / f"4242_{task}_submitted.pkl").read_bytes()).function for task in range(4)]
    assert [len(job.runs) for job in jobs] == [3, 3, 3, 3]
    assert sorted(run for job in jobs for run in job.runs) == sorted(gan_tables.table_configs("2", "paper")[0])
    assert all(isinstance(job, sweep_jobs.TableJob) and job.checkpoint().function is job for job in jobs)


@pytest.mark.parametrize("local", ["/tmp/mmgan-logs", "/tmp/mmgan/%j", "/dev/shm/logs", "/var/tmp/x"])
def test_the_shared_path_rule_refuses_node_local_folders(local):
    with pytest.raises(ValueError, match=r"log_folder=.* is under .* local to each machine"):
        sweep.check_shared_path(local, "log_folder")
    assert sweep.check_shared_path("/home/someone/logs/%j", "log_folder") == Path("/home/someone/logs/%j")


def test_a_slurm_sweep_into_tmp_is_refused_before_anything_is_submitted(tmp_path, fake_slurm):
    settings = sweep.SweepSettings(partition="gpu", log_folder=tmp_path / "logs")
    with pytest.raises(ValueError, match="log_folder="):
        sweep.sweep("2", "paper", "/home/someone/results", settings, data_root="/home/someone/data")
    with pytest.raises(ValueError, match="root="):
        sweep.sweep("2", "paper", tmp_path / "runs", settings, data_root="/home/someone/data")
    assert not list(fake_slurm.iterdir()) and not (tmp_path / "logs").exists()


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("settings", "overrides", "message"), [
    (dict(), dict(table="9"), r"unknown table='9'; valid choices: '2', '3'"),
    (dict(), dict(preset="huge"), r"unknown preset='huge'; valid choices: 'smoke', 'cpu', 'paper'"),
    (dict(executor="pbs"), dict(), r"invalid executor='pbs'; valid choices: 'slurm', 'local', 'debug'"),
    (dict(partition=None), dict(), r"partition is required for executor='slurm'"),
    (dict(pack=0), dict(), r"pack must be >= 1, got 0"),
    (dict(array_parallelism=0), dict(), r"array_parallelism must be >= 1"),
    (dict(timeout_min=0), dict(), r"timeout_min must be >= 1"),
    (dict(gpus_per_job=-1), dict(), r"gpus_per_job must be >= 0"),
    (dict(gpus_per_job=0), dict(device="cuda"), r"gpus_per_job=0 but device='cuda'"),
    (dict(), dict(seeds=[-1]), r"seeds must be >= 0"),
    (dict(), dict(cells=["nope"]), r"unknown cells \['nope'\]; valid cells of table 2"),
    (dict(), dict(iterations="many"), r"iterations"),
    (dict(), dict(data_root=None), r"data_root is required for table 2 at preset 'paper'"),
    (dict(partition=" "), dict(), r"partition must be a non-empty string"),
])
def test_bad_parameters_are_named_before_anything_is_submitted(tmp_path, fake_slurm, settings, overrides, message):
    values = dict(table="2", preset="paper", data_root="/home/someone/data") | overrides
    table, preset = values.pop("table"), values.pop("preset")
    chosen = dict(partition="gpu", log_folder=Path("/home/someone/logs")) | settings
    with pytest.raises(ValueError, match=message):
        sweep.sweep(table, preset, "/home/someone/results", sweep.SweepSettings(**chosen), **values)
    assert not list(fake_slurm.iterdir())


def test_the_command_line_names_a_bad_parameter_and_submits_nothing(fake_slurm, capsys):
    assert sweep.main(["2", "--preset", "smoke", "--executor", "slurm", "--partition", "gpu", "--pack", "0"]) == 2
    assert "pack must be >= 1" in capsys.readouterr().err
    assert sweep.main(["2", "--preset", "smoke", "--executor", "local", "--seeds", "0", "x"]) == 2
    assert "seeds must hold integers" in capsys.readouterr().err
    assert not list(fake_slurm.iterdir())


# ----------------------------------------------------------------------------- grouping, failures, collect


def test_each_job_trains_exactly_its_runs_as_one_pack(tmp_path, monkeypatch):
    """--pack 4 with 3 seeds: each job's 4 runs span two cells with different seeds, which no cells × seeds
    product covers; the job passes exactly its runs to run_table, which trains them as one pack of 4."""
    runs, _ = gan_tables.table_configs("2", "smoke", seeds=[0, 1, 2])
    groups = sweep_jobs.group_runs(runs, 4)
    assert [len(g) for g in groups] == [4] * 9 and [r for g in groups for r in g] == runs
    packs = []
    original = gan_tables.train_packed

    def recording(configs, outs, *args, **kwargs):
        packs.append(sorted((c.loss, c.q, c.g, c.seed) for c in configs))
        return original(configs, outs, *args, **kwargs)

    monkeypatch.setattr(gan_tables, "train_packed", recording)
    jobs = sweep_jobs.plan_jobs("2", "smoke", tmp_path, pack=4, seeds=[0, 1, 2], iterations=2)
    frame = jobs[0]()
    assert packs == [sorted(groups[0])]  # one pack, not 3 + 1
    assert [(r.loss, r.q, r.g, r.seed) for r in frame.itertuples()] == groups[0]
    assert (frame["status"] == "finished").all()
    with pytest.raises(ValueError, match="unknown cells \\['wgan-q3-ls'\\]"):
        gan_tables.run_table("2", "smoke", tmp_path, runs=[("wgan", "3", "ls", 0)])


def test_failed_and_unstarted_runs_are_reported_by_collect(tmp_path, monkeypatch):
    calls = []

    def fake_run_table(table, preset="smoke", root="results/gan", progress=False, load_only=False, pack=True,
                       pack_size=None, runs=None, **overrides):
        calls.append(dict(runs=runs, pack=pack, pack_size=pack_size))
        if ("hinge", "1", "ls", 0) in runs:
            raise FileNotFoundError("CIFAR-10 was not found under 'nowhere'")
        _, base = gan_tables.table_configs(table, preset, **overrides)
        folder = gan_tables.table_folder(table, preset, base, root)
        return pd.DataFrame([{"loss": loss, "q": q, "g": g, "seed": s, "status": "failed",
                              "error": "NonFiniteLoss: nan",
                              "run": str(folder / f"{gan_tables.cell_name(loss, q, g)}-s{s}")}
                             for loss, q, g, s in runs])

    monkeypatch.setattr(sweep_jobs, "run_table", fake_run_table)
    jobs = sweep_jobs.plan_jobs("2", "smoke", tmp_path, pack=2, seeds=0, iterations=2)
    jobs[0]()  # wgan-q1-ls and wgan-q1-hinge: both fail inside run_table
    assert calls[-1] == dict(runs=[("wgan", "1", "ls", 0), ("wgan", "1", "hinge", 0)], pack=True, pack_size=2)
    with pytest.raises(FileNotFoundError):
        jobs[3]()  # hinge-q1-ls and hinge-q1-hinge: the whole call fails (e.g. the data are missing)
    collected = sweep.collect("2", "smoke", tmp_path, seeds=0, iterations=2)
    frame = collected.set_axis([Path(p).name for p in collected["run"]])
    assert frame.loc["wgan-q1-ls-s0", "status"] == "failed" and "nan" in frame.loc["wgan-q1-ls-s0", "error"]
    assert frame.loc["hinge-q1-ls-s0", "status"] == "failed" and "CIFAR-10" in frame.loc["hinge-q1-ls-s0", "error"]
    assert frame.loc["hinge-q1-hinge-s0", "status"] == "failed"
    assert frame.loc["wgan-q2-ls-s0", "status"] == "missing" and math.isnan(frame.loc["wgan-q2-ls-s0", "final"])
    report = sweep.collect_report(collected)
    assert report.startswith("0/12 runs finished") and "failed (4)" in report and "missing (8)" in report


def test_every_job_runs_once_in_waves_of_array_parallelism(tmp_path, monkeypatch):
    calls = []

    def fake_run_table(table, preset="smoke", root="results/gan", progress=False, load_only=False, runs=None,
                       **overrides):
        calls.append(([gan_tables.cell_name(*r[:3]) for r in runs], [r[3] for r in runs]))
        return pd.DataFrame([{"loss": "wgan", "q": "1", "g": "ls", "seed": 0, "status": "finished", "run": ""}])

    monkeypatch.setattr(sweep_jobs, "run_table", fake_run_table)
    settings = sweep.SweepSettings(executor="debug", pack=3, array_parallelism=2, log_folder=tmp_path / "logs")
    result = sweep.sweep("2", "smoke", tmp_path / "runs", settings, seeds=[0, 1, 2], cells="wgan-q1-ls,hinge-q2-ls")
    assert len(result.jobs) == len(result.handles) == 2 and not result.errors
    assert calls == [(["wgan-q1-ls"] * 3, [0, 1, 2]), (["hinge-q2-ls"] * 3, [0, 1, 2])]


def test_a_job_can_split_its_runs_over_processes_sharing_its_device(tmp_path):
    jobs = sweep_jobs.plan_jobs("2", "smoke", tmp_path, pack=4, processes=2, seeds=[0, 1], iterations=2,
                           cells=["wgan-q2-ls", "hinge-q2-ls"])
    assert len(jobs) == 1 and jobs[0].processes == 2
    frame = jobs[0]()
    assert sorted((r.loss, r.seed) for r in frame.itertuples()) == [("hinge", 0), ("hinge", 1), ("wgan", 0),
                                                                      ("wgan", 1)]
    assert (frame["status"] == "finished").all()
    alone = gan_tables.run_table("2", "smoke", tmp_path / "alone", seeds=[0, 1], iterations=2,
                                 cells=["wgan-q2-ls", "hinge-q2-ls"], pack=False)
    merged = frame.merge(alone, on=["loss", "q", "g", "seed"])
    assert (merged["final_x"] - merged["final_y"]).abs().max() < 1e-3 * merged["final_y"].abs().max()
    settings = sweep.SweepSettings(executor="local", pack=2, processes=3)
    with pytest.raises(ValueError, match="processes=3 is more than the pack=2"):
        sweep.check_settings(settings)
    assert sweep.cpus_per_job(sweep.SweepSettings(processes=2)) == 4


def test_a_job_uses_the_cores_it_was_given(tmp_path, monkeypatch):
    """The local executor does not confine a job: two jobs at once on a 2-core machine each ran two threads
    (oversubscribed, and a thread count other than the one their runs record). A job's processes share its
    --cpus-per-job."""
    calls = []

    def recording(tasks, workers, threads):
        calls.append((workers, threads))
        return [pd.DataFrame(columns=["loss", "q", "g", "seed", "status", "run"])]

    monkeypatch.setattr(sweep_jobs, "run_tasks", recording)
    monkeypatch.setattr(sweep_jobs, "available_cores", lambda: 8)
    for cpus, processes, threads, expected in ((1, 1, None, 1), (None, 1, None, 8), (4, 2, None, 2), (1, 2, None, 1),
                                               (1, 1, 3, 3), (None, 2, 1, 1)):
        calls.clear()
        jobs = sweep_jobs.plan_jobs("2", "smoke", tmp_path, pack=2, processes=processes, cpus=cpus, threads=threads,
                               seeds=[0], cells=["wgan-q2-ls", "hinge-q2-ls"], iterations=2)
        jobs[0]()
        assert calls == [(processes, expected)], (cpus, processes, threads)


def test_runs_checkpointed_in_a_pack_stay_in_their_pack(tmp_path):
    """A run continues bit for bit only in the pack it trained in (issue 37): the unfinished runs of a pack that
    their checkpoints record form one job, whatever --pack and --processes say now; the others are grouped as
    usual. (Here the pack of a table trained with --pack 2 after its first run failed alone.)"""
    cells = ["wgan-q2-ls", "wgan-q2-hinge", "hinge-q2-ls", "hinge-q2-hinge"]
    runs, _ = gan_tables.table_configs("2", "smoke", seeds=[0], cells=cells)
    folders = sweep_jobs.run_folders("2", "smoke", tmp_path, runs, {"seeds": [0], "cells": cells})
    names = [folders[run].name for run in runs]
    for run in runs[1:3]:  # the pack of the 2nd and 3rd runs, checkpointed
        folders[run].mkdir(parents=True)
        torch.save({"iteration": 2, "execution": {"packed": True, "pack": names[1:3], "position": 0, "threads": 1}},
                   folders[run] / "checkpoint.pt")
    jobs = sweep_jobs.plan_jobs("2", "smoke", tmp_path, pack=2, processes=2, seeds=[0], cells=cells, threads=1)
    assert [[folders[run].name for run in job.runs] for job in jobs] == [names[1:3], [names[0], names[3]]]
    assert jobs[0].packs == [list(runs[1:3])] and jobs[0].processes == 1  # one pack, as recorded
    assert jobs[1].packs == [[runs[0]], [runs[3]]] and all(job.threads == 1 for job in jobs)
