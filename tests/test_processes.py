"""Tasks spread over worker processes: results in order, by value, errors surfaced."""

import operator

import numpy as np
import pytest
import torch

from mmgan.processes import available_cores, check_workers, run_tasks


def test_results_come_back_in_the_order_of_the_tasks():
    tasks = [(operator.pow, (2, k)) for k in range(7)]
    assert run_tasks(tasks, workers=2) == run_tasks(tasks, workers=1) == [2 ** k for k in range(7)]


def test_tensors_travel_by_value_and_leave_numpy_views_intact():
    x = torch.arange(12, dtype=torch.float32)
    view = x.numpy()  # shares x's memory, as the saved samples of Table 1 do
    (doubled,) = run_tasks([(torch.mul, (x, 2.0))], workers=2)
    assert torch.equal(doubled, 2 * x)
    np.testing.assert_array_equal(view, np.arange(12, dtype=np.float32))


def test_an_error_in_a_task_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        run_tasks([(operator.truediv, (1, 0))], workers=2)


def test_workers_are_checked_and_need_the_cpu():
    assert check_workers(2, "cpu") == 2 and available_cores() >= 1
    with pytest.raises(ValueError, match="workers must be"):
        check_workers(0, "cpu")
    with pytest.raises(ValueError, match="with device 'cuda' use workers=1"):
        check_workers(2, torch.device("cuda"))
