"""Capability measures as long-form records: perplexity, multiple-choice accuracy, task capability, fluency.

Every function returns records ``{run_id, suite, lang, subject, metric, value, n, ci_low, ci_high}`` (``lang`` and
``subject`` are ``all`` when pooled), the shape the relate stage and the report join with drift and ASR.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from drift.stats import wilson


def _rec(run_id, suite, lang, metric, value, n, lo=math.nan, hi=math.nan, subject="all") -> dict:
    return {"run_id": run_id, "suite": suite, "lang": lang, "subject": subject, "metric": metric, "value": value,
            "n": n, "ci_low": lo, "ci_high": hi}


def _ppl_ci(nll: np.ndarray, tokens: np.ndarray, n_boot: int = 500, seed: int = 0) -> tuple[float, float]:
    if len(nll) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(nll), (n_boot, len(nll)))
    boots = np.exp(nll[idx].sum(1) / np.maximum(tokens[idx].sum(1), 1))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(lo), float(hi)


def _perplexity_by_lang(scores, langs, run_id, suite, metric) -> list[dict]:
    by: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for (lp, n, _), lang in zip(scores, langs):
        by[lang].append((-lp, n))
        by["all"].append((-lp, n))
    out = []
    for lang, vals in sorted(by.items()):
        nll, tok = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
        lo, hi = _ppl_ci(nll, tok)
        out.append(_rec(run_id, suite, lang, metric, float(np.exp(nll.sum() / max(tok.sum(), 1))), int(tok.sum()),
                        lo, hi))
    return out


def response_perplexity(lm, examples, run_id: str, max_length: int = 512, batch_size: int = 16) -> list[dict]:
    """Perplexity of reference responses given their instructions under the chat template, per language."""
    from drift.capability.scoring import score_sequences
    from drift.finetune.encode import encode_example

    rows = [encode_example(lm.formatter, e.instruction, e.response).sequence(max_length) for e in examples]
    keep = [i for i, r in enumerate(rows) if r is not None]
    scores = score_sequences(lm, [rows[i] for i in keep], batch_size)
    return _perplexity_by_lang(scores, [examples[i].lang for i in keep], run_id, "perplexity", "response_perplexity")


def text_perplexity(lm, texts: Sequence[str], lang: str, run_id: str, max_length: int = 512,
                    batch_size: int = 8) -> list[dict]:
    """Perplexity of plain text (one document per entry, truncated to ``max_length`` tokens), no chat template."""
    from drift.capability.scoring import score_sequences

    rows = []
    for t in texts:
        ids = lm.tokenizer(t, add_special_tokens=True)["input_ids"][:max_length]
        if len(ids) > 1:
            rows.append((ids, [-100] + ids[1:]))
    scores = score_sequences(lm, rows, batch_size)
    return [r for r in _perplexity_by_lang(scores, [lang] * len(rows), run_id, "perplexity", "text_perplexity")
            if r["lang"] == lang]


def mcq_records(items: Sequence[dict], run_id: str, suite: str = "mcq") -> list[dict]:
    """Accuracy per language x subject, per language and pooled, with Wilson intervals, from evaluate_mcq records."""
    cells: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in items:
        for key in ((r["lang"], r["subject"]), (r["lang"], "all"), ("all", "all")):
            cells[key].append(bool(r["correct"]))
    out = []
    for (lang, subject), vals in sorted(cells.items()):
        k, n = sum(vals), len(vals)
        lo, hi = wilson(k, n)
        out.append(_rec(run_id, suite, lang, "mcq_accuracy", k / n, n, lo, hi, subject))
    return out


def task_records(lm, heldout, run_id: str, method: str = "sft", max_length: int = 256,
                 batch_size: int = 16) -> list[dict]:
    """The fine-tuning task's own capability on held-out data: response NLL and top-1 token accuracy (SFT), or
    chosen NLL and preference accuracy, the share of pairs where the chosen answer is likelier per token (DPO)."""
    from drift.capability.scoring import score_sequences
    from drift.finetune.encode import encode_example

    if method == "dpo":
        chosen = [encode_example(lm.formatter, p.prompt, p.chosen).sequence(max_length) for p in heldout]
        rejected = [encode_example(lm.formatter, p.prompt, p.rejected).sequence(max_length) for p in heldout]
        keep = [i for i in range(len(heldout)) if chosen[i] is not None and rejected[i] is not None]
        sc = score_sequences(lm, [chosen[i] for i in keep], batch_size)
        sr = score_sequences(lm, [rejected[i] for i in keep], batch_size)
        wins = [c[0] / c[1] > r[0] / r[1] for c, r in zip(sc, sr)]
        nll = -sum(c[0] for c in sc) / max(sum(c[1] for c in sc), 1)
        lo, hi = wilson(sum(wins), len(wins))
        return [_rec(run_id, "task", "all", "task_loss", nll, sum(c[1] for c in sc)),
                _rec(run_id, "task", "all", "task_accuracy", sum(wins) / max(len(wins), 1), len(wins), lo, hi)]
    rows = [encode_example(lm.formatter, e.instruction, e.response).sequence(max_length) for e in heldout]
    keep = [i for i, r in enumerate(rows) if r is not None]
    scores = score_sequences(lm, [rows[i] for i in keep], batch_size, top1=True)
    out = []
    by: dict[str, list] = defaultdict(list)
    for i, s in zip(keep, scores):
        by[heldout[i].lang].append(s)
        by["all"].append(s)
    for lang, vals in sorted(by.items()):
        tokens = sum(v[1] for v in vals)
        hits = sum(v[2] for v in vals)
        lo, hi = wilson(hits, tokens)
        out += [_rec(run_id, "task", lang, "task_loss", -sum(v[0] for v in vals) / max(tokens, 1), tokens),
                _rec(run_id, "task", lang, "task_accuracy", hits / max(tokens, 1), tokens, lo, hi)]
    return out


def fluency_records(lm, prompts, run_id: str, max_new_tokens: int = 64, batch_size: int = 16) -> list[dict]:
    """Generate on harmless prompts and report the coherence pass's incoherence and language-consistency rates."""
    from drift.generate import GenerationConfig
    from drift.generate.hf_backend import generate_batches
    from drift.judge.base import JudgeItem
    from drift.judge.coherence import check_all

    prompts = list(prompts)
    items = []
    for batch in generate_batches(lm, [p.text for p in prompts], GenerationConfig(max_new_tokens=max_new_tokens,
                                                                                    batch_size=batch_size)):
        items += [JudgeItem(prompts[i].id, prompts[i].lang, prompts[i].label, prompts[i].text, g.completion)
                  for i, g in batch]
    results = check_all(items)
    by: dict[str, list] = defaultdict(list)
    for it, res in zip(items, results):
        by[it.lang].append(res)
        by["all"].append(res)
    out = []
    for lang, rs in sorted(by.items()):
        k = sum(r.incoherent for r in rs)
        lo, hi = wilson(k, len(rs))
        out.append(_rec(run_id, "fluency", lang, "incoherent_rate", k / len(rs), len(rs), lo, hi))
        lc = [r.lang_consistent for r in rs if r.lang_consistent is not None]
        lo, hi = wilson(sum(lc), len(lc))
        out.append(_rec(run_id, "fluency", lang, "lang_consistency", sum(lc) / len(lc) if lc else math.nan, len(lc),
                        lo, hi))
    return out
