"""Objectives: the MPO loss template (:class:`MirrorLoss`) and the baseline zoo.

>>> import torch, symloss as sl
>>> loss = sl.objectives.dpo(beta=0.1)
>>> b = sl.LogpBatch(-torch.rand(4, 7), -torch.rand(4, 5), ref_chosen_logps=-torch.rand(4, 7),
...                  ref_rejected_logps=-torch.rand(4, 5))
>>> out = loss(b)                     # per-pair losses and diagnostics
>>> out.loss.shape, loss.reduce(out.loss).shape
(torch.Size([4]), torch.Size([]))

The zoo (:data:`LOSSES`): DPO, cDPO, rDPO, IPO, hinge, DiscoPOP, SimPO, ORPO, TA-MPO, and the noise-robust
ROPO, Hölder-DPO, SymPO, RE-PO (fixed eta) and Dr. DPO (a batch-level log-mean-exp reduction).
"""

from symloss.objectives._batch import (
    AGGREGATIONS,
    REDUCTIONS,
    Aggregation,
    LogpBatch,
    LossOutput,
    Reduction,
    aggregate,
    reduce_pairs,
)
from symloss.objectives._mirror import FIELDS, FORMAT, SLOT_SPECS, MirrorLoss
from symloss.objectives._registry import LOSSES, LossFn, get_loss
from symloss.objectives._robust import SYMPO_VARIANTS, drdpo, holder_dpo, repo, ropo, sympo
from symloss.objectives._zoo import cdpo, discopop, dpo, hinge, ipo, orpo, rdpo, simpo, ta_mpo

__all__ = [
    "AGGREGATIONS", "FIELDS", "FORMAT", "LOSSES", "REDUCTIONS", "SLOT_SPECS", "SYMPO_VARIANTS", "Aggregation",
    "LogpBatch", "LossFn", "LossOutput", "MirrorLoss", "Reduction", "aggregate", "cdpo", "discopop", "dpo",
    "drdpo", "get_loss", "hinge", "holder_dpo", "ipo", "orpo", "rdpo", "reduce_pairs", "repo", "ropo",
    "simpo", "sympo", "ta_mpo",
]
