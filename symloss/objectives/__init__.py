"""Objectives: the MPO loss template (:class:`MirrorLoss`) and the baseline zoo.

>>> import torch, symloss as sl
>>> loss = sl.objectives.dpo(beta=0.1)
>>> b = sl.LogpBatch(-torch.rand(4, 7), -torch.rand(4, 5), ref_chosen_logps=-torch.rand(4, 7),
...                  ref_rejected_logps=-torch.rand(4, 5))
>>> loss(b).loss.shape
torch.Size([4])
"""

from symloss.objectives._batch import AGGREGATIONS, Aggregation, LogpBatch, LossOutput, aggregate
from symloss.objectives._mirror import SLOT_SPECS, MirrorLoss
from symloss.objectives._zoo import (
    LOSSES,
    LossFn,
    cdpo,
    discopop,
    dpo,
    get_loss,
    hinge,
    ipo,
    orpo,
    rdpo,
    simpo,
    ta_mpo,
)

__all__ = [
    "AGGREGATIONS", "LOSSES", "SLOT_SPECS", "Aggregation", "LogpBatch", "LossFn", "LossOutput", "MirrorLoss",
    "aggregate", "cdpo", "discopop", "dpo", "get_loss", "hinge", "ipo", "orpo", "rdpo", "simpo", "ta_mpo",
]
