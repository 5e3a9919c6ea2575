"""The Ray engine of ``drift generate`` and ``drift finetune`` on a local Ray instance: sharded generation over two
checkpoints equals single-process runs, a worker killed mid-shard is retried, finished work is skipped, and Ray-only
options without ``--engine ray`` are one-line errors."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from drift.cli import main
from drift.data import load_prompts
from drift.generate import GenerationConfig, generate_completions, read_completions
from drift.models import load_model
from drift.scale import make_jobs
from drift.scale.generate_ray import completions_shard_path, run_generate_ray

LOAD = {"device": "cpu", "dtype": "float32"}
GEN = ["--max-new-tokens", "6", "--batch-size", "1", "--device", "cpu", "--dtype", "float32", "--quiet"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the launchers use it instead of starting their own."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault hook below runs inside workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def prompts_file(scale_prompts, tmp_path) -> str:
    """The 20 scale prompts (10 groups) as a JSONL prompt spec."""
    return str(scale_prompts.to_jsonl(tmp_path / "prompts.jsonl"))


def single_run(model: Path, spec: str, out: Path) -> list[dict]:
    """The records of a plain single-process ``drift generate`` run at the test settings, in the prompt set's order.

    A single run writes its records in processing order (longest prompt first); a merge writes the full set's order.
    """
    assert main(["generate", "--model", str(model), "--prompts", spec, *GEN, "--out", str(out)]) == 0
    order = {p.id: k for k, p in enumerate(load_prompts(spec))}
    return sorted(read_completions(out), key=lambda r: order[r["id"]])


@pytest.mark.slow
def test_cli_two_checkpoints_two_shards_equal_single_runs(local_ray, small_model, prompts_file, tmp_path, capsys):
    models = [small_model(seed) for seed in (0, 1)]
    out = tmp_path / "out"
    args = ["generate", "--engine", "ray", "--models", ",".join(map(str, models)), "--shards", "2",
            "--prompts", prompts_file, *GEN, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "submitted 4 generation task(s)" in printed and printed.count("done\n") == 4
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["ckpt0.jsonl", "ckpt1.jsonl"]
    assert completions_shard_path(out, "ckpt1", 1, 2).is_file()  # the file `drift generate --shard 1/2` writes
    refs = [single_run(m, prompts_file, tmp_path / f"ref{k}.jsonl") for k, m in enumerate(models)]
    for ref, name in zip(refs, ("ckpt0", "ckpt1")):
        got = read_completions(out / f"{name}.jsonl")
        assert [r["id"] for r in got] == [p.id for p in load_prompts(prompts_file)]  # the full set's order
        assert got == ref  # same texts, token counts, run ids and generation settings
    assert refs[0][0]["run_id"] != refs[1][0]["run_id"]
    meta = json.loads((out / "ckpt0.jsonl.meta.json").read_text())
    assert meta["n_completions"] == 20 and len(meta["merged_from"]) == 2

    # rerun: both merged files are skipped; a lost merged file is rebuilt from its shards, with no task run
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("merged completions exist, skipped") == 2 and "submitted" not in printed
    (out / "ckpt1.jsonl").unlink()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("done already, skipped") == 2 and "submitted" not in printed
    assert read_completions(out / "ckpt1.jsonl") == refs[1]


def kill_after_first_batch(marker: str, shard: int, job, index: int) -> None:
    """Task hook: the first attempt of ``shard`` SIGKILLs its own worker once its first completion is on disk."""
    if index != shard or Path(marker).exists():
        return
    import drift.generate.core as core

    original = core._backend

    def backend(lm, texts, config):
        for k, batch in enumerate(original(lm, texts, config)):
            if k == 1:  # asked for the second batch: the first is written and synced
                Path(marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    core._backend = backend


@pytest.mark.slow
def test_killed_worker_is_retried_and_resumed(local_ray, small_model, scale_prompts, tmp_path):
    model = small_model(2)
    config = GenerationConfig(max_new_tokens=6, batch_size=1)
    marker, logs = tmp_path / "killed", []
    written = run_generate_ray(make_jobs("default", models=[str(model)], load=LOAD), scale_prompts, tmp_path / "out",
                               config, shards=2, max_retries=2, keep_shards=False,
                               task_hook=functools.partial(kill_after_first_batch, str(marker), 1), log=logs.append)
    assert marker.exists(), "the fault hook never fired"
    ref = generate_completions(load_model(str(model), **LOAD), scale_prompts, tmp_path / "ref.jsonl", config,
                               progress=False)
    order = {p.id: k for k, p in enumerate(scale_prompts)}
    assert read_completions(written["ckpt2"]) == sorted(read_completions(ref), key=lambda r: order[r["id"]])
    assert not (tmp_path / "out" / "shards" / "ckpt2").exists()  # keep_shards=False removed them after the merge


@pytest.mark.slow
def test_cli_finetune_sweep_on_ray(local_ray, small_model, tmp_path, capsys):
    args = ["finetune", "--model", str(small_model(0)), "--method", "sft", "--data", "builtin:instructions",
            "--langs", "en,de", "--max-steps", "2", "--batch-size", "4", "--limit-per-lang", "8",
            "--max-length", "64", "--device", "cpu", "--lr", "0.001", "--quiet"]
    ray_args = [*args, "--engine", "ray", "--num-cpus", "1", "--max-retries", "1", "--out", str(tmp_path / "ray")]
    assert main(ray_args) == 0
    assert capsys.readouterr().out.count(": trained (") == 2
    assert main([*args, "--out", str(tmp_path / "local")]) == 0  # the same sweep, sequential in this process
    capsys.readouterr()
    runs = sorted(p.name for p in (tmp_path / "local").iterdir() if p.name != "_data")
    assert len(runs) == 2 and sorted(p.name for p in (tmp_path / "ray").iterdir() if p.name != "_data") == runs
    for name in runs:
        got, want = (json.loads((tmp_path / where / name / "polydrift-run.json").read_text())
                     for where in ("ray", "local"))
        assert got["checkpoint"] == str((tmp_path / "ray" / name).resolve())
        for key in ("run_id", "weights", "model", "method", "ft_lang", "seed", "epochs"):
            assert got[key] == want[key], (name, key)
        assert got["extra"]["data"] == want["extra"]["data"] and got["extra"]["config"] == want["extra"]["config"]
        assert sorted(p.name for p in (tmp_path / "ray" / name).iterdir()) == \
            sorted(p.name for p in (tmp_path / "local" / name).iterdir())

    # rerun: both runs are skipped, their folders untouched
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("polydrift-run.json")}
    assert main(ray_args) == 0
    printed = capsys.readouterr().out
    assert printed.count("done already") == 2 and "trained" not in printed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.parametrize("argv, message", [
    (["finetune", "--out", "o", "--num-gpus", "1"], "--num-gpus needs --engine ray"),
    (["finetune", "--out", "o", "--ray-address", "auto"], "--ray-address needs --engine ray"),
    (["finetune", "--out", "o", "--max-retries", "2"], "--max-retries needs --engine ray"),
    (["generate", "--out", "o.jsonl", "--models", "a,b"], "--models needs --engine ray"),
    (["generate", "--out", "o.jsonl", "--shards", "2"], "--shards needs --engine ray"),
    (["generate", "--out", "o.jsonl", "--num-cpus", "2"], "--num-cpus needs --engine ray"),
    (["generate", "--out", "o", "--engine", "ray", "--shard", "0/2"], "with --engine ray use --shards N"),
    (["generate", "--out", "o", "--engine", "ray", "--adapter", "run1"], "give --adapters run1"),
    (["generate", "--out", "o", "--engine", "ray", "--shards", "0"], "--shards must be at least 1"),
    (["extract", "--out", "o.h5", "--adapters", "x"], "--adapters needs --engine ray"),
    (["extract", "--out", "o.h5", "--num-gpus", "1"], "--num-gpus needs --engine ray"),
])
def test_ray_only_options_need_the_ray_engine(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_generate_ray_refuses_a_file_out_and_interventions(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "d.npy", np.ones(32, dtype=np.float32))
    base = ["generate", "--engine", "ray", "--prompts", "builtin:prompts?lang=en&category=fraud"]
    for extra, message in [(["--out", str(tmp_path / "x.jsonl")], "--out is a folder (one NAME.jsonl per checkpoint)"),
                           (["--out", str(tmp_path / "o"), "--ablate", str(tmp_path / "d.npy")],
                            "--ablate and --add run with the local engine only")]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy"]
