"""Inputs and outputs of preference losses: per-token log-probabilities in, per-pair losses out.

Shapes: any leading batch shape ``[...]`` (``[B]`` for one model, ``[P, S, B]`` for a population) followed
by the token axis ``T``. Chosen and rejected responses may have different lengths ``T_w`` and ``T_l``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Aggregation = Literal["sequence", "mean", "token"]
AGGREGATIONS: tuple[str, ...] = ("sequence", "mean", "token")

Reduction = Literal["mean", "logmeanexp"]
REDUCTIONS: tuple[str, ...] = ("mean", "logmeanexp")

LOGP_TOLERANCE = 1e-5
"""Log-probabilities above this are rejected as positive (rounding may give tiny positive values)."""


def _mask_like(mask: torch.Tensor | None, logps: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(logps, dtype=torch.bool) if mask is None else mask.bool()


@dataclass(frozen=True)
class LogpBatch:
    """Per-token log-probabilities of a batch of preference pairs.

    Attributes:
        chosen_logps: log pi(y_w token | context) of the policy, ``[..., T_w]``, <= 0.
        rejected_logps: log pi(y_l token | context) of the policy, ``[..., T_l]``, <= 0.
        chosen_mask: 1 where a chosen token counts, 0 for padding; ``[..., T_w]``; default all ones.
        rejected_mask: likewise for the rejected response, ``[..., T_l]``.
        ref_chosen_logps: the reference policy's per-token log-probs, ``[..., T_w]``; None if reference-free.
        ref_rejected_logps: likewise, ``[..., T_l]``.
        progress: training progress t in [0, 1] (float, or a tensor broadcastable to ``[...]``).
    """

    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    chosen_mask: torch.Tensor | None = None
    rejected_mask: torch.Tensor | None = None
    ref_chosen_logps: torch.Tensor | None = None
    ref_rejected_logps: torch.Tensor | None = None
    progress: float | torch.Tensor = 0.0

    def __post_init__(self) -> None:
        self._check_shapes()

    @classmethod
    def from_sequence_logps(cls, chosen: torch.Tensor, rejected: torch.Tensor,
                            ref_chosen: torch.Tensor | None = None, ref_rejected: torch.Tensor | None = None,
                            progress: float | torch.Tensor = 0.0) -> LogpBatch:
        """A batch from already-summed log-probs ``[...]`` (one 'token' per response)."""
        def one(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.unsqueeze(-1)
        return cls(one(chosen), one(rejected), None, None, one(ref_chosen), one(ref_rejected), progress)

    @property
    def batch_shape(self) -> torch.Size:
        """The leading shape ``[...]`` shared by every field."""
        return self.chosen_logps.shape[:-1]

    @property
    def has_reference(self) -> bool:
        return self.ref_chosen_logps is not None

    @property
    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks (chosen, rejected), all-true where none were given."""
        return _mask_like(self.chosen_mask, self.chosen_logps), _mask_like(self.rejected_mask, self.rejected_logps)

    @property
    def bool_masks(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Boolean masks (chosen, rejected), None where none were given (cheaper than :attr:`masks`)."""
        def as_bool(mask: torch.Tensor | None) -> torch.Tensor | None:
            return None if mask is None else mask if mask.dtype == torch.bool else mask.bool()
        return as_bool(self.chosen_mask), as_bool(self.rejected_mask)

    def _check_shapes(self) -> None:
        for name in ("chosen_logps", "rejected_logps"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.dim() < 1:
                raise ValueError(f"{name}: expected a tensor of shape [..., T], got {_describe(value)}")
        if (self.ref_chosen_logps is None) != (self.ref_rejected_logps is None):
            raise ValueError("ref_chosen_logps / ref_rejected_logps: give both or neither")
        if self.chosen_logps.shape[:-1] != self.rejected_logps.shape[:-1]:
            raise ValueError(
                f"rejected_logps: batch shape {tuple(self.rejected_logps.shape[:-1])} differs from "
                f"chosen_logps {tuple(self.chosen_logps.shape[:-1])}"
            )
        pairs = (("chosen_mask", "chosen_logps"), ("ref_chosen_logps", "chosen_logps"),
                 ("rejected_mask", "rejected_logps"), ("ref_rejected_logps", "rejected_logps"))
        for name, like in pairs:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or value.shape != getattr(self, like).shape:
                raise ValueError(
                    f"{name}: shape {_describe(value)} must equal {like}'s {tuple(getattr(self, like).shape)}"
                )
        if isinstance(self.progress, torch.Tensor):
            try:
                torch.broadcast_shapes(self.progress.shape, self.batch_shape)
            except RuntimeError as exc:
                raise ValueError(
                    f"progress: shape {tuple(self.progress.shape)} does not broadcast to the batch shape "
                    f"{tuple(self.batch_shape)}"
                ) from exc

    def validate(self) -> LogpBatch:
        """Check values (costs a device sync): no NaN, log-probs <= 0 under the mask, progress in [0, 1]."""
        masks = dict(zip(("chosen", "rejected"), self.masks, strict=True))
        for name in ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps"):
            value = getattr(self, name)
            if value is None:
                continue
            mask = masks["chosen" if "chosen" in name else "rejected"]
            counted = value[mask]
            if torch.isnan(counted).any():
                raise ValueError(f"{name}: contains NaN under the mask")
            if (counted > LOGP_TOLERANCE).any():
                worst = counted.max().item()
                raise ValueError(
                    f"{name}: log-probabilities must be <= 0, got a value of {worst:.4g}; pass log-probs "
                    "(e.g. log_softmax outputs gathered at the tokens), not probabilities or logits"
                )
        progress = torch.as_tensor(self.progress)
        if torch.isnan(progress).any() or (progress < 0).any() or (progress > 1).any():
            raise ValueError(f"progress: must lie in [0, 1], got {self.progress!r}")
        return self


def _describe(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def aggregate(logps: torch.Tensor, mask: torch.Tensor | None, how: Aggregation) -> torch.Tensor:
    """Sequence log-probability from per-token ones: ``sequence`` sums, ``mean`` length-normalises.

    s = sum_t mask_t * logp_t  (sequence),   s / max(1, sum_t mask_t)  (mean);  shape [...].
    ``mask=None`` counts every token; a 0/1 mask of any dtype counts its non-zero entries. Padded entries never
    enter the sum (not even as NaN).
    """
    if mask is None:
        total = logps.sum(-1)
        return total / logps.shape[-1] if how == "mean" else total
    mask = mask if mask.dtype == torch.bool else mask.bool()
    total = torch.where(mask, logps, 0.0).sum(-1)
    if how == "mean":
        return total / mask.sum(-1).clamp(min=1).to(total.dtype)
    return total


def reduce_pairs(per_pair: torch.Tensor, mask: torch.Tensor | None = None, *, how: Reduction = "mean",
                 temperature: float = 1.0) -> torch.Tensor:
    """The batch loss from per-pair losses l_i over the last axis: ``[..., B] -> [...]``.

    mean:        L = (1/B) sum_i l_i
    logmeanexp:  L = -b' log( (1/B) sum_i exp(-l_i / b') )        (Dr. DPO, Wu et al., ICLR 2025, arXiv 2407.07880)

    with b' = ``temperature`` > 0, computed stably as -b' (logsumexp_i(-l_i / b') - log B). logmeanexp lies
    between min_i l_i (b' -> 0) and the mean (b' -> inf); its gradient weights pair i by
    softmax_i(-l_i / b'), so pairs with a large loss (likely flipped labels) count less. With one pair both
    reductions equal l_1. ``mask`` (``[..., B]``, true where a pair counts) drops padded pairs: B becomes the
    number of counted pairs, and a row with none gives 0.
    """
    if mask is None:
        if how == "mean":
            return per_pair.mean(-1)
        scaled = -per_pair / temperature
        return -temperature * (torch.logsumexp(scaled, dim=-1) - math.log(per_pair.shape[-1]))
    mask = mask if mask.dtype == torch.bool else mask.bool()
    count = mask.sum(-1)
    if how == "mean":
        return torch.where(mask, per_pair, 0.0).sum(-1) / count.clamp(min=1).to(per_pair.dtype)
    empty = (count == 0).unsqueeze(-1)
    scaled = (-per_pair / temperature).masked_fill(~mask, -math.inf).masked_fill(empty, 0.0)  # no NaN rows
    out = -temperature * (torch.logsumexp(scaled, dim=-1) - count.clamp(min=1).to(per_pair.dtype).log())
    return torch.where(count > 0, out, 0.0)


@dataclass(frozen=True)
class LossOutput:
    """Per-pair losses and diagnostics, each of shape ``[...]``.

    Attributes:
        loss: w_pref(t) * g(z, t) + w_imit(t) * psi(u_w, t), differentiable.
        margin: z = beta * ([m(u_w) - m(u_w_ref)] - [m(u_l) - m(u_l_ref)]).
        chosen_rewards: implicit reward beta * [m(u_w) - m(u_w_ref)] (no gradient).
        rejected_rewards: implicit reward beta * [m(u_l) - m(u_l_ref)] (no gradient).
        accuracy: 1.0 where chosen_rewards > rejected_rewards (no gradient).
        preference: the link term g(z, t).
        imitation: the imitation term psi(u_w, t) (zeros when the loss has none).
        chosen_logps: aggregated policy log-prob of the chosen response (u_w).
        rejected_logps: aggregated policy log-prob of the rejected response (u_l).
    """

    loss: torch.Tensor
    margin: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    accuracy: torch.Tensor
    preference: torch.Tensor
    imitation: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
