"""The examples in README.md and docs/ run as written (on the real default model, so marked slow)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/capture.md"])
def test_python_examples_run(doc, tmp_path):
    (tmp_path / "cache").mkdir()
    for i, code in enumerate(_blocks(ROOT / doc, "python")):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert proc.returncode == 0, f"{doc} python block {i} failed:\n{code}\n{proc.stderr[-2000:]}"


def _run_page(page: str, tmp_path: Path) -> str:
    """Run a page's first shell block, then its Python blocks, then its other shell blocks; /tmp/ -> tmp_path."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    shell = _blocks(ROOT / page, "bash")

    def bash(block: str) -> str:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.replace("/tmp/", f"{tmp_path}/")],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{page} shell block failed:\n{block}\n{proc.stderr[-2000:]}"
        return proc.stdout

    stdout = bash(shell[0]) if shell else ""
    for i, code in enumerate(_blocks(ROOT / page, "python")):
        script = tmp_path / f"block{i}.py"
        script.write_text(code.replace("/tmp/", f"{tmp_path}/"), encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{page} python block {i} failed:\n{code}\n{proc.stderr[-2000:]}"
    for block in shell[1:]:
        stdout += bash(block)
    return stdout


def test_drift_metrics_page_runs(tmp_path):
    stdout = _run_page("docs/drift-metrics.md", tmp_path)
    assert (tmp_path / "sel" / "selection.json").exists() and (tmp_path / "sel" / "cross_lingual.csv").exists()
    assert "method=orthogonalized" in stdout
    import pandas as pd

    df = pd.read_csv(tmp_path / "drift.csv")
    ortho = df[(df.metric == "proj_shift_harmful") & (df.lang == "all") & (df.layer == 12) & (df.position == "last")]
    assert len(ortho) == 1
    patch = pd.read_csv(tmp_path / "patch.csv")
    assert {-2, -1, 0, 29} <= set(patch["layer"])
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert (weights[weights.metric == "delta_fro"]["value"] > 0).any()


def test_probes_page_runs(tmp_path):
    _run_page("docs/probes.md", tmp_path)
    import pandas as pd

    df = pd.read_csv(tmp_path / "probes.csv")
    assert {"accuracy", "selectivity", "transfer_accuracy"} <= set(df.metric) and set(df.layer) == {6, 12, 18}


def test_capture_page_shell_example(tmp_path):
    (block,) = _blocks(ROOT / "docs/capture.md", "bash")
    script = block.replace("/tmp/", f"{tmp_path}/")
    bindir = Path(sys.executable).parent
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "langs      en:200, fr:200" in proc.stdout


@pytest.mark.parametrize("page", ["README.md", "docs/study.md", "docs/finetune.md"])
def test_toml_examples_are_valid_configs(page):
    """Every TOML example parses into the config it shows: a study file, or a fine-tuning sweep."""
    import tomllib

    from drift.finetune.config import make_sweep
    from drift.study.config import study_from_dict

    blocks = _blocks(ROOT / page, "toml")
    assert blocks
    for block in blocks:
        table = tomllib.loads(block)
        if set(table) == {"finetune"}:
            make_sweep(table["finetune"], page)
        else:
            study_from_dict(table, page)


def test_finetune_page_runs(tmp_path):
    _run_page("docs/finetune.md", tmp_path)
    from drift.runs import read_manifest

    runs = [read_manifest(d) for d in (tmp_path / "sft-sweep").iterdir() if d.is_dir() and not d.name.startswith("_")]
    assert sorted(m.ft_lang for m in runs if m) == ["de", "fr"]
    assert any(read_manifest(d) for d in (tmp_path / "dpo-sweep").iterdir() if d.is_dir())
    assert (tmp_path / "sft-fr").is_dir()


def test_judging_page_runs(tmp_path):
    _run_page("docs/judging.md", tmp_path)
    for folder in ("judged", "judged-py"):
        assert (tmp_path / folder / "asr.csv").exists() and (tmp_path / folder / "verdicts.csv").exists()


def test_capability_page_runs(tmp_path):
    _run_page("docs/capability.md", tmp_path)
    assert (tmp_path / "cap-base" / "capability.csv").exists()


def test_relate_page_runs(tmp_path):
    _run_page("docs/relate.md", tmp_path)
    assert (tmp_path / "relate-study").is_dir() and any((tmp_path / "relate-demo").iterdir())
