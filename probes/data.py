"""Probe datasets from an activation store: (X, y, groups) with labels from prompts or from judged behaviour."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drift.errors import DriftError

BEHAVIOUR_CLASSES = {"refusal": 1, "compliance": 0}
PROMPT_CLASSES = {"harmful": 1, "harmless": 0}


@dataclass(frozen=True)
class ProbeData:
    """Rows for a probe at one (site, layer, position).

    Attributes:
        X: (n, d) float32 activations.
        y: (n,) int labels (1 = harmful / refusal).
        groups: (n,) prompt groups, so translations never straddle folds.
        langs: (n,) languages.
        ids: (n,) prompt ids.
        target: ``prompt`` (harmful vs harmless) or ``behaviour`` (refusal vs compliance).
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    langs: np.ndarray
    ids: np.ndarray
    target: str

    def subset(self, mask: np.ndarray) -> ProbeData:
        """Rows where ``mask`` is true."""
        return ProbeData(self.X[mask], self.y[mask], self.groups[mask], self.langs[mask], self.ids[mask], self.target)


def read_judgments(path: str | Path, judge: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """Read ``judgments.jsonl`` (records with ``id``, ``judge``, ``verdict``, optionally ``run_id``).

    Args:
        path: The file.
        judge: Keep this judge's verdicts (required when the file holds several judges).
        run_id: Keep this run's verdicts (when the file holds several runs).
    """
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"judgments file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DriftError(f"malformed JSON in {path} line {n}: {e.msg}") from None
    df = pd.DataFrame(rows)
    missing = {"id", "verdict"} - set(df.columns)
    if missing:
        raise DriftError(f"{path} lacks field(s) {sorted(missing)}: judgments need id and verdict")
    if run_id is not None and "run_id" in df:
        df = df[df["run_id"] == run_id]
    if "judge" in df:
        judges = sorted(df["judge"].dropna().unique())
        if judge is None and len(judges) > 1:
            raise DriftError(f"{path} holds several judges {judges}: choose one with --judge")
        if judge is not None:
            df = df[df["judge"] == judge]
    if df.empty:
        raise DriftError(f"no judgments left in {path} for judge={judge!r}, run_id={run_id!r}")
    return df


def probe_dataset(
    store,
    site: str,
    layer: int,
    position: str | int = "last",
    judgments: pd.DataFrame | None = None,
    langs: list[str] | None = None,
) -> ProbeData:
    """Build probe rows from a store.

    With ``judgments`` the target is the model's judged behaviour (refusal = 1, compliance = 0; ``incoherent`` and
    unparseable verdicts are left out), joined on prompt id; otherwise the prompt label (harmful = 1).
    """
    df = store.prompts
    mask = np.ones(len(df), dtype=bool) if langs is None else df["lang"].isin(langs).to_numpy()
    if judgments is None:
        y = df["label"].map(PROMPT_CLASSES).to_numpy()
        target = "prompt"
    else:
        verdicts = judgments.drop_duplicates("id", keep="last").set_index("id")["verdict"]
        y = df["id"].map(verdicts).map(BEHAVIOUR_CLASSES).to_numpy(dtype=float)
        mask &= ~np.isnan(y)
        target = "behaviour"
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        raise DriftError("no rows left for the probe: check the language filter and the judgments' prompt ids")
    X = store.read(site, layer, positions=[position], rows=rows)[:, 0]
    y = np.asarray(y)[rows].astype(int)
    if len(np.unique(y)) < 2:
        raise DriftError(f"the probe target has a single class ({target}): it needs both classes")
    return ProbeData(X, y, df["group"].to_numpy()[rows], df["lang"].to_numpy()[rows], df["id"].to_numpy()[rows], target)
