"""Reading a study folder's records for the relate stage, and writing its tables once, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from drift.errors import DriftError

OUTPUTS = {"relations": "relate.csv", "summary": "summary.csv", "joined": "joined.csv"}


def _concat(paths: list[Path]) -> pd.DataFrame | None:
    frames = [pd.read_csv(p) for p in paths if p.stat().st_size]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def read_study(run_dir: str | Path) -> dict[str, pd.DataFrame | dict | None]:
    """The records a study folder holds for relate: study manifest, drift, ASR and capability records.

    Files are only found by the folder layout (docs of ``drift run``); rows are joined later through ``run_id``.

    Returns:
        ``{"runs": study manifest dict, "drift": DataFrame, "asr": DataFrame, "capability": DataFrame or None}``.
    """
    run_dir = Path(run_dir)
    study = run_dir / "study.json"
    if not study.is_file():
        raise DriftError(f"{run_dir} has no study.json: pass the folder written by drift run")
    drift = _concat(sorted((run_dir / "drift").glob("*.csv")))
    if drift is None:
        raise DriftError(f"no drift records in {run_dir / 'drift'}: run the compare stage first")
    asr_path = run_dir / "judged" / "asr.csv"
    if not asr_path.is_file():
        raise DriftError(f"{asr_path} not found: run the judge stage first")
    capability = _concat(sorted((run_dir / "capability").glob("*/capability.csv")))
    return {"runs": json.loads(study.read_text(encoding="utf-8")), "drift": drift,
            "asr": pd.read_csv(asr_path, keep_default_na=False, na_values=[""]), "capability": capability}


def write_relate(out_dir: str | Path, tables, overwrite: bool = False) -> dict[str, Path]:
    """Write ``relate.csv``, ``summary.csv`` and ``joined.csv`` into ``out_dir`` (each via a temporary file).

    Args:
        out_dir: Output folder (created if missing; its parent must exist).
        tables: The ``RelateTables`` returned by ``relate``.
        overwrite: Replace existing tables instead of refusing.

    Returns:
        Table name -> written path.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise DriftError(f"the parent of the output folder {out_dir} does not exist: create it first")
    paths = {name: out_dir / file for name, file in OUTPUTS.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise DriftError(f"{existing[0]} already exists: choose another output folder, or pass overwrite=True")
    out_dir.mkdir(exist_ok=True)
    tmps = {}
    try:
        for name, path in paths.items():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            getattr(tables, name).to_csv(tmp, index=False)
            tmps[name] = tmp
        for name, tmp in tmps.items():
            tmp.replace(paths[name])
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return paths


def relate_study(run_dir: str | Path, out_dir: str | Path | None = None, options=None,
                 overwrite: bool = False) -> dict[str, Path]:
    """Relate a study folder's drift to its ASR changes and write ``RUN_DIR/relate/`` (or ``out_dir``).

    Args:
        run_dir: The study folder (study.json, drift/, judged/asr.csv, capability/).
        out_dir: Output folder (default ``RUN_DIR/relate``).
        options: ``RelateOptions``.
        overwrite: Replace existing tables.
    """
    from drift.relate.core import relate

    rec = read_study(run_dir)
    tables = relate(rec["drift"], rec["asr"], rec["runs"], rec["capability"], options)
    return write_relate(out_dir or Path(run_dir) / "relate", tables, overwrite=overwrite)
