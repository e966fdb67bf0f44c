"""Fan the runs of one of Tables 2–8 out as cluster jobs (submitit), then collect the table.

    mmgan sweep 2 --preset paper --executor slurm --partition gpu --data-root /shared/data \\
        --pack 4 --array-parallelism 8 --timeout-min 1440 --dry-run      # the plan, nothing submitted
    mmgan sweep 2 --preset paper --executor slurm --partition gpu --data-root /shared/data \\
        --pack 4 --array-parallelism 8 --timeout-min 1440                # one SLURM job array
    mmgan sweep 2 --preset paper --data-root /shared/data --collect   # the table so far
    mmgan sweep 2 --preset smoke --executor local               # the same jobs on this machine

The runs of a table (:func:`mmgan.gan.tables.table_configs`, in table order) are cut
into groups of ``--pack K`` runs; each group is one job, a :class:`TableJob`, which
calls :func:`mmgan.gan.tables.run_table` once with exactly its runs (``runs=``) and
trains them as one pack on its GPU.
Every run keeps its own folder ``<root>/table<N>/<preset>-<key>/<cell>-s<seed>/``,
exactly as ``mmgan table`` would write it, so a sweep, a notebook and
the command line share finished runs.

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

The shared-path rule. A SLURM job runs on another machine, so everything it reads or
writes must be on a file system that the login node and the compute nodes share. The
log folder (submitit's pickles, stdout and stderr), ``--root`` and ``--data-root`` are
therefore refused for ``--executor slurm`` when, once made absolute and with symbolic
links resolved, they lie under a node-local directory: ``/tmp``, ``/var/tmp``,
``/dev/shm``, ``/run``, ``$TMPDIR`` or Python's ``tempfile.gettempdir()``
(:func:`local_roots`). Nothing else can be checked from the login node: ``/scratch``
is shared on most clusters and node-local on some; choose accordingly. Relative paths
are relative to the directory you submit from, which is the jobs' working directory.

Cluster recipe (SLURM):

1. On the login node, in a checkout on the shared file system::

       python3.11 -m venv .venv && .venv/bin/pip install -r requirements-lock.txt \\
           && .venv/bin/pip install --no-deps -e .

   The jobs run ``.venv/bin/python`` (the interpreter that submits them), so it must
   be visible from the compute nodes.
2. Put the data on the shared file system (``--data-root``: the folder holding
   ``cifar-10-batches-py``, or the pre-cropped CAT faces) and pytorch-fid's Inception
   weights under ``$TORCH_HOME/hub/checkpoints/`` (compute nodes usually have no
   network). Export ``TORCH_HOME`` and ``MMGAN_CACHE`` (data set statistics) to shared
   folders before submitting: the jobs inherit the environment.
3. ``--dry-run`` prints the jobs and their runs; then submit without it. The command
   prints the array's job ids, the log folder and the command that collects the table.
4. Follow with ``squeue --me`` / ``sacct -j <id>``; the stdout and stderr of job
   ``<id>_<task>`` are ``<log folder>/<id>_<task>_0_log.out`` / ``.err``.
5. ``mmgan sweep <table> --preset paper --collect [same options]`` prints the
   table from the run folders, and which runs are missing, incomplete or failed;
   :func:`collect` returns it as a DataFrame. Submitting the same command again runs
   only what is missing.

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

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import submitit
import torch
from submitit.helpers import Checkpointable, DelayedSubmission
from submitit.local.local import LocalExecutor, LocalJob

from mmgan.base.paths import results_root
from mmgan.base.processes import available_cores, run_tasks, using_threads
from mmgan.base.registry import check_choice, check_int, lookup
from mmgan.base.run_folder import CHECKPOINT, LOCK, LOG, SUMMARY, RunFolderBusy, RunLock
from mmgan.gan.packed_training import recorded_execution
from mmgan.gan.tables import PRESETS, TABLES, cell_name, run_table, table_configs, table_folder

__all__ = ["EXECUTORS", "FAILURE_RECORD", "STOP_GRACE_S", "STOP_SIGNALS", "Sweep", "SweepSettings", "SweepStopped",
           "TableJob", "check_settings", "check_shared_path", "collect", "collect_command", "collect_report",
           "group_runs", "local_roots", "main", "make_executor", "plan_jobs", "submit", "sweep"]

Run = tuple[str, str, str, int]  # (loss, q, g, seed), as table_configs lists them

EXECUTORS = ("slurm", "local", "debug")
#: Node-local directories: refused for the log folder, --root and --data-root of a SLURM sweep.
LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
#: What a job writes into the folder of a run that failed (removed when the run starts again).
FAILURE_RECORD = "sweep-error.json"
#: The statuses of :func:`collect`, in the order its report lists them.
STATUSES = ("finished", "failed", "incomplete", "missing")
SELECTION = ("cells", "seeds")  # overrides that select runs rather than configure them
DATA_ON_DISK = ("cifar10", "cat")  # data sets read from data_root (digits and shapes are built in)
#: The signals that stop a local or debug sweep (its jobs checkpoint first); it then exits with 128 + the number.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Seconds a stopped local sweep gives its jobs to reach an iteration boundary and write their checkpoints (a
#: metric evaluation under way finishes first) before it kills them.
STOP_GRACE_S = 300
POLL_S = 0.2  # how often a local sweep looks at its jobs


# ----------------------------------------------------------------------------- the runs of a job


def group_runs(runs: Sequence[Run], pack: int) -> list[list[Run]]:
    """Consecutive groups of ``pack`` runs, in table order (the last group may be smaller)."""
    check_int(pack, "pack", minimum=1)
    return [list(runs[start:start + pack]) for start in range(0, len(runs), pack)]


def _config_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
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


def _study_folder(table: str, preset: str, root: Path | str, overrides: dict[str, Any]) -> Path:
    """The folder holding the run folders of the study (what ``mmgan table`` writes to)."""
    _, base = table_configs(table, preset, **_config_overrides(overrides))
    return table_folder(table, preset, base, root)


def _run_folders(table: str, preset: str, root: Path | str, runs: Sequence[Run],
                 overrides: dict[str, Any]) -> dict[Run, Path]:
    folder = _study_folder(table, preset, root, overrides)
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
        self.overrides = _config_overrides(dict(overrides or {}))
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
        folders = _run_folders(self.table, self.preset, self.root, self.runs, self.overrides)
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
    folders = _run_folders(table, preset, root, runs, overrides)
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


# ----------------------------------------------------------------------------- settings and checks


@dataclass(frozen=True)
class SweepSettings:
    """Where and how the jobs run (everything but the runs themselves)."""

    executor: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    pack: int = 1
    #: processes per job sharing its device (when packing alone leaves the GPU idle); the job's runs are split
    processes: int = 1
    array_parallelism: int | None = None  # slurm: all jobs at once (submitit caps at 256); local: 1
    timeout_min: int = 24 * 60
    max_timeouts: int = 5
    cpus_per_job: int | None = None
    #: torch threads per process of a job (None: the job's cores shared among its processes); recorded by every run
    threads: int | None = None
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    log_folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # slurm_additional_parameters (e.g. gres, constraint)


def local_roots() -> list[Path]:
    """Directories that are local to one machine: paths below them are refused for a SLURM sweep."""
    roots = [Path(p) for p in LOCAL_ROOTS]
    for extra in (os.environ.get("TMPDIR"), tempfile.gettempdir()):
        if extra:
            roots.append(Path(extra))
    resolved = [root.resolve() for root in roots]
    return [root for index, root in enumerate(resolved) if root not in resolved[:index]]


def check_shared_path(path: Path | str, parameter: str) -> Path:
    """``path`` made absolute, refused (``ValueError`` naming ``parameter``) when it lies under a node-local
    directory (:func:`local_roots`). A submitit placeholder (``%j``) and what follows it are not checked."""
    text = str(path)
    prefix = Path(text.split("%", 1)[0] or ".").expanduser().resolve()
    for root in local_roots():
        if prefix == root or root in prefix.parents:
            raise ValueError(
                f"{parameter}={text!r} is under {root}, which is local to each machine: SLURM jobs run on other "
                f"nodes and would not see it (nor could you see their logs). Use a folder on the shared file "
                f"system (home, project or a shared scratch); refused prefixes: "
                f"{', '.join(str(r) for r in local_roots())}")
    return Path(text).expanduser().absolute()


def check_settings(settings: SweepSettings) -> SweepSettings:
    """Check every executor setting (``ValueError`` naming the parameter); returns ``settings``."""
    check_choice(settings.executor, EXECUTORS, "executor")
    check_int(settings.gpus_per_job, "gpus_per_job", minimum=0)
    check_int(settings.pack, "pack", minimum=1)
    check_int(settings.processes, "processes", minimum=1)
    if settings.processes > settings.pack:
        raise ValueError(f"processes={settings.processes} is more than the pack={settings.pack} runs of a job")
    check_int(settings.timeout_min, "timeout_min", minimum=1)
    check_int(settings.max_timeouts, "max_timeouts", minimum=0)
    for name in ("array_parallelism", "cpus_per_job", "threads", "mem_gb"):
        if getattr(settings, name) is not None:
            check_int(getattr(settings, name), name, minimum=1)
    for name in ("partition", "account", "qos"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if settings.executor == "slurm":
        if settings.partition is None:
            raise ValueError("partition is required for executor='slurm' (--partition NAME; `sinfo -s` lists them)")
    else:
        ignored = [name for name in ("partition", "account", "qos") if getattr(settings, name) is not None]
        if ignored or settings.extra:
            warnings.warn(f"{ignored + sorted(settings.extra)} apply to executor='slurm' only; ignored for "
                          f"executor={settings.executor!r}", stacklevel=2)
    return settings


def default_log_folder(table: str, preset: str) -> Path:
    """``output/submitit/table<N>-<preset>`` below the working directory (``/output/`` is not committed)."""
    return Path("output") / "submitit" / f"table{table}-{preset}"


def _check_run_inputs(settings: SweepSettings, table: str, preset: str, root: Path | str,
                      overrides: dict[str, Any]) -> tuple[Path, Path]:
    """The absolute root and log folder, after checking the paths and what the runs need from this side."""
    _, base = table_configs(table, preset, **overrides)
    if base.dataset in DATA_ON_DISK and base.data_root is None:
        raise ValueError(f"data_root is required for table {table} at preset {preset!r} (data set "
                         f"{base.dataset!r}): --data-root FOLDER on a file system the jobs can read")
    if settings.gpus_per_job == 0 and base.device.startswith("cuda"):
        raise ValueError(f"gpus_per_job=0 but device={base.device!r}: ask for a GPU or use device 'auto'/'cpu'")
    log_folder = settings.log_folder or default_log_folder(table, preset)
    if settings.executor == "slurm":
        check_shared_path(root, "root")
        check_shared_path(log_folder, "log_folder")
        if base.data_root is not None:
            check_shared_path(base.data_root, "data_root")
    return Path(root).expanduser().absolute(), Path(log_folder).expanduser().absolute()


# ----------------------------------------------------------------------------- executors


def cpus_per_job(settings: SweepSettings) -> int:
    """``--cpus-per-job``, or by default 2 per process of a job (one drives the device, one for the host side of
    data, metrics and checkpoints; a CPU-only job uses them for its threads)."""
    return settings.cpus_per_job or 2 * settings.processes


class _SessionLocalExecutor(LocalExecutor):
    """submitit's ``LocalExecutor`` with each job (its controller, the job and the job's workers) in a session of
    its own.

    A Ctrl-C at the terminal sends SIGINT to every process of the foreground process group: submitit's job
    controller would then stop its job with SIGINT and SIGKILL it a second later, before the job has written its
    checkpoint. In a session of its own, the job gets only what the sweep forwards (:func:`_stop_local_jobs`).
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


def make_executor(settings: SweepSettings, log_folder: Path, name: str) -> submitit.Executor:
    """A submitit executor for ``settings.executor`` writing its pickles and logs to ``log_folder`` (local: a
    :class:`_SessionLocalExecutor`)."""
    if settings.executor == "slurm" and shutil.which("sbatch") is None:
        raise RuntimeError("executor='slurm' needs the SLURM commands (sbatch, srun) on PATH: submit from the "
                           "cluster's login node, or use --executor local")
    cluster = settings.executor
    parameters: dict[str, Any] = dict(name=name, timeout_min=settings.timeout_min, nodes=1, tasks_per_node=1,
                                      gpus_per_node=settings.gpus_per_job, cpus_per_task=cpus_per_job(settings),
                                      mem_gb=settings.mem_gb)
    if cluster == "local":  # what AutoExecutor would pass it: the shared parameters that are set
        executor: submitit.Executor = _SessionLocalExecutor(log_folder, max_num_timeout=settings.max_timeouts)
        executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
        return executor
    options = {} if cluster == "debug" else {f"{cluster}_max_num_timeout": settings.max_timeouts}
    executor = submitit.AutoExecutor(folder=log_folder, cluster=cluster, **options)
    if cluster == "slurm":
        parameters.update(slurm_partition=settings.partition, slurm_account=settings.account,
                          slurm_qos=settings.qos, slurm_array_parallelism=settings.array_parallelism,
                          slurm_additional_parameters=dict(settings.extra) or None)
    executor.update_parameters(**parameters)
    return executor


def submit(executor: submitit.Executor, jobs: Sequence[TableJob]) -> list[submitit.Job]:
    """Submit ``jobs`` together: one job array on SLURM (``executor.batch()``)."""
    with executor.batch():
        handles = [executor.submit(job) for job in jobs]
    return handles


class SweepStopped(KeyboardInterrupt):
    """A local or debug sweep stopped by the signal ``signum``, after its jobs stopped; the message says where the
    runs stopped. The command line prints it and exits with 128 + ``signum``."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class _StopSignals:
    """The handler of :data:`STOP_SIGNALS` while a local or debug sweep runs its jobs.

    It keeps the first signal (``signum``) and counts them (``count``) for :func:`_wait`, which forwards them to
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
    def installed(self) -> Iterator[_StopSignals]:
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


def _say(text: str) -> None:
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


def _stopped_message(signum: int, what: str, jobs: Sequence[TableJob], later: int) -> str:
    """What a stopped sweep says: ``what`` it did, where the unfinished runs of ``jobs`` stand, and how to go on
    (``later``: jobs not submitted yet)."""
    iterations, fresh = [], 0
    for job in jobs:
        for folder in _run_folders(job.table, job.preset, job.root, job.runs, job.overrides).values():
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


def _stop_local_jobs(handles: Sequence[submitit.Job], stop: _StopSignals) -> tuple[int, int]:
    """Stop the running local jobs and wait for them; returns (jobs asked to stop, jobs killed).

    Each running job's controller (its pid is the job id; it leads the job's session) gets one SIGTERM for each
    signal the sweep got, and passes it on to the job: the first stops the job's training loop at its next
    iteration boundary, after its checkpoint; a second stops it at once. A job still running after
    :data:`STOP_GRACE_S` is killed with every process of its session.
    """
    running = [handle for handle in handles if not handle.done()]
    if running:
        _say(f"{signal.Signals(stop.signum).name}: asking {_plural(len(running), 'running job')} to write a "
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


def _wait(handles: Sequence[submitit.Job], jobs: Sequence[TableJob], stop: _StopSignals, later: int) -> list[str]:
    """Wait for the jobs of one wave; the error of each job that failed as a whole (its runs' own failures are
    recorded). With the local executor a stop signal (:class:`_StopSignals`) stops the jobs first
    (:func:`_stop_local_jobs`), then raises :class:`SweepStopped`; the debug executor runs each job here, when
    its result is asked for, and the signal stops it in this process."""
    if not stop.at_once:
        while not stop.signum and not all(handle.done() for handle in handles):
            time.sleep(POLL_S)
        if stop.signum:  # also when the signal came as the last job ended: no further wave starts
            asked, killed = _stop_local_jobs(handles, stop)
            what = (f"asked {_plural(asked, 'running job')} to write a checkpoint and stop" if asked
                    else "no job was running")
            if killed:
                were = "was" if killed == 1 else "were"
                what += f" ({killed} did not stop within {STOP_GRACE_S} s and {were} killed)"
            raise SweepStopped(_stopped_message(stop.signum, what, jobs, later), stop.signum)
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
def _study_lock(folder: Path) -> Iterator[None]:
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


@dataclass
class Sweep:
    """What :func:`sweep` did: the jobs, their submitit handles (none on a dry run) and where the logs are."""

    table: str
    preset: str
    root: Path
    overrides: dict[str, Any]
    settings: SweepSettings
    log_folder: Path
    jobs: list[TableJob]
    handles: list[submitit.Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # local/debug: jobs that failed as a whole


def sweep(table: str, preset: str = "paper", root: Path | str | None = None,
          settings: SweepSettings | None = None, dry_run: bool = False, **overrides: Any) -> Sweep:
    """Check everything, then submit the runs of ``table`` as jobs of ``settings.pack`` runs each.

    ``overrides`` are those of :func:`mmgan.gan.tables.table_configs` (``cells``, ``seeds``, any
    GANConfig field such as ``iterations`` or ``data_root``). Nothing is submitted (nor any folder
    made) until every value has been checked. With the local and debug executors the call holds the
    study's folder (:class:`~mmgan.base.run_folder.RunFolderBusy` when another sweep holds it) and waits
    for the jobs; SIGTERM, SIGINT or SIGHUP meanwhile stops the jobs at an iteration boundary and raises
    :class:`SweepStopped` (see the module's docstring). With SLURM it returns once the array is queued,
    and takes no lock: nothing of it is left running to hold one, and each run's own lock keeps two jobs
    from training the same run.
    """
    settings = check_settings(settings or SweepSettings())
    overrides = {k: v for k, v in overrides.items() if v is not None}
    table = str(table)
    lookup(TABLES, table, "table")
    lookup(PRESETS, preset, "preset")
    root = Path(root) if root is not None else results_root() / "gan"
    root, log_folder = _check_run_inputs(settings, table, preset, root, overrides)
    jobs = plan_jobs(table, preset, root, settings.pack, processes=settings.processes, cpus=cpus_per_job(settings),
                     threads=settings.threads, **overrides)
    result = Sweep(table, preset, root, overrides, settings, log_folder, jobs)
    if dry_run or not jobs:  # nothing to submit when every run has finished
        return result
    name = f"mmgan-table{table}-{preset}"
    if settings.executor == "slurm":
        result.handles = submit(make_executor(settings, log_folder, name), jobs)
        return result
    wave, stop = settings.array_parallelism or 1, _StopSignals(at_once=settings.executor == "debug")
    chosen: list[TableJob] = []
    later = len(jobs)  # jobs not submitted yet
    try:
        with _study_lock(_study_folder(table, preset, root, overrides)), stop.installed():
            executor = make_executor(settings, log_folder, name)
            for start in range(0, len(jobs), wave):
                chosen = jobs[start:start + wave]
                later -= len(chosen)
                handles = submit(executor, chosen)
                result.handles += handles
                result.errors += _wait(handles, chosen, stop, later)
    except SweepStopped:
        raise
    except KeyboardInterrupt as interrupt:  # debug: the job in this process has stopped (its loop at a boundary)
        signum = stop.signum or getattr(interrupt, "signum", signal.SIGINT)
        raise SweepStopped(_stopped_message(signum, "the job running in this process has stopped", chosen, later),
                           signum) from None
    return result


# ----------------------------------------------------------------------------- collecting the table


def _last_iteration(folder: Path) -> int:
    """The last iteration ``log.jsonl`` records (0 without a log)."""
    last = 0
    path = folder / LOG
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                last = max(last, int(json.loads(line).get("iteration", 0)))
            except (ValueError, AttributeError):
                continue  # a line cut short by a kill
    return last


def _unfinished_row(run: Run, folder: Path, metric: str) -> dict[str, Any]:
    loss, q, g, seed = run
    status, error = "missing", ""
    if (folder / FAILURE_RECORD).is_file():
        status = "failed"
        try:
            error = json.loads((folder / FAILURE_RECORD).read_text(encoding="utf-8")).get("error", "")
        except (ValueError, OSError) as problem:
            error = f"unreadable {FAILURE_RECORD}: {problem}"
    elif (folder / CHECKPOINT).is_file() or (folder / LOG).is_file():
        status = "incomplete"
    return {"loss": loss, "q": q, "g": g, "seed": seed, "run": str(folder), "status": status, "error": error,
            "final": math.nan, "lowest": math.nan, "lowest_at": math.nan, "iterations": math.nan, "metric": metric}


def collect(table: str, preset: str = "paper", root: Path | str | None = None, **overrides: Any) -> pd.DataFrame:
    """The table assembled from its run folders: one row per run, as :func:`~mmgan.gan.tables.run_table` gives it.

    Finished runs are read with ``run_table(..., load_only=True)``; every other run gets NaN metrics and
    a ``status``: ``'failed'`` (its job recorded an error, in ``error``), ``'incomplete'`` (it has
    started: a checkpoint or a log) or ``'missing'`` (nothing yet). ``progress`` is the last iteration
    each run's log records. ``overrides`` must be those the sweep was submitted with (they choose the
    table's folder); :func:`collect_report` summarises the result.
    """
    root = Path(root) if root is not None else results_root() / "gan"
    runs, base = table_configs(table, preset, **overrides)
    folders = _run_folders(str(table), preset, root, runs, overrides)
    done = [run for run in runs if (folders[run] / SUMMARY).is_file()]
    rows: dict[Run, dict[str, Any]] = {}
    if done:
        frame = run_table(str(table), preset, root, load_only=True, runs=done, **_config_overrides(overrides))
        for record in frame.to_dict("records"):
            rows[(record["loss"], record["q"], record["g"], record["seed"])] = record
    for run in runs:
        if run not in rows:
            rows[run] = _unfinished_row(run, folders[run], base.metric)
    frame = pd.DataFrame([rows[run] for run in runs])
    for name in ("dataset", "image_size", "arch", "width"):
        frame[name] = getattr(base, name)
    frame["preset"] = preset
    frame["progress"] = [_last_iteration(folders[run]) for run in runs]
    return frame


def collect_report(frame: pd.DataFrame) -> str:
    """One line per status: how many runs, and which (with the error of each failed run)."""
    counts = frame["status"].value_counts()
    lines = [f"{counts.get('finished', 0)}/{len(frame)} runs finished"]
    for status in STATUSES[1:]:
        chosen = frame[frame["status"] == status]
        if chosen.empty:
            continue
        names = [f"{Path(run).name}" + (f" ({error})" if error else "") + (f" at {it}" if status == "incomplete"
                 else "") for run, error, it in zip(chosen["run"], chosen["error"], chosen["progress"])]
        lines.append(f"{status} ({len(chosen)}): " + "; ".join(names))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def collect_command(table: str, preset: str, root: Path, overrides: dict[str, Any]) -> str:
    """The shell command that collects a sweep submitted with these values."""
    words = ["mmgan", "sweep", table, "--preset", preset,
             "--root", str(root), "--collect"]
    for key, value in overrides.items():
        if key in SELECTION:
            values = value if isinstance(value, (list, tuple)) else [value]
            words += [f"--{key}", *(str(v) for v in values)]
        else:
            words += ["--set", f"{key}={value}"]
    return shlex.join(words)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmgan sweep",
                                     description="Run the cells of one of Tables 2-8 as (SLURM) jobs; see the "
                                                 "module's docstring for the cluster recipe.")
    parser.add_argument("table", help=f"one of {', '.join(TABLES)}")
    parser.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)} (default: paper)")
    parser.add_argument("--executor", default="slurm", help=f"one of {', '.join(EXECUTORS)} (default: slurm)")
    parser.add_argument("--partition", help="SLURM partition (required with --executor slurm)")
    parser.add_argument("--gpus-per-job", type=int, default=1)
    parser.add_argument("--pack", type=int, default=1, help="runs per job (default 1)")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes per job sharing its device, the job's runs split among them (default 1)")
    parser.add_argument("--array-parallelism", type=int,
                        help="jobs running at once (SLURM: the array's %%N; local: default 1)")
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per job in minutes")
    parser.add_argument("--max-timeouts", type=int, default=5, help="requeues after time-outs (default 5)")
    parser.add_argument("--cpus-per-job", type=int)
    parser.add_argument("--threads", type=int,
                        help="torch threads per process of a job (default: its cores shared among its processes); "
                             "recorded by every run, and a resumed pack keeps the count it recorded")
    parser.add_argument("--mem-gb", type=int)
    parser.add_argument("--account")
    parser.add_argument("--qos")
    parser.add_argument("--slurm-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="any other sbatch option, e.g. gres=gpu:a100:1 (repeatable)")
    parser.add_argument("--root", type=Path,
                        help="folder of the GAN tables (default: results/gan of this checkout, or $MMGAN_RESULTS/gan)")
    parser.add_argument("--log-folder", type=Path, help="submitit's folder (default output/submitit/table<N>-<preset>)")
    parser.add_argument("--seeds", nargs="+")
    parser.add_argument("--cells", nargs="+")
    parser.add_argument("--data-root", dest="data_root")
    parser.add_argument("--iterations")
    parser.add_argument("--device")
    parser.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="any GANConfig field, e.g. --set lam=10 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="check and print the plan; submit nothing")
    parser.add_argument("--collect", action="store_true", help="print the table from the run folders; submit nothing")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = dict(args.set)
    for name in ("seeds", "cells", "data_root", "iterations", "device"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if overrides.get("seeds") is not None:
        overrides["seeds"] = [int(s) if s.lstrip("+-").isdigit() else s for s in overrides["seeds"]]
    return overrides


def _settings(args: argparse.Namespace) -> SweepSettings:
    return SweepSettings(executor=args.executor, partition=args.partition, gpus_per_job=args.gpus_per_job,
                         pack=args.pack, processes=args.processes, array_parallelism=args.array_parallelism,
                         timeout_min=args.timeout_min,
                         max_timeouts=args.max_timeouts, cpus_per_job=args.cpus_per_job, threads=args.threads,
                         mem_gb=args.mem_gb,
                         account=args.account, qos=args.qos, log_folder=args.log_folder, extra=dict(args.slurm_arg))


def _print_plan(result: Sweep) -> None:
    s = result.settings
    runs = sum(len(job.runs) for job in result.jobs)
    jobs = f"{len(result.jobs)} job" + ("s" if len(result.jobs) != 1 else "")
    if not result.jobs:
        print(f"table {result.table}, preset {result.preset}: every run has finished under {result.root}; "
              "nothing to submit")
        return
    print(f"table {result.table}, preset {result.preset}: {runs} unfinished runs in {jobs} of up to {s.pack}; "
          f"executor {s.executor}" + (f", partition {s.partition}" if s.executor == "slurm" else "")
          + f", {s.gpus_per_job} GPU(s) and {s.timeout_min} min per job, at most "
          f"{s.array_parallelism or ('all' if s.executor == 'slurm' else 1)} at once")
    print(f"runs under {result.root}; submitit logs in {result.log_folder}")
    for index, job in enumerate(result.jobs):
        print(f"  job {index}: {job!r}")


def _print_table(frame: pd.DataFrame) -> None:
    columns = ["loss", "q", "g", "seed", "status", "final", "lowest", "progress"]
    print(frame[columns].to_string(index=False))
    print(collect_report(frame))


def main(argv: list[str] | None = None) -> int:
    """The command line; 0 when done (all runs finished for --collect and the local executors), 1 when runs
    are missing or failed, 2 for a bad parameter or a study another sweep is running, 128 + the signal's number
    for a local or debug sweep stopped by a signal (:class:`SweepStopped`)."""
    args = _parser().parse_args(argv)
    overrides = _overrides(args)
    try:
        if args.collect:
            root = args.root if args.root is not None else results_root() / "gan"
            print(f"runs under {root}", file=sys.stderr)
            frame = collect(args.table, args.preset, root, **overrides)
            _print_table(frame)
            return 0 if (frame["status"] == "finished").all() else 1
        result = sweep(args.table, args.preset, args.root, _settings(args), dry_run=args.dry_run, **overrides)
    except SweepStopped as stopped:
        _say(str(stopped))
        return 128 + stopped.signum
    except (ValueError, RuntimeError) as error:
        print(f"mmgan sweep: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder that cannot be made or read, or a missing file named in the message
        print(f"mmgan sweep: error: {error.filename}: {error.strerror}; give --root and --log-folder folders this "
              "user can create and write" if error.filename else f"mmgan sweep: error: {error}", file=sys.stderr)
        return 2
    _print_plan(result)
    if args.dry_run:
        print("dry run: nothing submitted")
        return 0
    command = collect_command(result.table, result.preset, result.root, result.overrides)
    if result.settings.executor == "slurm" and result.handles:
        array = result.handles[0].job_id.split("_")[0]
        print(f"submitted job array {array}: " + " ".join(h.job_id for h in result.handles))
        print(f"follow: squeue -j {array}; logs: {result.log_folder}/<job id>_0_log.out/.err")
        print(f"collect: {command}")
        return 0
    for error in result.errors:
        print(f"failed {error}", file=sys.stderr)
    frame = collect(result.table, result.preset, result.root, **result.overrides)
    _print_table(frame)
    return 0 if (frame["status"] == "finished").all() and not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
