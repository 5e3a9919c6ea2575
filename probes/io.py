"""Saving fitted probes with the provenance of the store they were trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drift.errors import DriftError


def save_probes(path: str | Path, probes: dict[tuple[str, int, str], object], store, meta: dict | None = None) -> Path:
    """Write fitted probes keyed by (site, layer, position) to ``.npz`` with the store's provenance.

    Each probe must have ``coef_``, ``intercept_`` and ``classes_``.
    """
    path = Path(path)
    arrays, index = {}, []
    for i, ((site, layer, position), probe) in enumerate(sorted(probes.items(), key=lambda kv: str(kv[0]))):
        arrays[f"coef{i}"], arrays[f"intercept{i}"] = probe.coef_, probe.intercept_
        index.append({"site": site, "layer": int(layer), "position": str(position), "kind": type(probe).__name__,
                      "classes": [str(c) for c in probe.classes_], "params": {k: str(v) for k, v in
                                                                              probe.get_params().items()}})
    header = {"index": index, "run": store.run.to_dict(), "prompts": store.provenance.get("prompts"),
              "store": str(store.path), "meta": meta or {}}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, __header__=np.array(json.dumps(header)), **arrays)
    tmp.replace(path)
    return path


def load_probes(path: str | Path) -> tuple[dict[tuple[str, int, str], dict], dict]:
    """Read probes saved by :func:`save_probes`: ((site, layer, position) -> {coef, intercept, kind, classes}, header)."""
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"probe file not found: {path}")
    with np.load(path) as z:
        header = json.loads(str(z["__header__"]))
        out = {}
        for i, item in enumerate(header["index"]):
            out[(item["site"], item["layer"], item["position"])] = {
                "coef": z[f"coef{i}"], "intercept": z[f"intercept{i}"], "kind": item["kind"],
                "classes": item["classes"]}
    return out, header
