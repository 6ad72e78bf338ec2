"""Pure tensor helpers between TRL's DPO batches and symloss's :class:`~symloss.objectives.LogpBatch`.

TRL stacks a batch of B pairs as 2B rows, chosen rows first: ``[chosen; rejected]`` on dim 0. Per-token
log-probs come from the patched forward at the shifted positions (``completion_mask[..., 1:]``) and are
zero outside the completion.
"""

from __future__ import annotations

import torch

from symloss.objectives import LogpBatch


def split_pairs(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2B, ...]`` rows stacked as [chosen; rejected] -> (chosen ``[B, ...]``, rejected ``[B, ...]``)."""
    if rows.size(0) % 2:
        raise ValueError(f"rows: expected an even number of rows ([chosen; rejected]), got {rows.size(0)}")
    chosen, rejected = rows.chunk(2, dim=0)
    return chosen, rejected


def spread_sums(sums: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token values ``[B, T]`` whose masked sum is ``sums`` ``[B]``: the sum sits on the first masked
    token, zeros elsewhere. Turns precomputed sequence log-probs into tokens that ``sequence`` and ``mean``
    aggregation read back exactly (sum, and sum / length)."""
    mask = mask.bool()
    first = torch.zeros_like(mask)
    idx = mask.to(torch.int8).argmax(dim=-1, keepdim=True)  # first True (0 when none)
    first.scatter_(-1, idx, True)
    values = sums.to(torch.get_default_dtype() if not sums.is_floating_point() else sums.dtype)
    return torch.where(first, values.unsqueeze(-1), torch.zeros((), dtype=values.dtype, device=values.device))


def training_progress(global_step: int, max_steps: int) -> float:
    """t = global_step / max_steps, clipped to [0, 1]; 0 when ``max_steps`` is unknown (<= 0).

    During the k-th optimizer step (0-based) the Trainer's ``global_step`` is k, so t runs over
    0, 1/N, ..., (N-1)/N for N steps; evaluation after training sees t = 1."""
    if max_steps <= 0:
        return 0.0
    return min(1.0, max(0.0, global_step / max_steps))


def logp_batch(per_token: torch.Tensor, mask: torch.Tensor, *, ref_per_token: torch.Tensor | None = None,
               ref_sums: tuple[torch.Tensor, torch.Tensor] | None = None, progress: float = 0.0) -> LogpBatch:
    """A :class:`LogpBatch` from TRL's stacked rows.

    Args:
        per_token: policy log pi(y_i | x, y_<i) at the completion positions, ``[2B, T]``.
        mask: 1 on completion tokens, ``[2B, T]`` (TRL's ``completion_mask[..., 1:]``).
        ref_per_token: the reference's per-token log-probs ``[2B, T]``, or None.
        ref_sums: precomputed reference sequence log-probs (chosen ``[B]``, rejected ``[B]``), or None;
            spread onto the tokens with :func:`spread_sums`.
        progress: training progress t in [0, 1].
    """
    if ref_per_token is not None and ref_sums is not None:
        raise ValueError("ref_per_token / ref_sums: give at most one of them")
    mask = mask.bool()
    chosen, rejected = split_pairs(per_token)
    w_mask, l_mask = split_pairs(mask)
    ref_w = ref_l = None
    if ref_per_token is not None:
        ref_w, ref_l = split_pairs(ref_per_token)
    elif ref_sums is not None:
        ref_w = spread_sums(ref_sums[0].to(chosen), w_mask)
        ref_l = spread_sums(ref_sums[1].to(rejected), l_mask)
    return LogpBatch(chosen, rejected, w_mask, l_mask, ref_w, ref_l, progress=progress)
