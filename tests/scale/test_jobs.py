"""Launcher jobs without Ray: job names, the task body (resuming or restarting a partial), skipping finished files."""

from __future__ import annotations

import numpy as np
import pytest

from drift import CaptureConfig, DriftError, extract, load_model, open_store
from drift.scale import make_jobs, run_extract_ray, shard_path
from drift.scale.jobs import ExtractJob, extract_shard, store_done
from drift.store import partial_path

CFG = CaptureConfig(positions=("last",), batch_size=1)


def test_job_names_and_arguments(scale_prompts, tmp_path):
    jobs = make_jobs("base-model", models=["org/model-a"], adapters=["runs/sft-en-s0", "runs/sft-de-s0/"])
    assert [(j.name, j.model, j.adapter) for j in jobs] == [
        ("model-a", "org/model-a", None), ("sft-en-s0", "base-model", "runs/sft-en-s0"),
        ("sft-de-s0", "base-model", "runs/sft-de-s0/")]
    assert [j.name for j in make_jobs("x/my.gguf")] == ["my"]
    assert shard_path("out", "a", 2, 16).as_posix() == "out/shards/a/a.shard-002-of-016.h5"
    with pytest.raises(DriftError, match="both be written as s0.h5"):
        make_jobs("m", adapters=["a/s0", "b/s0"])
    with pytest.raises(DriftError, match="not a plain file stem"):
        ExtractJob("../up", "m")
    with pytest.raises(DriftError, match="no checkpoints"):
        run_extract_ray([], scale_prompts, tmp_path, CFG)
    with pytest.raises(DriftError, match="use at most 10"):
        run_extract_ray(jobs, scale_prompts, tmp_path, CFG, shards=11)


def test_task_restarts_a_damaged_partial_and_files_are_checked(small_model, scale_prompts, tmp_path):
    job = ExtractJob("ckpt0", str(small_model(0)), load={"device": "cpu", "dtype": "float32"})
    out = shard_path(tmp_path, job.name, 1, 2)
    out.parent.mkdir(parents=True)
    partial_path(out).write_bytes(b"not an HDF5 file")  # what a worker killed while creating its file may leave
    extract_shard(job, scale_prompts, 1, 2, str(out), CFG)
    ref = extract(load_model(job.model, **job.load), scale_prompts.shard(1, 2), tmp_path / "ref.h5", CFG,
                  progress=False)
    with open_store(out) as a, open_store(ref) as b:
        np.testing.assert_array_equal(a.read("resid_post", 1), b.read("resid_post", 1))
    full = scale_prompts.content_hash()
    assert store_done(out, full, (1, 2), CFG) and not store_done(tmp_path / "none.h5", full, (0, 2), CFG)
    assert store_done(out, full, (1, 2), CaptureConfig(positions=("last",), batch_size=1, layers=(0, -1)))
    for shard, digest, cfg in [((0, 2), full, CFG), ((1, 2), "0" * 64, CFG),
                               ((1, 2), full, CaptureConfig(positions=("last",), batch_size=1, layers=(1,))),
                               ((1, 2), full, CaptureConfig(positions=("last", "mean"), batch_size=1))]:
        with pytest.raises(DriftError, match="holds another prompt set, shard or capture settings"):
            store_done(out, digest, shard, cfg)


def test_sweep_plan_builds_each_pairs_cache_once_first(tmp_path):
    from drift.finetune import make_sweep
    from drift.finetune.sweep import pairs_path
    from drift.scale.ray_engine import plan_sweep

    table = {"model": "m", "method": "dpo", "data": "builtin:refusal-pairs", "langs": ["en", "de"], "seeds": [0, 1],
             "out": str(tmp_path / "sweep")}
    sweep = make_sweep(table)
    done, (first, rest) = plan_sweep(sweep, log=lambda _: None)
    assert done == {} and [n for n, _, _ in first] == ["dpo-en-s0-e1", "dpo-de-s0-e1"]  # one builder per cache
    assert [n for n, _, _ in rest] == ["dpo-en-s1-e1", "dpo-de-s1-e1"]
    for _, cfg, _ in first:  # once the caches exist, nothing waits
        path = pairs_path(cfg, tmp_path / "sweep" / "_data")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (tmp_path / "sweep" / "dpo-de-s1-e1").mkdir()
    with pytest.raises(DriftError, match="exists without a run manifest"):
        plan_sweep(sweep, log=lambda _: None)
    (tmp_path / "sweep" / "dpo-de-s1-e1").rmdir()
    done, (first, rest) = plan_sweep(sweep, log=lambda _: None)
    assert first == [] and len(rest) == 4
    sft = make_sweep({"model": "m", "method": "sft", "data": "builtin:instructions", "langs": ["en", "de"],
                      "out": str(tmp_path / "sft")})
    assert [len(w) for w in plan_sweep(sft, log=lambda _: None)[1]] == [0, 2]
