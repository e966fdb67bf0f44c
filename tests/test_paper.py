import math

import pytest

from mmgan import paper
from mmgan.book.status import STATUS_CHOICES, reproduction_status


def test_every_table_loads_with_expected_sizes():
    sizes = {"1": 21, "2": 12, "3": 16, "4": 16, "5": 6, "6": 12, "7": 6, "8": 4, "5.2.2": 6}
    for table, n in sizes.items():
        frame = paper.paper_table(table)
        assert len(frame) == n, table
        assert frame["value"].notna().all()
        assert paper.table_info(table)["caption"]


def test_table1_orders_and_known_cells():
    t1 = paper.paper_table("1")
    row = t1[(t1.g == "ls") & (t1.q == "1") & (t1.p == 1.0)]
    assert row.value.item() == pytest.approx(0.85)
    assert set(t1.p) == {1.0, 2.0, math.inf}


def test_table2_winner_is_hinge_loss_hinge_penalty_linf():
    t2 = paper.paper_table("2")
    best = t2.loc[t2.value.idxmin()]
    assert (best.loss, best.q, best.g, best.value) == ("hinge", "inf", "hinge", 27.1)


def test_status_table_is_valid():
    status = reproduction_status()
    assert set(status.status) <= set(STATUS_CHOICES)
    assert status.result.is_unique


def test_unknown_table():
    with pytest.raises(ValueError, match="unknown table='9'"):
        paper.paper_table("9")
