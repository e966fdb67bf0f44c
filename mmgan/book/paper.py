"""The paper's published numbers and this book's reproduction status.

Both live in YAML files under ``mmgan/book/resources/``; ``paper_results.yaml`` is the
only place where the paper's numbers are transcribed.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from mmgan.base.registry import lookup
from mmgan.norms import order_text

#: The book's one vocabulary for the status of a result (defined in the introduction).
STATUS_CHOICES: tuple[str, ...] = ("holds", "holds with a correction", "does not hold", "cannot tell",
                                   "per proposition", "not tested here")
#: How strong the check behind a status is.
EVIDENCE_CHOICES: tuple[str, ...] = ("exact", "toy", "study")
#: Whether a result is a statement of the paper or our own, exploratory question.
SCOPE_CHOICES: tuple[str, ...] = ("paper", "beyond")


@cache
def _load(name: str) -> dict[str, Any]:
    with resources.files("mmgan.book.resources").joinpath(name).open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def table_info(table: str) -> dict[str, Any]:
    """Caption, metric, data set and protocol of a paper table (``'1'`` … ``'8'``, ``'5.2.2'``)."""
    tables = _load("paper_results.yaml")["tables"]
    info = dict(lookup(tables, str(table), "table"))
    info.pop("records")
    return info


def paper_table(table: str) -> pd.DataFrame:
    """The paper's numbers of one table as a tidy frame (one row per printed number).

    ``q`` is the gradient norm's name (:func:`mmgan.norms.order_text`: ``'1'``, ``'inf'``, ``'smax'``), the
    margin order ``p`` a float (``math.inf`` for ∞); a missing penalty is spelled ``'none'`` in the ``q`` and
    ``g`` columns.
    """
    tables = _load("paper_results.yaml")["tables"]
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


def reproduction_status() -> pd.DataFrame:
    """Every numbered result of the paper with its status in this book."""
    frame = pd.DataFrame(_load("reproduction_status.yaml")["results"])
    for column, choices in (("status", STATUS_CHOICES), ("evidence", EVIDENCE_CHOICES), ("scope", SCOPE_CHOICES)):
        bad = sorted(set(frame[column].astype(str)) - set(choices))
        if bad:
            raise ValueError(f"unknown {column} {bad} in reproduction_status.yaml; valid: {choices}")
    return frame


def at_a_glance(chapter: str) -> str:
    """The first screen of a chapter: every result it checks with its status, the strength of the check and its
    note, as Markdown (the same rows as the introduction's status table, so the two cannot disagree)."""
    rows = reproduction_status().fillna({"note": ""})
    rows = rows[rows["chapter"] == chapter]
    if rows.empty:
        raise ValueError(f"no result of the status table is checked in chapter={chapter!r}")
    evidence = {"exact": "exact check", "toy": "toy example", "study": "study (seeds, paired)"}
    lines = [f"- *{r.result}* ({r.section}): **{r.status}**, {evidence[r.evidence]}"
             + (f". {r.note[0].upper()}{r.note[1:]}." if r.note else ".") for r in rows.itertuples()]
    return "**At a glance.** What this chapter checks and what holds:\n\n" + "\n".join(lines)
