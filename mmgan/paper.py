"""The paper's published numbers, transcribed once in ``mmgan/resources/paper_results.yaml``.

This is data, not presentation: the engines set their results beside these numbers and the chapters show both.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from mmgan.base.registry import lookup
from mmgan.norms import order_text


@cache
def _tables() -> dict[str, Any]:
    with resources.files("mmgan.resources").joinpath("paper_results.yaml").open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)["tables"]


def table_info(table: str) -> dict[str, Any]:
    """Caption, metric, data set and protocol of a paper table (``'1'`` … ``'8'``, ``'5.2.2'``)."""
    tables = _tables()
    info = dict(lookup(tables, str(table), "table"))
    info.pop("records")
    return info


def paper_table(table: str) -> pd.DataFrame:
    """The paper's numbers of one table as a tidy frame (one row per printed number).

    ``q`` is the gradient norm's name (:func:`mmgan.norms.order_text`: ``'1'``, ``'inf'``, ``'smax'``), the
    margin order ``p`` a float (``math.inf`` for ∞); a missing penalty is spelled ``'none'`` in the ``q`` and
    ``g`` columns.
    """
    tables = _tables()
    records = lookup(tables, str(table), "table")["records"]
    frame = pd.DataFrame(records)
    if "q" in frame:
        frame["q"] = frame["q"].map(lambda q: None if q is None else order_text(q)).astype(object)
    if "p" in frame:
        frame["p"] = frame["p"].astype(float)
    for column in ("q", "g"):
        if column in frame:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "none")
    return frame
