"""Ensembles of judges: majority vote, and the RefusEU protocol (two judges, an adjudicator where they disagree)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from drift.judge.base import Judge, JudgeItem, Judgment


def vote(verdicts: Sequence[str | None]) -> str | None:
    """The most common non-null verdict; None on a tie or when every verdict is null."""
    counts = Counter(v for v in verdicts if v is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def adjudicate(
    first: Sequence[Judgment], second: Sequence[Judgment], run_adjudicator: Callable[[list[int]], list[Judgment]],
    name: str = "adjudicated",
) -> list[Judgment]:
    """Combine two judges' verdicts, calling the adjudicator only on the items where they disagree.

    A null verdict from either judge counts as a disagreement. ``run_adjudicator`` receives the indices to judge.
    """
    disputed = [i for i, (a, b) in enumerate(zip(first, second)) if a.verdict is None or a.verdict != b.verdict]
    decided = dict(zip(disputed, run_adjudicator(disputed))) if disputed else {}
    out = []
    for i, (a, b) in enumerate(zip(first, second)):
        extra = {"first": a.judge, "second": b.judge, "first_verdict": a.verdict, "second_verdict": b.verdict}
        if i in decided:
            verdict = decided[i].verdict
            extra |= {"adjudicator": decided[i].judge, "adjudicated": True}
        else:
            verdict = a.verdict
            extra["adjudicated"] = False
        out.append(Judgment(a.id, name, verdict, a.run_id, extra))
    return out


class MajorityJudge:
    """Majority vote of several judges (ties and all-null give a null verdict)."""

    def __init__(self, members: Sequence[Judge], name: str = "majority") -> None:
        self.members, self.name = list(members), name

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        """Run every member and vote per item."""
        results = [m.judge(items) for m in self.members]
        return [Judgment(it.id, self.name, vote([r[i].verdict for r in results]), it.run_id,
                         {"votes": {r[i].judge: r[i].verdict for r in results}}) for i, it in enumerate(items)]

    def config(self) -> dict:
        """Member configurations."""
        return {"kind": "majority", "members": [m.config() for m in self.members]}


class AdjudicatedJudge:
    """RefusEU protocol: two judges on every item, the adjudicator only where they disagree."""

    def __init__(self, first: Judge, second: Judge, adjudicator: Judge, name: str = "adjudicated") -> None:
        self.first, self.second, self.adjudicator, self.name = first, second, adjudicator, name

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        """Run both judges, then the adjudicator on disagreements."""
        a, b = self.first.judge(items), self.second.judge(items)
        return adjudicate(a, b, lambda idx: self.adjudicator.judge([items[i] for i in idx]), self.name)

    def config(self) -> dict:
        """Configurations of the two judges and the adjudicator."""
        return {"kind": "adjudicated", "first": self.first.config(), "second": self.second.config(),
                "adjudicator": self.adjudicator.config()}
