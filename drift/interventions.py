"""Interventions on the residual stream: directional ablation, activation addition, patching, weight orthogonalisation.

Runtime interventions are context managers that register forward hooks on a loaded model and remove them on exit, so
the same code serves capture, scoring and generation::

    with ablate_direction(lm, r):          # project r out everywhere (Arditi et al. 2024)
        scores = refusal_scores(lm, prompts)
    with add_direction(lm, r, layer=12):   # add r to the input of block 12 at every position
        ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from drift.capture.sites import SITES, hook_target
from drift.errors import DriftError
from drift.models.families import decoder_layers, get_submodule


def _as_tensor(vec, lm) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(vec) if not isinstance(vec, torch.Tensor) else vec)
    if t.ndim != 1 or t.shape[0] != lm.d_model:
        raise DriftError(f"direction must be a vector of length d_model={lm.d_model}, got shape {tuple(t.shape)}")
    return t.to(device=lm.device, dtype=torch.float32)


def _replace_first(x, new: torch.Tensor):
    if isinstance(x, tuple):
        return (new, *x[1:])
    return new


def _describe(kind: str, vec: torch.Tensor | None = None, **fields) -> dict:
    desc = {"kind": kind, **fields}
    if vec is not None:
        arr = vec.detach().double().cpu().numpy()
        desc |= {"vector_sha256": hashlib.sha256(arr.tobytes()).hexdigest(), "vector_norm": float(np.linalg.norm(arr))}
    return desc


@contextmanager
def edit_sites(
    lm, edits: dict[tuple[str, int], Callable[[torch.Tensor], torch.Tensor]], description: dict | None = None
) -> Iterator[None]:
    """Replace the residual at each (site, layer) by ``fn(hidden)`` during forward passes inside the block.

    ``resid_pre`` edits the block's input, ``resid_post`` its output, ``resid_mid`` the input of the MLP branch.
    ``description`` is pushed onto ``lm.interventions`` while active, so provenance records it.
    """
    handles = []
    lm.interventions.append(description or {"kind": "edit", "sites": sorted(f"{s}.{l}" for s, l in edits)})
    try:
        for (site, layer), fn in edits.items():
            module, kind = hook_target(lm.model, lm.family, site, layer)
            if kind == "pre":

                def pre(mod, args, kwargs, fn=fn):
                    if args:
                        return (fn(args[0]), *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            else:

                def post(mod, args, output, fn=fn):
                    return _replace_first(output, fn(output[0] if isinstance(output, tuple) else output))

                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
        lm.interventions.pop()


def project_out(hidden: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """Remove the component of ``hidden`` (..., d) along the unit vector ``unit`` (computed in float32)."""
    u = unit.to(hidden.device)
    h = hidden.float()
    return (h - (h @ u)[..., None] * u).to(hidden.dtype)


@contextmanager
def ablate_direction(lm, direction, layers: Iterable[int] | None = None, sites: Iterable[str] = SITES) -> Iterator[None]:
    """Project ``direction`` out of the residual stream at every given layer and site (default: everywhere).

    With the defaults the direction never appears in the residual stream, which is what directional ablation in
    Arditi et al. (2024) does, and what :func:`orthogonalize_weights` makes permanent.
    """
    d = _as_tensor(direction, lm)
    if not torch.isfinite(d).all():
        raise DriftError("the direction to ablate has non-finite entries")
    if d.norm() == 0:  # e.g. a difference of means over identical template tokens at layer 0: nothing to remove
        yield
        return
    unit = d / d.norm()
    layers = list(range(lm.n_layers) if layers is None else layers)
    sites = list(sites)
    desc = _describe("ablate", unit, layers=layers, sites=sites)
    with edit_sites(lm, {(s, layer): (lambda h: project_out(h, unit)) for layer in layers for s in sites}, desc):
        yield


@contextmanager
def add_direction(lm, direction, layer: int, coeff: float = 1.0, site: str = "resid_pre") -> Iterator[None]:
    """Add ``coeff * direction`` to the residual at (site, layer) at every position (activation addition)."""
    vec = coeff * _as_tensor(direction, lm)
    desc = _describe("add", vec, layer=int(layer), site=site, coeff=float(coeff))
    with edit_sites(lm, {(site, layer): lambda h: (h.float() + vec.to(h.device)).to(h.dtype)}, desc):
        yield


@contextmanager
def patch_activations(lm, site: str, layer: int, source: torch.Tensor, mask: torch.Tensor) -> Iterator[None]:
    """Overwrite the residual at (site, layer) with ``source`` where ``mask`` is true.

    Args:
        lm: The model to patch into.
        site: Residual site.
        layer: Layer index.
        source: (batch, seq, d) activations from another run on the same padded batch.
        mask: (batch, seq) boolean, the positions to overwrite.
    """
    m = mask.to(lm.device)[..., None]

    def fn(h: torch.Tensor) -> torch.Tensor:
        return torch.where(m, source.to(device=h.device, dtype=h.dtype), h)

    with edit_sites(lm, {(site, layer): fn}, _describe("patch", None, site=site, layer=int(layer))):
        yield


def _orthogonalize_linear(module: torch.nn.Module, unit: torch.Tensor) -> None:
    """Make a map that writes into the residual stream write nothing along ``unit``."""
    w = module.weight
    u = unit.to(device=w.device, dtype=torch.float32)
    if isinstance(module, torch.nn.Linear):  # weight (d_model, in)
        w.copy_((w.float() - u[:, None] * (u @ w.float())[None, :]).to(w.dtype))
    elif type(module).__name__ == "Conv1D":  # GPT-2: weight (in, d_model)
        w.copy_((w.float() - (w.float() @ u)[:, None] * u[None, :]).to(w.dtype))
    else:
        raise DriftError(f"cannot orthogonalise a {type(module).__name__}: only Linear and Conv1D are supported")
    if getattr(module, "bias", None) is not None:
        b = module.bias
        b.copy_((b.float() - (b.float() @ u) * u).to(b.dtype))


@torch.no_grad()
def orthogonalize_weights(lm, direction) -> None:
    """Edit the weights in place so that nothing writes ``direction`` into the residual stream.

    Embeddings and every block's attention and MLP output maps are projected orthogonally to the direction, which
    gives the same outputs as :func:`ablate_direction` at every layer and site. A tied LM head is untied first so
    the output layer stays as it was.

    Raises:
        DriftError: The family normalises sublayer outputs (Gemma 2/3, OLMo 2), where no weight edit is exact.
    """
    fam = lm.family
    if not fam.writers:
        raise DriftError(
            f"weight orthogonalisation is not exact for {fam.model_type} (its sublayer outputs pass through a norm "
            "before the residual): use runtime ablation (ablate_direction) instead"
        )
    unit = _as_tensor(direction, lm)
    unit = unit / unit.norm()
    head = lm.model.get_output_embeddings()
    embed = lm.model.get_input_embeddings()
    if head is not None and head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
        lm.model.config.tie_word_embeddings = False
        if hasattr(lm.model.config, "get_text_config"):
            lm.model.config.get_text_config().tie_word_embeddings = False
    for path in fam.embeddings:
        table = get_submodule(lm.model, path).weight
        table.copy_((table.float() - (table.float() @ unit)[:, None] * unit[None, :]).to(table.dtype))
    for block in decoder_layers(lm.model, fam):
        for name in fam.writers:
            _orthogonalize_linear(block.get_submodule(name), unit)


def save_orthogonalized(lm, direction, out_dir, overwrite: bool = False):
    """Orthogonalise a copy of the weights against ``direction`` and save it as a new checkpoint with a manifest.

    The folder gets the model (safetensors), its tokenizer and a ``polydrift-run.json`` manifest (method
    ``orthogonalized``), so later stages identify it by ``run_id``. The model in ``lm`` is left unchanged.

    Returns:
        The checkpoint folder.
    """
    import copy
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from drift.models.loading import LoadedModel
    from drift.runs import MANIFEST_NAME, RunManifest, make_run_id

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DriftError(f"{out} is not empty: choose another folder or pass overwrite=True")
    edited = LoadedModel(copy.deepcopy(lm.model), lm.tokenizer, lm.family, lm.model_id, lm.source, lm.adapter,
                         chat=lm.chat)
    orthogonalize_weights(edited, direction)
    weights = edited.weights_fingerprint()
    vec = np.asarray(direction, dtype=np.float64)
    manifest = RunManifest(
        run_id=make_run_id(lm.model_id, weights, "orthogonalized"), model=lm.model_id, checkpoint=str(out.resolve()),
        method="orthogonalized", weights=weights,
        extra={"direction_sha256": hashlib.sha256(vec.tobytes()).hexdigest(), "direction_norm": float(np.linalg.norm(vec)),
               "base_weights": lm.weights_fingerprint()},
    )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    edited.model.save_pretrained(tmp, safe_serialization=True)
    lm.tokenizer.save_pretrained(tmp)
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
