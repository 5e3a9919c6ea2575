"""Residual-stream sites (TransformerLens names) and where to hook them in a HF model."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from drift.errors import DriftError
from drift.models.families import FamilySpec, decoder_layers

SITES = ("resid_pre", "resid_mid", "resid_post")
_RANK = {site: i for i, site in enumerate(SITES)}


def check_sites(sites: Iterable[str]) -> list[str]:
    """Validate site names and return them in execution order, without duplicates."""
    sites = list(dict.fromkeys(sites))
    bad = [s for s in sites if s not in _RANK]
    if bad or not sites:
        raise DriftError(f"unknown site(s) {bad or sites}: choose from {', '.join(SITES)}")
    return sorted(sites, key=_RANK.__getitem__)


def check_layers(layers: Iterable[int] | None, n_layers: int) -> list[int]:
    """Validate layer indices (negative ones count from the end); None means every layer."""
    if layers is None:
        return list(range(n_layers))
    out = []
    for layer in layers:
        idx = int(layer) + n_layers if int(layer) < 0 else int(layer)
        if not 0 <= idx < n_layers:
            raise DriftError(f"layer {layer} does not exist: this model has layers 0..{n_layers - 1}")
        out.append(idx)
    if not out:
        raise DriftError("no layers requested: give at least one layer, or none for all")
    return sorted(set(out))


def execution_key(site: str, layer: int) -> tuple[int, int]:
    """Sort key giving the order in which a forward pass reaches (site, layer)."""
    return (layer, _RANK[site])


def hook_target(model: torch.nn.Module, family: FamilySpec, site: str, layer: int) -> tuple[torch.nn.Module, str]:
    """Return (module, kind) where kind is ``pre`` (read the module's input) or ``post`` (read its output).

    resid_pre is the block's input, resid_post its output, resid_mid the input of the norm before the MLP.
    """
    block = decoder_layers(model, family)[layer]
    if site == "resid_pre":
        return block, "pre"
    if site == "resid_post":
        return block, "post"
    try:
        return block.get_submodule(family.mid_norm), "pre"
    except AttributeError:
        raise DriftError(f"{family.model_type} block has no {family.mid_norm!r}: fix the FamilySpec") from None
