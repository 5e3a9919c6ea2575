"""Optional vLLM backend for GPU machines: same prompts, same chat template, same completion records.

vLLM is imported only here, when ``backend="vllm"`` is chosen. Runtime interventions (hooks) cannot run inside vLLM;
write an orthogonalised checkpoint (:func:`drift.interventions.save_orthogonalized`) and generate from it instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from drift.errors import DriftError
from drift.generate.config import GenerationConfig
from drift.generate.hf_backend import Generated


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise DriftError("the vllm backend needs vLLM: pip install 'polydrift[scale]' on a GPU machine") from None
    return vllm


def generate_batches_vllm(
    source: str, formatter, texts: Sequence[str], config: GenerationConfig, adapter: str | None = None,
    dtype: str = "auto", stop_ids: Sequence[int] = (), **engine_options,
) -> Iterator[list[tuple[int, Generated]]]:
    """Generate with vLLM from a model directory or hub id, yielding ``(index, Generated)`` per batch.

    Args:
        source: What vLLM loads (a local directory or hub id; the embedded default's cached safetensors folder).
        formatter: The :class:`~drift.models.chat.ChatFormatter` of the model's tokenizer (identical inputs to hf).
        texts: Instructions.
        config: Generation settings; ``batch_size`` is the number of prompts handed to vLLM per call (the engine
            schedules its own batches), so progress and resumption work as with the hf backend.
        adapter: A LoRA adapter directory, served through vLLM's LoRA support.
        dtype: vLLM dtype.
        stop_ids: Extra stop token ids (chat end-of-turn tokens), as the hf backend uses.
        **engine_options: Passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``, ``tensor_parallel_size``).
    """
    vllm = _import_vllm()
    llm = vllm.LLM(model=source, dtype=dtype, seed=config.seed, enable_lora=adapter is not None, **engine_options)
    lora = None
    if adapter is not None:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, adapter)
    params = vllm.SamplingParams(
        max_tokens=config.max_new_tokens, temperature=config.temperature if config.do_sample else 0.0,
        top_p=config.top_p if config.do_sample else 1.0, seed=config.seed if config.do_sample else None,
        skip_special_tokens=True, stop_token_ids=list(stop_ids) or None,
    )
    ids = [list(formatter.encode(t).input_ids) for t in texts]
    for start in range(0, len(texts), config.batch_size):
        idx = list(range(start, min(start + config.batch_size, len(texts))))
        prompts = [{"prompt_token_ids": ids[i]} for i in idx]
        outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        batch = []
        for i, out in zip(idx, outputs):
            o = out.outputs[0]
            reason = "length" if o.finish_reason == "length" else "stop"
            batch.append((i, Generated(o.text, len(o.token_ids) - (reason == "stop"), reason)))
        yield batch
