"""Deterministic shards of a prompt set, so extraction and generation can be split over processes and machines.

Prompts are sharded by **group**, so the translations of one item always land in the same shard: the distinct groups
are ordered by a SHA-256 hash of their name and dealt round-robin into ``n`` shards. The assignment depends only on the
set of groups (not on the order of the prompts, the machine or ``PYTHONHASHSEED``), and shard sizes differ by at most
one group. Inside a shard, prompts keep their order in the full set, and :attr:`ShardInfo.rows` records where each
came from, which is what lets ``drift merge`` put the full set back together in its original order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drift.errors import DriftError

if TYPE_CHECKING:
    from drift.data.records import PromptSet

SHARD_METHOD = "group-sha256-round-robin"


@dataclass(frozen=True)
class ShardInfo:
    """Where a shard sits in the full prompt set.

    Attributes:
        index: Shard number, ``0 <= index < count``.
        count: Number of shards the full set was cut into.
        method: How prompts were assigned (:data:`SHARD_METHOD`).
        full_name: Name of the full prompt set.
        full_hash: :meth:`PromptSet.content_hash` of the full set.
        full_n: Number of prompts in the full set.
        rows: Row of each of the shard's prompts in the full set (ascending).
    """

    index: int
    count: int
    method: str
    full_name: str
    full_hash: str
    full_n: int
    rows: tuple[int, ...]

    @property
    def spec(self) -> str:
        """The shard as written on the command line, ``I/N``."""
        return f"{self.index}/{self.count}"

    def to_dict(self) -> dict:
        """JSON-ready description for provenance (without the row list, which is stored beside it)."""
        return {"index": self.index, "count": self.count, "method": self.method,
                "full": {"name": self.full_name, "hash": self.full_hash, "n": self.full_n}}


def parse_shard(spec: str) -> tuple[int, int]:
    """Read ``I/N`` (0-based shard ``I`` of ``N``) and return ``(I, N)``.

    Raises:
        DriftError: The text is not ``I/N`` with ``0 <= I < N``.
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not m:
        raise DriftError(f"cannot read shard {spec!r}: write I/N, e.g. 0/4 for the first of four shards")
    index, count = int(m[1]), int(m[2])
    check_shard(index, count)
    return index, count


def check_shard(index: int, count: int) -> None:
    """Refuse a shard number outside ``0 <= index < count``."""
    if count < 1:
        raise DriftError(f"shard count must be at least 1, not {count}")
    if not 0 <= index < count:
        raise DriftError(f"shard {index}/{count} does not exist: shards are numbered 0 to {count - 1}")


def shard_of_groups(groups: list[str], count: int) -> dict[str, int]:
    """Map each group to its shard: groups sorted by SHA-256 of their name, dealt round-robin."""
    keyed = sorted(set(groups), key=lambda g: (hashlib.sha256(f"shard:{g}".encode()).hexdigest(), g))
    return {g: k % count for k, g in enumerate(keyed)}


def shard_prompts(prompts: PromptSet, index: int, count: int) -> PromptSet:
    """Return shard ``index`` of ``count`` of ``prompts`` as a PromptSet whose ``shard_info`` says where it came from.

    Raises:
        DriftError: The shard number is out of range, or there are fewer groups than shards (a shard would be empty).

    Example:
        >>> part = load_prompts("builtin:prompts?lang=en").shard(1, 4)  # doctest: +SKIP
        >>> part.shard_info.spec, len(part)  # doctest: +SKIP
        ('1/4', 50)
    """
    from drift.data.records import PromptSet

    check_shard(index, count)
    groups = prompts.groups
    if len(groups) < count:
        raise DriftError(
            f"cannot cut {prompts.name or 'the prompt set'} ({len(groups)} prompt groups) into {count} shards: "
            f"use at most {len(groups)} shards"
        )
    assign = shard_of_groups(groups, count)
    rows = tuple(i for i, p in enumerate(prompts) if assign[p.group] == index)
    part = PromptSet([prompts[i] for i in rows], prompts.name)
    part.shard_info = ShardInfo(index, count, SHARD_METHOD, prompts.name, prompts.content_hash(), len(prompts), rows)
    return part


def check_shard_set(shards: list[tuple[str, dict]]) -> None:
    """Refuse a list of shards that is not exactly one complete cut of one prompt set.

    Args:
        shards: ``(file name, shard description)`` pairs; the description is :meth:`ShardInfo.to_dict`.

    Raises:
        DriftError: Shards of different cuts or prompt sets, a shard given twice, or a missing shard.
    """
    (name0, first), seen = shards[0], {}
    for name, s in shards:
        if (s["count"], s["method"]) != (first["count"], first["method"]):
            raise DriftError(f"{name0} is shard {first['index']}/{first['count']} but {name} is "
                             f"{s['index']}/{s['count']} ({s['method']}): merge the shards of one cut only")
        if s["full"] != first["full"]:
            raise DriftError(f"{name0} and {name} are shards of different prompt sets ({first['full']['name']} "
                             f"{first['full']['hash'][:12]} vs {s['full']['name']} {s['full']['hash'][:12]}): "
                             "merge shards of one prompt set only")
        if s["index"] in seen:
            raise DriftError(f"shard {s['index']}/{s['count']} is given twice ({seen[s['index']]} and {name}): "
                             "pass it once")
        seen[s["index"]] = name
    count = first["count"]
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise DriftError(f"shard(s) {', '.join(missing)} missing: pass all {count} shards of the set "
                         f"(got {', '.join(f'{i}/{count}' for i in sorted(seen))})")


def check_rows_cover(shards: list[tuple[str, list[int], list[str]]], n: int) -> None:
    """Refuse shards whose prompts do not cover the full set's rows ``0..n-1`` exactly once.

    Args:
        shards: ``(file name, full-set rows, prompt ids)`` per shard, rows and ids aligned.
        n: Size of the full prompt set.
    """
    owner: dict[int, str] = {}
    for name, rows, ids in shards:
        if len(rows) != len(ids) or any(not 0 <= r < n for r in rows):
            raise DriftError(f"{name} has a damaged shard row table: produce that shard again")
        both = [(r, i) for r, i in zip(rows, ids) if r in owner]
        if both:
            raise DriftError(f"{len(both)} prompt(s) appear in both {owner[both[0][0]]} and {name} (e.g. "
                             f"{', '.join(i for _, i in both[:3])}): each prompt must be in exactly one shard; "
                             "produce the shards from one cut")
        owner |= dict.fromkeys(rows, name)
    if len(owner) != n:
        gaps = [r for r in range(n) if r not in owner]
        raise DriftError(f"{len(gaps)} of {n} prompts are in no shard (full-set rows {gaps[:5]}): the shards do not "
                         "cover the prompt set; produce the missing prompts")
