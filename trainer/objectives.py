"""The losses: SFT on assistant tokens, DPO on preference pairs, KTO on single marks.

Logits are computed only where a token carries loss: the output layer over a 49k vocabulary is a fifth of
a small model's compute, and most of a chat row is prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from trainer.packing import IGNORE, Batch


def target_logps(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """Log-probability of each target token, in row-major order of the targets."""
    hidden = model.get_decoder()(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False)
    selected = batch.targets != IGNORE
    logits = model.get_output_embeddings()(hidden.last_hidden_state[selected]).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return -F.cross_entropy(logits, batch.targets[selected], reduction="none")


def doc_logps(logps: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Summed answer log-probability per doc."""
    sums = torch.zeros(batch.n_docs, dtype=logps.dtype, device=logps.device)
    return sums.index_add(0, batch.target_docs, logps)


def sft_loss(logps: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the assistant's tokens."""
    return -logps.mean()


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO over docs laid out chosen, rejected, chosen, rejected...: widens the chosen answer's log-ratio margin."""
    ratio = policy - reference
    return -F.logsigmoid(beta * (ratio[0::2] - ratio[1::2])).mean()


def kto_loss(
    ratio: torch.Tensor,
    mismatched_ratio: torch.Tensor,
    desirable: torch.Tensor,
    beta: float,
    desirable_weight: float,
    undesirable_weight: float,
) -> torch.Tensor:
    """KTO: pushes marked-good answers' policy/reference log-ratio above a reference point, marked-bad ones below.

    The reference point estimates KL(policy || reference) as TRL does: the mean log-ratio of answers paired with
    other marks' prompts, clamped at 0 and detached.
    """
    reference_point = mismatched_ratio.detach().mean().clamp(min=0)
    good = 1 - torch.sigmoid(beta * (ratio - reference_point))
    bad = 1 - torch.sigmoid(beta * (reference_point - ratio))
    return torch.where(desirable, desirable_weight * good, undesirable_weight * bad).mean()
