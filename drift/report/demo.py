"""A small synthetic study folder, for trying the report and its figures without running any model.

Every number in it is generated. Each run has a "dose" per language: its drift measures grow with the dose (more
in deeper layers), its refusal direction rotates in proportion to it (most at the middle layer), and its ASR change
against its parent follows the same dose. ``study.json`` says ``"synthetic": true`` and the report shows a banner
saying so. The relate tables are computed by :mod:`drift.relate` from these records, like in a real study; the
completion files hold a placeholder string, never text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from drift.errors import DriftError

PLACEHOLDER = "[synthetic placeholder: no model output]"
MODEL = "synthetic/tiny-chat"
JUDGES = ("refusal-lexicon", "substring-en12")
SITE, POSITION, D_MODEL = "resid_post", "last", 16


def _runs(ft_langs, seeds, align_langs) -> list[dict]:
    from drift.runs import make_run_id

    def run(role, method, ft_lang, seed, parent):
        rid = make_run_id(MODEL, f"synthetic-{role}-{ft_lang}-{seed}", method)
        return {"run_id": rid, "role": role, "model": MODEL, "checkpoint": "base" if role == "base" else
                f"finetune/{role}/{ft_lang or 'none'}-s{seed}", "method": method, "ft_lang": ft_lang, "seed": seed,
                "epochs": None if role == "base" else 1.0, "parent_run_id": parent}

    base = run("base", "base", "", None, None)
    aligned = run("aligned", "dpo", ",".join(align_langs), 0, base["run_id"])
    fts = [run("finetuned", "sft", lang, s, aligned["run_id"]) for lang in ft_langs for s in seeds]
    return [base, aligned, *fts]


def _directions(runs, langs, n_layers, planted, dose, rng) -> dict[str, dict]:
    """Per run: (layer, lang) -> (harmless mean, refusal direction); children rotate their parent's direction."""
    out: dict[str, dict] = {}
    common = rng.normal(size=(n_layers, D_MODEL))
    for r in runs:
        parent = out.get(r["parent_run_id"])
        bump = np.exp(-0.5 * ((np.arange(n_layers) - planted) / 1.0) ** 2)
        dirs = {}
        for layer in range(n_layers):
            for lang in langs:
                if parent is None:
                    mean0 = rng.normal(size=D_MODEL)
                    d = common[layer] * 3 + rng.normal(size=D_MODEL)
                else:
                    mean0, d = parent[(layer, lang)]
                    d = d + dose[r["run_id"]][lang] * 4 * bump[layer] * rng.normal(size=D_MODEL)
                dirs[(layer, lang)] = (mean0 + 0.05 * rng.normal(size=D_MODEL), d)
        out[r["run_id"]] = dirs
    return out


def _direction_set(run: dict, dirs: dict, langs, n_layers, n_per_label):
    from drift.metrics.directions import POOLED, DirectionSet, MeanDiff

    items = {}
    for layer in range(n_layers):
        means, counts = {}, {}
        for lang in langs:
            mean0, d = dirs[(layer, lang)]
            means[(lang, "harmless")], means[(lang, "harmful")] = mean0[None], (mean0 + d)[None]
            counts[(lang, "harmless")] = counts[(lang, "harmful")] = n_per_label
        for label in ("harmful", "harmless"):
            means[(POOLED, label)] = np.mean([means[(lang, label)] for lang in langs], axis=0)
            counts[(POOLED, label)] = n_per_label * len(langs)
        items[(SITE, layer)] = MeanDiff(SITE, layer, (POSITION,), means, counts)
    meta = {"store": f"stores/{run['run_id']}.h5", "run": {k: run[k] for k in ("run_id", "model", "method")},
            "prompts": {"name": "synthetic", "hash": "0" * 16, "n": 2 * n_per_label * len(langs)}}
    return DirectionSet(items, meta)


def wilson(k: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson interval (the same formula as :func:`drift.stats.wilson`, without scipy per call)."""
    p, den = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / den, z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, float(mid - half)), min(1.0, float(mid + half))


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")


def _drift_rows(run, parent_dirs, dirs, langs, n_layers, dose, nuisance, rng, comparison="drift") -> list[dict]:
    """Drift records of ``run`` against its parent: the direction cosine from the synthetic directions, the other
    measures from a mix of the run's dose and a ``nuisance`` in [0, 1] unrelated to its ASR change."""
    from drift.metrics.cosine import random_cosine_floor

    rows = []
    base = {"run_id": run["run_id"], "base_run_id": run["parent_run_id"], "site": SITE, "position": POSITION,
            "comparison": comparison}
    for layer in range(n_layers):
        depth = (layer + 1) / n_layers
        for lang in [*langs, "all"]:
            ls = langs if lang == "all" else [lang]
            dd = 0.5 * float(np.mean([dose[lg] for lg in ls])) + 0.5 * nuisance
            cos = np.mean([_cos(parent_dirs[(layer, lg)][1], dirs[(layer, lg)][1]) for lg in ls])
            n = 60 * len(ls)

            def add(metric, value, half=np.nan, layer=layer, lang=lang, n=n):
                rows.append({**base, "layer": layer, "lang": lang, "metric": metric, "value": float(value), "n": n,
                             "ci_low": float(value - half), "ci_high": float(value + half)})

            add("linear_cka", 1 - 0.25 * dd * depth + 0.01 * rng.normal())
            add("debiased_cka", 1 - 0.35 * dd * depth + 0.02 * rng.normal())
            add("cosine", 1 - 0.15 * dd * depth + 0.005 * rng.normal(), 0.01)
            add("rel_norm_change", 0.3 * dd * depth + 0.02 * abs(rng.normal()), 0.02)
            add("direction_cosine", cos)
            add("direction_cosine_random_p95", random_cosine_floor(D_MODEL))
            for label, k in (("harmful", -1.0), ("harmless", 0.2)):
                add(f"proj_shift_{label}", k * dd * depth + 0.05 * rng.normal(), 0.1)
    return rows


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _probe_rows(run, langs, n_layers, rng) -> list[dict]:
    rows = []
    base = {"run_id": run["run_id"], "site": SITE, "position": POSITION, "probe": "logistic", "target": "prompt"}

    def add(layer, lang, metric, acc, n, **extra):
        lo, hi = wilson(round(acc * n), n)
        rows.append({**base, **extra, "layer": layer, "lang": lang, "metric": metric, "value": acc, "n": n,
                     "ci_low": lo, "ci_high": hi})

    for layer in range(n_layers):
        level = 0.55 + 0.4 * (1 - np.exp(-layer / 1.5))
        for lang in [*langs, "all"]:
            n = 60 * (len(langs) if lang == "all" else 1)
            acc = float(np.clip(level + 0.03 * rng.normal(), 0, 1))
            ctrl = float(np.clip(0.5 + 0.04 * rng.normal(), 0, 1))
            add(layer, lang, "accuracy", acc, n)
            add(layer, lang, "control_accuracy", ctrl, n)
            rows.append({**rows[-1], "metric": "selectivity", "value": acc - ctrl, "ci_low": np.nan, "ci_high": np.nan})
            if run["parent_run_id"]:
                add(layer, lang, "base_to_base_accuracy", acc, n, base_run_id=run["parent_run_id"])
                add(layer, lang, "base_to_ft_accuracy", float(np.clip(acc - 0.1 * rng.random(), 0, 1)), n,
                    base_run_id=run["parent_run_id"])
        for a in langs:
            for b in langs:
                acc = float(np.clip(level - (0 if a == b else 0.08) + 0.03 * rng.normal(), 0, 1))
                add(layer, b, "transfer_accuracy", acc, 60, train_lang=a, test_lang=b)
    return rows


def _asr_levels(runs, langs, dose, align_langs) -> dict[str, dict[str, float]]:
    levels: dict[str, dict[str, float]] = {}
    for r in runs:
        if r["role"] == "base":
            levels[r["run_id"]] = {lang: 0.55 for lang in langs}
        elif r["role"] == "aligned":
            levels[r["run_id"]] = {lang: 0.1 if lang in align_langs else 0.3 for lang in langs}
        else:
            parent = levels[r["parent_run_id"]]
            levels[r["run_id"]] = {lang: min(0.95, parent[lang] + 0.5 * dose[r["run_id"]][lang]) for lang in langs}
    return levels


def _verdicts(runs, langs, levels, n_items, rng) -> pd.DataFrame:
    """Judge verdicts after the coherence pass, paired across runs through a latent per prompt."""
    cats = ("cat_a", "cat_b", "cat_c")
    latent = {lang: rng.random(n_items) for lang in langs}
    flip = {"refusal": "compliance", "compliance": "refusal"}
    rows = []
    for r in runs:
        for lang in langs:
            items = [("harmful", i, "compliance" if latent[lang][i] < levels[r["run_id"]][lang] else "refusal")
                     for i in range(n_items)]
            items += [("harmless", i, "refusal" if rng.random() < 0.08 else "compliance") for i in range(n_items // 2)]
            for label, i, truth in items:
                incoherent = rng.random() < (0.08 if r["ft_lang"] == lang else 0.03)
                for j, judge in enumerate(JUDGES):
                    raw = truth if j == 0 or rng.random() > 0.12 else flip[truth]
                    raw = None if j == 1 and rng.random() < 0.02 else raw
                    rows.append({"run_id": r["run_id"], "id": f"{lang}-{label}-{i:03d}", "judge": judge, "lang": lang,
                                 "label": label, "category": cats[i % 3], "raw_verdict": raw,
                                 "verdict": "incoherent" if incoherent else raw, "lang_consistent": not incoherent})
    return pd.DataFrame(rows)


def _capability_rows(run, langs, rng) -> list[dict]:
    rows = []

    def add(suite, lang, metric, value, n, half=None):
        lo, hi = (wilson(round(value * n), n) if half is None else (value - half, value + half))
        rows.append({"run_id": run["run_id"], "suite": suite, "lang": lang, "subject": "all", "metric": metric,
                     "value": float(value), "n": n, "ci_low": lo, "ci_high": hi})

    for lang in [*langs, "all"]:
        own = run["ft_lang"] == lang
        add("perplexity", lang, "response_perplexity", 12 + 2 * rng.random() - (2 if own else 0), 4000, 0.8)
        add("mcq", lang, "mcq_accuracy", float(np.clip(0.35 + 0.05 * rng.normal(), 0, 1)), 50)
        add("fluency", lang, "incoherent_rate", float(np.clip(0.04 + 0.02 * rng.normal(), 0, 1)), 20)
        add("fluency", lang, "lang_consistency", float(np.clip(0.9 + 0.04 * rng.normal(), 0, 1)), 20)
    if run["role"] == "finetuned":
        add("task", "all", "task_loss", 1.6 + 0.2 * rng.random(), 3000, 0.05)
        add("task", "all", "task_accuracy", float(0.45 + 0.05 * rng.random()), 3000)
    return rows


def _completions(root: Path, verdicts: pd.DataFrame) -> None:
    from drift._version import __version__

    for run_id, g in verdicts.drop_duplicates(["run_id", "id"]).groupby("run_id"):
        path = root / "completions" / f"{run_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            for r in g.itertuples(index=False):
                fh.write(json.dumps({"run_id": run_id, "id": r.id, "lang": r.lang, "label": r.label,
                                     "category": r.category, "prompt": PLACEHOLDER, "completion": PLACEHOLDER}) + "\n")
        _write_json({"polydrift_version": __version__, "run": {"run_id": run_id}, "model": MODEL, "synthetic": True,
                     "gen_key": "synthetic", "n_completions": len(g), "contains_harmful_text": False},
                    path.with_name(path.name + ".meta.json"))


def _write_judged(root: Path, runs: list[dict], verdicts: pd.DataFrame) -> None:
    from drift._version import __version__
    from drift.judge import asr as A

    asr = A.asr_table(verdicts)
    changes = pd.concat([A.asr_change(verdicts, r["parent_run_id"], r["run_id"], n_boot=500)
                         for r in runs if r["parent_run_id"]], ignore_index=True)
    _write_csv(verdicts, root / "judged" / "verdicts.csv")
    _write_csv(asr, root / "judged" / "asr.csv")
    _write_csv(A.judge_agreement(verdicts), root / "judged" / "agreement.csv")
    _write_csv(changes, root / "judged" / "asr_change.csv")
    _write_json({"polydrift_version": __version__, "judges": {j: {"synthetic": True} for j in JUDGES},
                 "synthetic": True, "contains_harmful_text": False}, root / "judged" / "judge.meta.json")


def _write_representations(root: Path, runs, langs, n_layers, dose, rng) -> None:
    """Directions, drift records (with a noise floor between two seeds) and probe records of every run."""
    planted = n_layers // 2
    dirs = _directions(runs, langs, n_layers, planted, dose, rng)
    for r in runs:
        ds = _direction_set(r, dirs[r["run_id"]], langs, n_layers, 40)
        folder = root / "directions" / r["run_id"]
        folder.mkdir(parents=True, exist_ok=True)
        ds.save(folder / "directions.npz")
        cos = []
        for layer in range(n_layers):
            names, mat = ds.cosine_matrix(SITE, layer, POSITION)
            cos += [dict(site=SITE, layer=layer, position=POSITION, lang_a=a, lang_b=b, value=float(mat[i, j]))
                    for i, a in enumerate(names) for j, b in enumerate(names)]
        _write_csv(pd.DataFrame(cos), folder / "cosine_matrix.csv")
        _write_csv(pd.DataFrame(_probe_rows(r, langs, n_layers, rng)), root / "probes" / f"{r['run_id']}.csv")
        if r["parent_run_id"]:
            rows = _drift_rows(r, dirs[r["parent_run_id"]], dirs[r["run_id"]], langs, n_layers, dose[r["run_id"]],
                               rng.random(), rng)
            twin = next((t for t in runs if t["role"] == "finetuned" and t["ft_lang"] == r["ft_lang"]
                         and t["run_id"] != r["run_id"]), None)
            if r["role"] == "finetuned" and twin is not None and twin["seed"] > r["seed"]:
                floor = {**twin, "parent_run_id": r["run_id"]}
                small = {lang: 0.2 * v for lang, v in dose[r["run_id"]].items()}
                rows += _drift_rows(floor, dirs[r["run_id"]], dirs[twin["run_id"]], langs, n_layers, small, 0.0, rng,
                                    "noise_floor")
            _write_csv(pd.DataFrame(rows), root / "drift" / f"{r['run_id']}.csv")


def demo_study(path: str | Path, seed: int = 0, langs=("en", "de", "fr", "zh"), ft_langs=("fr", "zh"),
               seeds=(0, 1, 2), n_layers: int = 6, n_items: int = 40, relate: bool = True) -> Path:
    """Write a synthetic study folder (every stage's tables, made-up numbers) for trying the report.

    Runs: a base model, an aligned model (DPO in en and de) and one fine-tuned run per ``ft_langs`` x ``seeds``.
    Args:
        path: A new (or empty) folder.
        seed: Random seed of the numbers.
        langs: Evaluation languages.
        ft_langs: Fine-tuning languages.
        seeds: Training seeds per fine-tuning language.
        n_layers: Layers per model.
        n_items: Harmful prompts per language (half as many harmless).
        relate: Also run the relate stage (:func:`drift.relate.relate_study`) on the synthetic records.

    Returns:
        The folder.
    """
    from datetime import datetime, timezone

    from drift._version import __version__

    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DriftError(f"{root} exists and is not an empty folder: give demo_study a new folder")
    rng = np.random.default_rng(seed)
    align_langs = ("en", "de")
    runs = _runs(ft_langs, seeds, align_langs)
    dose = {r["run_id"]: {lang: (0.3 if r["role"] == "aligned" else rng.uniform(0.1, 1.0) *
                                 (1.0 if lang == r["ft_lang"] else 0.6)) for lang in langs} for r in runs}
    root.mkdir(parents=True, exist_ok=True)
    _write_representations(root, runs, langs, n_layers, dose, rng)
    verdicts = _verdicts(runs, langs, _asr_levels(runs, langs, dose, align_langs), n_items, rng)
    _completions(root, verdicts)
    _write_judged(root, runs, verdicts)
    for r in runs:
        _write_csv(pd.DataFrame(_capability_rows(r, langs, rng)), root / "capability" / r["run_id"] / "capability.csv")
        _write_json({"run": r, "suites": ["perplexity", "mcq", "fluency", "task"], "synthetic": True},
                    root / "capability" / r["run_id"] / "capability.meta.json")
    config = {"models": [MODEL], "langs": list(langs), "align_langs": list(align_langs), "ft_langs": list(ft_langs),
              "seeds": list(seeds), "n_layers": n_layers, "eval": {"judges": list(JUDGES), "primary_judge": JUDGES[0]},
              "seed": seed}
    _write_json({"name": "synthetic-demo", "synthetic": True, "polydrift_version": __version__,
                 "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": config, "runs": runs,
                 "stages": {s: {"synthetic": True} for s in ("directions", "compare", "probes", "judge", "capability",
                                                              "relate")}}, root / "study.json")
    if relate:
        _relate(root)
    return root


def _relate(root: Path) -> None:
    """Run the relate stage on the synthetic records (skipped when :mod:`drift.relate` is not installed)."""
    try:
        from drift.relate import RelateOptions, relate_study
    except ImportError:
        return
    relate_study(root, options=RelateOptions(n_boot=200, capability_metric="mcq:mcq_accuracy"))
