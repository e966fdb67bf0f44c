"""The job side of a sweep (:mod:`mmgan.gan.sweep`): which runs a job trains, and how it trains them without
losing work.

Never losing work. The jobs write nothing of their own beyond the run folders:

* preemption and time limit: SLURM sends ``SIGUSR2`` ``signal_delay_s`` (90 s) before
  it stops a job; submitit then calls :meth:`TableJob.checkpoint`, which returns a
  ``DelayedSubmission`` of the job itself, and requeues it. The requeued job calls
  ``run_table`` again, which skips finished runs and resumes the others from their
  ``checkpoint.pt`` (written every ``checkpoint_every`` iterations, so at most that
  much work is redone). Time-outs are requeued ``--max-timeouts`` times (preemptions
  do not count);
* a job killed outright (node failure, ``scancel``): submit the same command again;
  only the runs without a ``summary.json`` become jobs, and they resume from their
  checkpoints. Wait until the earlier array has left the queue (``squeue``): a run
  still being trained is locked (:class:`mmgan.base.run_folder.RunLock`), and a second job
  would only find it busy;
* a run that fails (an error, a non-finite loss) is recorded by ``run_table`` and the
  job goes on; the job also writes ``sweep-error.json`` (the error, the job id) into
  that run's folder, so that :func:`collect` can say which runs failed and why. It is
  removed when the run is started again.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from mmgan.base.processes import available_cores, run_tasks, using_threads
from mmgan.base.registry import check_int
from mmgan.base.run_folder import SUMMARY, RunFolderBusy
from mmgan.gan.packed_training import recorded_execution
from mmgan.gan.tables import cell_name, run_table, table_configs, table_folder

Run = tuple[str, str, str, int]  # (loss, q, g, seed), as table_configs lists them

#: What a job writes into the folder of a run that failed (removed when the run starts again).
FAILURE_RECORD = "sweep-error.json"
SELECTION = ("cells", "seeds")  # overrides that select runs rather than configure them


def group_runs(runs: Sequence[Run], pack: int) -> list[list[Run]]:
    """Consecutive groups of ``pack`` runs, in table order (the last group may be smaller)."""
    check_int(pack, "pack", minimum=1)
    return [list(runs[start:start + pack]) for start in range(0, len(runs), pack)]


def config_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that configure the runs (everything but the selection of cells and seeds; no Nones)."""
    return {k: v for k, v in overrides.items() if k not in SELECTION and v is not None}


def _job_id() -> str:
    """The submitit job id when running as a job ('' otherwise)."""
    try:
        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:
        return ""


def _job_cluster() -> str:
    """The submitit executor running this process as a job ('local', 'slurm', 'debug'; '' outside a job)."""
    try:
        return submitit.JobEnvironment().cluster
    except RuntimeError:
        return ""


def _stop_job(signum: int, frame: Any) -> None:
    """SIGTERM in a local job: pass it on to the job's worker processes (``--processes``), then stop.

    Inside a training loop the loop's own handler gets the signal first, stops at the next iteration boundary
    with its checkpoint written, then hands the signal here."""
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """In a job of the local executor, SIGTERM (what a stopped sweep sends its jobs) stops the job
    (:func:`_stop_job`), where submitit would ignore it outside a training loop: a job still loading its data
    would otherwise train on until the sweep kills it. Elsewhere (SLURM, not a job) nothing changes."""
    if _job_cluster() != "local" or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop_job)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def study_folder(table: str, preset: str, root: Path | str, overrides: dict[str, Any]) -> Path:
    """The folder holding the run folders of the study (what ``mmgan table`` writes to)."""
    _, base = table_configs(table, preset, **config_overrides(overrides))
    return table_folder(table, preset, base, root)


def run_folders(table: str, preset: str, root: Path | str, runs: Sequence[Run],
                 overrides: dict[str, Any]) -> dict[Run, Path]:
    folder = study_folder(table, preset, root, overrides)
    return {run: folder / f"{cell_name(*run[:3])}-s{run[3]}" for run in runs}


def _record_failure(folder: Path, error: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"error": error, "job_id": _job_id(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / FAILURE_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")


def train_pack_of_runs(table: str, preset: str, root: str, runs: list[Run], overrides: dict[str, Any],
                       threads: int | None = None) -> pd.DataFrame:
    """``run_table`` on exactly ``runs``, trained as one pack (the work of a job, or of one of its processes), with
    ``threads`` torch threads (default: this process's; a resumed pack keeps the count it recorded)."""
    with _stop_on_sigterm(), using_threads(threads):
        return run_table(table, preset, root, progress=False, runs=runs, pack=len(runs) > 1, pack_size=len(runs),
                         **overrides)


class TableJob(Checkpointable):
    """One job of a sweep: train (or resume, or skip when finished) ``runs`` of a table with ``run_table``.

    Picklable (submitit sends it to the compute node) and checkpointable: on preemption or
    time-out submitit calls :meth:`checkpoint` and requeues the job, which then resumes its runs
    from their own checkpoints.
    """

    def __init__(self, table: str, preset: str, root: Path | str, runs: Sequence[Run],
                 overrides: dict[str, Any] | None = None, processes: int = 1, cpus: int | None = None,
                 threads: int | None = None, packs: Sequence[Sequence[Run]] | None = None) -> None:
        self.table, self.preset, self.root = str(table), preset, str(root)
        self.runs = [tuple(run) for run in runs]
        self.overrides = config_overrides(dict(overrides or {}))
        #: processes that share the job's device, each training one pack of about len(runs) / processes runs
        self.processes = check_int(processes, "processes", minimum=1)
        #: the CPU cores the job was given (``--cpus-per-job``; None: every core it may run on). The local executor
        #: does not confine a job to them, so several jobs at once would otherwise each use every core
        self.cpus = None if cpus is None else check_int(cpus, "cpus", minimum=1)
        #: torch threads per process (``--threads``; None: the job's cores shared among its processes), recorded by
        #: every run; a resumed pack trains with the count it recorded
        self.threads = None if threads is None else check_int(threads, "threads", minimum=1)
        #: the packs, one per process: those the runs' checkpoints recorded (:func:`plan_jobs`), else ``runs``
        #: dealt out over ``processes``
        self.packs = ([[tuple(run) for run in pack] for pack in packs] if packs is not None else
                      [part for part in (self.runs[k::self.processes] for k in range(self.processes)) if part])
        self.attempt = 1  # incremented by each requeue (the state travels in the pickle)

    def __repr__(self) -> str:
        names = ", ".join(f"{cell_name(*run[:3])}-s{run[3]}" for run in self.runs)
        return f"TableJob(table {self.table}, {self.preset}: {names})"

    def __call__(self) -> pd.DataFrame:
        print(f"{self!r}, attempt {self.attempt}, job {_job_id() or '-'}", flush=True)
        folders = run_folders(self.table, self.preset, self.root, self.runs, self.overrides)
        for run in self.runs:  # the run starts again: an earlier failure no longer describes it
            (folders[run] / FAILURE_RECORD).unlink(missing_ok=True)
        try:  # exactly this job's runs: one pack, or one pack per process
            # a job pickled by an older version (requeued across an update) has neither packs nor threads
            parts = getattr(self, "packs", None) or [part for part in (self.runs[k::self.processes]
                                                                      for k in range(self.processes)) if part]
            cores = min(available_cores(), self.cpus or available_cores())
            threads = getattr(self, "threads", None) or max(1, cores // len(parts))
            with _stop_on_sigterm():
                frames = run_tasks([(train_pack_of_runs, (self.table, self.preset, self.root, part, self.overrides,
                                                          threads))
                                    for part in parts], workers=len(parts), threads=threads)
            result = pd.concat(frames, ignore_index=True)
        except Exception as error:  # the whole job failed (data missing, ...): say so in every unfinished run
            for run in self.runs:
                if not (folders[run] / SUMMARY).is_file():
                    _record_failure(folders[run], f"{type(error).__name__}: {error}")
            raise
        for _, row in result[result["status"] == "failed"].iterrows():
            if not str(row["error"]).startswith(RunFolderBusy.__name__):  # busy: another job is running it
                _record_failure(Path(row["run"]), row["error"])
        shown = [c for c in ("loss", "q", "g", "seed", "status", "final", "lowest", "error") if c in result]
        print(result[shown].to_string(index=False), flush=True)
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on preemption or time-out: resubmit this job as it is.

        Nothing needs saving here: every run writes its own ``checkpoint.pt`` every
        ``checkpoint_every`` iterations, and ``run_table`` resumes from it (and skips
        the finished runs) when the requeued job calls it again.
        """
        self.attempt += 1
        return DelayedSubmission(self)


def plan_jobs(table: str, preset: str, root: Path | str, pack: int = 1, skip_finished: bool = True,
              processes: int = 1, cpus: int | None = None, threads: int | None = None,
              **overrides: Any) -> list[TableJob]:
    """The jobs of a sweep: the runs of the table (``overrides`` may select ``cells`` and ``seeds``) in groups of
    ``pack``, without the runs already finished under ``root`` (unless ``skip_finished=False``), each job
    splitting its runs over ``processes`` processes on its device and its ``cpus`` cores, with ``threads`` torch
    threads each. Every override is checked here (:func:`mmgan.gan.tables.table_configs`), before anything runs.

    A run whose checkpoint records the pack it trained in continues bit for bit only in that pack
    (:mod:`mmgan.gan.packed_training`): the unfinished runs of each recorded pack form a job of their own, one
    pack, whatever ``pack`` and ``processes`` say now; the other runs are grouped as above."""
    runs, _ = table_configs(table, preset, **overrides)
    folders = run_folders(table, preset, root, runs, overrides)
    if skip_finished:
        runs = [run for run in runs if not (folders[run] / SUMMARY).is_file()]
    by_name = {folders[run].name: run for run in runs}
    recorded: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        record = recorded_execution(folders[run])
        if record is not None and record.get("packed") and folders[run].name in record.get("pack", []):
            names = tuple(record["pack"])
            recorded.setdefault(names, []).append(run)
    jobs, taken = [], set()
    for names, members in recorded.items():
        ordered = [by_name[name] for name in names if name in by_name and by_name[name] in members]
        jobs.append(TableJob(table, preset, root, ordered, overrides, 1, cpus, threads, packs=[ordered]))
        taken.update(ordered)
    rest = [run for run in runs if run not in taken]
    return jobs + [TableJob(table, preset, root, group, overrides, processes, cpus, threads)
                   for group in group_runs(rest, pack)]
