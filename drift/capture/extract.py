"""Extraction: prompts in, an activation store out (batched, length-sorted, resumable, writing in a thread)."""

from __future__ import annotations

import platform
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from drift._version import __version__
from drift.capture.backends import get_backend
from drift.capture.positions import (
    BatchIndex,
    check_positions,
    common_n_post,
    position_labels,
    real_tokens,
    reduce_positions,
)
from drift.capture.sites import check_layers, check_sites
from drift.data.records import PromptSet
from drift.errors import DriftError
from drift.models.chat import Encoded, collate
from drift.runs import manifest_for
from drift.store import StorePlan, StoreWriter
from drift.store.layout import STORAGE_DTYPES, processing_order


@dataclass(frozen=True)
class CaptureConfig:
    """What to capture and how.

    Attributes:
        sites: Residual sites (``resid_pre``, ``resid_mid``, ``resid_post``).
        layers: Layer indices (negative counts from the end); None for every layer.
        positions: Any of ``last``, ``post_instruction``, ``mean``, ``all``.
        backend: ``hf``, ``nnsight`` or ``transformer_lens``.
        batch_size: Prompts per forward pass.
        storage_dtype: ``float32``, ``float16`` or ``bfloat16``.
        padding_side: ``left`` or ``right`` (results are identical; left is what generation uses).
    """

    sites: tuple[str, ...] = ("resid_post",)
    layers: tuple[int, ...] | None = None
    positions: tuple[str, ...] = ("last",)
    backend: str = "hf"
    batch_size: int = 8
    storage_dtype: str = "float32"
    padding_side: str = "left"

    def __post_init__(self) -> None:
        check_sites(self.sites)
        check_positions(self.positions)
        if self.batch_size < 1:
            raise DriftError(f"batch size must be at least 1, not {self.batch_size}")
        if self.storage_dtype not in STORAGE_DTYPES:
            raise DriftError(f"unknown storage dtype {self.storage_dtype!r}: use {', '.join(STORAGE_DTYPES)}")
        if self.padding_side not in ("left", "right"):
            raise DriftError(f"padding side must be 'left' or 'right', not {self.padding_side!r}")


def encode_prompts(lm, prompts: PromptSet) -> list[Encoded]:
    """Tokenize every prompt with the model's chat format, refusing prompts longer than the model's context."""
    limit = lm.max_length
    encoded = []
    for p in prompts:
        e = lm.formatter.encode(p.text)
        if limit is not None and len(e.input_ids) > limit:
            raise DriftError(
                f"prompt {p.id!r} has {len(e.input_ids)} tokens, more than the model's context of {limit}: "
                "shorten or drop it"
            )
        encoded.append(e)
    return encoded


def _provenance(lm, prompts: PromptSet, cfg: CaptureConfig, layers: list[int], labels: list) -> dict:
    import transformers

    run = manifest_for(lm)
    return {
        "polydrift_version": __version__,
        "software": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "model": {
            "id": lm.model_id,
            "source": lm.source,
            "revision": getattr(lm.model.config, "_commit_hash", None),
            "adapter": lm.adapter,
            "weights": run.weights,
            "family": lm.family.model_type,
            "n_layers": lm.n_layers,
            "d_model": lm.d_model,
            "tokenizer_hash": lm.tokenizer_hash(),
            "chat_template_hash": lm.formatter.template_hash,
            "chat_options": asdict(lm.chat),
            "uses_chat_template": lm.formatter.uses_template,
        },
        "run": run.to_dict(),
        "prompts": {"name": prompts.name, "hash": prompts.content_hash(), "n": len(prompts)},
        **({"shard": prompts.shard_info.to_dict()} if prompts.shard_info is not None else {}),
        "capture": {
            **asdict(cfg),
            "layers": layers,
            "position_labels": [str(x) for x in labels],
            "compute_dtype": str(lm.dtype).replace("torch.", ""),
            "device": lm.device.type,
        },
    }


def extract(
    lm,
    prompts: PromptSet,
    out: str | Path,
    config: CaptureConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Capture residual-stream activations of ``lm`` on ``prompts`` into an HDF5 store at ``out``.

    Args:
        lm: A :class:`~drift.models.loading.LoadedModel`.
        prompts: The prompts (wrapped in the chat template unless ``lm.chat`` says otherwise); a shard from
            :meth:`PromptSet.shard` records its place in the full set, for ``drift merge``.
        out: Output ``.h5`` path; written as ``out.partial`` and renamed when complete.
        config: What to capture (default: ``resid_post`` at every layer, last position).
        resume: Continue a killed run from ``out.partial``; the result is bit-identical to an uninterrupted run.
        overwrite: Replace an existing ``out`` (only once the new store is complete).
        progress: Show a progress bar.

    Returns:
        The path of the finished store.

    Example:
        >>> lm = load_model("default")  # doctest: +SKIP
        >>> extract(lm, load_prompts("builtin:prompts?lang=en"), "acts.h5")  # doctest: +SKIP
    """
    cfg = config or CaptureConfig()
    sites = check_sites(cfg.sites)
    layers = check_layers(cfg.layers, lm.n_layers)
    positions = check_positions(cfg.positions)
    fixed_positions = [p for p in positions if p != "all"]
    backend = get_backend(cfg.backend)
    if len(prompts) == 0:
        raise DriftError("no prompts to extract: check the prompt spec and filters")
    encoded = encode_prompts(lm, prompts)
    n_post = common_n_post(encoded) if "post_instruction" in positions else 0
    labels = position_labels(fixed_positions, n_post)
    order = processing_order([len(e.input_ids) for e in encoded])
    plan = StorePlan(
        prompts=prompts.to_records(),
        n_tokens=[len(e.input_ids) for e in encoded],
        instr_span=[(e.instr_start, e.instr_end) for e in encoded],
        order=order,
        sites=sites,
        layers=layers,
        positions=labels,
        ragged="all" in positions,
        d_model=lm.d_model,
        dtype=cfg.storage_dtype,
        provenance=_provenance(lm, prompts, cfg, layers, labels),
        shard_rows=list(prompts.shard_info.rows) if prompts.shard_info is not None else None,
    )
    writer = StoreWriter.open(out, plan, resume=resume, overwrite=overwrite)
    targets = [(s, layer) for layer in layers for s in sites]
    try:
        _run_batches(lm, backend, encoded, order, writer, targets, fixed_positions, n_post, cfg, progress)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def _run_batches(lm, backend, encoded, order, writer, targets, fixed_positions, n_post, cfg, progress) -> None:
    from tqdm.auto import tqdm

    pad_id = lm.tokenizer.pad_token_id
    ragged = writer.plan.ragged
    pending: deque[Future] = deque()
    bar = tqdm(total=len(order), initial=writer.committed, disable=not progress, unit="prompt", desc="extract")
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        for start in range(writer.committed, len(order), cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            enc = [encoded[i] for i in rows]
            batch = collate(enc, pad_id, cfg.padding_side, lm.device)
            idx = BatchIndex.build(enc, batch["input_ids"].shape[1], cfg.padding_side)
            fixed: dict[tuple[str, int], np.ndarray] = {}
            flat: dict[tuple[str, int], np.ndarray] = {}

            def sink(site: str, layer: int, hidden: torch.Tensor) -> None:
                if fixed_positions:
                    fixed[(site, layer)] = reduce_positions(hidden, idx, fixed_positions, n_post).cpu().numpy()
                if ragged:
                    flat[(site, layer)] = real_tokens(hidden, batch["attention_mask"]).cpu().numpy()

            backend.run(lm, batch, targets, sink)
            missing = [t for t in targets if t not in fixed and t not in flat]
            if missing:
                raise RuntimeError(f"backend {backend.name} did not deliver {missing}")
            while len(pending) >= 2:  # bounded queue: at most two batches wait for the disk
                pending.popleft().result()
            pending.append(pool.submit(writer.write_batch, len(rows), fixed, flat))
            bar.update(len(rows))
        while pending:
            pending.popleft().result()
    bar.close()
