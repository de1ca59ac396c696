"""One registry pattern for everything chosen by name (models, steps, exporters, samplers)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgekit.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; unknown names fail with a "did you mean" list.

    >>> samplers = Registry("power sampler")
    >>> @samplers.register("rapl")
    ... def make_rapl(): ...
    """

    def __init__(self, kind: str, *, listed_by: str | None = None) -> None:
        self.kind = kind
        self.listed_by = listed_by  # the CLI command that lists the entries, if any
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def add(entry: T) -> T:
            key = name or getattr(entry, "__name__", None)
            if not key:
                raise ValueError(f"{self.kind} entry needs a name")
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        if self.listed_by:
            where = f" (list them with `{self.listed_by}`)"
        else:
            where = f" (known: {', '.join(sorted(self._entries))})"
        return f"unknown {self.kind} {name!r}{hint}{where}"

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
