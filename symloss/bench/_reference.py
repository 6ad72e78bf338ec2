"""From a preference dataset to tensors, and the SFT reference policy (behaviour cloning on chosen segments).

SFT objective, as LLM pipelines use before preference optimisation (mean over valid tokens):

    L_SFT(theta) = - sum_{b,k} m_{b,k} log pi_theta(bin_{b,k} | obs_{b,k}) / sum_{b,k} m_{b,k}

over the chosen segments b, tokens k (step-major; mask m zero on padding).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch

from symloss.bench._envs import env_info
from symloss.bench._token_policy import TokenPolicySpec, init_params, token_logps, token_mask, tokenize
from symloss.validation import check_range

if TYPE_CHECKING:
    import datasets

__all__ = ["pair_tensors", "spec_for_dataset", "fit_reference"]


def _config(ds: datasets.Dataset) -> dict:
    """The ``BenchConfig`` dict that ``build_dataset`` stores in ``ds.info.description``."""
    try:
        return json.loads(ds.info.description)
    except (TypeError, ValueError) as err:
        raise ValueError("dataset: no BenchConfig in ds.info.description; build it with build_dataset") from err


def spec_for_dataset(
    ds: datasets.Dataset, *, n_bins: int = 11, hidden: tuple[int, ...] = (64, 64)
) -> TokenPolicySpec:
    """A ``TokenPolicySpec`` for ``ds``'s env, normalising observations by the chosen segments' statistics."""
    info = env_info(_config(ds)["env"])
    cols = ds.with_format("numpy")[:]
    obs, length = np.asarray(cols["chosen_obs"]), np.asarray(cols["chosen_length"])
    valid = obs[np.arange(obs.shape[1])[None, :] < length[:, None]]  # [steps, D]
    mean, std = valid.mean(0), valid.std(0) + 1e-3
    return TokenPolicySpec(
        obs_dim=info.obs_dim, act_dim=info.act_dim, n_bins=n_bins, hidden=tuple(hidden),
        obs_shift=tuple(float(x) for x in mean), obs_scale=tuple(float(x) for x in std),
    )


def pair_tensors(ds: datasets.Dataset, spec: TokenPolicySpec) -> dict[str, torch.Tensor]:
    """Torch tensors of every pair, for ``token_logps`` and ``LogpBatch``.

    Returns:
        for side in (chosen, rejected): ``{side}_obs [P, L, D]`` float32, ``{side}_bins [P, L, A]`` int64,
        ``{side}_mask [P, L * A]`` bool, ``{side}_return [P]`` float32; and ``flipped``, ``low_quality`` [P] bool.
    """
    cols = ds.with_format("numpy")[:]
    out: dict[str, torch.Tensor] = {}
    for side in ("chosen", "rejected"):
        obs = torch.from_numpy(np.asarray(cols[f"{side}_obs"], dtype=np.float32))
        out[f"{side}_obs"] = obs
        out[f"{side}_bins"] = tokenize(spec, torch.from_numpy(np.asarray(cols[f"{side}_actions"])))
        length = torch.from_numpy(np.asarray(cols[f"{side}_length"], dtype=np.int64))
        out[f"{side}_mask"] = token_mask(length, obs.shape[1], spec.act_dim)
        out[f"{side}_return"] = torch.from_numpy(np.asarray(cols[f"{side}_return"], dtype=np.float32))
    for flag in ("flipped", "low_quality"):
        out[flag] = torch.from_numpy(np.asarray(cols[flag], dtype=bool))
    return out


def fit_reference(
    spec: TokenPolicySpec,
    ds: datasets.Dataset,
    *,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Behaviour cloning (``L_SFT`` above) on the chosen segments with Adam; deterministic for ``seed``.

    Returns:
        parameters with N = 1 (``init_params`` layout), detached.
    """
    check_range("steps", steps, lo=0, integer=True)
    check_range("batch_size", batch_size, lo=1, integer=True)
    check_range("lr", lr, lo=0, lo_open=True)
    gen = torch.Generator().manual_seed(int(seed))
    data = pair_tensors(ds, spec)
    params = {k: v.requires_grad_() for k, v in init_params(spec, 1, gen).items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    n = data["chosen_obs"].shape[0]
    for _ in range(int(steps)):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        logp = token_logps(spec, params, data["chosen_obs"][idx], data["chosen_bins"][idx])[0]  # [B, T]
        mask = data["chosen_mask"][idx].float()
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}
