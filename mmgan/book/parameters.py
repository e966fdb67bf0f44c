"""Papermill parameters of the chapters: accept what users type, stop on unknown names.

Every chapter starts with a cell tagged ``parameters`` (literal assignments, one
``# type: help`` comment each) followed by a hidden cell that calls
:func:`check_no_unknown_parameters`. Values given with ``papermill -p NAME VALUE``
arrive as papermill's command line parses them: ``-p seeds 0`` is the int ``0``,
``-p seeds '[0, 1]'`` and ``-p seeds 0,1`` are *strings*; :mod:`mmgan.base.user_lists`
turns each of these spellings into a list.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from typing import Any

__all__ = ["check_no_unknown_parameters"]

#: First line of the cell papermill injects after the ``parameters`` cell (its default ``comment``).
INJECTED_HEADER = "# Parameters"
#: Names papermill itself may inject (``--inject-paths`` and friends); they are never unknown.
PAPERMILL_PREFIX = "PAPERMILL_"


def _assigned_names(source: str) -> list[str]:
    """Names assigned at top level in ``source`` (``a = 1``, ``a: int = 1``, ``a = b = 1``)."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_no_unknown_parameters(namespace: Mapping[str, Any]) -> None:
    """Stop the chapter if papermill injected a parameter its ``parameters`` cell does not declare.

    Call it as ``check_no_unknown_parameters(globals())`` in the cell right after the cell tagged
    ``parameters``. papermill only warns about an unknown ``-p`` name and injects it anyway, in a
    cell whose source starts with ``# Parameters`` placed right after the ``parameters`` cell; a
    typo such as ``-p iteration 5`` would then silently run the defaults.

    The cells come from IPython's input history, the list ``In`` of the user namespace, whose last
    entry is the cell being executed. If the entry before it is papermill's injected cell, its
    assigned names must all be assigned in the entry before that (the ``parameters`` cell) or start
    with ``PAPERMILL_`` (papermill's ``--inject-paths``).

    Nothing is checked, silently, when there is no usable history: ``In`` absent (plain Python, a
    script export), or not ending with this call's cell (a kernel run with ``store_history=False``,
    as nbval does; papermill and jupyter-book store it). Silence matters there, since nbval compares
    every output, stderr included. No injected cell, no check needed: nothing was overridden.

    Raises:
        ValueError: listing the unknown names and the valid ones (sorted), with close matches.
    """
    history = namespace.get("In")
    if not isinstance(history, list) or len(history) < 3 or not all(isinstance(s, str) for s in history):
        return
    current, previous, declared_cell = history[-1], history[-2], history[-3]
    if check_no_unknown_parameters.__name__ not in current:
        return  # In does not record this execution: no way to see what was injected
    if previous.lstrip().splitlines()[:1] != [INJECTED_HEADER]:
        return  # nothing injected right before: the chapter runs its declared values
    declared = set(_assigned_names(declared_cell))
    unknown = sorted(n for n in _assigned_names(previous) if n not in declared and not n.startswith(PAPERMILL_PREFIX))
    if unknown:
        hints = [f"{close[0]!r} for {n!r}" for n in unknown
                 if (close := difflib.get_close_matches(n, sorted(declared), n=1))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"unknown parameter(s) {unknown}{hint}; this chapter's parameters are {sorted(declared)} "
                         "(papermill --help-notebook lists them with their help)")
