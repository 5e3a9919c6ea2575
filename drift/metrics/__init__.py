"""Metrics on activations: tensors in, frozen results out (numpy/torch only)."""

from drift.metrics.cka import (
    CKAFitter,
    CKAInterval,
    CKAPermutation,
    CKAResult,
    MinibatchCKA,
    MinibatchCKAResult,
    StackedCKAFitter,
    StackedCKAResult,
    cka_bootstrap,
    cka_permutation_test,
    debiased_cka,
    linear_cka,
    rbf_cka,
)
from drift.metrics.directions import DirectionSet, MeanDiff, MeanFitter, fit_directions, load_directions

__all__ = [
    "CKAFitter",
    "CKAInterval",
    "CKAPermutation",
    "CKAResult",
    "DirectionSet",
    "MeanDiff",
    "MeanFitter",
    "MinibatchCKA",
    "MinibatchCKAResult",
    "StackedCKAFitter",
    "StackedCKAResult",
    "cka_bootstrap",
    "cka_permutation_test",
    "debiased_cka",
    "fit_directions",
    "linear_cka",
    "load_directions",
    "rbf_cka",
]
