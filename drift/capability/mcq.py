"""Multiple-choice evaluation by log-likelihood of the answer options (the lm-evaluation-harness way).

Loaders read MMLU / Global-MMLU / TinyMMLU-style tables: a question, four (or more) choices given as a list
(``choices``) or as columns (``A``..``D``, ``option_a``..``option_d``), the answer as an index or a letter, a
language and a subject. ``letter`` scoring compares the log-likelihood of the answer letters after the question with
its lettered options (MMLU style); ``option`` scoring compares the options' own text (cloze style), reporting raw
and length-normalised accuracy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from drift.data.languages import check_lang
from drift.data.limits import first_per
from drift.errors import DriftError

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct option."


@dataclass(frozen=True)
class MCQItem:
    """One multiple-choice question."""

    id: str
    group: str
    lang: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int
    source: str = ""


def _choices(row: dict, where: str) -> list[str]:
    if isinstance(row.get("choices"), (list, tuple)):
        return [str(c) for c in row["choices"]]
    for keys in (list(LETTERS[:4]), [f"option_{c}" for c in "abcd"], [f"choice{i}" for i in range(1, 5)]):
        if all(k in row for k in keys):
            return [str(row[k]) for k in keys]
    raise DriftError(f"{where}: no choices found (give a 'choices' list, or columns A-D / option_a-option_d)")


def _answer(value, n: int, where: str) -> int:
    if isinstance(value, str) and value.strip().upper() in LETTERS[:n]:
        return LETTERS.index(value.strip().upper())
    try:
        idx = int(value)
    except (TypeError, ValueError):
        raise DriftError(f"{where}: answer {value!r} is neither an index nor a letter") from None
    if not 0 <= idx < n:
        raise DriftError(f"{where}: answer index {idx} is out of range for {n} choices")
    return idx


def _rows(spec: str) -> tuple[list[dict], str]:
    if spec == "builtin:mcq":
        root = resources.files("drift.data.bundled").joinpath("mcq")
        rows = [json.loads(x) for f in sorted(root.iterdir(), key=lambda p: p.name) if f.name.endswith(".jsonl")
                for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        return rows, spec
    if spec.startswith("hf:"):
        try:
            from datasets import load_dataset
        except ImportError:
            raise DriftError("hf: specs need `datasets`: pip install 'polydrift[hf]'") from None
        name, _, rest = spec[3:].partition(":")
        config, _, split = rest.partition(":")
        ds = load_dataset(name, config or None, split=split or "test")
        return [dict(r) for r in ds], spec
    path = Path(spec)
    if not path.exists():
        raise DriftError(f"multiple-choice data not found: {spec} (a file, hf:NAME[:CONFIG[:SPLIT]] or builtin:mcq)")
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records"), str(path)
    from drift.data.loaders import read_rows

    return read_rows(path), str(path)


def load_mcq(spec: str = "builtin:mcq", langs: Sequence[str] | None = None, default_lang: str = "en",
             subjects: Sequence[str] | None = None, limit: int | None = None) -> list[MCQItem]:
    """Load multiple-choice items (bundled, a local table, or ``hf:NAME[:CONFIG[:SPLIT]]``) and filter them."""
    rows, where = _rows(spec)
    items = []
    for i, r in enumerate(rows):
        at = f"{where} row {i + 1}"
        if not str(r.get("question") or "").strip():
            raise DriftError(f"{at}: no question")
        choices = _choices(r, at)
        lang = check_lang(r.get("lang") or r.get("language") or default_lang, at)
        rid = str(r.get("id", f"{Path(where).stem}-{i:05d}"))
        items.append(MCQItem(rid, str(r.get("group", rid)), lang, str(r.get("subject") or "none"),
                             str(r["question"]), tuple(choices), _answer(r.get("answer"), len(choices), at),
                             str(r.get("source") or where)))
    if langs:
        items = [it for it in items if it.lang in set(langs)]
    if subjects:
        items = [it for it in items if it.subject in set(subjects)]
    items = first_per(items, limit)
    if not items:
        raise DriftError(f"no multiple-choice items left in {where} after filtering")
    return items


def format_question(item: MCQItem, with_answer: bool = False) -> str:
    """The question with lettered options (and ``Answer: X`` for few-shot examples)."""
    lines = [item.question] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices)]
    if with_answer:
        lines.append(f"Answer: {LETTERS[item.answer]}")
    return "\n".join(lines)


def _context(item: MCQItem, shots: Sequence[MCQItem], scoring: str) -> str:
    blocks = [format_question(s, with_answer=True) for s in shots]
    blocks.append(format_question(item) + f"\n{INSTRUCTION}" if scoring == "letter" else item.question)
    return "\n\n".join(blocks)


def evaluate_mcq(lm, items: Sequence[MCQItem], shots: int = 0, scoring: str = "option", chat: bool = True,
                 batch_size: int = 16, seed: int = 0) -> list[dict]:
    """Score every option of every item; return one record per item (prediction, correctness, option log-probs).

    ``option`` scoring (the default) works on small models; ``letter`` scoring (MMLU style) needs models that
    follow the lettered format (on SmolLM2-135M it is at chance even in English). Few-shot examples are drawn (seeded) from other items of the same language, never from the item's own group.
    Records carry ``correct`` (raw argmax) and, for option scoring, ``correct_norm`` (log-prob per character).
    """
    from drift.capability.scoring import context_rows, score_sequences

    if scoring not in ("letter", "option"):
        raise DriftError(f"scoring must be 'letter' or 'option', not {scoring!r}")
    rng = random.Random(seed)
    by_lang: dict[str, list[MCQItem]] = {}
    for it in items:
        by_lang.setdefault(it.lang, []).append(it)
    contexts, conts, spans = [], [], []
    for it in items:
        pool = [o for o in by_lang[it.lang] if o.group != it.group]
        ctx = _context(it, rng.sample(pool, min(shots, len(pool))), scoring)
        options = [LETTERS[i] for i in range(len(it.choices))] if scoring == "letter" else [
            " " + c if not chat else c for c in it.choices]
        spans.append((len(conts), len(conts) + len(options)))
        contexts += [ctx] * len(options)
        conts += options
    if scoring == "letter" and not chat:
        contexts = [c + "\nAnswer:" for c in contexts]
        conts = [" " + c for c in conts]
    scores = score_sequences(lm, context_rows(lm, contexts, conts, chat=chat), batch_size)
    records = []
    for k, it in enumerate(items):
        lps = [scores[j][0] for j in range(*spans[k])]
        norm = [lp / max(len(c), 1) for lp, c in zip(lps, it.choices)]
        pred = max(range(len(lps)), key=lps.__getitem__)
        rec = {"id": it.id, "group": it.group, "lang": it.lang, "subject": it.subject, "answer": it.answer,
               "pred": pred, "correct": pred == it.answer, "logprobs": [round(x, 4) for x in lps]}
        if scoring == "option":
            rec["correct_norm"] = max(range(len(norm)), key=norm.__getitem__) == it.answer
        records.append(rec)
    return records
