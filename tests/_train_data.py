"""Tiny synthetic preference data for the train tests (no simulator, no dataset build)."""

from __future__ import annotations

import torch

from symloss.bench import TokenPolicySpec, init_params
from symloss.train import PreferenceData, random_pair_tensors


def synthetic_data(n_pairs: int = 64, seg_len: int = 8, *, holdout_fraction: float = 0.25,
                   seed: int = 0) -> PreferenceData:
    """Random pairs for a 5-d observation, 2-d action, 5-bin policy; ragged lengths; a non-uniform reference."""
    gen = torch.Generator().manual_seed(seed)
    spec = TokenPolicySpec(obs_dim=5, act_dim=2, n_bins=5, hidden=(16, 16))
    tensors = random_pair_tensors(spec, n_pairs, seg_len, min_length=3, generator=gen)
    reference = {k: v * 20 for k, v in init_params(spec, 1, gen).items()}
    expert = (torch.rand(n_pairs, generator=gen) < 0.3, torch.rand(n_pairs, generator=gen) < 0.3)
    return PreferenceData.from_tensors(spec, reference, tensors, holdout_fraction=holdout_fraction, expert=expert)
