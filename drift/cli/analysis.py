"""Subcommands of the capture and drift-analysis stages: extract, info, demo, directions, compare, probe, patch, weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from drift.cli.common import add_model_args, chat_options, csv_list, layer_list, offset_list
from drift.cli.scale import add_extract_scale_args, check_extract_scale_args, extract_with_ray
from drift.errors import DriftError


def register(sub) -> dict:
    """Add the parsers of this module's subcommands; return their handlers by name."""
    p = sub.add_parser("extract", help="capture residual-stream activations into an HDF5 store")
    add_model_args(p)
    p.add_argument("--prompts", default="builtin:prompts", help="PATH, builtin:NAME, hf:NAME or polyrefuse:DIR")
    p.add_argument("--langs", type=csv_list, help="comma-separated ISO 639-1 codes to keep")
    p.add_argument("--labels", type=csv_list, help="harmful, harmless or both")
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--sites", type=csv_list, default=["resid_post"], help="resid_pre,resid_mid,resid_post")
    p.add_argument("--layers", type=layer_list, default=None, help="all (default), '0,4,8' or '0-11'")
    p.add_argument("--positions", type=csv_list, default=["last"], help="last,post_instruction,mean,all")
    p.add_argument("--backend", default="hf", help="hf (default), nnsight or transformer_lens")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--storage-dtype", default="float32", help="float32, float16 or bfloat16")
    p.add_argument("--padding-side", default="left", choices=["left", "right"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted extraction into the same --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out once the new one is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_extract_scale_args(p)

    p = sub.add_parser("directions", help="fit refusal directions from a store; optionally select one on the model")
    p.add_argument("store", help="an .h5 store with harmful and harmless prompts")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--select", action="store_true", help="run the Arditi et al. selection (needs the model)")
    p.add_argument("--model", help="model for --select (default: the store's model id)")
    p.add_argument("--adapter", help="PEFT adapter for --select")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--site", default="resid_pre", help="site of the candidate directions (default resid_pre)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="held-out share of prompt groups for --select")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cross-lingual", action="store_true", help="with --select: ablate each language's direction")
    p.add_argument("--layers", type=layer_list, default=None, help="layers to fit and score (default: all in the store)")
    p.add_argument("--positions", type=offset_list, help="candidate positions for --select, e.g. -1,-2 (default: all)")
    p.add_argument("--kl-threshold", type=float, default=0.1, help="selection filter (default 0.1)")
    p.add_argument("--induce-threshold", type=float, default=0.0, help="steering score must exceed this (default 0)")
    p.add_argument("--prune-layer-fraction", type=float, default=0.2, help="drop the last share of layers (0.2)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("compare", help="drift between a base and a fine-tuned store (CKA, cosine, directions)")
    p.add_argument("base", help="store of the base model")
    p.add_argument("ft", help="store of the fine-tuned model (same prompts)")
    p.add_argument("--out", required=True, help="output .csv or .parquet")
    p.add_argument("--metrics", type=csv_list, help="linear_cka,debiased_cka,rbf_cka,cosine,rel_norm_change,"
                   "direction_cosine,proj_shift (default: all but rbf_cka)")
    p.add_argument("--by-lang", action="store_true", help="also per language (pooled rows have lang=all)")
    p.add_argument("--sites", type=csv_list)
    p.add_argument("--layers", type=layer_list, default=None)
    p.add_argument("--rbf-threshold", type=float, default=1.0)
    p.add_argument("--n-boot", type=int, default=0, help="bootstrap resamples for CKA intervals (default 0: none)")
    p.add_argument("--floor", action="append", default=[], help="a store to compare with FT as a noise floor "
                   "(another seed, a control fine-tune); repeatable")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("probe", help="linear probes per layer and language, with transfer")
    p.add_argument("store", help="an .h5 store")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--labels", help="judgments.jsonl: probe judged refusal vs compliance instead of prompt labels")
    p.add_argument("--judge", help="which judge's verdicts to use from --labels")
    p.add_argument("--transfer", help="store of the fine-tuned model: train on base, test on it")
    p.add_argument("--probe", default="logistic", help="logistic (inner-CV C), diffmean or torch")
    p.add_argument("--site", help="site (default: the store's last)")
    p.add_argument("--layers", type=layer_list, default=None)
    p.add_argument("--position", default="last", help="last, mean or a post-instruction offset such as -1")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--save", help="also save the probes fitted on all rows (.npz)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("patch", help="patch base activations into the fine-tuned model layer by layer")
    p.add_argument("--base", default="default", help="the base model")
    p.add_argument("--ft", required=True, help="the fine-tuned model (or the base again with --ft-adapter)")
    p.add_argument("--ft-adapter", help="PEFT adapter applied to --ft")
    p.add_argument("--prompts", default="builtin:prompts?lang=en&label=harmful")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--site", default="resid_post")
    p.add_argument("--patch-positions", default="post_instruction", help="post_instruction or all")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("weights", help="per-layer weight change of a LoRA adapter or full fine-tune")
    p.add_argument("--model", default="default", help="the base model")
    p.add_argument("--adapter", help="a PEFT LoRA adapter directory")
    p.add_argument("--ft", help="a full fine-tuned checkpoint")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("info", help="print the provenance and shapes of an activation store")
    p.add_argument("store", help="an .h5 file written by drift extract")
    p.add_argument("--json", action="store_true", help="print the provenance as JSON")
    return {"probe": cmd_probe, "patch": cmd_patch, "weights": cmd_weights, "extract": cmd_extract, "info": cmd_info,
            "directions": cmd_directions, "compare": cmd_compare}


def cmd_extract(args: argparse.Namespace) -> int:
    """``drift extract``: validate everything cheap first, then load the model and capture."""
    from drift.capture import CaptureConfig, extract
    from drift.data import load_prompts, parse_shard
    from drift.models import load_model
    from drift.store import partial_path

    check_extract_scale_args(args)
    shard = parse_shard(args.shard) if args.shard else None
    out = Path(args.out)
    if args.engine == "local":
        if out.exists() and not args.overwrite:
            raise DriftError(f"output {out} already exists: choose another --out, or pass --overwrite to replace it")
        if args.resume and not partial_path(out).exists():
            raise DriftError(f"nothing to resume: {partial_path(out)} does not exist (run without --resume)")
        if not out.parent.is_dir():
            raise DriftError(f"output folder {out.parent} does not exist: create it first")
    config = CaptureConfig(
        sites=tuple(args.sites),
        layers=tuple(args.layers) if args.layers is not None else None,
        positions=tuple(args.positions),
        backend=args.backend,
        batch_size=args.batch_size,
        storage_dtype=args.storage_dtype,
        padding_side=args.padding_side,
    )
    prompts = load_prompts(args.prompts, langs=args.langs, labels=args.labels)
    chat = chat_options(args)
    if args.engine == "ray":
        return extract_with_ray(args, config, prompts, chat)
    if shard is not None:
        prompts = prompts.shard(*shard)
    lm = load_model(args.model, adapter=args.adapter, dtype=args.dtype, device=args.device,
                    revision=args.revision, chat=chat)
    path = extract(lm, prompts, out, config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {path} ({len(prompts)} prompts" + (f", shard {args.shard}" if shard else "") + ")")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``drift info``: provenance and shapes of a store."""
    from drift.store import open_store

    with open_store(args.store) as store:
        prov = store.provenance
        if args.json:
            print(json.dumps(prov, indent=2, sort_keys=True))
            return 0
        model, cap, run = prov["model"], prov["capture"], prov["run"]
        df = store.prompts
        print(f"store      {store.path} (layout {store._h5.attrs['encoding-version']}, complete={store.complete})")
        print(f"run        {run['run_id']} (method={run['method']}, checkpoint={run['checkpoint']})")
        print(f"model      {model['id']} [{model['family']}] layers={model['n_layers']} d_model={model['d_model']}")
        print(f"weights    {model['weights'][:16]}  tokenizer {model['tokenizer_hash'][:16]}  "
              f"template {model['chat_template_hash'][:16]}")
        print(f"prompts    {prov['prompts']['name']} n={len(df)} hash={prov['prompts']['hash'][:16]}")
        print(f"langs      {', '.join(f'{k}:{v}' for k, v in df['lang'].value_counts().sort_index().items())}")
        print(f"labels     {', '.join(f'{k}:{v}' for k, v in df['label'].value_counts().sort_index().items())}")
        print(f"capture    backend={cap['backend']} compute={cap['compute_dtype']} storage={store.storage_dtype} "
              f"batch={cap['batch_size']} device={cap['device']}")
        print(f"sites      {', '.join(store.sites)}")
        print(f"layers     {store.layers}")
        print(f"positions  {store.positions}" + ("  + all tokens (ragged)" if store.has_ragged else ""))
        print(f"shape      ({store.n_prompts}, {len(store.positions)}, {store.d_model}) per site and layer")
        print(f"software   polydrift {prov['polydrift_version']}, " +
              ", ".join(f"{k} {v}" for k, v in prov["software"].items()))
    return 0


def cmd_directions(args: argparse.Namespace) -> int:
    """``drift directions``: fit (and optionally select) refusal directions."""
    from drift.pipeline import run_directions

    written = run_directions(args.store, args.out, select=args.select, model=args.model, adapter=args.adapter,
                             device=args.device, dtype=args.dtype, site=args.site, val_fraction=args.val_fraction,
                             batch_size=args.batch_size, cross_lingual=args.cross_lingual, layers=args.layers,
                             positions=args.positions,
                             filters={"kl_threshold": args.kl_threshold, "induce_threshold": args.induce_threshold,
                                      "prune_layer_fraction": args.prune_layer_fraction},
                             overwrite=args.overwrite, progress=not args.quiet)
    if args.select:
        sel = json.loads(written["selection.json"].read_text())
        print(f"selected position {sel['pos']}, layer {sel['layer']} ({sel['n_passed']} of {sel['n_candidates']} "
              "candidates passed the filters)")
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``drift compare``: drift records between two stores."""
    from drift.pipeline import run_compare

    path = run_compare(args.base, args.ft, args.out, metrics=args.metrics, by_lang=args.by_lang,
                       overwrite=args.overwrite, sites=args.sites, layers=args.layers,
                       rbf_threshold=args.rbf_threshold, n_boot=args.n_boot, floors=args.floor)
    print(f"wrote {path}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """``drift weights``: weight-space drift records."""
    from drift.pipeline import run_weight_drift

    print(f"wrote {run_weight_drift(args.model, args.out, args.adapter, args.ft, args.overwrite)}")
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    """``drift patch``: layer-by-layer activation patching from base into fine-tuned."""
    from drift.pipeline import run_patch_scan

    path = run_patch_scan(args.base, args.ft, args.prompts, args.out, ft_adapter=args.ft_adapter, site=args.site,
                          positions=args.patch_positions, device=args.device, dtype=args.dtype,
                          batch_size=args.batch_size, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """``drift probe``: probe sweep, transfer matrices and base-to-fine-tuned transfer."""
    from drift.pipeline import run_probes
    from drift.store.layout import decode_position

    path = run_probes(args.store, args.out, judgments=args.labels, judge=args.judge, transfer=args.transfer,
                      probe=args.probe, site=args.site, layers=args.layers, position=decode_position(args.position),
                      folds=args.folds, save=args.save, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


