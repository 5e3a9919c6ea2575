"""The embedded demo: capture the default model on bundled prompts and summarise each layer.

For now the demo covers capture; later stages (alignment, fine-tuning, judging, drift, report) extend it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drift.paths import cache_dir

DEMO_LANGS = ("en", "de", "fr", "zh")


@dataclass(frozen=True)
class LayerSummary:
    """Harmful-vs-harmless separation at one layer (last token, ``resid_post``).

    Attributes:
        layer: Layer index.
        norm: Mean L2 norm of the activations.
        separation: ||mean(harmful) - mean(harmless)|| divided by ``norm``.
        accuracy: Held-out accuracy (per language) of classifying harmful vs harmless by the projection onto the
            difference-of-means direction fitted on the training groups, thresholded at the midpoint.
    """

    layer: int
    norm: float
    separation: float
    accuracy: dict[str, float]


def summarise_layers(store, site: str = "resid_post", position: str | int = "last", seed: int = 0) -> list[LayerSummary]:
    """Per-layer summary of a store holding harmful and harmless prompts (split into train/test by group)."""
    df = store.prompts
    groups = df["group"].unique()
    rng = np.random.default_rng(seed)
    test_groups = set(rng.choice(groups, size=max(1, len(groups) // 4), replace=False))
    is_test = df["group"].isin(test_groups).to_numpy()
    harmful = (df["label"] == "harmful").to_numpy()
    out = []
    for layer in store.layers:
        x = store.read(site, layer, positions=[position])[:, 0].astype(np.float64)
        train = ~is_test
        mu_h, mu_b = x[train & harmful].mean(0), x[train & ~harmful].mean(0)
        direction = (mu_h - mu_b) / np.linalg.norm(mu_h - mu_b)
        threshold = (mu_h + mu_b) @ direction / 2
        predicted = x @ direction > threshold
        acc = {}
        for lang in df["lang"].unique():
            rows = is_test & (df["lang"] == lang).to_numpy()
            acc[str(lang)] = float((predicted[rows] == harmful[rows]).mean()) if rows.any() else float("nan")
        norm = float(np.linalg.norm(x, axis=1).mean())
        out.append(LayerSummary(layer, norm, float(np.linalg.norm(mu_h - mu_b) / norm), acc))
    return out


def format_summary(rows: list[LayerSummary]) -> str:
    """Render layer summaries as an aligned text table."""
    langs = list(rows[0].accuracy)
    head = f"{'layer':>5}  {'mean |x|':>9}  {'sep':>6}  " + "  ".join(f"acc_{lang:<3}" for lang in langs)
    lines = [head, "-" * len(head)]
    for r in rows:
        accs = "  ".join(f"{r.accuracy[lang]:>7.2f}" for lang in langs)
        lines.append(f"{r.layer:>5}  {r.norm:>9.2f}  {r.separation:>6.3f}  {accs}")
    return "\n".join(lines)


def run_demo(out_dir: str | Path | None = None, device: str = "auto", batch_size: int = 16,
             progress: bool = True) -> Path:
    """Extract the default model's activations on bundled prompts (en, de, fr, zh) and print a per-layer summary.

    Returns:
        The path of the activation store.
    """
    from drift.capture import CaptureConfig, extract
    from drift.data import load_prompts
    from drift.models import load_model
    from drift.store import open_store

    out_dir = Path(out_dir) if out_dir else cache_dir() / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = load_model("default", device=device)
    prompts = load_prompts("builtin:prompts", langs=list(DEMO_LANGS))
    cfg = CaptureConfig(positions=("last", "post_instruction"), batch_size=batch_size)
    path = extract(lm, prompts, out_dir / "base.h5", cfg, overwrite=True, progress=progress)
    with open_store(path) as store:
        print(f"\n{lm.model_id}: {store.n_prompts} prompts ({', '.join(DEMO_LANGS)}; harmful and harmless), "
              f"resid_post at the last token")
        print("sep = |mean(harmful) - mean(harmless)| / mean |x|; acc = held-out accuracy of that direction\n")
        print(format_summary(summarise_layers(store)))
    print(f"\nactivation store: {path}  (inspect with: drift info {path})")
    return path
