"""Capability grounding on tiny models: option scoring, a planted model, perplexity, task capability, matching, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from drift.capability import (
    MCQItem, compare_matched, evaluate_mcq, load_mcq, match_capability, mcq_records, response_perplexity,
    task_records,
)
from drift.cli import main
from drift.errors import DriftError
from drift.finetune import SFTExample
from drift.models import load_model

GOOD = ["7", "8", "9", "77"]
BAD = ["qux", "zap", "kiw", "vow", "jab", "wiz"]


def _items(n=12):
    items = []
    for i in range(n):
        wrong = [BAD[(i + k) % len(BAD)] for k in range(3)]
        answer = i % 4
        choices = wrong[:answer] + [GOOD[i % 4]] + wrong[answer:]
        items.append(MCQItem(f"q{i}", f"g{i}", "en", ["colours", "misc"][i % 2], f"Question number {i}?",
                             tuple(choices), answer))
    return items


def _rig(lm, words, bonus):
    """Give the LM head a bias that favours the tokens of ``words`` (a planted preference)."""
    head = lm.model.get_output_embeddings()
    new = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    new.weight = head.weight
    with torch.no_grad():
        new.bias.zero_()
        for w in words:
            for t in lm.tokenizer(w, add_special_tokens=False)["input_ids"]:
                new.bias[t] += bonus
    lm.model.set_output_embeddings(new)
    return lm


def test_planted_preference_scores_100_and_reversed_scores_0(tiny_llama):
    items = _items()
    good_tokens = {t for w in GOOD for t in load_model(str(tiny_llama)).tokenizer(w, add_special_tokens=False)[
        "input_ids"]}
    bad_tokens = {t for w in BAD for t in load_model(str(tiny_llama)).tokenizer(w, add_special_tokens=False)[
        "input_ids"]}
    assert not good_tokens & bad_tokens  # the planted preference can separate the options
    right = _rig(load_model(str(tiny_llama), device="cpu"), GOOD, 20.0)
    assert all(r["correct"] for r in evaluate_mcq(right, items))
    wrong = _rig(load_model(str(tiny_llama), device="cpu"), BAD, 20.0)
    assert not any(r["correct"] for r in evaluate_mcq(wrong, items))


def test_prediction_is_the_most_likely_option(tiny_llama):
    lm = load_model(str(tiny_llama), device="cpu")
    items = _items(6)
    recs = evaluate_mcq(lm, items, batch_size=5)
    for it, rec in zip(items, recs):
        lps = []
        for choice in it.choices:
            prefix = list(lm.formatter.encode(it.question).input_ids)
            cont = lm.tokenizer(choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = lm.model(input_ids=torch.tensor([prefix + cont])).logits[0].float()
            lp = torch.log_softmax(logits[len(prefix) - 1:-1], -1).gather(-1, torch.tensor(cont)[:, None]).sum()
            lps.append(float(lp))
        assert np.allclose(rec["logprobs"], lps, atol=1e-3) and rec["pred"] == int(np.argmax(lps))


def test_letter_scoring_and_few_shot_never_leak_the_item(tiny_llama):
    lm = _rig(load_model(str(tiny_llama), device="cpu"), ["B"], 30.0)
    recs = evaluate_mcq(lm, _items(8), shots=2, scoring="letter")
    assert [r["pred"] for r in recs] == [1] * 8  # the letter the model is rigged to say


def test_mcq_records_and_loaders(tmp_path):
    recs = [{"lang": "en", "subject": s, "correct": c} for s, c in [("a", True), ("a", False), ("b", True)]]
    table = pd.DataFrame(mcq_records(recs, "r"))
    pooled = table[(table.lang == "all") & (table.subject == "all")].iloc[0]
    assert pooled["value"] == pytest.approx(2 / 3) and pooled["n"] == 3 and pooled["ci_low"] < 2 / 3
    bundled = load_mcq("builtin:mcq", langs=["en", "de"], limit=10)
    assert len(bundled) == 20 and {i.lang for i in bundled} == {"en", "de"}
    gm = tmp_path / "global_mmlu.csv"
    pd.DataFrame({"question": ["2+2?"], "option_a": ["3"], "option_b": ["4"], "option_c": ["5"], "option_d": ["6"],
                  "answer": ["B"], "subject": ["math"]}).to_csv(gm, index=False)
    (item,) = load_mcq(str(gm), default_lang="fr")
    assert item.answer == 1 and item.choices == ("3", "4", "5", "6") and item.lang == "fr"
    tiny = tmp_path / "tinymmlu.jsonl"
    tiny.write_text(json.dumps({"question": "Q", "choices": ["a", "b", "c", "d"], "answer": 3, "subject": "x"}) + "\n")
    assert load_mcq(str(tiny))[0].answer == 3
    tiny.write_text(json.dumps({"question": "Q", "choices": ["a", "b"], "answer": 5}) + "\n")
    with pytest.raises(DriftError, match="out of range"):
        load_mcq(str(tiny))


def test_response_perplexity_matches_manual_nll(tiny_llama):
    lm = load_model(str(tiny_llama), device="cpu")
    ex = [SFTExample("a", "a", "en", "Say hi.", "Hello there."), SFTExample("b", "b", "de", "Sag hallo.", "Hallo.")]
    recs = {r["lang"]: r for r in response_perplexity(lm, ex, "r")}
    from drift.finetune.encode import encode_example

    total, tokens = 0.0, 0
    for e in ex:
        ids, labels = encode_example(lm.formatter, e.instruction, e.response).sequence(512)
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        tgt = torch.tensor(labels[1:])
        m = tgt != -100
        total += float(torch.nn.functional.cross_entropy(logits[m], tgt[m], reduction="sum"))
        tokens += int(m.sum())
    assert recs["all"]["value"] == pytest.approx(math.exp(total / tokens), rel=1e-4)
    assert recs["all"]["n"] == tokens and set(recs) == {"en", "de", "all"}


def test_task_capability_rises_after_training(tiny_llama, tmp_path):
    from drift.finetune import FinetuneConfig, train

    data = [SFTExample(f"e{i}", f"g{i}", "en", f"Colour {i}?", "The colour is blue.") for i in range(20)]
    lm = load_model(str(tiny_llama), device="cpu")
    before = {r["metric"]: r["value"] for r in task_records(lm, data[16:], "r") if r["lang"] == "all"}
    train(lm, data[:16], FinetuneConfig(model=str(tiny_llama), learning_rate=5e-3, epochs=3, batch_size=8,
                                        max_length=64, device="cpu"), tmp_path / "run", progress=False)
    after = {r["metric"]: r["value"] for r in task_records(lm, data[16:], "r") if r["lang"] == "all"}
    assert after["task_loss"] < before["task_loss"] - 0.5 and after["task_accuracy"] > before["task_accuracy"]


def test_matched_comparison_finds_a_planted_flip():
    rows = []
    for seed in (0, 1):
        # German fine-tuning gains capability twice as fast as French. At the last epoch German has the higher ASR,
        # but at equal capability (French's final level) French's is higher: the conclusion flips.
        for ep, cap_fr, asr_fr, cap_de, asr_de in [(1, 0.1, 0.20, 0.2, 0.30), (2, 0.2, 0.35, 0.4, 0.40),
                                                   (3, 0.3, 0.50, 0.6, 0.60)]:
            rows.append({"ft_lang": "fr", "seed": seed, "epochs": ep, "capability": cap_fr, "outcome": asr_fr})
            rows.append({"ft_lang": "de", "seed": seed, "epochs": ep, "capability": cap_de, "outcome": asr_de})
    table, level = match_capability(pd.DataFrame(rows))
    assert level == pytest.approx(0.3)
    de = table[table.ft_lang == "de"].iloc[0]
    assert de["matched"] == pytest.approx(0.35) and de["unmatched"] == pytest.approx(0.60)
    cmp = compare_matched(table).iloc[0]
    assert (cmp["a"], cmp["b"]) == ("de", "fr") and cmp["flip"]
    assert cmp["diff_unmatched"] == pytest.approx(-0.10) and cmp["diff_matched"] == pytest.approx(0.15)
    none, _ = match_capability(pd.DataFrame(rows), level=0.9)
    assert none["matched"].isna().all()  # never extrapolated


def test_capability_cli(tiny_llama, tmp_path, capsys):
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps({"text": f"Colour {i}?", "response": "Blue.", "lang": "en"}) + "\n"
                            for i in range(4)))
    text = tmp_path / "doc.txt"
    text.write_text("The sea is blue.\n\nThe sky is grey today.")
    out = tmp_path / "cap"
    assert main(["capability", "--model", str(tiny_llama), "--langs", "en,de", "--limit", "3", "--task-data",
                 str(task), "--text", str(text), "--out", str(out), "--device", "cpu"]) == 0
    df = pd.read_csv(out / "capability.csv")
    assert {"response_perplexity", "text_perplexity", "mcq_accuracy", "task_loss", "task_accuracy",
            "incoherent_rate", "lang_consistency"} <= set(df.metric)
    assert set(df[df.metric == "mcq_accuracy"].lang) == {"en", "de", "all"}
    assert (out / "mcq_items.csv").exists() and "mcq_accuracy" in capsys.readouterr().out
    assert main(["capability", "--model", str(tiny_llama), "--out", str(out), "--suite", "mcq"]) == 2
    assert main(["capability", "--model", str(tiny_llama), "--out", str(tmp_path / "x"), "--suite", "iq"]) == 2
    assert "unknown capability suite" in capsys.readouterr().err


def test_study_checkpoints_join_asr_change_and_capability():
    from drift.capability.matched import study_checkpoints

    runs = [{"run_id": "b", "role": "aligned", "parent_run_id": "x"},
            {"run_id": "f1", "role": "finetuned", "parent_run_id": "b", "ft_lang": "fr", "seed": 0, "epochs": 1.0},
            {"run_id": "f3", "role": "finetuned", "parent_run_id": "b", "ft_lang": "fr", "seed": 0, "epochs": 3.0}]
    asr = pd.DataFrame([{"run_id": r, "judge": "j", "label": "harmful", "category": "all", "metric": "asr",
                         "lang": lang, "value": v} for r, lang, v in
                        [("b", "en", 0.1), ("f1", "en", 0.3), ("f3", "en", 0.6), ("b", "de", 0.2), ("f1", "de", 0.2)]])
    cap = pd.DataFrame([{"run_id": r, "metric": "task_accuracy", "lang": "all", "value": v}
                        for r, v in [("f1", 0.4), ("f3", 0.5)]])
    pts = study_checkpoints(runs, asr, cap, "j").set_index(["run_id", "eval_lang"])
    assert pts.loc[("f3", "en"), "outcome"] == pytest.approx(0.5) and pts.loc[("f1", "de"), "outcome"] == 0.0
    assert ("f3", "de") not in pts.index and pts.loc[("f1", "en"), "capability"] == 0.4
