"""Prompt records and the PromptSet collection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from drift.data.languages import check_lang
from drift.errors import DriftError

if TYPE_CHECKING:
    import pandas as pd

    from drift.data.shard import ShardInfo

LABELS = ("harmful", "harmless")
FIELDS = ("id", "group", "lang", "label", "category", "text", "source")


@dataclass(frozen=True)
class Prompt:
    """One prompt in one language.

    Attributes:
        id: Unique id of this row.
        group: Shared by the translations of the same item, so splits never separate them.
        lang: ISO 639-1 code.
        label: ``harmful`` or ``harmless``.
        category: Harm category or topic (may be empty).
        text: The instruction, before any chat template.
        source: Where the row comes from.
    """

    id: str
    group: str
    lang: str
    label: str
    category: str
    text: str
    source: str

    def to_dict(self) -> dict[str, str]:
        """Return the record as a plain dict."""
        return asdict(self)


def make_prompt(raw: dict, where: str, default_source: str = "") -> Prompt:
    """Validate one raw record (needs ``id``, ``lang``, ``label``, ``text``) and return a Prompt.

    Args:
        raw: A mapping with at least ``id``, ``lang``, ``label`` and ``text``.
        where: Location for error messages, such as ``"prompts.jsonl line 4"``.
        default_source: ``source`` to use when the record has none.
    """
    missing = [k for k in ("id", "lang", "label", "text") if raw.get(k) is None or (k != "text" and raw[k] == "")]
    if missing:
        raise DriftError(f"missing field(s) {', '.join(missing)} in {where}: each record needs id, lang, label, text")
    text = str(raw["text"])
    if not text.strip():
        raise DriftError(f"empty prompt text in {where}: every prompt needs non-empty 'text'")
    label = str(raw["label"]).strip().lower()
    if label not in LABELS:
        raise DriftError(f"unknown label {raw['label']!r} in {where}: use 'harmful' or 'harmless'")
    pid = str(raw["id"])
    return Prompt(
        id=pid,
        group=str(raw.get("group") or pid),
        lang=check_lang(str(raw["lang"]).strip().lower(), where),
        label=label,
        category=str(raw.get("category") or ""),
        text=text,
        source=str(raw.get("source") or default_source),
    )


class PromptSet(Sequence[Prompt]):
    """An ordered, immutable collection of prompts with unique ids.

    Example:
        >>> ps = load_prompts("builtin:prompts?lang=en,de&label=harmful")  # doctest: +SKIP
        >>> train, test = ps.split(test_fraction=0.25, seed=0)  # doctest: +SKIP
    """

    shard_info: ShardInfo | None = None  # set on the sets returned by :meth:`shard`

    def __init__(self, prompts: Iterable[Prompt], name: str = "") -> None:
        self._prompts: tuple[Prompt, ...] = tuple(prompts)
        self.name = name
        seen: set[str] = set()
        for p in self._prompts:
            if p.id in seen:
                raise DriftError(f"duplicate prompt id {p.id!r} in {name or 'prompt set'}: ids must be unique")
            seen.add(p.id)

    def __len__(self) -> int:
        return len(self._prompts)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return PromptSet(self._prompts[i], self.name)
        return self._prompts[i]

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self._prompts)

    def __repr__(self) -> str:
        return f"PromptSet({self.name!r}, n={len(self)}, langs={self.langs}, labels={self.labels})"

    @property
    def langs(self) -> list[str]:
        """Languages present, in order of first appearance."""
        return list(dict.fromkeys(p.lang for p in self._prompts))

    @property
    def labels(self) -> list[str]:
        """Labels present, in order of first appearance."""
        return list(dict.fromkeys(p.label for p in self._prompts))

    @property
    def groups(self) -> list[str]:
        """Groups present, in order of first appearance."""
        return list(dict.fromkeys(p.group for p in self._prompts))

    def filter(
        self,
        langs: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
    ) -> PromptSet:
        """Return the prompts matching every given criterion (None means no constraint)."""
        lang_set = {check_lang(x, "language filter") for x in langs} if langs is not None else None
        label_set = set(labels) if labels is not None else None
        if label_set is not None and not label_set <= set(LABELS):
            raise DriftError(f"unknown label filter {sorted(label_set - set(LABELS))}: use 'harmful' or 'harmless'")
        cat_set = set(categories) if categories is not None else None
        group_set = set(groups) if groups is not None else None
        kept = [
            p
            for p in self._prompts
            if (lang_set is None or p.lang in lang_set)
            and (label_set is None or p.label in label_set)
            and (cat_set is None or p.category in cat_set)
            and (group_set is None or p.group in group_set)
        ]
        return PromptSet(kept, self.name)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[PromptSet, PromptSet]:
        """Split deterministically by group so translations never straddle train and test.

        Each group goes to test when a hash of (seed, group) falls below ``test_fraction``; the split is stable when
        prompts are added or removed and identical across machines.
        """
        if not 0.0 <= test_fraction <= 1.0:
            raise DriftError(f"test_fraction {test_fraction} is out of range: use a number between 0 and 1")

        def in_test(group: str) -> bool:
            h = hashlib.sha256(f"{seed}:{group}".encode()).digest()
            return int.from_bytes(h[:8], "big") / 2**64 < test_fraction

        test_groups = {g for g in self.groups if in_test(g)}
        train = PromptSet([p for p in self._prompts if p.group not in test_groups], self.name)
        test = PromptSet([p for p in self._prompts if p.group in test_groups], self.name)
        return train, test

    def shard(self, index: int, count: int) -> PromptSet:
        """Shard ``index`` of ``count``, by prompt group (see :func:`drift.data.shard.shard_prompts`).

        Translations of one item stay in one shard; the result's ``shard_info`` records the full set's hash and each
        prompt's row in it, so shards can be merged back in this set's order.
        """
        from drift.data.shard import shard_prompts

        return shard_prompts(self, index, count)

    def content_hash(self) -> str:
        """SHA-256 of the records in order (hex); identical sets hash identically anywhere."""
        h = hashlib.sha256()
        for p in self._prompts:
            h.update(json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def to_records(self) -> list[dict[str, str]]:
        """Return the prompts as a list of dicts."""
        return [p.to_dict() for p in self._prompts]

    def to_dataframe(self) -> pd.DataFrame:
        """Return the prompts as a pandas DataFrame with the record columns."""
        import pandas as pd

        return pd.DataFrame(self.to_records(), columns=list(FIELDS))

    def to_jsonl(self, path: str | Path) -> Path:
        """Write the prompts as JSONL (through a temporary file) and return the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for p in self._prompts:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        tmp.replace(path)
        return path


assert tuple(f.name for f in fields(Prompt)) == FIELDS
