"""Check a bundled prompt file against the English master: schema, alignment and language identity.

Usage: python tools/check_prompt_langs.py LANG [LANG ...]
Prints, per language, the share of rows that lingua identifies as that language and lists the misses.
"""
import json
import sys
from pathlib import Path

from lingua import LanguageDetectorBuilder

ROOT = Path(__file__).resolve().parents[1] / "drift" / "data" / "bundled" / "prompts"
detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
master = [json.loads(line) for line in (ROOT / "en.jsonl").read_text(encoding="utf-8").splitlines()]
for lang in sys.argv[1:]:
    rows = [json.loads(line) for line in (ROOT / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(master), f"{lang}: {len(rows)} rows, expected {len(master)}"
    for r, m in zip(rows, master):
        assert r["group"] == m["group"] and r["label"] == m["label"] and r["category"] == m["category"], r
        assert r["id"] == f"{m['group']}-{lang}" and r["lang"] == lang and r["source"] == "polydrift", r
        assert r["text"].strip() and r["text"] != m["text"], r
    assert len({r["text"] for r in rows}) == len(rows), f"{lang}: duplicate texts"
    misses = []
    for r in rows:
        found = detector.detect_language_of(r["text"])
        code = found.iso_code_639_1.name.lower() if found else None
        if code != lang:
            misses.append((r["id"], code, r["text"]))
    print(f"{lang}: {1 - len(misses) / len(rows):.3f} identified correctly")
    for m in misses:
        print("   MISS", m)
