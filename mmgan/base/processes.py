"""Independent CPU tasks spread over worker processes, results in submission order.

PyTorch uses several threads inside one operation, but the small batched
matrix products of Table 1 (35 networks of width 64) do not get faster with a
second thread; two processes, one thread each, do twice the work. A *task* is a
top-level function and its arguments (picklable: the worker processes are
*spawned*, so they import the function's module afresh and share nothing with
the parent). With ``workers=1`` the tasks run in this process, one after the
other, with this process's threads.

Tasks and results travel as plain pickles (by value): torch's own multiprocessing
pickler would move every tensor sent into shared memory, in place, which frees the
memory under any NumPy view of it in the parent and opens a file per tensor.

Numbers do not depend on ``workers`` as long as each task's result does not
depend on which process ran it; with one thread per worker they equal a serial
run with ``torch.set_num_threads(1)`` bit for bit (the callers test this).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm import tqdm

from mmgan.base.registry import check_int

Task = tuple[Callable[..., Any], tuple[Any, ...]]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_workers(workers: int, device: torch.device | str) -> int:
    """``workers`` if it is a positive integer that fits ``device`` (several workers need the CPU)."""
    check_int(workers, "workers", minimum=1)
    if workers > 1 and torch.device(device).type != "cpu":
        raise ValueError(f"workers={workers} spreads the work over CPU processes; with device "
                         f"{torch.device(device).type!r} use workers=1 (one process drives the accelerator)")
    return workers


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _call(payload: bytes) -> bytes:
    fn, args = pickle.loads(payload)
    return pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)


def run_tasks(tasks: Sequence[Task], workers: int = 1, threads: int | None = None,
              desc: str | None = None) -> list[Any]:
    """Run every ``fn(*args)`` of ``tasks``; return their results in the order given.

    Args:
        tasks: (function, arguments) pairs; functions must be importable top-level functions.
        workers: processes; 1 runs the tasks here, in order.
        threads: torch threads per worker (default: the available cores shared among the workers; with one worker,
            torch's own count).
        desc: label of a progress bar over finished tasks (none when ``None``).
    """
    check_int(workers, "workers", minimum=1)
    if workers == 1:
        with using_threads(threads):
            return [fn(*args) for fn, args in tqdm(tasks, desc=desc, disable=desc is None)]
    threads = threads or max(1, available_cores() // workers)
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_call, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)): index
                   for index, task in enumerate(tasks)}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=desc is None):
            results[futures[future]] = pickle.loads(future.result())
    return results


@contextlib.contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` (when given) while the block runs, restored after.

    A GAN run records and reuses its count (the rounding depends on it). The toys and Table 1 train
    as one batch of small matrix products (tens of networks of width 16–64): a product takes a fraction
    of a millisecond, too little to share between threads, and with more threads than free cores every
    product waits for a descheduled thread, so they use one (two threads on two busy cores: 6–8× slower
    at the toy chapter's defaults, ``benchmarks/toys.py``; the same numbers, tested).
    """
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
