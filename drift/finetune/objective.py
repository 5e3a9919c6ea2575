"""Log-probabilities of response tokens only, and the SFT and DPO(+SFT) objectives built on them.

:class:`ResponseLM` runs the model's backbone and applies the LM head only at positions whose next token carries a
label, so prompt and padding positions never pay for the vocabulary projection (trl 1.16's fused head scores every
position when Triton is absent; ``benchmarks/finetune.py`` measures the three paths). It is an ``nn.Module`` whose
forward is the whole computation, so the Trainer (and accelerate's DDP/FSDP wrappers) see an ordinary model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from drift.finetune.encode import IGNORE


def base_model(model) -> torch.nn.Module:
    """The underlying transformers model of a PEFT-wrapped or plain model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class ResponseLM(torch.nn.Module):
    """Wraps a causal LM (plain or PEFT); forward returns the summed log-prob and token count of each row's labels."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                top1: bool = False):
        """Return (sum of label log-probs per row, number of label tokens per row); with ``top1``, also the number
        of label tokens per row that are the model's most likely next token."""
        hf = base_model(self.model)
        backbone = getattr(hf, hf.base_model_prefix)
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        mask = targets != IGNORE
        logits = hf.get_output_embeddings()(hidden[:, :-1][mask]).float()
        cap = getattr(hf.config.get_text_config(), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        token_lp = torch.log_softmax(logits, -1).gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
        rows = mask.nonzero()[:, 0]
        summed = torch.zeros(len(input_ids), dtype=token_lp.dtype, device=token_lp.device).index_add(0, rows, token_lp)
        if not top1:
            return summed, mask.sum(-1)
        hits = (logits.argmax(-1) == targets[mask]).long()
        return summed, mask.sum(-1), torch.zeros_like(mask.sum(-1)).index_add(0, rows, hits)


def sft_loss(model: ResponseLM, batch: dict) -> tuple[torch.Tensor, dict]:
    """Mean negative log-likelihood per response token of the batch."""
    lp, n = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
    loss = -lp.sum() / n.sum().clamp(min=1)
    return loss, {"nll": float(loss.detach())}


def sequence_logps(model: ResponseLM, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed log-probs and token counts of the chosen and rejected responses, in one forward."""
    pad = lambda t, w, v: F.pad(t, (0, w - t.shape[1]), value=v)  # noqa: E731
    w = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])
    ids = torch.cat([pad(batch["chosen_input_ids"], w, 0), pad(batch["rejected_input_ids"], w, 0)])
    mask = torch.cat([pad(batch["chosen_attention_mask"], w, 0), pad(batch["rejected_attention_mask"], w, 0)])
    labels = torch.cat([pad(batch["chosen_labels"], w, IGNORE), pad(batch["rejected_labels"], w, IGNORE)])
    lp, n = model(ids, mask, labels)
    b = len(batch["chosen_input_ids"])
    return lp[:b], lp[b:], n[:b], n[b:]


def dpo_loss(model: ResponseLM, batch: dict, beta: float = 0.1, sft_weight: float = 0.0,
             dpo_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Sigmoid DPO loss (Rafailov et al. 2023) against precomputed reference log-probs, plus an optional SFT term.

    The SFT term is the mean NLL per token of the chosen response (trl's ``loss_type=["sigmoid", "sft"]`` mixture).
    """
    pc, pr, nc, _ = sequence_logps(model, batch)
    margin = (pc - batch["ref_chosen_logps"]) - (pr - batch["ref_rejected_logps"])
    dpo = -F.logsigmoid(beta * margin).mean()
    nll = -(pc / nc.clamp(min=1)).mean()
    loss = dpo_weight * dpo + sft_weight * nll
    stats = {"dpo": float(dpo.detach()), "nll_chosen": float(nll.detach()),
             "reward_margin": float(beta * margin.detach().mean()),
             "reward_accuracy": float((margin.detach() > 0).float().mean())}
    return loss, stats
