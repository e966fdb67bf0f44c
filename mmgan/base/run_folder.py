"""A GAN run's folder: one writer at a time, readable checkpoints, and a log that matches the checkpoint.

* :class:`RunLock` — ``<run>/.lock`` holds the writer's pid and host and an
  exclusive ``flock``; a second writer stops with an error naming the holder.
  The kernel drops the ``flock`` when the holder dies (a killed run leaves a
  stale file, never a stale lock). The file is never removed (emptied on release):
  removing it would let two processes hold locks on two files of the same name.
  ``flock`` is local to one machine on some network file systems: do not point
  two hosts at one run folder.
* :func:`read_checkpoint` — loads with ``torch.load(weights_only=True)``: a
  checkpoint is tensors, numbers, strings, lists, tuples and dicts, and nothing in
  it can run code. A file that needs pickle (a file from elsewhere, or a
  checkpoint of this project written before that rule) is refused with an error
  that says how to convert it (``mmgan convert DIR``, :mod:`mmgan.gan.convert`,
  which runs no code either); an empty, truncated or corrupt
  checkpoint gives an error naming the file and the remedy.
* :func:`truncate_log` — on resume, the records written after the checkpoint's
  iteration (by a run that was killed later) are dropped, so ``log.jsonl`` has no
  duplicates.
* :func:`read_summary`, :func:`read_log` — ``summary.json`` and ``log.jsonl``
  checked field by field: a missing field, a wrong type or a non-finite metric
  stops with an error naming the file and the field, never a silently shorter
  mean.
* :func:`folder_state`, :func:`prepare_folder` — what a folder holds (nothing, a
  partial run, a finished run), so that a fresh run never silently overwrites
  earlier work, and the checkpoint to continue from.
* :func:`interrupt_at_boundary` — Ctrl-C (SIGINT), SIGTERM and SIGUSR2 (what SLURM
  sends at pre-emption and time-out) ask a training loop to stop at its next
  iteration boundary, after its checkpoint (:class:`Stopped`); a second signal stops
  at once, without saving; SIGTERM and SIGUSR2 are then handed to the handler that
  was there before (the process ends with status 143, or submitit requeues its job).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from mmgan.base.manifest import verify_listed
from mmgan.base.results import atomic_write_text, is_plain_pickle, needs_pickle, read_json

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
SUMMARY = "summary.json"
#: Folder of a run's network snapshots along training (``networks-IIIIII.pt``, see :func:`snapshot_path`).
SNAPSHOTS = "snapshots"
LOCK = ".lock"
#: Files whose presence means a folder holds (part of) a run.
RUN_FILES = (CHECKPOINT, LOG, SUMMARY, "config.yaml")


def snapshot_path(out: Path | str, iteration: int) -> Path:
    """Where a run keeps its generator and critic of iteration ``iteration`` (when it keeps snapshots)."""
    return Path(out) / SNAPSHOTS / f"networks-{iteration:06d}.pt"


def check_snapshot_every(snapshot_every: int | None, checkpoint_every: int) -> None:
    """Snapshots are written with checkpoints, so their interval must be a multiple of ``checkpoint_every``."""
    if snapshot_every is None:
        return
    if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1 \
            or snapshot_every % checkpoint_every:
        raise ValueError(f"snapshot_every must be a positive multiple of checkpoint_every={checkpoint_every} "
                         f"(snapshots are taken with checkpoints), got {snapshot_every!r}")


class RunFolderBusy(RuntimeError):
    """Another process is writing to this run folder."""


class RunLock:
    """Exclusive writer lock on a run folder (context manager)."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder) / LOCK
        self._stream: Any = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stream = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip() or "an unknown process"
            stream.close()
            raise RunFolderBusy(f"{self.path.parent} is being written by {holder} (lock file {self.path}); "
                                "wait for it to finish or stop it first") from None
        stream.seek(0)
        stream.truncate()
        stream.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        stream.flush()
        self._stream = stream
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        # The file stays: removing it before (or after) unlocking lets a process that opened the old file
        # lock it while a third creates and locks a new one, two holders at once. An empty lock file is no lock.
        self._stream.seek(0)
        self._stream.truncate()
        self._stream.flush()
        fcntl.flock(self._stream.fileno(), fcntl.LOCK_UN)
        self._stream.close()


def folder_state(folder: Path | str) -> str:
    """'empty', 'finished' (summary.json present) or 'partial' (some run files, no summary)."""
    folder = Path(folder)
    if (folder / SUMMARY).is_file():
        return "finished"
    if any((folder / name).exists() for name in RUN_FILES):
        return "partial"
    return "empty"


class UnsafeFile(ValueError):
    """A plain Python pickle, or a torch file that only an unrestricted pickle could load: refused, since loading
    it could run code."""


def refuse_unsafe(path: Path, error: Exception, remedy: str) -> None:
    """Raise :class:`UnsafeFile` for ``path`` when ``error`` is torch's weights-only refusal."""
    if needs_pickle(error):
        raise UnsafeFile(f"{path} holds Python objects that only pickle can load, so it is refused: loading it "
                         f"could run code. {remedy}") from None


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The checkpoint's payload (tensors on the CPU), loaded weights-only; a clear error for a missing or
    unreadable file, and :class:`UnsafeFile` for a plain Python pickle or a torch file that needs pickle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; start the run without --resume")
    start_over = "delete it and rerun with --overwrite to start the run over, or restore the file from a copy"
    if is_plain_pickle(path):
        raise UnsafeFile(f"{path} is a plain Python pickle, not a torch file: refused (loading it could run code); "
                         f"{start_over}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "iteration" not in payload:
            raise ValueError("not a checkpoint dictionary")
    except Exception as error:  # torch.load raises EOFError, RuntimeError, UnpicklingError, ... on a bad file
        refuse_unsafe(path, error, f"If it is an older checkpoint of this project, convert it once with "
                                   f"`mmgan convert {path.parent}` (it loads nothing but a run configuration and "
                                   "NumPy values, and refuses anything else).")
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); it was probably truncated "
            f"(full disk, interrupted copy): {start_over}") from error
    return payload


def plain(value: Any) -> Any:
    """``value`` as what a weights-only load accepts: tensors, numbers, strings, None, and lists, tuples and
    dicts of them (NumPy values become numbers or tensors, dataclasses and other mappings dicts);
    ``TypeError`` naming anything else."""
    import dataclasses

    import numpy as np

    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass that pickle must build
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if isinstance(value, tuple) else [plain(v) for v in value]
    if isinstance(value, torch.Size):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a weights-only checkpoint")


#: The fields of a run's ``summary.json`` and their types (bool is not an int here).
SUMMARY_FIELDS: dict[str, type | tuple[type, ...]] = {"iterations": int, "metric": str, "final": (int, float),
                                                      "lowest": (int, float), "lowest_at": int, "history": list,
                                                      "config": dict}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_summary(path: Path | str, remedy: str | None = None) -> dict[str, Any]:
    """A run's ``summary.json``, every field present, of its type and finite; the history a list of
    [iteration, metric] pairs whose last value is ``final`` and whose smallest is ``lowest``.

    ``ValueError`` naming the file and the field otherwise (FileNotFoundError when it is missing)."""
    path = Path(path)
    summary = read_json(path, remedy)
    where = f" — {remedy}" if remedy else ""
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: not a run summary (a JSON object is expected){where}")
    for field, kind in SUMMARY_FIELDS.items():
        if field not in summary:
            raise ValueError(f"{path}: the field {field!r} is missing{where}")
        value = summary[field]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{path}: the field {field!r} is {value!r}, not of type "
                             f"{getattr(kind, '__name__', 'number')}{where}")
        if kind == (int, float) and not math.isfinite(value):
            raise ValueError(f"{path}: the field {field!r} is {value!r}, not a finite number{where}")
    history = summary["history"]
    if not history or not all(isinstance(h, list) and len(h) == 2 and isinstance(h[0], int)
                              and not isinstance(h[0], bool) and _number(h[1]) for h in history):
        raise ValueError(f"{path}: the field 'history' must be a non-empty list of [iteration, finite metric] "
                         f"pairs{where}")
    values = [v for _, v in history]
    if values[-1] != summary["final"] or min(values) != summary["lowest"]:
        raise ValueError(f"{path}: the fields 'final' and 'lowest' disagree with 'history' (last {values[-1]!r}, "
                         f"smallest {min(values)!r}){where}")
    return summary


def read_log(path: Path | str) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl``: each a JSON object with an integer ``iteration`` and finite numbers
    (``ValueError`` naming the file, the line and the field otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    verify_listed(path)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("iteration"), int):
            raise ValueError(f"{path}, line {number}: a record needs an integer 'iteration'")
        bad = [k for k, v in record.items() if not _number(v)]
        if bad:
            raise ValueError(f"{path}, line {number}: the field {bad[0]!r} is {record[bad[0]]!r}, not a finite number")
        records.append(record)
    return records


def truncate_log(folder: Path | str, iteration: int) -> int:
    """Drop the records of ``log.jsonl`` after ``iteration`` (written past the checkpoint); returns how many."""
    path = Path(folder) / LOG
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            dropped += 1
            continue
        if record.get("iteration", 0) <= iteration:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return dropped


def check_run_folder_path(out: Path) -> None:
    """``ValueError`` when ``out`` (or a folder above it) is a file: a run folder is created there."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"the run folder {out} cannot be made: {path} is a file; give a folder path "
                                 "(it is created if missing)")
            return


def prepare_folder(out: Path, resume: bool, overwrite: bool,
                   check: Callable[[dict[str, Any], Path], None]) -> dict[str, Any] | None:
    """Check the run folder before any expensive work: returns the checkpoint payload when resuming, after
    ``check(payload, path)`` accepted it (e.g. the same configuration).

    A folder whose run was killed before its first checkpoint (a log, a config.yaml, no checkpoint) has nothing
    to continue: ``resume`` starts it over."""
    state = folder_state(out)
    if state == "finished" and not (out / CHECKPOINT).is_file() and not overwrite:
        raise FileExistsError(f"{out} holds a finished run whose checkpoint was not kept (committed runs keep "
                              "their summary, log and networks only), so there is nothing to continue: train it "
                              "again from the start with overwrite=True (--overwrite), or choose another folder")
    if resume and not (out / CHECKPOINT).is_file() and state == "partial":
        print(f"{out} holds no checkpoint yet (the run stopped before its first one): starting it over",
              file=sys.stderr)
        overwrite = True
    elif resume:
        payload = read_checkpoint(out / CHECKPOINT)
        check(payload, out / CHECKPOINT)
        return payload
    if state != "empty":
        if not overwrite:
            hint = ("continue it with resume=True (--resume)" if (out / CHECKPOINT).is_file() else
                    "it has no checkpoint yet, so resume=True (--resume) starts it over")
            raise FileExistsError(f"{out} already holds a {state} run; {hint}, or start it over with overwrite=True "
                                  "(--overwrite)")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    return None


#: The signals that stop a run at the next iteration boundary, after its checkpoint: Ctrl-C, SIGTERM (what a
#: scheduler sends before SIGKILL) and SIGUSR2 (SLURM's advance warning, on which submitit requeues a job).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal at an iteration boundary, its checkpoint written (``signum``: the signal)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopAtBoundary:
    """Handler of :data:`STOP_SIGNALS`: the first asks the loop to stop at the next iteration boundary (after
    its checkpoint), a second stops at once (KeyboardInterrupt, nothing saved)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this iteration and writing a checkpoint "
              "(send it again to stop at once)", file=sys.stderr)

    def stopped(self, iteration: int, where: str, how: str) -> Stopped:
        """The :class:`Stopped` of a loop that stopped after iteration ``iteration``: ``where`` its checkpoints
        are, ``how`` to continue."""
        name = "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name
        return Stopped(f"stopped by {name} at iteration {iteration}; {where}, continue with {how}", self.signum)


@contextlib.contextmanager
def interrupt_at_boundary() -> Iterator[StopAtBoundary]:
    """Install :class:`StopAtBoundary` for :data:`STOP_SIGNALS` while a loop runs. When the loop stops on SIGTERM
    or SIGUSR2 (:class:`Stopped`, checkpoint written), the signal is then handed to the handler that was there
    before: by default the process ends with status 143 (SIGTERM) as a scheduler expects; inside a submitit job,
    submitit's own SIGUSR2 handler requeues the job, which resumes from the checkpoint."""
    stop = StopAtBoundary()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set in the main thread; signals then act as usual
        return
    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield stop
    except Stopped as stopped:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous = {}
        if stopped.signum != signal.SIGINT:
            signal.raise_signal(stopped.signum)  # the previous handler: terminate, requeue, or return
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
