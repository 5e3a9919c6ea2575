"""Stage bookkeeping for studies: a stage is skipped when its artifacts exist with the same input key.

Each stage writes a marker ``.stages/<name>.json`` holding the SHA-256 of its inputs (the config section it reads
and the ids or hashes of the artifacts it consumes) and the artifacts it wrote. A rerun after a crash, or after a
config change, redoes exactly the stages whose key changed or whose artifacts are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path


def stage_key(inputs: dict) -> str:
    """A stable hash of a stage's inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class Stages:
    """Runs named stages in a study folder, skipping those already done with the same inputs."""

    def __init__(self, root: Path, log: Callable[[str], None] = print) -> None:
        self.root, self.log = root, log
        (root / ".stages").mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def _marker(self, name: str) -> Path:
        return self.root / ".stages" / f"{name.replace('/', '__')}.json"

    def done(self, name: str, inputs: dict, outputs: list[Path]) -> bool:
        """Whether the stage ran with these inputs and its outputs still exist."""
        marker = self._marker(name)
        if not marker.is_file():
            return False
        rec = json.loads(marker.read_text(encoding="utf-8"))
        return rec.get("key") == stage_key(inputs) and all(Path(p).exists() for p in outputs)

    def run(self, name: str, inputs: dict, outputs: list[Path], fn: Callable[[], object]):
        """Run ``fn`` unless done; record the marker after it returns. Returns ``fn``'s result or None if skipped."""
        if self.done(name, inputs, outputs):
            self.log(f"[skip] {name} (up to date)")
            return None
        self.log(f"[run ] {name}")
        start = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 1)
        tmp = self._marker(name).with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": stage_key(inputs), "inputs": inputs, "outputs": [str(p) for p in outputs],
                                   "seconds": self.timings[name]}, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self._marker(name))
        return result
