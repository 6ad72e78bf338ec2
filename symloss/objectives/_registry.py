"""The zoo's registry: name -> constructor of every baseline loss, and lookup by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from symloss.objectives._mirror import MirrorLoss
from symloss.objectives._robust import drdpo, holder_dpo, repo, ropo, sympo
from symloss.objectives._zoo import cdpo, discopop, dpo, hinge, ipo, orpo, rdpo, simpo, ta_mpo
from symloss.validation import ConfigError, did_you_mean

LossFn = Callable[..., MirrorLoss]

LOSSES: dict[str, LossFn] = {
    "dpo": dpo, "cdpo": cdpo, "rdpo": rdpo, "ipo": ipo, "hinge": hinge, "discopop": discopop,
    "simpo": simpo, "orpo": orpo, "ta_mpo": ta_mpo,
    "ropo": ropo, "holder_dpo": holder_dpo, "sympo": sympo, "repo": repo, "drdpo": drdpo,
}
"""Name -> constructor of each zoo loss (the classic ones, then the noise-robust ones of 2024-2026)."""


def get_loss(name: str, **kwargs: Any) -> MirrorLoss:
    """Build a zoo loss by name, e.g. ``get_loss("dpo", beta=0.1)``; unknown names get a suggestion."""
    if name not in LOSSES:
        raise ConfigError(f"loss={name!r}: must be one of the zoo's {sorted(LOSSES)}{did_you_mean(name, LOSSES)}")
    return LOSSES[name](**kwargs)
