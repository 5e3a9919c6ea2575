"""Run every benchmark script and write one JSON record of their results, PASS/FAIL lines and the machine.

Each script runs in its own process with ``--json`` (and ``--quick`` when asked); its output is shown as it runs.
The record (``benchmarks/results/latest.json`` by default) holds, per script, its exit code, wall time, PASS/FAIL
lines and its own JSON (ratios, timings, peak memory), plus the machine: CPU model and cores, RAM, load, Python,
torch, GPUs, and the git commit measured. A missed target is a measurement, not an error; a script that crashes is
recorded and makes this runner exit with 1 after the others have run.

    python benchmarks/run_all.py --quick                 # every script in its quick mode
    python benchmarks/run_all.py                         # full runs (tens of minutes on 2 CPU cores)
    python benchmarks/run_all.py --only capture,memory --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPTS = ("capture", "metrics", "probes", "generate", "finetune", "memory")
CHECK = re.compile(r"^.*\b(PASS|FAIL)\b.*$")  # target lines: "PASS: ...", "... (FAIL >= 4x ...)"


def machine() -> dict:
    """CPU, memory, load, software versions and GPUs of this machine."""
    import torch

    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        names = [x.split(":", 1)[1].strip() for x in info.read_text().splitlines() if x.startswith("model name")]
        cpu = names[0] if names else cpu
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "cpu": cpu, "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(ram, 1) if ram else None, "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda, "gpus": gpus,
        "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_script(name: str, quick: bool, extra: list[str], timeout: float) -> dict:
    """Run ``benchmarks/NAME.py`` with ``--json``, echoing its output; return its part of the record."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        result_path = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else []), "--json", str(result_path),
               *extra]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        start, lines = time.perf_counter(), []
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip("\n"))
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        seconds = time.perf_counter() - start
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
    part = {"returncode": code, "seconds": round(seconds, 1), "command": " ".join(cmd[1:]),
            "checks": [m.group(0).strip() for line in lines if (m := CHECK.match(line))], "result": result}
    if code != 0 or result is None:
        part["output_tail"] = lines[-30:]
    return part


def write_record(record: dict, out: Path) -> None:
    """Write the record through a temporary file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=str))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    """Run the selected scripts and write the record; exit 1 if any script crashed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="run every script with --quick")
    p.add_argument("--only", help=f"comma-separated scripts to run (default: all of {', '.join(SCRIPTS)})")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json", help="the JSON record to write")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed per script (default 3600)")
    p.add_argument("--device", help="passed as --device to the scripts that take one (capture, metrics, probes, "
                                    "generate)")
    args = p.parse_args(argv)
    names = [x.strip() for x in args.only.split(",")] if args.only else list(SCRIPTS)
    unknown = [x for x in names if x not in SCRIPTS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}: choose from {', '.join(SCRIPTS)}")
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    host = machine()
    results = {}
    for name in names:
        extra = ["--device", args.device] if args.device and name in ("capture", "metrics", "probes", "generate") \
            else []
        results[name] = run_script(name, args.quick, extra, args.timeout)
    host["load_avg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    record = {"started": started, "mode": "quick" if args.quick else "full", "machine": host,
              "checks": {n: r["checks"] for n, r in results.items()}, "benchmarks": results}
    write_record(record, args.out)
    crashed = [n for n, r in results.items() if r["returncode"] != 0]
    print(f"\nwrote {args.out}" + (f"; these scripts failed: {', '.join(crashed)}" if crashed else ""))
    for name, checks in record["checks"].items():
        for line in checks:
            print(f"  {name:9} {line}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
