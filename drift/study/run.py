"""``drift run STUDY.toml``: fine-tuning, generation, judging, capture, metrics, probes, capability, relate, report.

Model states of a study: the base model, the aligned model (when ``[align]`` is given: DPO refusal alignment,
saved as merged weights) and every run of the ``[finetune]`` sweep, fine-tuned from the aligned model (or the base).
Each is evaluated on the same held-out prompts (groups never used for alignment). Every stage skips work whose
artifacts exist with the same inputs (see :mod:`drift.study.stages`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from drift.errors import DriftError
from drift.study.config import StudyConfig
from drift.study.stages import Stages


def eval_prompts(cfg: StudyConfig):
    """The held-out evaluation prompts: groups outside the alignment split, ``limit_per_lang`` per lang and label."""
    from drift.data import load_prompts
    from drift.data.records import PromptSet
    from drift.finetune.sweep import heldout_group

    ev = cfg.eval
    from drift.data.limits import first_per

    prompts = load_prompts(ev.prompts, langs=list(ev.langs))
    held = [p for p in prompts if heldout_group(p.group, ev.heldout_fraction)]
    kept = first_per(held, ev.limit_per_lang, key=lambda p: (p.lang, p.label))
    if not kept:
        raise DriftError("no evaluation prompts left: raise [eval] heldout_fraction or limit_per_lang")
    return PromptSet(kept, name=f"{ev.prompts} held-out")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


class Study:
    """Runs one study into its folder; every method is one stage (or one stage per model state)."""

    def __init__(self, cfg: StudyConfig, log: Callable[[str], None] = print, progress: bool = False) -> None:
        self.cfg, self.log, self.progress = cfg, log, progress
        self.root = Path(cfg.out)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stages = Stages(self.root, log)
        self.runs: list[dict] = []  # {run_id, role, model (load spec), adapter, parent_run_id, ...}

    # -- model states ------------------------------------------------------------------------------------------
    def _base_run(self) -> dict:
        from drift.models import load_model
        from drift.runs import manifest_for

        marker = self.root / ".stages" / "base-run.json"
        key = {"model": self.cfg.model}
        if marker.is_file() and json.loads(marker.read_text())["key"] == key:
            return json.loads(marker.read_text())["run"]
        lm = load_model(self.cfg.model, device="cpu", dtype="float32")
        m = manifest_for(lm)
        run = {"run_id": m.run_id, "role": "base", "spec": self.cfg.model, "model": m.model, "checkpoint": "base",
               "method": "base", "ft_lang": "", "seed": None, "epochs": None, "parent_run_id": None}
        _write_json(marker, {"key": key, "run": run})
        return run

    def _sweep(self, name: str, table: dict, model_spec: str, defaults: dict, joint_langs: bool = False):
        from dataclasses import replace

        from drift.finetune import make_sweep, run_sweep

        table = {**defaults, **table, "model": model_spec, "out": str(self.root / "finetune" / name),
                 "device": self.cfg.device}
        langs = tuple(table.pop("langs", ())) if joint_langs else None
        sweep = make_sweep(table)
        if joint_langs:  # one run on all the languages together (alignment), not one run per language
            sweep = replace(sweep, base=replace(sweep.base, langs=langs), langs=())
        return run_sweep(sweep, progress=self.progress, log=self.log)

    def model_states(self) -> list[dict]:
        """Train what is missing and return every model state of the study.

        ``[align]`` may be one table or a list of tables (``[[align]]``, e.g. English-only and multilingual
        alignment); the ``[finetune]`` sweep then runs from every aligned model (or from the base without alignment).
        """
        base = self._base_run()
        runs, parents = [base], [base]
        aligns = self.cfg.align if isinstance(self.cfg.align, list) else ([self.cfg.align] if self.cfg.align else [])
        defaults = {"method": "dpo", "data": "builtin:refusal-pairs", "sft_weight": 1.0, "save": "merged",
                    "heldout_fraction": self.cfg.eval.heldout_fraction}
        if aligns:
            parents = []
        for table in aligns:
            name = "align-" + "+".join(table.get("langs", ["all"]))
            m = self._sweep(name, {k: v for k, v in table.items() if k != "name"}, self.cfg.model, defaults,
                            joint_langs=True)[0]
            aligned = {"run_id": m.run_id, "role": "aligned", "spec": m.checkpoint, "model": m.model,
                       "checkpoint": m.checkpoint, "method": m.method, "ft_lang": m.ft_lang, "seed": m.seed,
                       "epochs": m.epochs, "parent_run_id": base["run_id"]}
            runs.append(aligned)
            parents.append(aligned)
        if self.cfg.finetune:
            for parent in parents:
                tag = parent["ft_lang"].replace(",", "+") if parent["role"] == "aligned" else "base"
                for m in self._sweep(f"sft-from-{tag}", self.cfg.finetune, parent["spec"],
                                     {"method": "sft", "data": "builtin:instructions"}):
                    runs.append({"run_id": m.run_id, "role": "finetuned", "spec": parent["spec"],
                                 "adapter": m.checkpoint if m.extra.get("saved") == "adapter" else None,
                                 "model": m.model, "checkpoint": m.checkpoint, "method": m.method,
                                 "ft_lang": m.ft_lang, "seed": m.seed, "epochs": m.epochs,
                                 "parent_run_id": parent["run_id"]})
        self.runs = runs
        return runs

    # -- per-run evaluation ------------------------------------------------------------------------------------
    def _lm(self, run: dict):
        from drift.models import load_model

        if getattr(self, "_loaded", (None, None))[0] != run["run_id"]:
            self._loaded = (None, None)
            lm = load_model(run["spec"], adapter=run.get("adapter"), device=self.cfg.device)
            self._loaded = (run["run_id"], lm)
        return self._loaded[1]

    def _paths(self, run: dict) -> dict[str, Path]:
        r = self.root
        rid = run["run_id"]
        return {"completions": r / "completions" / f"{rid}.jsonl", "store": r / "stores" / f"{rid}.h5",
                "directions": r / "directions" / rid, "drift": r / "drift" / f"{rid}.csv",
                "probes": r / "probes" / f"{rid}.csv", "capability": r / "capability" / rid}

    def evaluate(self, run: dict, prompts, by_id: dict[str, dict]) -> None:
        """Generation, capture, directions, drift against the parent, probes and capability of one model state."""
        from drift.capture import CaptureConfig, extract
        from drift.generate import GenerationConfig, generate_completions
        from drift.pipeline import run_compare, run_directions, run_probes

        ev, p, rid = self.cfg.eval, self._paths(run), run["run_id"]
        for d in ("completions", "stores", "directions", "drift", "probes", "capability"):
            (self.root / d).mkdir(exist_ok=True)
        gen = GenerationConfig(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, autocast=ev.autocast)
        key = {"run": rid, "prompts": prompts.content_hash(), "gen": gen.to_dict()}
        self.stages.run(f"generate/{rid}", key, [p["completions"]], lambda: generate_completions(
            self._lm(run), prompts, p["completions"], gen, overwrite=True, progress=self.progress))
        cap = CaptureConfig(sites=ev.sites, positions=ev.positions, batch_size=ev.batch_size)
        key = {"run": rid, "prompts": prompts.content_hash(), "capture": asdict(cap)}
        self.stages.run(f"capture/{rid}", key, [p["store"]], lambda: extract(
            self._lm(run), prompts, p["store"], cap, overwrite=True, progress=self.progress))
        self.stages.run(f"directions/{rid}", {"store": key}, [p["directions"] / "directions.npz"],
                        lambda: run_directions(p["store"], p["directions"], overwrite=True, progress=False))
        parent = by_id.get(run.get("parent_run_id") or "")
        if parent is not None:
            base_store = self._paths(parent)["store"]
            self.stages.run(f"drift/{rid}", {"run": rid, "parent": parent["run_id"], "capture": key,
                                             "metrics": ev.compare_metrics}, [p["drift"]],
                            lambda: run_compare(base_store, p["store"], p["drift"], metrics=list(ev.compare_metrics),
                                                by_lang=True, overwrite=True))
        if ev.probes:
            self.stages.run(f"probes/{rid}", {"store": key}, [p["probes"]], lambda: run_probes(
                p["store"], p["probes"], probe="diffmean", folds=4, overwrite=True))
            if parent is not None:
                moved = p["probes"].with_name(f"{rid}-transfer.csv")
                self.stages.run(f"probes-transfer/{rid}", {"store": key, "parent": parent["run_id"]}, [moved],
                                lambda: run_probes(self._paths(parent)["store"], moved, transfer=p["store"],
                                                   probe="diffmean", folds=4, overwrite=True))
        if ev.capability_suites:
            from drift.capability.run import run_capability

            self.stages.run(f"capability/{rid}", {"run": rid, "suites": ev.capability_suites, "v": 2,
                                                  "limit": ev.capability_limit, "langs": ev.langs},
                            [p["capability"] / "capability.csv"],
                            lambda: run_capability(run["spec"], p["capability"], adapter=run.get("adapter"),
                                                   suites=ev.capability_suites, langs=list(ev.langs),
                                                   limit=ev.capability_limit, device=self.cfg.device,
                                                   heldout_fraction=self.cfg.finetune.get("heldout_fraction", 0.1),
                                                   batch_size=ev.batch_size, overwrite=True, log=self.log))

    def judge(self) -> None:
        """Judge every run's completions together (paired ASR changes need them in one table)."""
        from drift.judge.run import judge_completions

        files = [self._paths(r)["completions"] for r in self.runs]
        key = {"files": [str(f) for f in files], "sizes": [f.stat().st_size for f in files],
               "judges": self.cfg.eval.judges}
        judged = self.root / "judged"
        self.stages.run("judge", key, [judged / "asr.csv"], lambda: judge_completions(
            files, list(self.cfg.eval.judges), judged, progress=self.progress))

    def relate_and_report(self) -> Path:
        """Relate drift to ASR change (when the relate stage is available) and build the report."""
        sources = [*self.root.glob("drift/*.csv"), *self.root.glob("probes/*.csv"), self.root / "judged" / "asr.csv",
                   *self.root.glob("capability/*/capability.csv"), *self.root.glob("directions/*/cosine_matrix.csv")]
        inputs = {"runs": [r["run_id"] for r in self.runs],
                  "stamp": sorted(f"{p.relative_to(self.root)}:{p.stat().st_mtime_ns}" for p in sources if p.exists())}
        from drift.relate.io import relate_study
        from drift.relate.options import RelateOptions

        options = RelateOptions(judges=(self.cfg.eval.primary_judge,), capability_metric="mcq:mcq_accuracy")
        self.stages.run("relate", inputs, [self.root / "relate" / "relate.csv"], lambda: self._relate(options))
        self.stages.run("capability-matched", inputs, [self.root / "relate" / "capability_matched.csv"],
                        self._capability_matched)
        from drift.report import build_report

        report = self.root / "report" / "index.html"
        self.stages.run("report", inputs, [report], lambda: build_report(self.root))
        return report

    def _relate(self, options) -> None:
        """Relate drift to ASR; when the records cannot support it (e.g. no run has a defined ASR), write empty
        tables with the reason in ``relate/NOTE.txt`` so the report says why instead of the study failing."""
        from drift.relate.io import relate_study

        out = self.root / "relate"
        try:
            relate_study(self.root, options=options, overwrite=True)
            (out / "NOTE.txt").unlink(missing_ok=True)
        except DriftError as e:
            out.mkdir(exist_ok=True)
            (out / "NOTE.txt").write_text(f"drift was not related to ASR: {e}\n", encoding="utf-8")
            (out / "relate.csv").write_text("measure,layer,eval_lang,metric,value\n", encoding="utf-8")
            self.log(f"[note] relate: {e}")

    def _capability_matched(self) -> None:
        """ASR change of the fine-tuned runs read at a common task-capability level (``capability_matched.csv``)
        next to the last checkpoints, and where the comparison between fine-tuning languages flips
        (``capability_flips.csv``); a note instead when no sweep curve has two checkpoints."""
        import pandas as pd

        from drift.capability.matched import compare_matched, match_capability, study_checkpoints

        out = self.root / "relate"
        out.mkdir(exist_ok=True)
        caps = [pd.read_csv(p) for p in self.root.glob("capability/*/capability.csv")]
        points = study_checkpoints(self.runs, pd.read_csv(self.root / "judged" / "asr.csv"),
                                   pd.concat(caps) if caps else pd.DataFrame(columns=["run_id", "metric", "lang"]),
                                   self.cfg.eval.primary_judge)
        curves = points.groupby(["ft_lang", "seed", "eval_lang"]).size() if len(points) else pd.Series(dtype=int)
        if len(curves) == 0 or curves.max() < 2:
            points.assign(matched=float("nan"), note="fewer than two checkpoints per curve: nothing to match").to_csv(
                out / "capability_matched.csv", index=False)
            return
        table, level = match_capability(points, keys=("seed", "eval_lang"))
        table.assign(level=level).to_csv(out / "capability_matched.csv", index=False)
        compare_matched(table, by=("eval_lang",)).to_csv(out / "capability_flips.csv", index=False)

    def write_manifest(self) -> None:
        """``study.json``: the config, every model state and the stage timings."""
        from drift._version import __version__

        _write_json(self.root / "study.json", {
            "name": self.cfg.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "polydrift_version": __version__,
            "config": self.cfg.to_dict(), "runs": self.runs, "stages": self.stages.timings})


def run_study(cfg: StudyConfig, log: Callable[[str], None] = print, progress: bool = False) -> Path:
    """Run (or resume) a whole study and return the path of its report."""
    study = Study(cfg, log, progress)
    prompts = eval_prompts(cfg)
    log(f"study {cfg.name}: {len(prompts)} evaluation prompts in {', '.join(cfg.eval.langs)} -> {study.root}")
    runs = study.model_states()
    study.write_manifest()
    by_id = {r["run_id"]: r for r in runs}
    for run in runs:
        study.evaluate(run, prompts, by_id)
    study.judge()
    study.write_manifest()
    report = study.relate_and_report()
    study.write_manifest()
    return report
