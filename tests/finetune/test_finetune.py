"""Fine-tuning on tiny random models: response-only loss, falling loss, adapters that reload, DPO margins, sweeps."""

from __future__ import annotations

import json

import pytest
import torch

from drift.errors import DriftError
from drift.finetune import FinetuneConfig, PreferencePair, SFTExample, load_instructions, train
from drift.finetune.encode import IGNORE, encode_example, pad_batch
from drift.finetune.objective import ResponseLM
from drift.models import load_model

EXAMPLES = [SFTExample(f"e{i}", f"g{i}", "en", f"Say the colour number {i}.", f"The colour is blue {i % 3}.")
            for i in range(24)]


def _cfg(tiny, **kw):
    base = dict(model=str(tiny), learning_rate=5e-3, epochs=1, batch_size=8, max_length=64, device="cpu",
                lora_r=8, lora_alpha=16, lora_dropout=0.0)
    return FinetuneConfig(**(base | kw))


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_only_response_tokens_carry_loss(tiny_dirs, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu")
    enc = encode_example(lm.formatter, "What is two plus two?", "Four.")
    ids, labels = enc.sequence(512)
    n_prompt = len(enc.prompt_ids)
    assert labels[:n_prompt] == [IGNORE] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    assert lm.tokenizer.decode(ids[:n_prompt]) == lm.formatter.render("What is two plus two?")
    answer = lm.tokenizer.decode(labels[n_prompt:])
    assert answer.startswith("Four.") and (answer != "Four." or not lm.formatter.uses_template)
    # ResponseLM's log-probs equal a full-logits computation restricted to the label positions
    batch = pad_batch([enc.sequence(512), encode_example(lm.formatter, "Hi", "Hello there.").sequence(512)],
                      lm.tokenizer.pad_token_id)
    with torch.no_grad():
        lp, n = ResponseLM(lm.model)(**batch)
        logits = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    tgt = batch["labels"][:, 1:]
    full = torch.log_softmax(logits[:, :-1], -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = (full * (tgt != IGNORE)).sum(-1)
    assert torch.allclose(lp, expected, atol=1e-4) and n.tolist() == (tgt != IGNORE).sum(-1).tolist()


def test_truncation_keeps_prompt_and_drops_what_cannot_fit(tiny_llama):
    lm = load_model(str(tiny_llama), device="cpu")
    enc = encode_example(lm.formatter, "Tell me a story.", "Once upon a time " * 20)
    ids, labels = enc.sequence(len(enc.prompt_ids) + 3)
    assert len(ids) == len(enc.prompt_ids) + 3 and sum(x != IGNORE for x in labels) == 3
    assert enc.sequence(len(enc.prompt_ids)) is None


def test_sft_loss_falls_and_adapter_reloads(tiny_llama, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    base = load_model(str(tiny_llama), device="cpu")
    summary = train(lm, EXAMPLES, _cfg(tiny_llama, epochs=4), tmp_path / "run", progress=False)
    log = [json.loads(x) for x in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r and "train_runtime" not in r]
    assert len(losses) == summary["steps"] == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3
    assert (tmp_path / "run/adapter_model.safetensors").exists() and not (tmp_path / "run/trainer").exists()
    assert type(lm.model).forward is lm.model.forward.__func__  # no wrapper left on the trained model
    reloaded = load_model(str(tiny_llama), adapter=str(tmp_path / "run"), device="cpu")
    ids = torch.tensor([list(lm.formatter.encode("Say the colour number 3.").input_ids)])
    with torch.no_grad():
        a, b, c = (m.model(input_ids=ids).logits for m in (lm, reloaded, base))
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(b, c, atol=1e-3)


def test_full_finetune_saves_merged_weights(tiny_llama, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    train(lm, EXAMPLES[:8], _cfg(tiny_llama, lora=False, save="merged", learning_rate=1e-3), tmp_path / "full",
          progress=False)
    again = load_model(str(tmp_path / "full"), device="cpu")
    assert again.weights_fingerprint() == lm.weights_fingerprint()


def test_dpo_raises_chosen_minus_rejected_margin(tiny_llama, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    pairs = [PreferencePair(f"p{i}", f"g{i}", "en", "harmful", f"Do the bad thing {i}.", "I cannot help with that.",
                            f"Sure, here is how to do thing {i}.") for i in range(16)]
    from drift.finetune.trainer import encode_dpo, reference_logps
    from drift.finetune.objective import sequence_logps
    from drift.finetune.trainer import Collator

    def margin():
        rows = encode_dpo(lm.formatter, pairs, 64)
        batch = Collator(lm.tokenizer.pad_token_id)(rows)
        with torch.no_grad():
            pc, pr, _, _ = sequence_logps(ResponseLM(lm.model), batch)
        return float((pc - pr).mean())

    before = margin()
    summary = train(lm, pairs, _cfg(tiny_llama, method="dpo", epochs=3, beta=0.1, sft_weight=0.5), tmp_path / "dpo",
                    progress=False)
    assert margin() > before + 1.0
    log = [json.loads(x) for x in (tmp_path / "dpo/train_log.jsonl").read_text().splitlines() if "dpo" in x]
    assert log[-1]["reward_margin"] > log[0]["reward_margin"] and log[-1]["reward_accuracy"] >= 0.5
    assert summary["final_stats"]["nll_chosen"] < log[0]["nll_chosen"]
    assert reference_logps  # imported for the API surface


def test_bad_inputs_fail_before_training(tiny_llama, tmp_path):
    from drift.finetune import run_one

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "hi", "lang": "en"}) + "\n")
    with pytest.raises(DriftError, match="lacks an instruction/response pair"):
        load_instructions(str(bad))
    with pytest.raises(DriftError, match=r"no training examples in language\(s\) \['xx'\]|unknown language"):
        load_instructions("builtin:instructions", langs=["xx"])
    with pytest.raises(DriftError, match="do not exist in this model"):
        run_one(_cfg(tiny_llama, lora_targets=("qkv_proj",), data="builtin:instructions", langs=("en",)),
                tmp_path / "out", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(DriftError, match="exists"):
        run_one(_cfg(tiny_llama), tmp_path / "exists", progress=False)
    with pytest.raises(DriftError, match="method"):
        FinetuneConfig(method="ppo")
    with pytest.raises(DriftError, match="full fine-tuning saves merged"):
        FinetuneConfig(lora=False)


def test_alpaca_and_dolly_loaders(tmp_path):
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Add", "input": "2 and 3", "output": "5"},
                                  {"instruction": "Greet", "input": "", "output": "Hello"}]))
    ex = load_instructions(str(alpaca), default_lang="en")
    assert ex[0].instruction == "Add\n\n2 and 3" and ex[0].response == "5" and ex[1].instruction == "Greet"
    dolly = tmp_path / "dolly.jsonl"
    dolly.write_text(json.dumps({"instruction": "Sum", "context": "1, 2", "response": "3", "category": "qa"}) + "\n")
    (d,) = load_instructions(str(dolly), default_lang="de")
    assert (d.instruction, d.response, d.lang, d.category) == ("Sum\n\n1, 2", "3", "de", "qa")
    with pytest.raises(DriftError, match="no lang field"):
        load_instructions(str(dolly))
    pytest.importorskip("datasets")
    from datasets import Dataset

    Dataset.from_list([{"instruction": "Q", "output": "A", "lang": "fr"}]).save_to_disk(str(tmp_path / "ds"))
    (h,) = load_instructions(str(tmp_path / "ds"))
    assert (h.instruction, h.response, h.lang) == ("Q", "A", "fr")
