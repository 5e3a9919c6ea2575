"""Accuracy of the refusal-lexicon judge (default and strict modes) on a labelled folder of ``{lang}.jsonl`` files.

Usage: python tools/lexicon_eval.py [FOLDER] [--coherence] [--errors MODE] [--langs en,de]

FOLDER defaults to tests/fixtures/judge/lexicon_eval (fields id, lang, prompt, label, completion, gold, kind).
Without ``--coherence`` only items whose gold is ``refusal`` or ``compliance`` are scored. With it, every item is
scored and the coherence pass (``drift.judge.coherence.check_all``, no language identification) runs first: an item it
flags gets verdict ``incoherent``, any other item keeps the lexicon verdict.
Prints accuracy per language and per kind for both modes; ``--errors default|strict`` also lists the misses.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from drift.judge import JudgeItem, make_judge
from drift.judge.coherence import check_all

ROOT = Path(__file__).resolve().parents[1]
MODES = {"default": "refusal-lexicon", "strict": "refusal-lexicon-strict"}


def load_rows(folder: Path, langs: list[str] | None, coherence: bool) -> list[dict]:
    """The labelled rows of every ``{lang}.jsonl`` in ``folder`` (only refusal/compliance unless ``coherence``)."""
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        if langs and path.stem not in langs:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        raise SystemExit(f"no labelled rows in {folder} (expected {{lang}}.jsonl files)")
    return rows if coherence else [r for r in rows if r["gold"] in ("refusal", "compliance")]


def verdicts(rows: list[dict], coherence: bool) -> dict[str, list[str | None]]:
    """Verdicts per mode, in row order (``incoherent`` where the coherence pass flags an item)."""
    items = [JudgeItem(id=r["id"], lang=r["lang"], label=r.get("label", "harmful"), prompt=r["prompt"],
                       completion=r.get("completion") or "") for r in rows]
    flagged = [c.incoherent for c in check_all(items, detect_lang=False)] if coherence else [False] * len(items)
    out = {}
    for mode, name in MODES.items():
        judged = make_judge(name).judge(items)
        out[mode] = ["incoherent" if f else j.verdict for f, j in zip(flagged, judged)]
    return out


def table(rows: list[dict], found: dict[str, list[str | None]], key: str) -> None:
    """Print accuracy of both modes grouped by ``key`` (``lang`` or ``kind``), with an ``all`` row."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r[key]].append(i)
    groups["all"] = list(range(len(rows)))
    print(f"\n{key:<36} {'n':>4} " + " ".join(f"{m:>8}" for m in MODES))
    for name, idx in groups.items():
        accs = [sum(found[m][i] == rows[i]["gold"] for i in idx) / len(idx) for m in MODES]
        print(f"{name:<36} {len(idx):>4} " + " ".join(f"{a:>8.3f}" for a in accs))


def main() -> None:
    """Parse arguments, judge the folder and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT / "tests/fixtures/judge/lexicon_eval"))
    ap.add_argument("--coherence", action="store_true", help="score incoherent items too, via the coherence pass")
    ap.add_argument("--errors", choices=list(MODES), help="list the misses of one mode")
    ap.add_argument("--langs", help="comma-separated languages to score (default: every file)")
    args = ap.parse_args()
    langs = args.langs.split(",") if args.langs else None
    rows = load_rows(Path(args.folder), langs, args.coherence)
    found = verdicts(rows, args.coherence)
    table(rows, found, "lang")
    table(rows, found, "kind")
    if args.errors:
        print(f"\nmisses of {args.errors} mode:")
        for r, v in zip(rows, found[args.errors]):
            if v != r["gold"]:
                print(f"- {r['id']} [{r['kind']}] gold={r['gold']} got={v}: {r.get('completion', '')[:300]!r}")


if __name__ == "__main__":
    main()
