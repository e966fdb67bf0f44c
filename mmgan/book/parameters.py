"""Papermill parameters of the chapters: accept what users type, stop on unknown names.

Every chapter starts with a cell tagged ``parameters`` (literal assignments, one
``# type: help`` comment each) followed by a hidden cell that calls
:func:`check_no_unknown_parameters`. Values given with ``papermill -p NAME VALUE``
arrive as papermill's command line parses them: ``-p seeds 0`` is the int ``0``,
``-p seeds '[0, 1]'`` and ``-p seeds 0,1`` are *strings*. :func:`as_int_list` and
:func:`as_str_list` turn each of these spellings into a list.
"""

from __future__ import annotations

import ast
import difflib
import numbers
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["as_int_list", "as_str_list", "check_no_unknown_parameters"]

#: First line of the cell papermill injects after the ``parameters`` cell (its default ``comment``).
INJECTED_HEADER = "# Parameters"
#: Names papermill itself may inject (``--inject-paths`` and friends); they are never unknown.
PAPERMILL_PREFIX = "PAPERMILL_"
_INT = re.compile(r"[+-]?\d+")


def _items(value: object, name: str, what: str, scalar: type | tuple[type, ...]) -> tuple[list[Any], bool] | None:
    """The raw items of ``value`` and whether they are the parts of a comma-separated string.

    ``None`` stays ``None``; a lone ``scalar`` becomes a one-item list; a string starting with
    ``[``, ``(`` or a quote is read as a Python/JSON literal (a list, a tuple or one quoted string);
    any other string is split on commas (``"0,1"`` -> ``["0", "1"]``, ``"a"`` -> ``["a"]``) and its
    parts stripped.
    """
    if value is None:
        return None
    from_text = False
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(", "'", '"')):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"{name} must be {what}; cannot read {value!r} as a literal") from None
            if not isinstance(parsed, (list, tuple, str)):
                raise ValueError(f"{name} must be {what}; {value!r} is not a list")
            items = [parsed] if isinstance(parsed, str) else list(parsed)
        else:
            items, from_text = [part.strip() for part in text.split(",")], True
    elif isinstance(value, scalar) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
    else:
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if not items or items == [""]:
        raise ValueError(f"{name} must name at least one value, got {value!r} (None selects the default)")
    return items, from_text


def _refuse_duplicates(values: list[Any], name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the values that appear more than once."""
    duplicated = sorted(v for v, count in Counter(values).items() if count > 1)
    if duplicated:
        raise ValueError(f"{name} repeats {duplicated}: each value may appear once, got {values!r}")


def as_int_list(value: object, name: str) -> list[int] | None:
    """Read a list of distinct integers (seeds, ...) from a papermill parameter.

    Accepted forms, as they reach the notebook:

    * ``None`` -> ``None`` (the caller's default);
    * an int: ``0`` -> ``[0]`` (``papermill -p seeds 0``);
    * a list or tuple of ints: ``[0, 1]`` (the parameters cell, ``papermill -y 'seeds: [0, 1]'``);
    * a string holding a list literal, Python or JSON: ``'[0, 1]'`` (``papermill -p seeds '[0, 1]'``);
    * a comma-separated string of integers: ``'0,1'`` or ``'0, 1'`` (``papermill -p seeds 0,1``),
      or one integer as text, ``'3'`` (``papermill -r seeds 3``).

    Integers of other types (numpy) are converted to ``int``.

    Raises:
        ValueError: naming ``name``, for an empty list, an element that is not an integer
            (bools, floats, strings inside a list included) or a repeated value.
    """
    found = _items(value, name, "an integer or a list of integers", numbers.Integral)
    if found is None:
        return None
    items, from_text = found
    result = []
    for item in items:
        if from_text and _INT.fullmatch(item):
            result.append(int(item))
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            result.append(int(item))
        else:
            raise ValueError(f"{name} must hold integers only, got {item!r} in {value!r}")
    _refuse_duplicates(result, name)
    return result


def as_str_list(value: object, name: str) -> list[str] | None:
    """Read a list of distinct non-empty strings (cell names, ...) from a papermill parameter.

    Accepted forms, as they reach the notebook:

    * ``None`` -> ``None`` (the caller's default);
    * a list or tuple of strings: ``["hinge-qinf-hinge"]``;
    * a string holding a list literal, Python or JSON:
      ``'["hinge-qinf-hinge", "ls-q2-ls"]'`` (``papermill -p cells '["hinge-qinf-hinge"]'``);
    * one quoted string: ``'"hinge-qinf-hinge"'``;
    * any other string, split on commas and stripped: ``"hinge-qinf-hinge"`` ->
      ``["hinge-qinf-hinge"]``, ``"a, b"`` -> ``["a", "b"]`` (an element that itself contains a
      comma must therefore be given in the list-literal form).

    Raises:
        ValueError: naming ``name``, for an empty list, an element that is not a non-empty
            string, or a repeated value.
    """
    found = _items(value, name, "a string or a list of strings", ())
    if found is None:
        return None
    items, _ = found
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{name} must hold non-empty strings only, got {item!r} in {value!r}")
    _refuse_duplicates(items, name)
    return list(items)


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
