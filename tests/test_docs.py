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


def test_capture_page_shell_example(tmp_path):
    (block,) = _blocks(ROOT / "docs/capture.md", "bash")
    script = block.replace("/tmp/", f"{tmp_path}/")
    bindir = Path(sys.executable).parent
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "langs      en:200, fr:200" in proc.stdout
