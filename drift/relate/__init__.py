"""Relating internal drift to measured ASR change across fine-tuned runs (see docs/relate.md).

``relate(drift, asr, runs, capability)`` joins drift records, ASR tables, run metadata and optional capability
records through ``run_id`` and returns, per judge, site, position, drift measure, layer and evaluation language (and
all languages pooled), Spearman and Pearson correlations between drift and ASR change with bootstrap intervals and
permutation p-values, the drift coefficient of a regression that controls for capability change, p-values adjusted
across the whole family, flags, and the strongest layer per measure. ``write_relate`` writes the tables.
"""

from drift.relate.core import RelateTables, n_permutations, relate
from drift.relate.io import read_study, relate_study, write_relate
from drift.relate.join import join_records, load_runs
from drift.relate.options import DEFAULT_MEASURES, RelateOptions

__all__ = ["DEFAULT_MEASURES", "RelateOptions", "RelateTables", "join_records", "load_runs", "n_permutations",
           "read_study", "relate", "relate_study", "write_relate"]
