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
the command line share finished runs. How a job trains them without losing work (preemption, time limits,
failures) is :mod:`mmgan.gan.sweep_jobs`; how a local or debug sweep waits for its jobs and stops them (signals,
the study's lock) is :mod:`mmgan.gan.sweep_local`.

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

"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import submitit

from mmgan.base.paths import results_root
from mmgan.base.registry import check_choice, check_int, lookup
from mmgan.base.run_folder import CHECKPOINT, LOG, SUMMARY
from mmgan.gan.sweep_jobs import (
    FAILURE_RECORD,
    SELECTION,
    Run,
    TableJob,
    config_overrides,
    plan_jobs,
    run_folders,
    study_folder,
)
from mmgan.gan.sweep_local import (
    SessionLocalExecutor,
    StopSignals,
    SweepStopped,
    say,
    stopped_message,
    study_lock,
    wait_for_jobs,
)
from mmgan.gan.tables import PRESETS, TABLES, run_table, table_configs

__all__ = ["EXECUTORS", "Sweep", "SweepSettings", "check_settings", "check_shared_path", "collect", "collect_command",
           "collect_report", "local_roots", "main", "make_executor", "submit", "sweep"]

EXECUTORS = ("slurm", "local", "debug")
#: Node-local directories: refused for the log folder, --root and --data-root of a SLURM sweep.
LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
#: The statuses of :func:`collect`, in the order its report lists them.
STATUSES = ("finished", "failed", "incomplete", "missing")
DATA_ON_DISK = ("cifar10", "cat")  # data sets read from data_root (digits and shapes are built in)

# ----------------------------------------------------------------------------- the runs of a job


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


def make_executor(settings: SweepSettings, log_folder: Path, name: str) -> submitit.Executor:
    """A submitit executor for ``settings.executor`` writing its pickles and logs to ``log_folder`` (local: a
    :class:`SessionLocalExecutor`)."""
    if settings.executor == "slurm" and shutil.which("sbatch") is None:
        raise RuntimeError("executor='slurm' needs the SLURM commands (sbatch, srun) on PATH: submit from the "
                           "cluster's login node, or use --executor local")
    cluster = settings.executor
    parameters: dict[str, Any] = dict(name=name, timeout_min=settings.timeout_min, nodes=1, tasks_per_node=1,
                                      gpus_per_node=settings.gpus_per_job, cpus_per_task=cpus_per_job(settings),
                                      mem_gb=settings.mem_gb)
    if cluster == "local":  # what AutoExecutor would pass it: the shared parameters that are set
        executor: submitit.Executor = SessionLocalExecutor(log_folder, max_num_timeout=settings.max_timeouts)
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
    wave, stop = settings.array_parallelism or 1, StopSignals(at_once=settings.executor == "debug")
    chosen: list[TableJob] = []
    later = len(jobs)  # jobs not submitted yet
    try:
        with study_lock(study_folder(table, preset, root, overrides)), stop.installed():
            executor = make_executor(settings, log_folder, name)
            for start in range(0, len(jobs), wave):
                chosen = jobs[start:start + wave]
                later -= len(chosen)
                handles = submit(executor, chosen)
                result.handles += handles
                result.errors += wait_for_jobs(handles, chosen, stop, later)
    except SweepStopped:
        raise
    except KeyboardInterrupt as interrupt:  # debug: the job in this process has stopped (its loop at a boundary)
        signum = stop.signum or getattr(interrupt, "signum", signal.SIGINT)
        raise SweepStopped(stopped_message(signum, "the job running in this process has stopped", chosen, later),
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
    folders = run_folders(str(table), preset, root, runs, overrides)
    done = [run for run in runs if (folders[run] / SUMMARY).is_file()]
    rows: dict[Run, dict[str, Any]] = {}
    if done:
        frame = run_table(str(table), preset, root, load_only=True, runs=done, **config_overrides(overrides))
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
        say(str(stopped))
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
