"""The Ray launcher on a local Ray instance: 8 checkpoints x 4 shards equal single-process runs, a worker killed
mid-write is retried and resumed, finished work is skipped, and fine-tuning sweeps fan out one task per run."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import assert_same_store

from drift import CaptureConfig, DriftError, extract, load_model, load_prompts, open_store
from drift.cli import main
from drift.scale import make_jobs, run_extract_ray, run_sweep_ray

ray = pytest.importorskip("ray")

CFG = CaptureConfig(sites=("resid_pre", "resid_post"), positions=("last", "all"), batch_size=1)
LOAD = {"device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the launchers use it instead of starting their own."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault hook below runs inside workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def kill_mid_write(marker: str, name: str, shard: int, job, index: int) -> None:
    """Task hook: the first attempt of (name, shard) SIGKILLs its own worker right after its first committed batch."""
    if job.name != name or index != shard or Path(marker).exists():
        return
    from drift.store.writer import StoreWriter

    original = StoreWriter.write_batch

    def write_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)

    StoreWriter.write_batch = write_then_die


@pytest.mark.slow
def test_eight_checkpoints_four_shards_equal_single_runs(local_ray, small_model, scale_prompts, tmp_path):
    models = [str(small_model(seed)) for seed in range(8)]
    jobs = make_jobs("default", models=models, load=LOAD)
    marker = tmp_path / "killed"
    hook = functools.partial(kill_mid_write, str(marker), jobs[3].name, 2)
    out, logs = tmp_path / "out", []
    written = run_extract_ray(jobs, scale_prompts, out, CFG, shards=4, max_retries=2, task_hook=hook, log=logs.append)
    assert marker.exists(), "the fault hook never fired"
    assert partial_left(out) == [] and sum("done" in line for line in logs) == 32
    (tmp_path / "ref").mkdir()
    for job, model in zip(jobs, models):
        ref = extract(load_model(model, **LOAD), scale_prompts, tmp_path / "ref" / f"{job.name}.h5", CFG,
                      progress=False)
        assert_same_store(ref, written[job.name])  # bit-identical activations, same prompt table and layout
    with open_store(written[jobs[3].name]) as a, open_store(written[jobs[4].name]) as b:
        assert a.run.weights != b.run.weights  # eight different checkpoints

    # rerun: merged stores are skipped; a lost merged store is rebuilt from its finished shards, with no task run
    written[jobs[0].name].unlink()
    logs.clear()
    run_extract_ray(jobs, scale_prompts, out, CFG, shards=4, log=logs.append)
    assert sum("merged store exists, skipped" in line for line in logs) == 7
    assert sum("done already, skipped" in line for line in logs) == 4 and not any("submitted" in x for x in logs)
    assert_same_store(tmp_path / "ref" / f"{jobs[0].name}.h5", written[jobs[0].name])


def partial_left(out: Path) -> list[Path]:
    """Partial files or locks left anywhere under ``out``."""
    return [p for p in out.rglob("*") if p.name.endswith((".partial", ".lock"))]


@pytest.mark.slow
def test_cli_engine_ray(local_ray, small_model, scale_prompts, tmp_path, capsys):
    spec = str(scale_prompts.to_jsonl(tmp_path / "prompts.jsonl"))
    models = [str(small_model(seed)) for seed in (0, 1)]
    args = ["extract", "--engine", "ray", "--models", ",".join(models), "--shards", "2", "--prompts", spec,
            "--sites", "resid_pre,resid_post", "--positions", "last,all", "--batch-size", "1", "--device", "cpu",
            "--dtype", "float32", "--out", str(tmp_path / "out"), "--delete-shards", "--quiet"]
    assert main(args) == 0
    assert "ckpt1.h5" in capsys.readouterr().out and not (tmp_path / "out" / "shards" / "ckpt0").exists()
    ref = extract(load_model(models[1], **LOAD), load_prompts(spec), tmp_path / "ref.h5", CFG, progress=False)
    assert_same_store(ref, tmp_path / "out" / "ckpt1.h5")
    for bad, message in [(["--out", str(tmp_path / "x.h5")], "--out is a folder"),
                         (["--shards", "11"], "into 11 shards: use at most 10")]:
        capsys.readouterr()
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_failed_tasks_are_reported_and_the_others_merged(local_ray, small_model, scale_prompts, tmp_path):
    jobs = make_jobs("default", models=[str(tmp_path / "missing-model"), str(small_model(0))], load=LOAD)
    with pytest.raises(DriftError, match=r"2 extraction task\(s\) failed after their retries \(missing-model shard "
                                         r"[01]/2: DriftError"):
        run_extract_ray(jobs, scale_prompts, tmp_path / "out", CFG, shards=2, log=lambda _: None)
    assert (tmp_path / "out" / "ckpt0.h5").is_file() and not (tmp_path / "out" / "missing-model.h5").exists()


@pytest.mark.slow
def test_sweep_fans_out_one_task_per_run(local_ray, small_model, tmp_path):
    from drift.finetune import make_sweep

    sweep = make_sweep({"model": str(small_model(0)), "method": "sft", "data": "builtin:instructions",
                        "langs": ["en", "de"], "out": str(tmp_path / "sweep"), "max_steps": 2, "batch_size": 4,
                        "limit_per_lang": 8, "max_length": 64, "device": "cpu", "learning_rate": 0.001})
    logs: list[str] = []
    manifests = run_sweep_ray(sweep, log=logs.append)
    assert [m.ft_lang for m in manifests] == ["en", "de"] and all(m.method == "sft" for m in manifests)
    assert all((tmp_path / "sweep" / name / "polydrift-run.json").is_file() for name, _ in sweep.runs())
    assert sum("trained" in line for line in logs) == 2
    logs.clear()
    again = run_sweep_ray(sweep, log=logs.append)
    assert [(m.run_id, m.weights) for m in again] == [(m.run_id, m.weights) for m in manifests]
    assert len(logs) == 2 and all("skipped" in line for line in logs)
