"""Merging shard stores: identical to a single-process run, and clear errors for gaps, repeats and mismatches."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import assert_same_store

from drift import CaptureConfig, DriftError, extract, load_model, open_store
from drift.cli import main
from drift.store import merge_stores

CFG = CaptureConfig(sites=("resid_pre", "resid_post"), positions=("last", "post_instruction", "all"), batch_size=1)


@pytest.fixture(scope="module")
def lm(small_model):
    return load_model(str(small_model(0)), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def single(lm, scale_prompts, tmp_path_factory):
    return extract(lm, scale_prompts, tmp_path_factory.mktemp("single") / "full.h5", CFG, progress=False)


@pytest.fixture(scope="module")
def shards(lm, scale_prompts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    return [extract(lm, scale_prompts.shard(i, 3), folder / f"s{i}.h5", CFG, progress=False) for i in range(3)]


def test_merge_equals_single_run(single, shards, scale_prompts, tmp_path):
    merged = merge_stores(tmp_path / "merged.h5", shards[::-1], chunk_rows=4)  # any order of shards; small chunks
    assert_same_store(single, merged)
    with open_store(merged) as m, open_store(single) as s:
        assert list(m.prompts["id"]) == [p.id for p in scale_prompts]
        assert m.provenance == s.provenance and "shard" not in m.provenance and m.shard_rows is None
        assert m.provenance["prompts"]["hash"] == scale_prompts.content_hash()
        np.testing.assert_array_equal(m.read("resid_post", 1), s.read("resid_post", 1))
    with h5py.File(merged) as f:
        assert [x["shard"] for x in __import__("json").loads(f.attrs["merged_from"])] == ["0/3", "1/3", "2/3"]


def test_shard_store_records_its_place(shards, scale_prompts):
    with open_store(shards[1]) as s:
        info = s.provenance["shard"]
        assert (info["index"], info["count"]) == (1, 3) and info["full"]["hash"] == scale_prompts.content_hash()
        assert [scale_prompts[r].id for r in s.shard_rows] == list(s.prompts["id"])
        assert s.provenance["prompts"]["n"] == s.n_prompts < len(scale_prompts)


def test_bfloat16_fixed_positions_and_batched_runs(lm, scale_prompts, tmp_path):
    cfg = CaptureConfig(positions=("last", "mean"), storage_dtype="bfloat16", batch_size=1)
    one = extract(lm, scale_prompts, tmp_path / "one.h5", cfg, progress=False)
    parts = [extract(lm, scale_prompts.shard(i, 2), tmp_path / f"p{i}.h5", cfg, progress=False) for i in range(2)]
    assert_same_store(one, merge_stores(tmp_path / "m.h5", parts))
    # with batches the shards see different padding: same layout, values equal up to float rounding
    cfg4 = CaptureConfig(positions=("last",), batch_size=4)
    one = extract(lm, scale_prompts, tmp_path / "one4.h5", cfg4, progress=False)
    parts = [extract(lm, scale_prompts.shard(i, 2), tmp_path / f"q{i}.h5", cfg4, progress=False) for i in range(2)]
    with open_store(one) as a, open_store(merge_stores(tmp_path / "m4.h5", parts)) as b:
        assert a.provenance == b.provenance and list(a.prompts["id"]) == list(b.prompts["id"])
        np.testing.assert_allclose(a.read("resid_post", 1), b.read("resid_post", 1), rtol=1e-5, atol=1e-5)


def _copy(src, dst, edit):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_coverage_errors(single, shards, tmp_path):
    with pytest.raises(DriftError, match=r"shard\(s\) 2/3 missing: pass all 3 shards"):
        merge_stores(tmp_path / "m.h5", shards[:2])
    with pytest.raises(DriftError, match="shard 0/3 is given twice"):
        merge_stores(tmp_path / "m.h5", [*shards, shards[0]])
    with pytest.raises(DriftError, match="is not a shard store"):
        merge_stores(tmp_path / "m.h5", [single, *shards])
    with pytest.raises(DriftError, match="also one of the shards"):
        merge_stores(shards[0], shards)
    with pytest.raises(DriftError, match="nothing to merge"):
        merge_stores(tmp_path / "m.h5", [])

    def steal_row(f):  # shard 1 claims a prompt of shard 0 instead of one of its own
        with open_store(shards[0]) as s0:
            rows = f["shard/rows"][()]
            rows[0] = s0.shard_rows[0]
        f["shard/rows"][...] = rows

    bad = _copy(shards[1], tmp_path / "dup.h5", steal_row)
    with pytest.raises(DriftError, match=r"1 prompt\(s\) appear in both .*s0.h5 and .*dup.h5"):
        merge_stores(tmp_path / "m.h5", [shards[0], bad, shards[2]])
    with pytest.raises(DriftError, match="incomplete"):
        merge_stores(tmp_path / "m.h5", [shards[0], _copy(shards[1], tmp_path / "inc.h5",
                                                          lambda f: f.attrs.__setitem__("complete", False)),
                                         shards[2]])
    retext = _copy(shards[1], tmp_path / "text.h5", lambda f: f["prompts/text"].__setitem__(0, "changed text"))
    with pytest.raises(DriftError, match="do not match the prompt set"):
        merge_stores(tmp_path / "m.h5", [shards[0], retext, shards[2]])
    assert not (tmp_path / "m.h5").exists()


def test_gaps_are_refused(lm, scale_prompts, shards, tmp_path):
    def drop_row(f):  # a shard whose row table lost a prompt (and its data), so one prompt is in no shard
        f["shard/rows"][...] = np.concatenate([f["shard/rows"][1:], f["shard/rows"][-1:]])

    bad = _copy(shards[2], tmp_path / "gap.h5", drop_row)
    with pytest.raises(DriftError, match="in no shard|appear in both"):
        merge_stores(tmp_path / "m.h5", [shards[0], shards[1], bad])


def test_provenance_mismatch(small_model, lm, scale_prompts, shards, tmp_path):
    other = load_model(str(small_model(1)), device="cpu", dtype="float32")
    foreign = extract(other, scale_prompts.shard(1, 3), tmp_path / "other.h5", CFG, progress=False)
    with pytest.raises(DriftError, match=r"differ in model.id, model.weights.*same model, adapter, prompts and capture"):
        merge_stores(tmp_path / "m.h5", [shards[0], foreign, shards[2]])
    layers = CaptureConfig(sites=CFG.sites, positions=CFG.positions, batch_size=1, layers=(1,))
    fewer = extract(lm, scale_prompts.shard(1, 3), tmp_path / "layers.h5", layers, progress=False)
    with pytest.raises(DriftError, match="differ in capture.layers"):
        merge_stores(tmp_path / "m.h5", [shards[0], fewer, shards[2]])
    cut = extract(lm, scale_prompts.shard(1, 2), tmp_path / "cut.h5", CFG, progress=False)
    with pytest.raises(DriftError, match="merge the shards of one cut only"):
        merge_stores(tmp_path / "m.h5", [shards[0], cut])
    subset = scale_prompts.filter(langs=["en"])
    elsewhere = extract(lm, subset.shard(1, 3), tmp_path / "set.h5", CFG, progress=False)
    with pytest.raises(DriftError, match="shards of different prompt sets"):
        merge_stores(tmp_path / "m.h5", [shards[0], elsewhere, shards[2]])


def test_cli_extract_shards_and_merge(small_model, scale_prompts, single, tmp_path, capsys):
    spec = str(scale_prompts.to_jsonl(tmp_path / "prompts.jsonl"))
    common = ["extract", "--model", str(small_model(0)), "--prompts", spec, "--sites", "resid_pre,resid_post",
              "--positions", "last,post_instruction,all", "--batch-size", "1", "--device", "cpu", "--dtype", "float32",
              "--quiet"]
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}.h5")]) == 0
    assert "shard 1/2" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "m.h5"), str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5")]) == 0
    with open_store(tmp_path / "m.h5") as m, open_store(single) as s:
        assert list(m.prompts["id"]) == list(s.prompts["id"])
        for site in ("resid_pre", "resid_post"):
            np.testing.assert_array_equal(m.read(site, 1), s.read(site, 1))
    for args, message in [
        ([*common, "--shard", "2/2", "--out", str(tmp_path / "x.h5")], "shard 2/2 does not exist"),
        ([*common, "--shard", "two", "--out", str(tmp_path / "x.h5")], "cannot read shard"),
        ([*common, "--models", "a,b", "--out", str(tmp_path / "x.h5")], "--models needs --engine ray"),
        ([*common, "--engine", "ray", "--shard", "0/2", "--out", str(tmp_path / "x")], "use --shards N"),
        (["merge", str(tmp_path / "m.h5"), str(tmp_path / "s0.h5")], "already exists"),
        (["merge", str(tmp_path / "m2.h5"), str(tmp_path / "s0.h5")], r"shard(s) 1/2 missing"),
    ]:
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
