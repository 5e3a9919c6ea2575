"""``drift run`` on a tiny model: every stage writes its artifacts, a rerun skips everything, a config change redoes
only the stages it affects, and bad study files fail in one line."""

from __future__ import annotations

import json

import pytest

from drift.cli import main

pytestmark = pytest.mark.slow  # a whole (tiny) study: about a minute


def _toml(path, model, out, **eval_overrides):
    ev = {"langs": ["en", "de"], "limit_per_lang": 3, "max_new_tokens": 6, "batch_size": 8, "capability_limit": 2,
          "capability_suites": ["mcq", "task"]} | eval_overrides
    text = f"""
[study]
name = "tiny"
model = "{model}"
out = "{out}"
device = "cpu"

[align]
langs = ["en", "de"]
limit_per_lang = 4
max_steps = 2
batch_size = 4
max_length = 64

[finetune]
langs = ["fr"]
limit_per_lang = 8
max_steps = 2
batch_size = 4
max_length = 64

[eval]
""" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in ev.items())
    path.write_text(text)
    return path


def test_study_runs_resumes_and_redoes_only_what_changed(tiny_llama, tmp_path, capsys):
    out = tmp_path / "study"
    cfg = _toml(tmp_path / "s.toml", tiny_llama, out)
    assert main(["run", str(cfg)]) == 0
    first = capsys.readouterr().out
    study = json.loads((out / "study.json").read_text())
    assert [r["role"] for r in study["runs"]] == ["base", "aligned", "finetuned"]
    for r in study["runs"]:
        assert (out / "completions" / f"{r['run_id']}.jsonl").exists()
        assert (out / "stores" / f"{r['run_id']}.h5").exists()
        assert (out / "capability" / r["run_id"] / "capability.csv").exists()
    assert (out / "judged" / "asr.csv").exists() and (out / "relate" / "relate.csv").exists()
    assert (out / "report" / "index.html").exists() and "report:" in first
    assert main(["run", str(cfg)]) == 0
    again = capsys.readouterr().out
    assert "[run ]" not in again and again.count("[skip]") >= 10
    _toml(tmp_path / "s.toml", tiny_llama, out, max_new_tokens=7)  # only generation and what reads it change
    assert main(["run", str(cfg)]) == 0
    changed = capsys.readouterr().out
    redone = {line.split()[2].split("/")[0] for line in changed.splitlines() if line.startswith("[run ]")}
    assert redone == {"generate", "judge", "relate", "capability-matched", "report"}, redone
    assert main(["report", str(out)]) == 0


@pytest.mark.parametrize("text,message", [
    ("[study]\nnme = 1\n", "unknown [study] key"),
    ("[evaluation]\n", "unknown table"),
    ("[eval]\nlangs = 3 4\n", "not valid TOML"),
    ('[eval]\njudges = ["refusal-lexicon"]\nprimary_judge = "wildguard"\n', "is not one of the judges"),
])
def test_bad_study_files(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_primary_judge_defaults_to_a_listed_judge():
    from drift.study.config import study_from_dict

    assert study_from_dict({}).eval.primary_judge == "refusal-lexicon-strict"
    assert study_from_dict({"eval": {"judges": ["substring-en12", "refusal-lexicon"]}}).eval.primary_judge == \
        "substring-en12"
