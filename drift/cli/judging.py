"""Subcommands of the generation and judging stages: generate, judge, audit, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from drift.cli.common import add_model_args, chat_options, csv_list
from drift.cli.scale import add_sharded_scale_args, check_sharded_scale_args, generate_with_ray
from drift.errors import DriftError


def register(sub) -> dict:
    """Add the parsers of this module's subcommands; return their handlers by name."""
    p = sub.add_parser("generate", help="generate completions for a prompt set into completions.jsonl")
    add_model_args(p)
    p.add_argument("--prompts", default="builtin:prompts", help="PATH, builtin:NAME, hf:NAME or polyrefuse:DIR")
    p.add_argument("--langs", type=csv_list, help="comma-separated ISO 639-1 codes to keep")
    p.add_argument("--labels", type=csv_list, help="harmful, harmless or both")
    p.add_argument("--out", required=True, help="output completions .jsonl (rerun to resume); a folder with "
                                                "--engine ray")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--backend", default="hf", help="hf (default) or vllm (GPU machines)")
    p.add_argument("--autocast", choices=["bfloat16"], help="run the forward under bf16 autocast (faster on CPU)")
    p.add_argument("--ablate", help="a direction (.npy) to project out at every layer and site while generating")
    p.add_argument("--add", help="a direction (.npy) to add at --add-layer while generating")
    p.add_argument("--add-layer", type=int, help="layer for --add (its resid_pre)")
    p.add_argument("--add-coeff", type=float, default=1.0, help="coefficient for --add (default 1.0)")
    p.add_argument("--overwrite", action="store_true", help="replace completions of another run or config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sharded_scale_args(p, "generate")

    p = sub.add_parser("judge", help="judge completions: verdicts, coherence, ASR, agreement")
    p.add_argument("completions", nargs="+", help="completions .jsonl file(s); several runs give paired tests")
    p.add_argument("--judges", type=csv_list, default=["refusal-lexicon"],
                   help="comma-separated judge names (drift judge --list-judges); default refusal-lexicon")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    p.add_argument("--option", action="append", default=[], metavar="JUDGE.KEY=VALUE",
                   help="a judge option, e.g. llm.base_url=http://localhost:8000/v1 (value parsed as JSON if it can)")
    p.add_argument("--majority", action="store_true", help="add a majority vote over the judges")
    p.add_argument("--adjudicate", type=csv_list, metavar="FIRST,SECOND,ADJUDICATOR",
                   help="RefusEU protocol: the adjudicator judges only where the first two disagree")
    p.add_argument("--no-coherence", action="store_true", help="skip the coherence and language pass")
    p.add_argument("--reference-model", metavar="MODEL",
                   help="a model (hub id, path or 'default') whose perplexity of each completion feeds the coherence "
                        "pass; pick one stronger in the evaluated languages than the model that wrote them")
    p.add_argument("--max-perplexity", type=float, default=100.0,
                   help="with --reference-model: completions above this perplexity are incoherent (default 100)")
    p.add_argument("--device", default="auto", help="with --reference-model: cpu, cuda, cuda:N, auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--audit", type=int, default=0, metavar="N",
                   help="also export up to N disagreements per run and language to audit.csv")
    p.add_argument("--redact", action="store_true", help="hide completions of harmful prompts in audit.csv")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("audit", help="score the judges against human labels filled into audit.csv")
    p.add_argument("judged", help="the folder written by drift judge")
    p.add_argument("--labels", required=True, nargs="+",
                   help="the audited CSV (the 'human' column filled in), or labelled .jsonl sets (a gold field)")
    p.add_argument("--out", help="output CSV (default: JUDGED/judge_accuracy.csv)")

    p = sub.add_parser("export", help="copy completions for sharing, redacting harmful ones by default")
    p.add_argument("completions", help="completions .jsonl")
    p.add_argument("--out", required=True)
    p.add_argument("--no-redact", action="store_true", help="keep completions of harmful prompts")
    p.add_argument("--overwrite", action="store_true")
    return {"generate": cmd_generate, "judge": cmd_judge, "audit": cmd_audit, "export": cmd_export}


def _load_vector(path: str):
    import numpy as np

    if not Path(path).is_file():
        raise DriftError(f"direction file not found: {path} (drift directions --select writes selected_direction.npy)")
    try:
        return np.load(path)
    except ValueError as e:
        raise DriftError(f"{path} is not a .npy vector ({e})") from None


def cmd_generate(args: argparse.Namespace) -> int:
    """``drift generate``: completions with optional runtime interventions."""
    from contextlib import ExitStack

    from drift.data import load_prompts, parse_shard
    from drift.generate import GenerationConfig, generate_completions
    from drift.interventions import ablate_direction, add_direction
    from drift.models import load_model

    config = GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                              temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                              batch_size=args.batch_size, backend=args.backend, autocast=args.autocast)
    if args.add and args.add_layer is None:
        raise DriftError("--add needs --add-layer (the layer whose input receives the direction)")
    check_sharded_scale_args(args, "generate")
    if args.engine == "local" and not args.out.endswith(".jsonl"):
        raise DriftError(f"--out must end in .jsonl, not {args.out}")
    shard = parse_shard(args.shard) if args.shard else None
    vectors = {k: _load_vector(v) for k, v in (("ablate", args.ablate), ("add", args.add)) if v}
    prompts = load_prompts(args.prompts, langs=args.langs, labels=args.labels)
    if args.engine == "ray":
        return generate_with_ray(args, config, prompts, chat_options(args))
    if shard is not None:
        prompts = prompts.shard(*shard)
    lm = load_model(args.model, adapter=args.adapter, dtype=args.dtype, device=args.device, revision=args.revision,
                    chat=chat_options(args))
    with ExitStack() as stack:
        if "ablate" in vectors:
            stack.enter_context(ablate_direction(lm, vectors["ablate"]))
        if "add" in vectors:
            stack.enter_context(add_direction(lm, vectors["add"], args.add_layer, args.add_coeff))
        path = generate_completions(lm, prompts, args.out, config, overwrite=args.overwrite,
                                    progress=not args.quiet)
    print(f"wrote {path} ({len(prompts)} prompts" + (f", shard {args.shard}" if shard else "") + ")")
    return 0


def _judge_options(specs: list[str]) -> dict[str, dict]:
    options: dict[str, dict] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        judge, dot, name = key.rpartition(".")
        if not sep or not dot or not judge or not name:
            raise DriftError(f"cannot read --option {spec!r}: write JUDGE.KEY=VALUE, e.g. llm.model=my-judge")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        options.setdefault(judge, {})[name] = parsed
    return options


def cmd_judge(args: argparse.Namespace) -> int:
    """``drift judge``: run judges and write verdicts and tables."""
    import pandas as pd

    from drift.judge.audit import export_disagreements
    from drift.judge.run import judge_completions, load_completion_records

    if args.adjudicate is not None and len(args.adjudicate) != 3:
        raise DriftError("--adjudicate takes three judge names: FIRST,SECOND,ADJUDICATOR")
    reference, coherence_config = None, None
    if args.reference_model:
        from drift.judge.coherence import CoherenceConfig
        from drift.models import load_model

        if args.no_coherence or args.max_perplexity <= 0:
            raise DriftError("--reference-model feeds the coherence pass: drop --no-coherence and give "
                             "--max-perplexity > 0")
        reference = load_model(args.reference_model, device=args.device)
        coherence_config = CoherenceConfig(max_perplexity=args.max_perplexity)
    written = judge_completions(args.completions, args.judges, args.out, judge_options=_judge_options(args.option),
                                majority=args.majority, adjudicate=tuple(args.adjudicate) if args.adjudicate else None,
                                coherence=not args.no_coherence, coherence_config=coherence_config,
                                reference=reference, batch_size=args.batch_size, progress=not args.quiet)
    if args.audit:
        comp = pd.DataFrame(load_completion_records(args.completions))
        verdicts = pd.read_csv(written["verdicts.csv"])
        written["audit.csv"] = export_disagreements(verdicts, comp, Path(args.out) / "audit.csv", args.audit,
                                                    redact=args.redact, overwrite=True)
    asr = pd.read_csv(written["asr.csv"])
    pooled = asr[(asr.metric == "asr") & (asr.lang == "all") & (asr.category == "all")]
    for _, r in pooled.iterrows():
        print(f"{r['run_id']}  {r['judge']:<24} ASR {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
              f"n={r['n']}")
    print(f"wrote {', '.join(str(p) for p in written.values())} (they contain harmful text)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``drift audit``: judge accuracy against human labels."""
    import pandas as pd

    from drift.judge.audit import import_human_labels

    verdicts_path = Path(args.judged) / "verdicts.csv"
    if not verdicts_path.is_file():
        raise DriftError(f"{verdicts_path} not found: pass the folder written by drift judge")
    acc = import_human_labels(args.labels, pd.read_csv(verdicts_path))
    out = Path(args.out) if args.out else Path(args.judged) / "judge_accuracy.csv"
    acc.to_csv(out, index=False)
    for _, r in acc[acc.lang == "all"].iterrows():
        print(f"{r['judge']:<24} accuracy {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] n={r['n']}")
    print(f"wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``drift export``: a shareable copy of completions."""
    from drift.generate import export_completions

    path = export_completions(args.completions, args.out, redact=not args.no_redact, overwrite=args.overwrite)
    print(f"wrote {path}" + ("" if args.no_redact else " (harmful completions redacted)"))
    return 0
