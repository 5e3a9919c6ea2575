"""Taking the first items per language (or per any key) from a sequence, keeping the order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def first_per(items: Iterable[T], limit: int | None, key: Callable[[T], object] = lambda it: it.lang) -> list[T]:
    """The first ``limit`` items of every ``key`` value (all items when ``limit`` is None), in their original order."""
    items = list(items)
    if limit is None:
        return items
    seen: dict[object, int] = {}
    kept = []
    for it in items:
        k = key(it)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= limit:
            kept.append(it)
    return kept
