"""Training one run: LoRA or full fine-tuning with the transformers Trainer, SFT or DPO(+SFT) objectives."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch

from drift.errors import DriftError
from drift.finetune.config import FinetuneConfig
from drift.finetune.encode import encode_example, pad_batch
from drift.finetune.objective import ResponseLM, base_model, dpo_loss, sequence_logps, sft_loss


def check_lora_targets(model: torch.nn.Module, targets) -> None:
    """Raise a DriftError naming the available linear layers when a LoRA target matches nothing."""
    if targets == "all-linear":
        return
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = sorted(set(targets) - names)
    if missing:
        raise DriftError(f"LoRA target(s) {missing} do not exist in this model; its linear layers are "
                         f"{sorted(names - {'lm_head'})} (or use all-linear)")


def attach_lora(model: torch.nn.Module, config: FinetuneConfig) -> torch.nn.Module:
    """Wrap the model in a fresh LoRA adapter (the LM head and embeddings stay frozen)."""
    from peft import LoraConfig, get_peft_model

    check_lora_targets(model, config.lora_targets)
    targets = config.lora_targets if config.lora_targets == "all-linear" else list(config.lora_targets)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def encode_sft(formatter, examples, max_length: int) -> list[dict]:
    """Tokenized SFT rows (examples whose prompt alone exceeds ``max_length`` are dropped)."""
    rows = []
    for ex in examples:
        seq = encode_example(formatter, ex.instruction, ex.response).sequence(max_length)
        if seq is not None:
            rows.append({"input_ids": seq[0], "labels": seq[1]})
    return rows


def encode_dpo(formatter, pairs, max_length: int) -> list[dict]:
    """Tokenized DPO rows (chosen and rejected sequences)."""
    rows = []
    for p in pairs:
        c = encode_example(formatter, p.prompt, p.chosen).sequence(max_length)
        r = encode_example(formatter, p.prompt, p.rejected).sequence(max_length)
        if c is not None and r is not None:
            rows.append({"chosen_input_ids": c[0], "chosen_labels": c[1],
                         "rejected_input_ids": r[0], "rejected_labels": r[1]})
    return rows


class Collator:
    """Pads SFT rows, or the chosen and rejected halves of DPO rows (with their reference log-probs)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Collate a list of rows."""
        if "input_ids" in rows[0]:
            return pad_batch([(r["input_ids"], r["labels"]) for r in rows], self.pad_id)
        out = {}
        for side in ("chosen", "rejected"):
            b = pad_batch([(r[f"{side}_input_ids"], r[f"{side}_labels"]) for r in rows], self.pad_id)
            out |= {f"{side}_{k}": v for k, v in b.items()}
            if f"ref_{side}_logps" in rows[0]:
                out[f"ref_{side}_logps"] = torch.tensor([r[f"ref_{side}_logps"] for r in rows], dtype=torch.float32)
        return out


@torch.no_grad()
def reference_logps(module: ResponseLM, rows: list[dict], pad_id: int, batch_size: int, device) -> None:
    """Add the frozen starting model's summed log-probs of chosen and rejected answers to every DPO row."""
    collate = Collator(pad_id)
    module.eval()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        pc, pr, _, _ = sequence_logps(module, batch)
        for r, c, j in zip(chunk, pc.tolist(), pr.tolist()):
            r["ref_chosen_logps"], r["ref_rejected_logps"] = c, j


def _training_args(config: FinetuneConfig, out_dir: Path, device: torch.device, progress: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps, lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, seed=config.seed,
        data_seed=config.seed, bf16=config.precision == "bf16", fp16=config.precision == "fp16",
        use_cpu=device.type == "cpu", logging_steps=1, save_strategy="no", report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not progress, max_grad_norm=1.0,
    )


def _trainer_class():
    from transformers import Trainer

    class ObjectiveTrainer(Trainer):
        """A Trainer whose loss is an SFT or DPO objective on :class:`ResponseLM`, logging its statistics."""

        def __init__(self, *args, objective=None, log_path: Path | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.objective, self.log_path, self._stats = objective, log_path, defaultdict(list)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, stats = self.objective(model, inputs)
            for k, v in stats.items():
                self._stats[k].append(v)
            return (loss, None) if return_outputs else loss

        def log(self, logs: dict, *args, **kwargs) -> None:
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._stats.items() if v}}
            self._stats.clear()
            if self.log_path is not None:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": self.state.global_step, "epoch": self.state.epoch, **logs}) + "\n")
            super().log(logs, *args, **kwargs)

    return ObjectiveTrainer


def train(lm, data: list, config: FinetuneConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Fine-tune ``lm`` in place on SFT examples or DPO pairs and write the checkpoint into ``out_dir``.

    Returns:
        A summary: number of rows used and dropped, optimizer steps, final and first losses, seconds per step,
        wall time, and the path of the training log.
    """
    from transformers import set_seed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    fmt = lm.formatter
    rows = (encode_sft if config.method == "sft" else encode_dpo)(fmt, data, config.max_length)
    if not rows:
        raise DriftError(f"no example fits in max_length={config.max_length}: raise --max-length")
    model = attach_lora(lm.model, config) if config.lora else lm.model
    if config.gradient_checkpointing:
        base_model(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.lora:
            model.enable_input_require_grads()
    module = ResponseLM(model)
    pad = lm.tokenizer.pad_token_id
    if config.method == "dpo":
        reference_logps(module, rows, pad, config.batch_size, lm.device)
        objective = lambda m, b: dpo_loss(m, b, config.beta, config.sft_weight)  # noqa: E731
    else:
        objective = sft_loss
    log_path = out_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)
    trainer = _trainer_class()(model=module, args=_training_args(config, out_dir, lm.device, progress),
                               train_dataset=rows, data_collator=Collator(pad), objective=objective,
                               log_path=log_path)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    module.eval()
    history = [json.loads(x) for x in log_path.read_text().splitlines()]
    losses = [h["loss"] for h in history if "loss" in h]
    steps = trainer.state.global_step
    lm.model = _save(model, lm, config, out_dir)
    return {"rows": len(rows), "dropped": len(data) - len(rows), "steps": steps, "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(steps, 1), 3), "first_loss": losses[0] if losses else math.nan,
            "final_loss": losses[-1] if losses else math.nan,
            "final_stats": {k: v for k, v in (history[-2] if len(history) > 1 else {}).items()
                            if k not in ("step", "epoch")}, "log": str(log_path)}


def _save(model, lm, config: FinetuneConfig, out_dir: Path) -> torch.nn.Module:
    """Write the adapter or merged weights; return the model to keep using (merged when LoRA was trained)."""
    if config.lora and config.save == "adapter":
        model.save_pretrained(str(out_dir))
        merged = model.merge_and_unload()
    else:
        merged = model.merge_and_unload() if config.lora else model
        merged.save_pretrained(str(out_dir))
        lm.tokenizer.save_pretrained(str(out_dir))
    merged.config.use_cache = True
    return merged.eval()
