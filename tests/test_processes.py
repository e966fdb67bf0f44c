"""Tasks spread over worker processes: results in order, by value, errors surfaced."""

import operator

import numpy as np
import pytest
import torch

from mmgan.base.processes import available_cores, check_workers, run_tasks


def test_results_come_back_in_order_and_tensors_travel_by_value():
    x = torch.arange(12, dtype=torch.float32)
    view = x.numpy()  # shares x's memory, as the saved samples of Table 1 do
    tasks = [(operator.pow, (2, k)) for k in range(5)] + [(torch.mul, (x, 2.0))]
    results = run_tasks(tasks, workers=2)
    assert results[:5] == run_tasks(tasks[:5], workers=1) == [2 ** k for k in range(5)]
    assert torch.equal(results[5], 2 * x)
    np.testing.assert_array_equal(view, np.arange(12, dtype=np.float32))  # torch's pickler would have freed it


def test_an_error_in_a_task_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        run_tasks([(operator.truediv, (1, 0))], workers=2)


def test_workers_are_checked_and_need_the_cpu():
    assert check_workers(2, "cpu") == 2 and available_cores() >= 1
    with pytest.raises(ValueError, match="workers must be"):
        check_workers(0, "cpu")
    with pytest.raises(ValueError, match="with device 'cuda' use workers=1"):
        check_workers(2, torch.device("cuda"))


def test_one_worker_runs_its_tasks_with_the_threads_asked_and_restores_the_count():
    before = torch.get_num_threads()
    asked = 1 if before != 1 else 2
    assert run_tasks([(torch.get_num_threads, ())] * 2, workers=1, threads=asked) == [asked, asked]
    assert torch.get_num_threads() == before
    assert run_tasks([(torch.get_num_threads, ())], workers=1) == [before]  # none asked: torch's own count
