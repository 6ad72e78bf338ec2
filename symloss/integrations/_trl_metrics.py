"""The metrics TRL's DPOTrainer logs, computed the same way, plus symloss's own under ``mirror/``.

DPOTrainer names (TRL 1.16), so existing dashboards keep working:

- ``rewards/chosen``, ``rewards/rejected``: beta * (log pi(y) - log pi_ref(y)) with token-summed log-probs
  (log pi_ref = 0 for a reference-free loss), averaged over pairs;
- ``rewards/accuracies``, ``rewards/margins``: chosen > rejected, chosen - rejected of those rewards;
- ``logps/chosen``, ``logps/rejected``: token-summed policy log-probs;
- ``entropy``, ``logits/chosen``, ``logits/rejected``, ``mean_token_accuracy``: token-level statistics
  of the completion.

``mirror/*`` are the loss's own quantities (:class:`~symloss.objectives.LossOutput`): implicit rewards
beta * [m(u) - m(u_ref)] under its mirror map and aggregation, the margin z, its accuracy, the link term
g(z, t), the imitation term psi(u_w, t), and the progress t.
"""

from __future__ import annotations

from typing import Any

import torch

from symloss.integrations._trl_batch import split_pairs
from symloss.objectives import LogpBatch, LossOutput, aggregate


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def token_metrics(accelerator: Any, outputs: Any, mask: torch.Tensor) -> dict[str, float]:
    """``entropy``, ``logits/*`` and ``mean_token_accuracy`` over completion tokens, as DPOTrainer logs them.

    ``outputs`` is the fused forward's output; ``mask`` the shifted completion mask ``[2B, T]``."""
    seq_len = mask.size(1)
    gather = accelerator.gather_for_metrics
    entropy_sum = gather((outputs.entropy[:, -seq_len:].detach() * mask).sum()).sum()
    total = gather(mask.sum()).sum()
    metrics = {"entropy": (entropy_sum / total).item() if total > 0 else 0.0}
    w_logits, l_logits = split_pairs(outputs.mean_logits[:, -seq_len:])
    w_mask, l_mask = split_pairs(mask.bool())
    w_total = gather(w_logits[w_mask].sum()).sum().item()
    w_tokens = gather(w_mask.sum()).sum().item()
    l_total = gather(l_logits[l_mask].sum()).sum().item()
    l_tokens = gather(l_mask.sum()).sum().item()
    metrics["logits/chosen"] = _ratio(w_total, w_tokens)
    metrics["logits/rejected"] = _ratio(l_total, l_tokens)
    w_top1, _ = split_pairs(outputs.is_top1[:, -seq_len:])
    correct = gather((w_top1 & w_mask).sum()).sum()
    chosen_tokens = gather(w_mask.sum()).sum()
    metrics["mean_token_accuracy"] = (correct / chosen_tokens).item() if chosen_tokens > 0 else 0.0
    return metrics


def reward_metrics(accelerator: Any, batch: LogpBatch, beta: float) -> dict[str, float]:
    """``rewards/*`` and ``logps/*`` exactly as DPOTrainer defines them (token sums, see module docstring)."""
    w_mask, l_mask = batch.masks
    chosen = aggregate(batch.chosen_logps, w_mask, "sequence").detach()  # [B]
    rejected = aggregate(batch.rejected_logps, l_mask, "sequence").detach()
    chosen_ratio, rejected_ratio = chosen, rejected
    if batch.has_reference:
        chosen_ratio = chosen - aggregate(batch.ref_chosen_logps, w_mask, "sequence")
        rejected_ratio = rejected - aggregate(batch.ref_rejected_logps, l_mask, "sequence")
    chosen_rewards, rejected_rewards = beta * chosen_ratio, beta * rejected_ratio
    gather = accelerator.gather
    return {
        "rewards/chosen": gather(chosen_rewards).mean().item(),
        "rewards/rejected": gather(rejected_rewards).mean().item(),
        "rewards/accuracies": gather((chosen_rewards > rejected_rewards).float()).mean().item(),
        "rewards/margins": gather(chosen_rewards - rejected_rewards).mean().item(),
        "logps/chosen": gather(chosen).mean().item(),
        "logps/rejected": gather(rejected).mean().item(),
    }


def mirror_metrics(accelerator: Any, out: LossOutput, progress: float) -> dict[str, float]:
    """The loss's own diagnostics under ``mirror/`` (means over pairs), read back in one transfer."""
    fields = {
        "mirror/rewards_chosen": out.chosen_rewards, "mirror/rewards_rejected": out.rejected_rewards,
        "mirror/margin": out.margin, "mirror/accuracy": out.accuracy, "mirror/preference": out.preference,
        "mirror/imitation": out.imitation,
    }
    stacked = torch.stack([value.detach().float().reshape(-1) for value in fields.values()], dim=-1)  # [B, 6]
    means = accelerator.gather(stacked).mean(dim=0).tolist()
    metrics = dict(zip(fields, means, strict=True))
    metrics["mirror/progress"] = float(progress)
    return metrics
