"""Sharded generation: shard completions merge into the single run's records, in the full set's order."""

from __future__ import annotations

import json

import pytest

from drift import DriftError, load_model
from drift.cli import main
from drift.generate import GenerationConfig, generate_completions, merge_completions, read_completions

GEN = GenerationConfig(max_new_tokens=3, batch_size=8)  # greedy: batch size does not change the text


@pytest.fixture(scope="module")
def lm(small_model):
    return load_model(str(small_model(0)), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def runs(lm, scale_prompts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    single = generate_completions(lm, scale_prompts, folder / "full.jsonl", GEN, progress=False)
    parts = [generate_completions(lm, scale_prompts.shard(i, 3), folder / f"s{i}.jsonl", GEN, progress=False)
             for i in range(3)]
    return single, parts


def _meta(path):
    return json.loads(path.with_name(path.name + ".meta.json").read_text())


def test_merged_completions_equal_the_single_run(runs, scale_prompts, tmp_path):
    single, parts = runs
    merged = merge_completions(tmp_path / "m.jsonl", parts[::-1])
    got, want = read_completions(merged), {r["id"]: r for r in read_completions(single)}
    assert [r["id"] for r in got] == [p.id for p in scale_prompts]  # the full set's order
    assert got == [want[p.id] for p in scale_prompts]
    meta = _meta(merged)
    assert meta["prompts"] == {"name": scale_prompts.name, "hash": scale_prompts.content_hash(), "n": 20}
    assert meta["n_completions"] == 20 and "shard" not in meta and len(meta["merged_from"]) == 3
    assert meta["run"] == _meta(single)["run"] and meta["gen_key"] == GEN.key
    shard_meta = _meta(parts[1])["shard"]
    assert shard_meta["index"] == 1 and shard_meta["full"]["hash"] == scale_prompts.content_hash()


def test_merge_errors(lm, runs, scale_prompts, tmp_path):
    single, parts = runs
    with pytest.raises(DriftError, match=r"shard\(s\) 1/3 missing"):
        merge_completions(tmp_path / "m.jsonl", [parts[0], parts[2]])
    with pytest.raises(DriftError, match="not a shard"):
        merge_completions(tmp_path / "m.jsonl", [single, *parts])
    short = tmp_path / "short.jsonl"
    short.write_text("".join(parts[1].read_text().splitlines(keepends=True)[:-1]))
    short.with_name("short.jsonl.meta.json").write_text(parts[1].with_name(parts[1].name + ".meta.json").read_text())
    with pytest.raises(DriftError, match=r"short.jsonl \(shard 1/3\) lacks completions for 1 prompt.*--shard 1/3"):
        merge_completions(tmp_path / "m.jsonl", [parts[0], short, parts[2]])
    extra = tmp_path / "extra.jsonl"
    stray = json.loads(parts[0].read_text().splitlines()[0])
    extra.write_text(parts[1].read_text() + json.dumps(stray) + "\n")
    extra.with_name("extra.jsonl.meta.json").write_text(parts[1].with_name(parts[1].name + ".meta.json").read_text())
    with pytest.raises(DriftError, match=f"completion for prompt {stray['id']!r}, which is not in that shard"):
        merge_completions(tmp_path / "m.jsonl", [parts[0], extra, parts[2]])
    longer = generate_completions(lm, scale_prompts.shard(1, 3), tmp_path / "long.jsonl",
                                  GenerationConfig(max_new_tokens=4, batch_size=8), progress=False)
    with pytest.raises(DriftError, match="differ in generation, gen_key"):
        merge_completions(tmp_path / "m.jsonl", [parts[0], longer, parts[2]])
    assert not (tmp_path / "m.jsonl").exists()


def test_cli_generate_shards_and_merge(small_model, scale_prompts, runs, tmp_path, capsys):
    spec = str(scale_prompts.to_jsonl(tmp_path / "prompts.jsonl"))
    common = ["generate", "--model", str(small_model(0)), "--prompts", spec, "--max-new-tokens", "3",
              "--batch-size", "8", "--device", "cpu", "--dtype", "float32", "--quiet"]
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"g{i}.jsonl")]) == 0
    assert main(["merge", str(tmp_path / "all.jsonl"), str(tmp_path / "g1.jsonl"), str(tmp_path / "g0.jsonl")]) == 0
    want = {r["id"]: r["completion"] for r in read_completions(runs[0])}
    assert {r["id"]: r["completion"] for r in read_completions(tmp_path / "all.jsonl")} == want
    capsys.readouterr()
    assert main([*common, "--shard", "3/2", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "shard 3/2 does not exist" in err and len(err.splitlines()) == 1
