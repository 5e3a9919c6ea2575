"""The study report: pure figure functions (:mod:`drift.report.figures`) and a self-contained HTML page.

::

    from drift.report import build_report, load_study, figures
    path = build_report("cache/study")              # writes cache/study/report/index.html and report/tables/
    study = load_study("cache/study")
    figures.drift_heatmap(study.drift, "linear_cka", labels=study.run_labels).show()

Importing this package does not import plotly; the functions import it when they draw.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_report": "drift.report.html",
    "load_study": "drift.report.load",
    "Study": "drift.report.load",
    "demo_study": "drift.report.demo",
    "figures": "drift.report.figures",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "figures" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'drift.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
