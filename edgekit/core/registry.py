"""One registry pattern for everything chosen by name (models, steps, exporters, samplers)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from edgekit.core.errors import UnknownNameError

T = TypeVar("T")

# The 0.5 used before offered `xavier` for `marsrover` (ratio 0.53); 0.75 on names folded as
# below still catches one dropped, doubled, swapped or changed letter in a name of 4+ letters.
CLOSE_CUTOFF = 0.75


def _fold(name: str) -> str:
    """Case and separators are not typos: `MobileNetV2` and `mobilenet-v2` fold alike."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def close_names(name: str, candidates: Iterable[str], *, n: int = 5,
                cutoff: float = CLOSE_CUTOFF) -> list[str]:
    """Up to ``n`` of ``candidates`` that look like a typo of ``name``, closest first.

    The shared "did you mean" rule: suggest only, never auto-correct.
    """
    key = _fold(name)
    scored = [(difflib.SequenceMatcher(None, key, _fold(c)).ratio(), c)
              for c in dict.fromkeys(candidates)]
    scored.sort(key=lambda s: -s[0])  # stable: equal scores keep the candidates' order
    return [c for ratio, c in scored[:n] if ratio >= cutoff]


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
        close = close_names(name, sorted(self._entries))
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
