"""Deterministic sharding of prompt sets: validation, exact cover, groups kept together, stable assignment."""

from __future__ import annotations

import random

import pytest

from drift.data import PromptSet, load_prompts, parse_shard
from drift.data.shard import SHARD_METHOD, check_rows_cover, check_shard_set
from drift.errors import DriftError


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    return load_prompts("builtin:prompts?lang=en,de,zh&category=fraud,cooking,travel")


@pytest.mark.parametrize("spec,want", [("0/4", (0, 4)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2)), ("0/1", (0, 1))])
def test_parse_shard(spec, want):
    assert parse_shard(spec) == want


@pytest.mark.parametrize("spec,message", [("4/4", "numbered 0 to 3"), ("1/0", "at least 1"), ("-1/4", "write I/N"),
                                          ("a/b", "write I/N"), ("2", "write I/N"), ("1/2/3", "write I/N")])
def test_parse_shard_errors(spec, message):
    with pytest.raises(DriftError, match=message) as e:
        parse_shard(spec)
    assert "\n" not in str(e.value)


def test_shards_cover_the_set_exactly_once_and_keep_groups_and_order(prompts):
    parts = [prompts.shard(i, 4) for i in range(4)]
    ids = [p.id for part in parts for p in part]
    assert sorted(ids) == sorted(p.id for p in prompts) and len(ids) == len(set(ids))
    homes = {}
    for k, part in enumerate(parts):
        for p in part:
            assert homes.setdefault(p.group, k) == k  # translations of an item share a shard
        rows = part.shard_info.rows
        assert list(rows) == sorted(rows) and [prompts[r].id for r in rows] == [p.id for p in part]
        info = part.shard_info
        assert (info.index, info.count, info.method, info.full_n) == (k, 4, SHARD_METHOD, len(prompts))
        assert info.full_hash == prompts.content_hash() and info.spec == f"{k}/4"
        assert part.name == prompts.name
    groups = [len(part.groups) for part in parts]
    assert max(groups) - min(groups) <= 1  # balanced in groups


def test_assignment_ignores_prompt_order(prompts):
    shuffled = list(prompts)
    random.Random(0).shuffle(shuffled)
    other = PromptSet(shuffled, prompts.name)
    for i in range(3):
        assert {p.id for p in prompts.shard(i, 3)} == {p.id for p in other.shard(i, 3)}


def test_one_shard_is_the_whole_set(prompts):
    part = prompts.shard(0, 1)
    assert [p.id for p in part] == [p.id for p in prompts] and part.shard_info.rows == tuple(range(len(prompts)))
    assert prompts.shard_info is None and part.filter(langs=["en"]).shard_info is None


def test_too_many_shards(prompts):
    with pytest.raises(DriftError, match=f"into {len(prompts.groups) + 1} shards: use at most"):
        prompts.shard(0, len(prompts.groups) + 1)
    with pytest.raises(DriftError, match="does not exist"):
        prompts.shard(5, 5 - 1)


def _desc(i, n, h="h" * 64):
    return {"index": i, "count": n, "method": SHARD_METHOD, "full": {"name": "set", "hash": h, "n": 10}}


@pytest.mark.parametrize("shards,message", [
    ([("a", _desc(0, 3)), ("b", _desc(2, 3))], r"shard\(s\) 1/3 missing"),
    ([("a", _desc(0, 2)), ("b", _desc(0, 2)), ("c", _desc(1, 2))], "shard 0/2 is given twice"),
    ([("a", _desc(0, 2)), ("b", _desc(1, 3))], "merge the shards of one cut only"),
    ([("a", _desc(0, 2)), ("b", _desc(1, 2, "x" * 64))], "shards of different prompt sets"),
])
def test_shard_set_errors(shards, message):
    with pytest.raises(DriftError, match=message):
        check_shard_set(shards)


def test_rows_cover_errors():
    check_rows_cover([("a", [0, 2], ["p0", "p2"]), ("b", [1], ["p1"])], 3)
    with pytest.raises(DriftError, match=r"appear in both a and b \(e.g. p1\)"):
        check_rows_cover([("a", [0, 1], ["p0", "p1"]), ("b", [1, 2], ["p1", "p2"])], 3)
    with pytest.raises(DriftError, match=r"1 of 3 prompts are in no shard \(full-set rows \[2\]\)"):
        check_rows_cover([("a", [0], ["p0"]), ("b", [1], ["p1"])], 3)
    with pytest.raises(DriftError, match="damaged"):
        check_rows_cover([("a", [0, 7], ["p0", "p7"])], 3)
