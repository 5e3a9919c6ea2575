"""Batched generation: batch-invariant greedy output, resumption, provenance, stop tokens, interventions, vLLM path."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from drift.data.records import PromptSet
from drift.data.spec import load_prompts
from drift.errors import DriftError
from drift.generate import GenerationConfig, export_completions, generate_completions, read_completions
from drift.generate.hf_backend import _split, generate_batches, stop_token_ids
from drift.interventions import ablate_direction
from drift.models import load_model


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    return PromptSet(list(load_prompts("builtin:prompts?lang=en,de,zh"))[::50])


def _texts(lm, prompts, bs, **kw):
    got = {}
    for batch in generate_batches(lm, [p.text for p in prompts], GenerationConfig(batch_size=bs, **kw)):
        got.update({i: g.completion for i, g in batch})
    return [got[i] for i in range(len(prompts))]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "qwen3"])
def test_batched_greedy_equals_one_at_a_time(tiny_dirs, prompts, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu")
    assert _texts(lm, prompts, 1, max_new_tokens=8) == _texts(lm, prompts, 5, max_new_tokens=8)


def test_sampling_is_seeded(tiny_llama, prompts):
    lm = load_model(str(tiny_llama), device="cpu")
    a = _texts(lm, prompts, 4, max_new_tokens=8, do_sample=True, seed=3)
    assert a == _texts(lm, prompts, 4, max_new_tokens=8, do_sample=True, seed=3)
    assert a != _texts(lm, prompts, 4, max_new_tokens=8, do_sample=True, seed=4)


def test_records_and_meta(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    out = generate_completions(lm, prompts, tmp_path / "c.jsonl", GenerationConfig(max_new_tokens=6), progress=False)
    recs = read_completions(out)
    assert sorted(r["id"] for r in recs) == sorted(p.id for p in prompts)
    by_id = {p.id: p for p in prompts}
    for r in recs:
        p = by_id[r["id"]]
        assert (r["lang"], r["label"], r["category"], r["prompt"]) == (p.lang, p.label, p.category, p.text)
        assert r["generation"]["max_new_tokens"] == 6 and r["finish_reason"] in ("stop", "length")
        assert 0 <= r["n_tokens"] <= 6
    meta = json.loads((tmp_path / "c.jsonl.meta.json").read_text())
    assert meta["n_completions"] == len(prompts) and meta["run"]["run_id"] == recs[0]["run_id"]
    assert meta["contains_harmful_text"] is True


def test_resume_skips_done_and_drops_torn_line(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    cfg = GenerationConfig(max_new_tokens=6, batch_size=3)
    full = read_completions(generate_completions(lm, prompts, tmp_path / "full.jsonl", cfg, progress=False))
    part = tmp_path / "part.jsonl"
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    part.write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])  # four complete records and a torn one
    resumed = read_completions(generate_completions(lm, prompts, part, cfg, progress=False))
    assert len(resumed) == len(prompts) == len({r["id"] for r in resumed})
    assert {r["id"]: r["completion"] for r in resumed} == {r["id"]: r["completion"] for r in full}


def test_other_config_refused_then_overwrite(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    out = tmp_path / "c.jsonl"
    generate_completions(lm, prompts, out, GenerationConfig(max_new_tokens=4), progress=False)
    before = out.read_text()
    with pytest.raises(DriftError, match="another model state or generation config"):
        generate_completions(lm, prompts, out, GenerationConfig(max_new_tokens=5), progress=False)
    assert out.read_text() == before  # nothing lost
    generate_completions(lm, prompts, out, GenerationConfig(max_new_tokens=5), overwrite=True, progress=False)
    assert {r["generation"]["max_new_tokens"] for r in read_completions(out)} == {5}


def test_bad_inputs(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    with pytest.raises(DriftError, match="JSONL"):
        generate_completions(lm, prompts, tmp_path / "c.csv", progress=False)
    with pytest.raises(DriftError, match="no prompts"):
        generate_completions(lm, PromptSet([]), tmp_path / "c.jsonl", progress=False)
    with pytest.raises(DriftError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(DriftError, match="backend"):
        GenerationConfig(backend="tgi")


def test_stop_tokens_cut_completion(tiny_llama):
    lm = load_model(str(tiny_llama), device="cpu")
    stops = stop_token_ids(lm)
    im_end = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stops and lm.tokenizer.eos_token_id in stops
    word = lm.tokenizer("hello world", add_special_tokens=False)["input_ids"]
    pad = lm.tokenizer.pad_token_id
    rows = torch.tensor([word + [im_end] + [pad] * 2, (word * 3)[: len(word) + 3]])
    a, b = _split(rows, set(stops), lm.tokenizer)
    assert (a.completion, a.n_tokens, a.finish_reason) == ("hello world", len(word), "stop")
    assert b.finish_reason == "length" and b.n_tokens == len(word) + 3


def test_intervention_changes_run_and_output(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    cfg = GenerationConfig(max_new_tokens=8)
    plain = read_completions(generate_completions(lm, prompts, tmp_path / "a.jsonl", cfg, progress=False))
    direction = np.random.default_rng(0).standard_normal(lm.d_model)
    with ablate_direction(lm, direction):
        ablated = read_completions(generate_completions(lm, prompts, tmp_path / "b.jsonl", cfg, progress=False))
    assert plain[0]["run_id"] != ablated[0]["run_id"]
    meta = json.loads((tmp_path / "b.jsonl.meta.json").read_text())
    assert meta["run"]["extra"]["interventions"][0]["kind"] == "ablate"
    assert [r["completion"] for r in plain] != [r["completion"] for r in ablated]


def test_export_redacts_harmful(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu")
    src = generate_completions(lm, prompts, tmp_path / "c.jsonl", GenerationConfig(max_new_tokens=4), progress=False)
    out = export_completions(src, tmp_path / "shared.jsonl", redact=True)
    recs = read_completions(out)
    assert all(r["completion"].startswith("[redacted") for r in recs if r["label"] == "harmful")
    assert any(not r.get("redacted") for r in recs if r["label"] == "harmless")
    with pytest.raises(DriftError, match="exists"):
        export_completions(src, out)


def test_vllm_backend_through_a_stub_module(tiny_llama, prompts, tmp_path, monkeypatch):
    """The vLLM path builds token-id prompts with our chat template and maps outputs to the same records."""
    seen = {}

    class Out:
        def __init__(self, text, ids, reason):
            self.text, self.token_ids, self.finish_reason = text, ids, reason

    class LLM:
        def __init__(self, model, **kw):
            seen["model"], seen["kw"] = model, kw

        def generate(self, reqs, params, lora_request=None, use_tqdm=False):
            seen.setdefault("prompts", []).extend(reqs)
            seen["params"] = params
            return [types.SimpleNamespace(outputs=[Out(f"ok {i}", [1, 2, 3], "stop")]) for i, _ in enumerate(reqs)]

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    lm = load_model(str(tiny_llama), device="cpu")
    out = generate_completions(lm, prompts, tmp_path / "v.jsonl", GenerationConfig(backend="vllm", max_new_tokens=7),
                               progress=False)
    recs = read_completions(out)
    assert len(recs) == len(prompts) and all(r["finish_reason"] == "stop" and r["n_tokens"] == 2 for r in recs)
    assert seen["params"]["max_tokens"] == 7 and seen["params"]["temperature"] == 0.0
    first = seen["prompts"][0]["prompt_token_ids"]
    assert first == list(lm.formatter.encode(prompts[0].text).input_ids)
    with ablate_direction(lm, np.ones(lm.d_model)), pytest.raises(DriftError, match="hf backend"):
        generate_completions(lm, prompts, tmp_path / "w.jsonl", GenerationConfig(backend="vllm"), progress=False)
