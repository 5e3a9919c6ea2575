"""Sweeps: a config expands to language x seed x epochs runs, each with a manifest; an interrupted sweep resumes."""

from __future__ import annotations

import json
import shutil

import pytest

from drift.cli import main
from drift.errors import DriftError
from drift.finetune import load_sweep, make_sweep
from drift.runs import read_manifest


def _toml(tmp_path, tiny, **extra):
    table = {"model": str(tiny), "method": "sft", "data": "builtin:instructions", "langs": ["en", "de"], "seeds": [0],
             "epochs": [1], "out": str(tmp_path / "sweep"), "max_steps": 2, "batch_size": 4, "limit_per_lang": 8,
             "max_length": 64, "device": "cpu", "learning_rate": 0.001} | extra
    path = tmp_path / "sweep.toml"
    path.write_text("[finetune]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    return path


def test_config_expands_runs(tmp_path, tiny_llama):
    sweep = load_sweep(_toml(tmp_path, tiny_llama, seeds=[0, 1], epochs=[1, 3]))
    names = [n for n, _ in sweep.runs()]
    assert len(names) == 8 and names[0] == "sft-en-s0-e1" and names[-1] == "sft-de-s1-e3"
    assert {c.langs for _, c in sweep.runs()} == {("en",), ("de",)}
    with pytest.raises(DriftError, match="unknown fine-tuning setting"):
        make_sweep({"learnig_rate": 1})


def test_sweep_runs_writes_manifests_and_resumes(tmp_path, tiny_llama, capsys):
    cfg = _toml(tmp_path, tiny_llama)
    assert main(["finetune", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "sweep"
    m = read_manifest(out / "sft-de-s0-e1")
    assert m.method == "sft" and m.ft_lang == "de" and m.seed == 0 and m.epochs == 1.0
    assert m.extra["data"]["n"] + m.extra["data"]["n_heldout"] == 8 and m.extra["training"]["steps"] == 2 and m.extra["versions"]["torch"]
    assert m.extra["config"]["learning_rate"] == 0.001 and m.extra["base_weights"]
    first = read_manifest(out / "sft-en-s0-e1")
    # simulate a crash during the second run: its folder is gone, a partial one is left
    shutil.rmtree(out / "sft-de-s0-e1")
    (out / "sft-de-s0-e1.partial").mkdir()
    capsys.readouterr()
    assert main(["finetune", "--config", str(cfg), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "sft-en-s0-e1: done already" in printed and "sft-de-s0-e1: training" in printed
    assert read_manifest(out / "sft-en-s0-e1") == first and read_manifest(out / "sft-de-s0-e1") is not None
    assert not (out / "sft-de-s0-e1.partial").exists()


@pytest.mark.parametrize("args,message", [
    (["finetune", "--method", "sft"], "give --out"),
    (["finetune", "--config", "missing.toml"], "config file not found"),
    (["finetune", "--out", "o", "--data", "missing.jsonl", "--model", "{m}", "--device", "cpu"],
     "training data not found"),
    (["finetune", "--out", "o", "--langs", "xx", "--model", "{m}", "--device", "cpu"], "language"),
    (["finetune", "--out", "o", "--lora-targets", "nope", "--model", "{m}", "--device", "cpu"], "do not exist"),
])
def test_cli_errors(tmp_path, tiny_llama, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main([a.format(m=tiny_llama) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True
