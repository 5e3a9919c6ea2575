"""Weight-space drift of a fine-tune: per-layer norms of the weight change, for full checkpoints and LoRA adapters."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from drift.errors import DriftError

_LAYER = re.compile(r"\.(\d+)\.")


def _layer_of(name: str) -> int:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else -1


def _records(deltas: dict[str, torch.Tensor], bases: Mapping[str, torch.Tensor] | None) -> list[dict]:
    out = []
    for name, delta in sorted(deltas.items()):
        norm = float(delta.double().norm())
        rec = {"layer": _layer_of(name), "module": name, "metric": "delta_fro", "value": norm}
        out.append(rec)
        if bases is not None and name in bases:
            ref = float(bases[name].double().norm())
            out.append({**rec, "metric": "delta_rel", "value": norm / ref if ref else float("nan")})
    return out


@torch.no_grad()
def full_weight_drift(base_state: Mapping[str, torch.Tensor], ft_state: Mapping[str, torch.Tensor]) -> list[dict]:
    """Per-tensor Frobenius norm of ``ft - base`` and its ratio to ``||base||`` (matrices only).

    Returns:
        Records with ``layer`` (-1 outside the blocks), ``module`` (parameter name), ``metric`` (``delta_fro`` or
        ``delta_rel``) and ``value``.
    """
    shared = [k for k in base_state if k in ft_state and base_state[k].dim() >= 2]
    if not shared:
        raise DriftError("the two state dicts share no weight matrices: are they the same architecture?")
    deltas = {}
    for k in shared:
        if base_state[k].shape != ft_state[k].shape:
            raise DriftError(f"{k} has shape {tuple(base_state[k].shape)} vs {tuple(ft_state[k].shape)}")
        deltas[k] = ft_state[k].double() - base_state[k].double()
    return _records(deltas, base_state)


@torch.no_grad()
def lora_weight_drift(adapter_dir: str | Path, base_state: Mapping[str, torch.Tensor] | None = None) -> list[dict]:
    """Per-module norm of a LoRA update ``scale * B @ A`` read from a PEFT adapter directory.

    Args:
        adapter_dir: Folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_state: The base model's state dict, for norms relative to the original weights.
    """
    from safetensors.torch import load_file

    folder = Path(adapter_dir)
    cfg_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights_path.is_file():
        raise DriftError(f"{folder} is not a PEFT LoRA adapter (needs adapter_config.json and adapter_model.safetensors)")
    cfg = json.loads(cfg_path.read_text())
    alpha, r = float(cfg.get("lora_alpha", cfg.get("r", 1))), float(cfg.get("r", 1))
    scale = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
    tensors = load_file(str(weights_path))
    deltas = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if b is None:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        deltas[f"{module}.weight"] = scale * (b.double() @ a.double())
    if not deltas:
        raise DriftError(f"no lora_A/lora_B pairs found in {weights_path}")
    return _records(deltas, base_state)
