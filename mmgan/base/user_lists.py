"""Lists as users type them: on a command line, in a notebook's parameters cell or through papermill.

``0``, ``[0, 1]``, ``'[0, 1]'`` and ``'0,1'`` all name seeds; :func:`as_int_list` and :func:`as_str_list` turn
each spelling into a checked list (distinct values), naming the parameter in every error.
"""

from __future__ import annotations

import ast
import numbers
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

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
