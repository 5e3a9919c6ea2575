"""benchmarks/run_all.py: runs the scripts with --json and merges their output into one record with the machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_merges_script_results(tmp_path, monkeypatch):
    run_all = _load("run_all")
    fake = tmp_path / "scripts"
    fake.mkdir()
    (fake / "capture.py").write_text(
        "import json, sys\nargs = sys.argv[1:]\nprint('rows...')\nprint('PASS: hf >= 1.0x baseline: 1.2x')\n"
        "print('ratio 2.0x  (FAIL >= 4.0x at batch 16)')\n"
        "open(args[args.index('--json') + 1], 'w').write(json.dumps({'quick': '--quick' in args, 'ratio': 1.2}))\n")
    (fake / "memory.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.setattr(run_all, "HERE", fake)
    out = tmp_path / "results" / "latest.json"
    assert run_all.main(["--quick", "--only", "capture,memory", "--out", str(out)]) == 1  # memory crashed
    record = json.loads(out.read_text())
    cap, mem = record["benchmarks"]["capture"], record["benchmarks"]["memory"]
    assert cap["returncode"] == 0 and cap["result"] == {"quick": True, "ratio": 1.2}
    assert cap["checks"] == ["PASS: hf >= 1.0x baseline: 1.2x", "ratio 2.0x  (FAIL >= 4.0x at batch 16)"]
    assert mem["returncode"] == 3 and mem["result"] is None and "boom" in mem["output_tail"]
    machine = record["machine"]
    assert machine["cores"] >= 1 and machine["torch"] and "gpus" in machine and record["mode"] == "quick"


def test_every_script_takes_json_and_quick():
    for name in _load("run_all").SCRIPTS:
        text = (ROOT / "benchmarks" / f"{name}.py").read_text()
        assert '"--json"' in text and '"--quick"' in text, name
