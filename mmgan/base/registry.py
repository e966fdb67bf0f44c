"""Name → implementation lookups with one error message for unknown names.

Every public function that accepts a name (a loss, a penalty shape, a gradient
norm, a preset, ...) resolves it through :func:`lookup`, so an unknown name
always raises ``ValueError`` naming the parameter and the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def format_choices(choices: Iterable[object]) -> str:
    """Render valid choices as ``'a', 'b', 'c'`` for error messages."""
    return ", ".join(repr(c) for c in choices)


def lookup(registry: Mapping[str, T], name: object, parameter: str) -> T:
    """Return ``registry[name]`` or raise ``ValueError`` listing the valid names.

    Args:
        registry: mapping from public names to implementations.
        name: the user-supplied name.
        parameter: the name of the argument being validated (used in the message).
    """
    if isinstance(name, str) and name in registry:
        return registry[name]
    raise ValueError(
        f"unknown {parameter}={name!r}; valid choices: {format_choices(registry)}"
    )


def check_choice(value: T, choices: Iterable[T], parameter: str) -> T:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"invalid {parameter}={value!r}; valid choices: {format_choices(choices)}"
        )
    return value


def check_int(value: object, parameter: str, minimum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) ≥ ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{parameter} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{parameter} must be >= {minimum}, got {value!r}")
    return value
