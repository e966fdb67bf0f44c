"""Name → implementation lookups with one error message for unknown names.

Every public function that accepts a name (a loss, a penalty shape, a gradient
norm, a preset, ...) resolves it through :func:`lookup`, so an unknown name
always raises ``ValueError`` naming the parameter and the valid choices. The
extensible kinds (gradient norms, losses, penalty shapes, metrics,
architectures, tables) are each one :class:`Registry` whose entries pass that
kind's check when they are registered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

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


Check = Callable[[str, Any], None]


class Registry(Mapping[str, T]):
    """Named entries of one kind (norms, metrics, tables, ...) behind one checked interface.

    Reading is a :class:`~collections.abc.Mapping`, so ``tuple(registry)`` lists the names in registration order
    and :func:`lookup` works on it; ``registry[name]`` of an unknown name raises ``ValueError`` naming the kind
    and every valid name (never ``KeyError``, never a fallback entry). :meth:`register` runs the kind's
    ``check`` on each new entry (``TypeError``/``ValueError`` naming what is wrong) and refuses a name twice;
    :meth:`registered` adds an entry for the duration of a ``with`` block (an extension tried in a test).
    """

    def __init__(self, kind: str, entry_type: type, check: Check | None = None,
                 entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self._check = check
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` after checking it; returns the entry."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} is registered under a non-empty string name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered; registered: "
                             f"{format_choices(self._entries)}")
        if not isinstance(entry, self.entry_type):
            raise TypeError(f"{self.kind} {name!r} must be a {self.entry_type.__name__}, got "
                            f"{type(entry).__name__}")
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    @contextlib.contextmanager
    def registered(self, name: str, entry: T) -> Iterator[T]:
        """``entry`` registered under ``name`` inside the block, removed after it."""
        self.register(name, entry)
        try:
            yield entry
        finally:
            del self._entries[name]

    def __getitem__(self, name: str) -> T:
        return lookup(self._entries, name, self.kind)

    def get(self, name: str, default: T | None = None) -> T | None:  # type: ignore[override]
        """The entry ``name``, or ``default`` when none is registered under it (for a caller that asks)."""
        return self._entries.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {format_choices(self._entries)})"
