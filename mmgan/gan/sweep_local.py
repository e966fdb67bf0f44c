"""How a local or debug sweep (:mod:`mmgan.gan.sweep`) waits for its jobs and stops them without losing work.

``--executor local`` runs the same jobs on this machine through submitit's
``LocalExecutor`` (one subprocess per job, ``--array-parallelism`` at a time, default
one), and ``--executor debug`` in this process (``DebugExecutor``); both wait for the
jobs and print the collected table. While they wait:

* the sweep holds the study's folder ``<root>/table<N>/<preset>-<key>/`` (its ``.lock``,
  a :class:`~mmgan.base.run_folder.RunLock`; hidden, so no manifest lists it): a second
  local or debug sweep of the same study stops at once and names the holder.
  ``--dry-run`` and ``--collect`` only read, and take no lock. A SLURM submission takes
  none either: it returns as soon as the array is queued, so there is no parent left to
  hold a lock while the jobs run; each run's own lock keeps two jobs from training it;
* SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop the sweep without losing work. Each local job
  runs in a session of its own, so a Ctrl-C at the terminal reaches the sweep alone
  (submitit's job controller would otherwise kill its job a second later). The sweep
  sends each running job one SIGTERM: its training loop writes a checkpoint at the
  next iteration boundary and stops (the sweep stops them at once if it gets the
  signal again). It waits for the jobs (at most :data:`STOP_GRACE_S`, then kills
  what is left), says where their runs stopped, and exits with 128 + the signal's
  number (143, 130, 129): no job outlives it, and no run stays locked. With the debug
  executor the job runs in the sweep's own process, whose training loop gets the
  signal itself. The same command resumes the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.local.local import LocalExecutor, LocalJob

from mmgan.base.run_folder import CHECKPOINT, LOCK, SUMMARY, RunFolderBusy, RunLock
from mmgan.gan.sweep_jobs import TableJob, run_folders

#: The signals that stop a local or debug sweep (its jobs checkpoint first); it then exits with 128 + the number.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Seconds a stopped local sweep gives its jobs to reach an iteration boundary and write their checkpoints (a
#: metric evaluation under way finishes first) before it kills them.
STOP_GRACE_S = 300
POLL_S = 0.2  # how often a local sweep looks at its jobs


class SessionLocalExecutor(LocalExecutor):
    """submitit's ``LocalExecutor`` with each job (its controller, the job and the job's workers) in a session of
    its own.

    A Ctrl-C at the terminal sends SIGINT to every process of the foreground process group: submitit's job
    controller would then stop its job with SIGINT and SIGKILL it a second later, before the job has written its
    checkpoint. In a session of its own, the job gets only what the sweep forwards (:func:`stop_local_jobs`).
    """

    def _submit_command(self, command: str) -> LocalJob:
        # submitit.local.local.start_controller (one task, no shell set-up), the controller in a new session
        gpus = ",".join(str(k) for k in range(self.parameters.get("gpus_per_node", 0)))
        env = dict(os.environ, SUBMITIT_LOCAL_NTASKS="1", SUBMITIT_LOCAL_COMMAND=command,
                   SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * self.parameters.get("timeout_min", 2.0))),
                   SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(self.parameters.get("signal_delay_s", 30))),
                   SUBMITIT_LOCAL_NODEID="0", SUBMITIT_LOCAL_JOB_NUM_NODES="1", SUBMITIT_STDERR_TO_STDOUT="",
                   SUBMITIT_EXECUTOR="local", CUDA_VISIBLE_DEVICES=gpus, SUBMITIT_LOCAL_WITH_SHELL="")
        process = subprocess.Popen([sys.executable, "-m", "submitit.local._local", str(self.folder)], env=env,
                                   start_new_session=True)
        return LocalJob(folder=self.folder, job_id=str(process.pid), process=process, tasks=[0])


class SweepStopped(KeyboardInterrupt):
    """A local or debug sweep stopped by the signal ``signum``, after its jobs stopped; the message says where the
    runs stopped. The command line prints it and exits with 128 + ``signum``."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """The handler of :data:`STOP_SIGNALS` while a local or debug sweep runs its jobs.

    It keeps the first signal (``signum``) and counts them (``count``) for :func:`wait_for_jobs`, which forwards them to
    the jobs. With the debug executor (``at_once``) the job runs in this process and the handler raises
    KeyboardInterrupt at once; inside a training loop the loop gets the signal first, and hands it on here once
    it has stopped at an iteration boundary with its checkpoint written.
    """

    def __init__(self, at_once: bool) -> None:
        self.at_once = at_once
        self.signum: int | None = None
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        self.count += 1
        if self.at_once:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """This handler for :data:`STOP_SIGNALS` (in the main thread; elsewhere signals act as usual)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self) for signum in STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def say(text: str) -> None:
    """``text`` on stderr, unless stderr has gone with its terminal (SIGHUP)."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)


def _plural(count: int, word: str) -> str:
    """``count`` and ``word``, in the plural unless ``count`` is 1."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def _checkpoint_iteration(folder: Path) -> int | None:
    """The iteration of the run's checkpoint (None without one), read without loading its tensors."""
    if not (folder / CHECKPOINT).is_file():
        return None
    try:
        return int(torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True, mmap=True)["iteration"])
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is named when the run resumes; here: none
        return None


def stopped_message(signum: int, what: str, jobs: Sequence[TableJob], later: int) -> str:
    """What a stopped sweep says: ``what`` it did, where the unfinished runs of ``jobs`` stand, and how to go on
    (``later``: jobs not submitted yet)."""
    iterations, fresh = [], 0
    for job in jobs:
        for folder in run_folders(job.table, job.preset, job.root, job.runs, job.overrides).values():
            if not (folder / SUMMARY).is_file():
                iteration = _checkpoint_iteration(folder)
                fresh += iteration is None
                iterations += [] if iteration is None else [iteration]
    parts = []
    if iterations:
        low, high = min(iterations), max(iterations)
        parts.append(f"{len(iterations)} checkpointed at iteration {low}" if low == high
                     else f"{len(iterations)} checkpointed at iterations {low} to {high}")
    if fresh:
        parts.append(f"{fresh} without a checkpoint yet")
    steps = (["resumes them"] if parts else []) + ([f"starts the {_plural(later, 'job')} not started yet"] if later
                                                   else [])
    runs = f"unfinished runs: {' and '.join(parts)}" if parts else "every run has finished"
    then = f"; the same command {' and '.join(steps)}" if steps else ""
    return f"stopped by {signal.Signals(signum).name}: {what}; {runs}{then}."


def stop_local_jobs(handles: Sequence[submitit.Job], stop: StopSignals) -> tuple[int, int]:
    """Stop the running local jobs and wait for them; returns (jobs asked to stop, jobs killed).

    Each running job's controller (its pid is the job id; it leads the job's session) gets one SIGTERM for each
    signal the sweep got, and passes it on to the job: the first stops the job's training loop at its next
    iteration boundary, after its checkpoint; a second stops it at once. A job still running after
    :data:`STOP_GRACE_S` is killed with every process of its session.
    """
    running = [handle for handle in handles if not handle.done()]
    if running:
        say(f"{signal.Signals(stop.signum).name}: asking {_plural(len(running), 'running job')} to write a "
             f"checkpoint and stop (waiting up to {STOP_GRACE_S} s; send the signal again to stop at once)")
    forwarded, deadline = 0, time.monotonic() + STOP_GRACE_S
    while not all(handle.done() for handle in running) and time.monotonic() < deadline:
        if forwarded < stop.count:
            for handle in running:
                if not handle.done():  # not reaped yet: its pid is still its own
                    os.kill(int(handle.job_id), signal.SIGTERM)
            forwarded = stop.count
        time.sleep(POLL_S)
    killed = [handle for handle in running if not handle.done()]
    for handle in killed:  # the controller is not reaped yet, so its session (the job's processes) is still its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(handle.job_id), signal.SIGKILL)
    while not all(handle.done() for handle in killed):
        time.sleep(POLL_S)
    return len(running), len(killed)


def wait_for_jobs(handles: Sequence[submitit.Job], jobs: Sequence[TableJob], stop: StopSignals,
                  later: int) -> list[str]:
    """Wait for the jobs of one wave; the error of each job that failed as a whole (its runs' own failures are
    recorded). With the local executor a stop signal (:class:`StopSignals`) stops the jobs first
    (:func:`stop_local_jobs`), then raises :class:`SweepStopped`; the debug executor runs each job here, when
    its result is asked for, and the signal stops it in this process."""
    if not stop.at_once:
        while not stop.signum and not all(handle.done() for handle in handles):
            time.sleep(POLL_S)
        if stop.signum:  # also when the signal came as the last job ended: no further wave starts
            asked, killed = stop_local_jobs(handles, stop)
            what = (f"asked {_plural(asked, 'running job')} to write a checkpoint and stop" if asked
                    else "no job was running")
            if killed:
                were = "was" if killed == 1 else "were"
                what += f" ({killed} did not stop within {STOP_GRACE_S} s and {were} killed)"
            raise SweepStopped(stopped_message(stop.signum, what, jobs, later), stop.signum)
    errors = []
    for handle in handles:
        try:
            handle.result()
        except Exception as error:  # noqa: BLE001 - report every job, then collect what exists
            last = str(error).strip().splitlines()[-1:] or [type(error).__name__]
            errors.append(f"job {handle.job_id}: {last[0]}")
    return errors


def _busy(folder: Path) -> str:
    """The sentence for a study held by another sweep (its pid and host, from the lock file)."""
    try:
        holder = json.loads((folder / LOCK).read_text(encoding="utf-8"))
        who, how = f"pid {holder['pid']} on {holder['host']}", f"`kill -TERM {holder['pid']}` on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):  # released meanwhile, or being written
        who, how = "another process", "SIGTERM"
    return (f"{folder} is busy: another sweep ({who}) is running the runs of this study (lock file {folder / LOCK}); "
            f"wait for it to finish, or stop it with {how} (its runs write a checkpoint and resume with the same "
            f"command), then run this command again")


@contextlib.contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """Hold the study's folder (:class:`~mmgan.base.run_folder.RunLock`) while a local or debug sweep runs its jobs;
    :class:`~mmgan.base.run_folder.RunFolderBusy` (:func:`_busy`) when another sweep holds it."""
    lock = RunLock(folder)
    try:
        lock.__enter__()
    except RunFolderBusy:
        raise RunFolderBusy(_busy(folder)) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
