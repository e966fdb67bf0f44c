"""mmgan sweep with the local and debug executors, stopped by a signal or started twice: real processes.

A signal to the sweep reaches its running jobs, which write a checkpoint at an iteration boundary and stop; the
sweep waits for them, says where the runs stopped and exits with 128 + the signal's number, leaving no process
and no lock behind; the same command resumes the runs. A second sweep of the study stops at once, naming the
first, while the first goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmgan.base.run_folder import CHECKPOINT, LOCK, LOG, SUMMARY, RunFolderBusy, RunLock
from mmgan.gan import metrics as fid
from mmgan.gan import sweep, sweep_local

ROOT = Path(__file__).resolve().parents[1]
CELL = "wgan-q2-ls"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc")


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    """The jobs' environment: one thread each, and a metric cache of the module's own (with the session's digits
    classifier when it has been trained already; otherwise the first job trains it)."""
    cache = tmp_path_factory.mktemp("mmgan-cache")
    for trained in fid.cache_dir().glob("digits_classifier_*.pt"):
        shutil.copy2(trained, cache / trained.name)
    return dict(os.environ, OMP_NUM_THREADS="1", MMGAN_CACHE=str(cache))


def _argv(root: Path, iterations: int, executor: str = "local") -> list[str]:
    """One run of the smoke Table 2: a checkpoint every 10 iterations, the metric at the end only."""
    return ["2", "--preset", "smoke", "--executor", executor, "--root", str(root), "--log-folder",
            str(root.parent / "logs"), "--cells", CELL, "--seeds", "0", "--gpus-per-job", "0", "--cpus-per-job", "1",
            "--set", f"iterations={iterations}", "--set", "checkpoint_every=10", "--set", f"metric_every={iterations}",
            "--set", "log_every=10", "--set", "metric_samples=16", "--set", "sample_batch_size=16"]


def _start(root: Path, iterations: int, environment: dict[str, str], executor: str = "local") -> subprocess.Popen:
    """``mmgan sweep`` in a process of its own (what it prints is small: the jobs write to their own logs)."""
    return subprocess.Popen([sys.executable, "-m", "mmgan", "sweep", *_argv(root, iterations, executor)], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_folder(root: Path) -> Path:
    (study,) = (root / "table2").iterdir()
    return study / f"{CELL}-s0"


def _wait_for_a_checkpoint(process: subprocess.Popen, root: Path) -> Path:
    """The run's folder once its first checkpoint is written (the job is then training)."""
    deadline = time.monotonic() + 180
    while not list(root.glob(f"table2/*/{CELL}-s0/{CHECKPOINT}")):
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before its run wrote a checkpoint: {process.communicate()}")
        if time.monotonic() > deadline:
            _kill(process, _descendants(process.pid))
            pytest.fail("no checkpoint within 180 s")
        time.sleep(0.05)
    return _run_folder(root)


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (None when there is none, or only its zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _descendants(pid: int) -> set[tuple[int, int]]:
    """Every process below ``pid``, as (pid, start time)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            start = _start_time(child)
            if start is not None:
                found.add((child, start))
                todo.append(child)
    return found


def _alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(pid, start) for pid, start in processes if _start_time(pid) == start}


def _holder(folder: Path) -> int:
    """The pid in a held lock file."""
    deadline = time.monotonic() + 10
    while not (folder / LOCK).read_text().strip():  # written right after the flock
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return json.loads((folder / LOCK).read_text())["pid"]


def _every_lock_is_free(root: Path) -> None:
    locks = list(root.rglob(LOCK))
    assert len(locks) == 2  # the study's and the run's
    for lock in locks:
        with RunLock(lock.parent):
            pass


def _kill(sweep_process: subprocess.Popen, processes: set[tuple[int, int]]) -> None:
    """Clean up after a failed test: a sweep still running, and its ``processes`` still alive (first: they hold
    the sweep's output pipes)."""
    for pid, _ in _alive(processes):
        os.kill(pid, signal.SIGKILL)
    if sweep_process.poll() is None:
        sweep_process.kill()
        sweep_process.communicate()


def _stop(process: subprocess.Popen, root: Path, signum: int) -> tuple[str, Path, int]:
    """Send ``signum`` to a sweep whose run is training; check that it stops cleanly. Returns its stderr, the run's
    folder and its checkpoint's iteration."""
    run = _wait_for_a_checkpoint(process, root)
    tree = _descendants(process.pid)
    try:
        training = _holder(run)  # the job's process, or the sweep itself with the debug executor
        assert training == process.pid or training in {pid for pid, _ in tree}
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        _kill(process, tree)
    assert process.returncode == 128 + signum, (out, err)
    assert not _alive(tree), "a process of the sweep outlived it"
    _every_lock_is_free(root)
    iteration = torch.load(run / CHECKPOINT, weights_only=True)["iteration"]
    assert not (run / SUMMARY).exists()
    name = signal.Signals(signum).name
    assert f"stopped by {name}: " in err and f"1 checkpointed at iteration {iteration}; the same command resumes" in err
    assert "Traceback" not in err
    return err, run, iteration


def test_sigterm_stops_the_running_job_at_a_checkpoint_and_the_same_command_resumes_it(tmp_path, environment):
    root = tmp_path / "runs"
    process = _start(root, 200, environment)
    err, run, iteration = _stop(process, root, signal.SIGTERM)
    assert "asked 1 running job to write a checkpoint and stop; unfinished runs: " in err
    assert 10 <= iteration < 200
    again = subprocess.run([sys.executable, "-m", "mmgan", "sweep", *_argv(root, 200)], cwd=ROOT, env=environment,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1/1 runs finished" in again.stdout
    records = [json.loads(line) for line in (run / LOG).read_text().splitlines()]
    assert [r["iteration"] for r in records if "critic_loss" in r] == list(range(10, 201, 10))  # resumed, no repeat
    _every_lock_is_free(root)


@pytest.mark.parametrize(("executor", "signum"), [pytest.param("local", signal.SIGINT, id="local-SIGINT"),
                                                  pytest.param("debug", signal.SIGTERM, id="debug-SIGTERM")])
def test_ctrl_c_and_the_debug_executor_stop_at_a_checkpoint_too(tmp_path, environment, executor, signum):
    root = tmp_path / "runs"
    process = _start(root, 100_000, environment, executor)
    err, _, _ = _stop(process, root, signum)
    assert ("asked 1 running job" if executor == "local" else "the job running in this process has stopped") in err


def test_a_second_sweep_of_the_study_stops_at_once_and_the_first_goes_on(tmp_path, environment, capsys):
    root = tmp_path / "runs"
    first = _start(root, 100_000, environment)
    tree: set[tuple[int, int]] = set()
    try:
        run = _wait_for_a_checkpoint(first, root)
        tree = _descendants(first.pid)
        study = run.parent
        for executor in ("local", "debug"):
            assert sweep.main(_argv(root, 100_000, executor)) == 2
            err = capsys.readouterr().err
            assert f"{study} is busy: another sweep (pid {first.pid} on " in err and "wait for it to finish" in err
        # reading needs no lock
        assert sweep.main([*_argv(root, 100_000), "--dry-run"]) == 0
        assert sweep.main([*_argv(root, 100_000), "--collect"]) == 1  # not finished
        assert "incomplete (1)" in capsys.readouterr().out
        assert first.poll() is None
        with pytest.raises(RunFolderBusy), RunLock(run):  # its job is still training the run
            pass
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
        assert first.returncode == 143
    finally:
        _kill(first, tree)
    assert not _alive(tree)
    _every_lock_is_free(root)


class _Job:
    """A stand-in for a local job's handle: a process leading a session of its own."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.job_id = process, str(process.pid)

    def done(self) -> bool:
        return self.process.poll() is not None


def test_a_job_that_does_not_stop_in_time_is_killed_with_every_process_of_its_session(monkeypatch):
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    # deaf before it says it is ready (its pid), so the SIGTERM below cannot arrive first; the child inherits that
    code = f"{deaf.removesuffix('time.sleep(120)')}import subprocess, sys; " \
           f"child = subprocess.Popen([sys.executable, '-c', {deaf!r}]); print(child.pid, flush=True); time.sleep(120)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    child = int(process.stdout.readline())
    tree = {(pid, _start_time(pid)) for pid in (process.pid, child)}
    try:
        monkeypatch.setattr(sweep_local, "STOP_GRACE_S", 1)
        stop = sweep_local.StopSignals(at_once=False)
        stop(signal.SIGTERM, None)
        assert sweep_local.stop_local_jobs([_Job(process)], stop) == (1, 1)
        assert process.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while _alive(tree) and time.monotonic() < deadline:  # the orphaned child is reaped by init
            time.sleep(0.05)
        assert not _alive(tree)
    finally:
        _kill(process, tree)
        process.stdout.close()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--seeds", "0", "x"], "seeds must hold integers only, got 'x'"),
    (["--cells", "nope"], "unknown cells ['nope']; valid cells of table 2: ['hinge-q1-hinge'"),
    (["--pack", "0"], "pack must be >= 1, got 0"),
    (["--array-parallelism", "0"], "array_parallelism must be >= 1, got 0"),
    (["--executor", "pbs"], "invalid executor='pbs'; valid choices: 'slurm', 'local', 'debug'"),
    (["--root", "{file}/runs"], "Not a directory; give --root and --log-folder folders this user can create"),
], ids=["seeds", "cells", "pack", "array-parallelism", "executor", "root"])
def test_a_user_error_is_one_sentence_and_exit_status_2(tmp_path, capsys, arguments, message):
    (tmp_path / "file").touch()
    argv = ["2", "--preset", "smoke", "--executor", "local", "--log-folder", str(tmp_path / "logs"), "--root",
            str(tmp_path / "runs"), *[a.format(file=tmp_path / "file") for a in arguments]]
    assert sweep.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("mmgan sweep: error: ") and captured.err.count("\n") == 1 and message in captured.err
    assert not captured.out and not (tmp_path / "logs").exists()
