"""The selection filters reproduce the published choices of Arditi et al. (2024)."""

import pytest

from drift import DriftError
from drift.metrics.selection import Candidate, read_published_evaluations, select_candidate


@pytest.mark.refdata
@pytest.mark.parametrize("model, n_layers, want", [("gemma-2b-it", 18, (-2, 10)),
                                                   ("meta-llama-3-8b-instruct", 32, (-5, 12))])
def test_reproduces_published_selection(refdata, model, n_layers, want):
    import json

    folder = refdata / "refusal_direction_runs" / model
    meta = json.loads((folder / "direction_metadata.json").read_text())
    candidates = read_published_evaluations(folder / "select_direction" / "direction_evaluations.json")
    sel = select_candidate(candidates, n_layers)
    assert (sel.chosen.position, sel.chosen.layer) == (meta["pos"], meta["layer"]) == want
    assert select_candidate(candidates).chosen == sel.chosen  # n_layers inferred from a full grid
    published = json.loads((folder / "select_direction" / "direction_evaluations_filtered.json").read_text())
    assert [(c.position, c.layer) for c in sel.passed] == [(r["position"], r["layer"]) for r in published]


def test_filters():
    cands = [
        Candidate(-1, 0, -5.0, 1.0, 0.05),   # best
        Candidate(-1, 1, -9.0, -1.0, 0.01),  # steering not positive
        Candidate(-1, 2, -9.0, 1.0, 0.5),    # KL too high
        Candidate(-1, 8, -9.0, 1.0, 0.01),   # in the last 20% of 10 layers
        Candidate(-2, 3, -2.0, 1.0, 0.01),
    ]
    sel = select_candidate(cands, n_layers=10)
    assert sel.chosen == cands[0] and [c.layer for c in sel.passed] == [0, 3]
    with pytest.raises(DriftError, match="no candidate direction passes"):
        select_candidate(cands[1:4], n_layers=10)
    with pytest.raises(DriftError, match="not found"):
        read_published_evaluations("/nonexistent.json")
