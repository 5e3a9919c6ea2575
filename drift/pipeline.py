"""Stage functions: files in, files out. The CLI and notebooks call these; this is where compute meets I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drift.errors import DriftError


def _out_dir(path: str | Path, names: list[str], overwrite: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DriftError(f"--out {out} is a file: give a folder")
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise DriftError(f"{out} already holds {', '.join(clash)}: choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path)


def prompts_of_store(store):
    """Rebuild the PromptSet a store was extracted from (its prompt table)."""
    from drift.data.records import Prompt, PromptSet

    cols = ["id", "group", "lang", "label", "category", "text", "source"]
    return PromptSet([Prompt(*row) for row in store.prompts[cols].itertuples(index=False)], "store")


def run_directions(
    store_path: str | Path,
    out: str | Path,
    select: bool = False,
    model: str | None = None,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    site: str = "resid_pre",
    val_fraction: float = 0.25,
    batch_size: int = 16,
    cross_lingual: bool = False,
    layers: list[int] | None = None,
    positions: list | None = None,
    filters: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Fit refusal directions from a store; optionally run the Arditi et al. selection on the model.

    Writes ``directions.npz`` (class means for every site, layer, position and language), ``directions.csv``
    (direction norms, long-form) and ``cosine_matrix.csv`` (language x language cosines). With ``select``, the store's
    prompts are split by group: directions are fitted on the training groups and candidates scored on the held-out
    ones, writing ``candidates.csv``, ``selection.json`` and ``selected_direction.npy`` (and, with
    ``cross_lingual``, ``cross_lingual.csv``). ``layers`` and ``positions`` restrict fitting and candidates;
    ``filters`` overrides ``kl_threshold``, ``induce_threshold`` or ``prune_layer_fraction``. When no candidate
    passes, ``candidates.csv`` is still written before the error.
    """
    import pandas as pd

    from drift.metrics.directions import fit_directions
    from drift.store import open_store

    names = ["directions.npz", "directions.csv", "cosine_matrix.csv"]
    if select:
        names += ["candidates.csv", "selection.json", "selected_direction.npy"]
    out = _out_dir(out, names, overwrite)
    with open_store(store_path) as store:
        prompts = prompts_of_store(store)
        train_rows = None
        if select:
            train, _ = prompts.split(val_fraction, seed=0)
            keep = {p.id for p in train}
            train_rows = np.flatnonzero(store.prompts["id"].isin(keep).to_numpy())
        dirs = fit_directions(store, layers=layers, rows=train_rows)
        dirs.save(out / "directions.npz")
        norms, cosines = [], []
        for (s, layer), md in dirs.items.items():
            for pos in md.positions:
                langs, mat = dirs.cosine_matrix(s, layer, pos)
                for i, a in enumerate(langs):
                    norms.append(dict(site=s, layer=layer, position=str(pos), lang=a, metric="direction_norm",
                                      value=float(np.linalg.norm(md.direction(pos, a))),
                                      n=md.counts[(a, "harmful")] + md.counts[(a, "harmless")]))
                    cosines += [dict(site=s, layer=layer, position=str(pos), lang_a=a, lang_b=b, value=float(mat[i, j]))
                                for j, b in enumerate(langs)]
        pd.DataFrame(norms).to_csv(out / "directions.csv", index=False)
        pd.DataFrame(cosines).to_csv(out / "cosine_matrix.csv", index=False)
        written = {n: out / n for n in names[:3]}
        if select:
            written |= _select(store, dirs, prompts, out, model, adapter, device, dtype, site, val_fraction,
                               batch_size, cross_lingual, progress, positions, filters or {})
    return written


def _select(store, dirs, prompts, out, model, adapter, device, dtype, site, val_fraction, batch_size, cross_lingual,
            progress, positions, filters) -> dict[str, Path]:
    import pandas as pd

    from drift.causal import cross_lingual_ablation, evaluate_candidates
    from drift.metrics.selection import PRUNE_LAYER_FRACTION, select_candidate
    from drift.models import load_model

    if site not in dirs.sites:
        raise DriftError(f"the store has no {site} activations: extract with --sites {site} to run the selection")
    from drift.models.loading import reload_spec

    spec = model or reload_spec(store.provenance["model"])
    lm = load_model(spec, adapter=adapter or store.provenance["model"].get("adapter"), device=device, dtype=dtype)
    if lm.weights_fingerprint() != store.provenance["model"]["weights"]:
        raise DriftError("the model given to --select is not the one the store was extracted from (weights differ)")
    _, val = prompts.split(val_fraction, seed=0)
    harmful, harmless = val.filter(labels=["harmful"]), val.filter(labels=["harmless"])
    if not len(harmful) or not len(harmless):
        raise DriftError("the held-out split lacks harmful or harmless prompts: use more prompts or --val-fraction")
    # Layers in the last 20% can never be chosen, so they are not scored.
    prune = filters.get("prune_layer_fraction", PRUNE_LAYER_FRACTION)
    layers = [layer for layer in dirs.layers if layer < int(lm.n_layers * (1 - prune))]
    cands = evaluate_candidates(lm, dirs, harmful, harmless, site=site, positions=positions, layers=layers,
                                batch_size=batch_size, progress=progress)
    pd.DataFrame([c.to_dict() for c in cands]).to_csv(out / "candidates.csv", index=False)
    try:
        sel = select_candidate(cands, lm.n_layers, **filters)
    except DriftError as e:
        raise DriftError(f"{e} (scores of every candidate are in {out / 'candidates.csv'})") from None
    vec = dirs.direction(site, sel.chosen.layer, sel.chosen.position)
    np.save(out / "selected_direction.npy", vec)
    _write_json({"pos": sel.chosen.position, "layer": sel.chosen.layer, "site": site, "chosen": sel.chosen.to_dict(),
                 "n_candidates": sel.n_candidates, "n_passed": len(sel.passed), "n_layers": sel.n_layers,
                 "run": store.run.to_dict(), "n_val_harmful": len(harmful), "n_val_harmless": len(harmless)},
                out / "selection.json")
    written = {n: out / n for n in ("candidates.csv", "selection.json", "selected_direction.npy")}
    if cross_lingual:
        recs = cross_lingual_ablation(lm, dirs, harmful, site, sel.chosen.layer, sel.chosen.position, batch_size)
        pd.DataFrame(recs).to_csv(out / "cross_lingual.csv", index=False)
        written["cross_lingual.csv"] = out / "cross_lingual.csv"
    return written


def run_compare(base_path: str | Path, ft_path: str | Path, out: str | Path, metrics=None, by_lang: bool = False,
                floors: list[str | Path] | None = None, overwrite: bool = False, **kwargs) -> Path:
    """Compare two stores and write drift records (CSV or Parquet); see :func:`drift.compare.compare_stores`.

    Each store in ``floors`` (another seed of the same fine-tune, a control fine-tune on shuffled or no-op data) is
    compared with ``ft`` too; those rows have ``comparison = noise_floor`` and the main rows ``comparison = drift``,
    so a drift figure can be read against the drift that arises without the treatment.
    """
    from drift.compare import DEFAULT_METRICS, compare_stores, write_records
    from drift.store import open_store

    out = Path(out)
    if out.exists() and not overwrite:  # fail before any compute
        raise DriftError(f"output {out} already exists: choose another --out, or pass --overwrite")
    metrics = metrics or DEFAULT_METRICS
    with open_store(base_path) as base, open_store(ft_path) as ft:
        records = [{**r, "comparison": "drift"} for r in compare_stores(base, ft, metrics, by_lang=by_lang, **kwargs)]
        for floor_path in floors or []:
            with open_store(floor_path) as floor:
                records += [{**r, "comparison": "noise_floor"}
                            for r in compare_stores(ft, floor, metrics, by_lang=by_lang, **kwargs)]
    return write_records(records, out, overwrite=overwrite)


def run_patch_scan(base: str, ft: str, prompts: str, out: str | Path, ft_adapter: str | None = None,
                   site: str = "resid_post", positions: str = "post_instruction", device: str = "auto",
                   dtype: str = "auto", batch_size: int = 16, overwrite: bool = False) -> Path:
    """Patch the base model's activations into the fine-tuned model layer by layer; write refusal-score records."""
    import pandas as pd

    from drift.causal import patch_scan
    from drift.data import load_prompts
    from drift.models import load_model

    out = Path(out)
    if out.exists() and not overwrite:
        raise DriftError(f"output {out} already exists: choose another --out, or pass --overwrite")
    if positions not in ("post_instruction", "all"):
        raise DriftError(f"--patch-positions must be post_instruction or all, not {positions!r}")
    ps = load_prompts(prompts)
    base_lm = load_model(base, device=device, dtype=dtype)
    ft_lm = load_model(ft, adapter=ft_adapter, device=device, dtype=dtype)
    records = patch_scan(base_lm, ft_lm, ps, site=site, positions=positions, batch_size=batch_size)
    tmp = out.with_name(out.name + ".tmp")
    pd.DataFrame(records).to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def run_weight_drift(model: str, out: str | Path, adapter: str | None = None, ft: str | None = None,
                     overwrite: bool = False) -> Path:
    """Per-layer weight change of a fine-tune (LoRA adapter or full checkpoint) against its base; writes a CSV."""
    import pandas as pd

    from drift.metrics.weights import full_weight_drift, lora_weight_drift
    from drift.models import load_model

    out = Path(out)
    if out.exists() and not overwrite:
        raise DriftError(f"output {out} already exists: choose another --out, or pass --overwrite")
    if (adapter is None) == (ft is None):
        raise DriftError("give exactly one of --adapter (a LoRA adapter) or --ft (a full fine-tuned checkpoint)")
    base = load_model(model, device="cpu", dtype="float32").model.state_dict()
    if adapter is not None:
        records = lora_weight_drift(adapter, base)
    else:
        records = full_weight_drift(base, load_model(ft, device="cpu", dtype="float32").model.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    pd.DataFrame(records).to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def run_probes(store_path: str | Path, out: str | Path, judgments: str | Path | None = None, judge: str | None = None,
               transfer: str | Path | None = None, probe: str = "logistic", site: str | None = None,
               layers: list[int] | None = None, position="last", folds: int = 5, save: str | Path | None = None,
               overwrite: bool = False) -> Path:
    """Probe sweep per layer and language (plus transfer matrices and base-to-fine-tuned transfer); writes a CSV.

    ``judgments`` switches the target from prompt labels to judged behaviour (refusal vs compliance). ``save`` also
    writes the probes fitted on all rows, with provenance, to an ``.npz`` file.
    """
    import pandas as pd

    from drift.store import open_store
    from probes import base_to_ft_transfer, layer_sweep, probe_dataset, read_judgments, save_probes, transfer_matrix
    from probes.sweep import make_probe

    out = Path(out)
    for path in [out] + ([Path(save)] if save else []):
        if path.exists() and not overwrite:
            raise DriftError(f"output {path} already exists: choose another path, or pass --overwrite")
    make_probe(probe)  # validate before any compute
    with open_store(store_path) as store:
        site = site or store.sites[-1]
        layers = layers or store.layers
        jd = read_judgments(judgments, judge=judge, run_id=store.run.run_id) if judgments else None
        records = layer_sweep(store, site, position, layers, jd, probe, folds)
        for layer in layers:
            records += transfer_matrix(store, site, layer, position, jd, probe, folds)
        if transfer:
            with open_store(transfer) as ft:
                for layer in layers:
                    records += base_to_ft_transfer(store, ft, site, layer, position, jd, probe, folds)
        if save:
            fitted = {}
            for layer in layers:
                data = probe_dataset(store, site, layer, position, jd)
                fitted[(site, layer, str(position))] = make_probe(probe).fit(data.X, data.y)
            save_probes(save, fitted, store, {"probe": probe, "target": "behaviour" if jd is not None else "prompt"})
    tmp = out.with_name(out.name + ".tmp")
    pd.DataFrame(records).to_csv(tmp, index=False)
    tmp.replace(out)
    return out
