"""A GAN run's folder: one writer at a time, readable checkpoints, and a log that matches the checkpoint.

* :class:`RunLock` — ``<run>/.lock`` holds the writer's pid and host and an
  exclusive ``flock``; a second writer stops with an error naming the holder.
  The kernel drops the ``flock`` when the holder dies (a killed run leaves a
  stale file, never a stale lock). ``flock`` is local to one machine on some
  network file systems: do not point two hosts at one run folder.
* :func:`read_checkpoint` — an empty, truncated or corrupt checkpoint gives an
  error naming the file and the remedy instead of a pickle traceback.
* :func:`truncate_log` — on resume, the records written after the checkpoint's
  iteration (by a run that was killed later) are dropped, so ``log.jsonl`` has no
  duplicates.
* :func:`folder_state` — what a folder holds (nothing, a partial run, a finished
  run), so that a fresh run never silently overwrites earlier work.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from mmgan.results import atomic_write_text

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
        self.path.unlink(missing_ok=True)
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


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The checkpoint's payload (tensors on the CPU); a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; start the run without --resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(payload, dict) or "iteration" not in payload:
            raise ValueError("not a checkpoint dictionary")
    except Exception as error:  # torch.load raises EOFError, RuntimeError, UnpicklingError, ... on a bad file
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); it was probably truncated "
            "(full disk, interrupted copy). Delete it and rerun with --overwrite to start the run over, or "
            "restore the file from a copy") from error
    return payload


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
