"""``drift generate``, ``drift judge``, ``drift audit`` and ``drift export`` end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from drift.cli import main


def _gen(tiny_llama, out, *extra):
    return main(["generate", "--model", str(tiny_llama), "--prompts", "builtin:prompts?lang=en,de", "--out", str(out),
                 "--max-new-tokens", "6", "--batch-size", "16", "--quiet", *extra])


@pytest.fixture(scope="module")
def completions(tiny_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "c.jsonl"
    assert _gen(tiny_dirs["llama"], out) == 0
    return out


def test_generate_then_judge_then_audit(completions, tmp_path, capsys):
    recs = [json.loads(x) for x in completions.read_text().splitlines()]
    assert len(recs) == 400 and {r["lang"] for r in recs} == {"en", "de"}
    out = tmp_path / "judged"
    assert main(["judge", str(completions), "--judges", "refusal-lexicon,substring-en12", "--out", str(out),
                 "--majority", "--audit", "5", "--redact", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ASR" in printed and "harmful text" in printed
    asr = pd.read_csv(out / "asr.csv")
    assert {"refusal-lexicon", "substring-en12", "majority"} <= set(asr.judge)
    assert {"asr", "over_refusal", "incoherent_rate", "lang_consistency"} <= set(asr.metric)
    assert (out / "agreement.csv").exists() and (out / "judge.meta.json").exists()
    audit = pd.read_csv(out / "audit.csv", keep_default_na=False)
    if len(audit):
        assert (audit.loc[audit.label == "harmful", "completion"] == "[redacted]").all()
        audit["human"] = "incoherent"
        audit.to_csv(out / "audit.csv", index=False)
        assert main(["audit", str(out), "--labels", str(out / "audit.csv")]) == 0
        assert (out / "judge_accuracy.csv").exists()


def test_judge_with_a_reference_model_flags_high_perplexity(tiny_llama, completions, tmp_path):
    """A random tiny model finds every completion implausible: with a low perplexity bound all are incoherent."""
    out = tmp_path / "judged"
    assert main(["judge", str(completions), "--out", str(out), "--reference-model", str(tiny_llama),
                 "--max-perplexity", "2", "--device", "cpu", "--quiet"]) == 0
    coh = [json.loads(x) for x in (out / "coherence.jsonl").read_text().splitlines()]
    scored = [c for c in coh if c.get("perplexity") is not None and c["perplexity"] == c["perplexity"]]
    assert scored and all("perplexity" in c["reasons"] for c in scored if c["perplexity"] > 2)


def test_generate_with_ablation_and_resume(tiny_llama, completions, tmp_path):
    vec = tmp_path / "r.npy"
    np.save(vec, np.random.default_rng(0).standard_normal(32))
    out = tmp_path / "ablated.jsonl"
    assert _gen(tiny_llama, out, "--ablate", str(vec), "--langs", "en") == 0
    first = out.read_text()
    assert json.loads(first.splitlines()[0])["run_id"] != json.loads(completions.read_text().splitlines()[0])["run_id"]
    assert _gen(tiny_llama, out, "--ablate", str(vec), "--langs", "en") == 0  # resumes: nothing to do
    assert out.read_text() == first


@pytest.mark.parametrize("args,message", [
    (["generate", "--out", "x.csv"], "must end in .jsonl"),
    (["generate", "--out", "x.jsonl", "--add", "v.npy"], "--add needs --add-layer"),
    (["generate", "--out", "x.jsonl", "--ablate", "missing.npy"], "direction file not found"),
    (["generate", "--out", "x.jsonl", "--max-new-tokens", "0"], "max_new_tokens"),
    (["judge", "missing.jsonl", "--out", "o"], "completions file not found"),
    (["judge", "{c}", "--out", "{o}", "--judges", "nope"], "unknown judge"),
    (["judge", "{c}", "--out", "{o}", "--option", "llm"], "JUDGE.KEY=VALUE"),
    (["judge", "{c}", "--out", "{o}", "--adjudicate", "a,b"], "three judge names"),
    (["judge", "{c}", "--out", "{o}", "--reference-model", "x", "--no-coherence"], "feeds the coherence pass"),
    (["audit", "{o}", "--labels", "x.csv"], "verdicts.csv"),
])
def test_user_errors_are_one_line(completions, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [a.format(c=completions, o=tmp_path / "o") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_export_cli(completions, tmp_path):
    out = tmp_path / "shared.jsonl"
    assert main(["export", str(completions), "--out", str(out)]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["completion"].startswith("[redacted") for r in recs if r["label"] == "harmful")
