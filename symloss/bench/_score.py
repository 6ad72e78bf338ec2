"""Normalised score: returns on one scale across environments.

    score(R) = 100 * (R - R_random) / (R_expert - R_random)

with R_random and R_expert the mean returns of the ``random`` and ``expert`` behaviour policies in the
committed manifest (``policy_manifest()``; Hopper 95.0 and 3273.3, TLA 993 and 3272). 0 is the random
behaviour policy, 100 the expert; a score may leave [0, 100].
"""

from __future__ import annotations

import numpy as np

from symloss.bench._behaviour import policy_manifest
from symloss.bench._envs import check_env_name

__all__ = ["normalised_score", "score_anchors"]


def score_anchors(env: str) -> tuple[float, float]:
    """``(R_random, R_expert)`` of ``env`` from the behaviour-policy manifest."""
    check_env_name(env)
    levels = policy_manifest()[env]
    return float(levels["random"]["mean_return"]), float(levels["expert"]["mean_return"])


def normalised_score(env: str, returns: np.ndarray | float) -> np.ndarray | float:
    """100 (R - R_random) / (R_expert - R_random), elementwise; same shape as ``returns``. The anchors are mean
    returns of whole episodes (1000 steps): returns scored at a shorter ``TrainConfig.horizon`` (TLA's presets,
    500 steps) are not on this scale."""
    low, high = score_anchors(env)
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
