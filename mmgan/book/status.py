"""This book's reproduction status: every numbered result of the paper with its status, and a chapter's first screen.

The statuses live in ``mmgan/book/resources/reproduction_status.yaml``; the paper's own numbers are
:mod:`mmgan.paper`'s.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

#: The book's one vocabulary for the status of a result (defined in the introduction).
STATUS_CHOICES: tuple[str, ...] = ("holds", "holds with a correction", "does not hold", "cannot tell",
                                   "per proposition", "not tested here")
#: How strong the check behind a status is.
EVIDENCE_CHOICES: tuple[str, ...] = ("exact", "toy", "study")
#: Whether a result is a statement of the paper or our own, exploratory question.
SCOPE_CHOICES: tuple[str, ...] = ("paper", "beyond")


@cache
def _statuses() -> list[dict[str, Any]]:
    with resources.files("mmgan.book.resources").joinpath("reproduction_status.yaml").open(encoding="utf-8") as f:
        return yaml.safe_load(f)["results"]


def reproduction_status() -> pd.DataFrame:
    """Every numbered result of the paper with its status in this book."""
    frame = pd.DataFrame(_statuses())
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
