"""Finished critics of a long margin study kept on disk, so that an interrupted study resumes where it stopped.

A full re-measurement (64 + 64 images, both views, certificates) costs minutes to an hour of CPU per critic and
hours per study (``benchmarks/critic_margins.py``). Each task of :func:`mmgan.critics.measure.measure_study` (one
critic at one iteration) is written, when it finishes, to ``OUT/.partial/table<N><kind>/<key>.csv`` with its task
description beside it (``<key>.json``, written last: a CSV without it is unfinished and measured again). The
description names the SHA-256 of the weights measured, so a critic trained again is measured again. A rerun of
the same command reads the finished tasks back instead of measuring them; the study's files are assembled from the
part files in both cases, so a resumed study writes the same bytes as an uninterrupted one. The folder is locked
while a study writes to it and removed once the study's files are written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mmgan.base.results import atomic_write_text, code_commit, read_csv, read_json

#: Folder of the parts under a study's output folder (not committed: removed when the study finishes).
PARTIAL = ".partial"
#: Columns read back as text (a level or a view named "nan" would otherwise turn into a float).
TEXT_COLUMNS = {"image": str, "mode": str, "level": str, "threshold_rule": str}


def parts_folder(out: Path | str, table: str, kind: str = "") -> Path:
    """Where the finished tasks of ``mmgan critic-margins <table>`` (``kind``: "" or along training) are kept."""
    return Path(out) / PARTIAL / f"table{table}{kind}"


def plain_task(task: dict[str, Any]) -> dict[str, Any]:
    """``task`` as it reads back from JSON (tuples as lists), so that a stored task compares equal to a new one."""
    return json.loads(json.dumps(task, sort_keys=True, default=str))


def task_key(task: dict[str, Any]) -> str:
    """A file name for ``task``: the first 16 hex digits of the SHA-256 of its JSON text."""
    return hashlib.sha256(json.dumps(plain_task(task), sort_keys=True).encode()).hexdigest()[:16]


def finished_tasks(folder: Path | str, tasks: list[dict[str, Any]]) -> int:
    """How many of ``tasks`` have a finished part in ``folder``."""
    return sum(_finished(Path(folder), task) for task in tasks)


def _finished(folder: Path, task: dict[str, Any]) -> bool:
    key = task_key(task)
    described = folder / f"{key}.json"
    if not described.is_file() or not (folder / f"{key}.csv").is_file():
        return False
    stored = read_json(described)
    if not isinstance(stored, dict) or stored.get("task") != plain_task(task):
        raise ValueError(f"{described} describes another task than the one of its name; delete {folder} and "
                         "measure again")
    return True


def measured_part(folder: str, task: dict[str, Any], measure: Callable[..., pd.DataFrame],
                  arguments: tuple) -> pd.DataFrame:
    """``measure(*arguments)``, the measurement described by ``task``, read from ``folder`` when a finished part is
    there, else measured and written there first (CSV at full precision, then its description); either way the
    frame returned is the one read from the part file (pandas reads back the shortest repr it writes: exact)."""
    where = Path(folder)
    key = task_key(task)
    if not _finished(where, task):
        started = time.perf_counter()
        frame = measure(*arguments)
        where.mkdir(parents=True, exist_ok=True)
        atomic_write_text(where / f"{key}.csv", frame.to_csv(index=False))
        atomic_write_text(where / f"{key}.json", json.dumps(
            {"task": plain_task(task), "commit": code_commit(), "seconds": time.perf_counter() - started,
             "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    return read_csv(where / f"{key}.csv", f"delete {where} and measure again", dtype=TEXT_COLUMNS)


def weights_key(task: dict[str, Any]) -> str:
    """How a study's meta data names the weights of one task: the run folder's name, and ``@<iteration>`` for a
    snapshot."""
    name = Path(task["folder"]).name
    return name if task.get("iteration") is None else f"{name}@{task['iteration']}"


def parts_record(folder: Path | str) -> dict[str, Any]:
    """What the study's meta data records of its parts: the code commits they were measured at, the wall seconds
    they took in all (over every session of a resumed study) and the SHA-256 of the weights each measured
    (:func:`weights_key`: digest)."""
    described = [read_json(path) for path in sorted(Path(folder).glob("*.json"))]
    return {"commits": sorted({part["commit"] for part in described}),
            "seconds": sum(part["seconds"] for part in described),
            "weights": {weights_key(part["task"]): part["task"]["weights_sha256"] for part in described
                        if "weights_sha256" in part["task"]}}
