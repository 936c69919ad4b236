"""The losses: SFT on assistant tokens, DPO on preference pairs, KTO on single marks, an anchor (KL to the current
generation) on its own answers, unlikelihood on tokens that must not come, and GRPO's clipped policy gradient on
sampled answers with verifier rewards.

Logits are computed only where a token carries loss: the output layer over a 49k vocabulary is a fifth of
a small model's compute, and most of a chat row is prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from trainer.packing import IGNORE, Batch


def target_logits(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """The next-token logits at each target position, in row-major order of the targets."""
    bias = torch.zeros(batch.allowed.shape, dtype=model.dtype, device=batch.allowed.device)
    bias = bias.masked_fill(~batch.allowed, torch.finfo(model.dtype).min)[:, None]  # additive: what eager and sdpa read
    hidden = model.get_decoder()(
        input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=bias, use_cache=False
    )
    logits = model.get_output_embeddings()(hidden.last_hidden_state[batch.targets != IGNORE]).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def logps_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each target token under logits from target_logits (targets: the batch's, IGNORE left out)."""
    return -F.cross_entropy(logits, targets, reduction="none")


def target_logps(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """Log-probability of each target token, in row-major order of the targets."""
    return logps_of(target_logits(model, batch), batch.targets[batch.targets != IGNORE])


def doc_logps(logps: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Summed answer log-probability per doc."""
    sums = torch.zeros(batch.n_docs, dtype=logps.dtype, device=logps.device)
    return sums.index_add(0, batch.target_docs, logps)


def sft_loss(logps: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the assistant's tokens."""
    return -logps.mean()


def unlikelihood_loss(logps: torch.Tensor) -> torch.Tensor:
    """Mean -log(1 - p) of tokens that must not come: pushes only them down, and stops pushing once they are rare."""
    return -torch.log1p(-logps.exp().clamp(max=1 - 1e-6)).mean()


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


def top_logps(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k likeliest tokens' log-probabilities and ids at each position: the current generation's answer distribution,
    small enough to compute once per anchor row and keep (the whole vocabulary would take ~12 MB per row)."""
    return F.log_softmax(logits, dim=-1).topk(min(k, logits.shape[-1]), dim=-1)


def anchor_loss(policy_logits: torch.Tensor, reference_logps: torch.Tensor, reference_ids: torch.Tensor) -> torch.Tensor:
    """Mean KL(reference || policy) per token over the reference's likeliest tokens (top_logps): keeps the whole
    distribution of what the model already said, not just its argmax."""
    policy = F.log_softmax(policy_logits, dim=-1).gather(-1, reference_ids)
    return (reference_logps.exp() * (reference_logps - policy)).sum(-1).mean()


def grpo_loss(policy: torch.Tensor, reference: torch.Tensor, advantages: torch.Tensor, batch: Batch, clip: float,
              kl_beta: float) -> torch.Tensor:
    """GRPO: the clipped policy-gradient surrogate plus a KL penalty to the current generation, per token, averaged
    within each answer and then over answers, so a two-token number counts as much as a ten-line function.

    The current generation sampled the answers, so it is both the old policy of the ratio and the KL reference;
    the KL uses the non-negative k3 estimator, exp(ref - pol) - (ref - pol) - 1.
    """
    ratio = torch.exp(policy - reference)
    surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    delta = reference - policy
    per_token = kl_beta * (torch.exp(delta) - delta - 1) - surrogate
    lengths = doc_logps(torch.ones_like(per_token), batch)
    answered = lengths > 0
    return (doc_logps(per_token, batch)[answered] / lengths[answered]).mean()
