"""Tiny synthetic preference data for the train tests (no simulator, no dataset build)."""

from __future__ import annotations

import torch

from symloss.bench import TokenPolicySpec, init_params
from symloss.train import PreferenceData


def synthetic_data(n_pairs: int = 64, seg_len: int = 8, *, holdout_fraction: float = 0.25,
                   seed: int = 0) -> PreferenceData:
    """Random pairs for a 5-d observation, 2-d action, 5-bin policy; ragged lengths; a non-uniform reference."""
    gen = torch.Generator().manual_seed(seed)
    spec = TokenPolicySpec(obs_dim=5, act_dim=2, n_bins=5, hidden=(16, 16))
    tensors = {}
    for side in ("chosen", "rejected"):
        tensors[f"{side}_obs"] = torch.randn(n_pairs, seg_len, spec.obs_dim, generator=gen)
        tensors[f"{side}_bins"] = torch.randint(0, spec.n_bins, (n_pairs, seg_len, spec.act_dim), generator=gen)
        length = torch.randint(3, seg_len + 1, (n_pairs,), generator=gen)
        tensors[f"{side}_mask"] = (torch.arange(seg_len)[None] < length[:, None]).repeat_interleave(spec.act_dim, 1)
        tensors[f"{side}_return"] = torch.randn(n_pairs, generator=gen)
    reference = {k: v * 20 for k, v in init_params(spec, 1, gen).items()}
    expert = (torch.rand(n_pairs, generator=gen) < 0.3, torch.rand(n_pairs, generator=gen) < 0.3)
    return PreferenceData.from_tensors(spec, reference, tensors, holdout_fraction=holdout_fraction, expert=expert)
