"""Causal experiments on a model: direction selection, cross-lingual ablation, patching and refusal restoration.

These run the model under the interventions of :mod:`drift.interventions` and score it with
:mod:`drift.scoring`; their results are long-form records (dicts) ready for a DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from drift.capture import encode_prompts
from drift.data.records import PromptSet
from drift.errors import DriftError
from drift.interventions import ablate_direction, add_direction, patch_activations
from drift.metrics.directions import POOLED, DirectionSet
from drift.metrics.selection import Candidate, Selection, select_candidate
from drift.models.chat import collate
from drift.scoring import kl_divergence, last_logprobs, refusal_score_from_logprobs, score_prompts


def evaluate_candidates(
    lm,
    directions: DirectionSet,
    harmful: PromptSet,
    harmless: PromptSet,
    site: str = "resid_pre",
    positions: Iterable[int] | None = None,
    layers: Iterable[int] | None = None,
    lang: str = POOLED,
    batch_size: int = 16,
    progress: bool = True,
) -> list[Candidate]:
    """Score every candidate (post-instruction position x layer) as in Arditi et al. (2024).

    Args:
        lm: The model the directions were fitted on.
        directions: Class means from :func:`~drift.metrics.directions.fit_directions`.
        harmful: Validation prompts for the ablation refusal score.
        harmless: Validation prompts for the steering score and the KL divergence.
        site: Site the directions come from (activation addition is applied there too).
        positions: Negative position offsets (default: every post-instruction position in the set).
        layers: Layers (default: every layer in the set).
        lang: Language whose direction is used (``all`` for pooled).
        batch_size: Prompts per forward pass.
        progress: Show a progress bar.
    """
    positions = list(positions) if positions is not None else [p for p in directions.positions if isinstance(p, int)]
    if not positions:
        raise DriftError("the directions have no post-instruction positions: extract with --positions post_instruction")
    layers = list(layers) if layers is not None else directions.layers
    base_harmless = score_prompts(lm, harmless, batch_size, keep_logprobs=True)
    out = []
    for pos in tqdm(positions, disable=not progress, desc="positions"):
        for layer in layers:
            vec = directions.direction(site, layer, pos, lang)
            with ablate_direction(lm, vec):
                ablated_harmful = score_prompts(lm, harmful, batch_size).refusal.mean()
                ablated_harmless = score_prompts(lm, harmless, batch_size, keep_logprobs=True).logprobs
            with add_direction(lm, vec, layer, site=site):
                steered = score_prompts(lm, harmless, batch_size).refusal.mean()
            kl = kl_divergence(base_harmless.logprobs, ablated_harmless).mean()
            out.append(Candidate(int(pos), int(layer), float(ablated_harmful), float(steered), float(kl)))
    return out


def select_direction(lm, directions: DirectionSet, harmful: PromptSet, harmless: PromptSet, **kwargs) -> Selection:
    """Evaluate every candidate and apply the published filters (see :mod:`drift.metrics.selection`).

    Keyword arguments go to :func:`evaluate_candidates`, except ``kl_threshold``, ``induce_threshold`` and
    ``prune_layer_fraction``, which go to the filters.
    """
    filters = {k: kwargs.pop(k) for k in ("kl_threshold", "induce_threshold", "prune_layer_fraction") if k in kwargs}
    candidates = evaluate_candidates(lm, directions, harmful, harmless, **kwargs)
    return select_candidate(candidates, lm.n_layers, **filters)


def cross_lingual_ablation(
    lm, directions: DirectionSet, harmful: PromptSet, site: str, layer: int, position, batch_size: int = 16
) -> list[dict]:
    """Ablate the direction of each language A and measure the refusal score on harmful prompts of each language B.

    Returns:
        Records with ``direction_lang``, ``eval_lang``, ``metric`` (``refusal_score`` or ``refusal_score_drop``),
        ``value`` and ``n``; ``direction_lang`` is ``none`` for the unablated baseline.
    """
    md = directions.get(site, layer)
    base = score_prompts(lm, harmful, batch_size).refusal
    langs = np.asarray([p.lang for p in harmful])
    records = []
    for eval_lang in harmful.langs:
        sel = langs == eval_lang
        records.append(dict(direction_lang="none", eval_lang=eval_lang, metric="refusal_score",
                            value=float(base[sel].mean()), n=int(sel.sum())))
    for dir_lang in md.langs:
        with ablate_direction(lm, md.direction(position, dir_lang)):
            scores = score_prompts(lm, harmful, batch_size).refusal
        for eval_lang in harmful.langs:
            sel = langs == eval_lang
            for metric, value in (("refusal_score", scores[sel].mean()),
                                  ("refusal_score_drop", (base[sel] - scores[sel]).mean())):
                records.append(dict(direction_lang=dir_lang, eval_lang=eval_lang, metric=metric,
                                    value=float(value), n=int(sel.sum())))
    return records


def _capture_full(lm, batch: dict, site: str, layer: int) -> torch.Tensor:
    from drift.capture.backends import HFHooksBackend

    got = {}
    HFHooksBackend().run(lm, batch, [(site, layer)], lambda s, l, h: got.__setitem__("h", h.detach().clone()))
    return got["h"]


@torch.inference_mode()
def patch_scan(base_lm, ft_lm, prompts: PromptSet, site: str = "resid_post", layers: Iterable[int] | None = None,
               positions: str = "post_instruction", batch_size: int = 16) -> list[dict]:
    """Patch the base model's activations into the fine-tuned model one layer at a time; score refusal.

    For each layer, the fine-tuned model runs with its residual at (site, layer) replaced by the base model's at the
    chosen positions (``post_instruction`` tokens, or ``all`` real tokens). A layer whose patch restores the base
    model's refusal score localises where the fine-tune changed behaviour.

    Returns:
        Records with ``layer`` (-1 for the unpatched fine-tuned model and -2 for the base model), ``lang``,
        ``metric`` = ``refusal_score``, ``value`` (mean) and ``n``.
    """
    if base_lm.tokenizer_hash() != ft_lm.tokenizer_hash():
        raise DriftError("patching needs the base and fine-tuned models to share a tokenizer")
    layers = list(range(ft_lm.n_layers)) if layers is None else list(layers)
    encoded = encode_prompts(ft_lm, prompts)
    langs = np.asarray([p.lang for p in prompts])
    from drift.models.refusal import refusal_token_ids

    tokens = {lang: refusal_token_ids(ft_lm.formatter, lang) for lang in prompts.langs}
    results = {key: np.zeros(len(prompts)) for key in [-2, -1, *layers]}
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))
    for start in range(0, len(order), batch_size):
        rows = np.asarray(order[start : start + batch_size])
        enc = [encoded[i] for i in rows]
        batch = collate(enc, ft_lm.tokenizer.pad_token_id, "left", ft_lm.device)
        width = batch["input_ids"].shape[1]
        mask = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
        for j, e in enumerate(enc):
            first = width - len(e.input_ids) + (e.instr_end if positions == "post_instruction" else 0)
            mask[j, first:] = True

        def score(lm, into):
            lp = last_logprobs(lm, batch)
            for lang in np.unique(langs[rows]):
                sel = np.flatnonzero(langs[rows] == lang)
                into[rows[sel]] = refusal_score_from_logprobs(lp[sel], tokens[lang]).double().cpu().numpy()

        score(base_lm, results[-2])
        score(ft_lm, results[-1])
        for layer in layers:
            source = _capture_full(base_lm, batch, site, layer)
            with patch_activations(ft_lm, site, layer, source, mask):
                score(ft_lm, results[layer])
    return _by_lang(results, langs, "refusal_score", "layer")


def restore_with_direction(ft_lm, direction, layer: int, harmful: PromptSet, coeffs: Iterable[float] = (0, 0.5, 1, 2),
                           site: str = "resid_pre", batch_size: int = 16) -> list[dict]:
    """Add ``coeff`` times a (base-model) refusal direction to the fine-tuned model; score refusal on harmful prompts.

    Returns:
        Records with ``coeff``, ``lang``, ``metric`` = ``refusal_score``, ``value`` and ``n``.
    """
    langs = np.asarray([p.lang for p in harmful])
    results = {}
    for coeff in coeffs:
        with add_direction(ft_lm, direction, layer, coeff, site=site):
            results[float(coeff)] = score_prompts(ft_lm, harmful, batch_size).refusal
    return _by_lang(results, langs, "refusal_score", "coeff")


def _by_lang(results: dict, langs: np.ndarray, metric: str, key: str) -> list[dict]:
    records = []
    for k, values in results.items():
        for lang in [*np.unique(langs), POOLED]:
            sel = np.ones(len(langs), bool) if lang == POOLED else langs == lang
            records.append({key: k, "lang": str(lang), "metric": metric, "value": float(values[sel].mean()),
                            "n": int(sel.sum())})
    return records
