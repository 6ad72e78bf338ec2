"""From a preference dataset to tensors, and the SFT reference policy (behaviour cloning on chosen segments).

SFT objective, as LLM pipelines use before preference optimisation (mean over valid tokens):

    L_SFT(theta) = - sum_{b,k} m_{b,k} log pi_theta(bin_{b,k} | obs_{b,k}) / sum_{b,k} m_{b,k}

over the chosen segments b, tokens k (step-major; mask m zero on padding). :func:`load_reference` fits it
once per (dataset, spec, steps, seed) and caches it under ``<cache>/references/``; a cache file is loaded
without unpickling objects and checked (:func:`reference_problem`) before use.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from symloss.bench._dataset import dataset_hash, default_cache_dir
from symloss.bench._envs import env_info
from symloss.bench._token_policy import TokenPolicySpec, init_params, token_logps, token_mask, tokenize
from symloss.validation import check_range

if TYPE_CHECKING:
    import datasets

__all__ = ["REFERENCE_STEPS", "fit_reference", "load_reference", "pair_tensors", "reference_problem",
           "spec_for_dataset"]

REFERENCE_STEPS = 1500
"""Adam steps of the SFT reference (behaviour cloning converges well within them on every dataset)."""


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
    steps: int = REFERENCE_STEPS,
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


def reference_problem(params: Any, spec: TokenPolicySpec) -> str:
    """Why ``params`` is not an SFT reference for ``spec`` (``""`` if it is).

    A reference is a dict holding exactly the tensors of ``init_params(spec, 1)``: same keys, shapes and
    dtype (float32), plain dense tensors, every value finite.
    """
    expected = init_params(spec, 1, torch.Generator().manual_seed(0))
    if not isinstance(params, dict):
        return f"holds a {type(params).__name__}, not a dict of tensors"
    missing, extra = sorted(set(expected) - set(params)), sorted(map(str, set(params) - set(expected)))
    if missing or extra:
        return f"keys differ from the policy's (missing {missing}, unexpected {extra[:5]})"
    for key, like in expected.items():
        value = params[key]
        if type(value) is not torch.Tensor or value.layout != torch.strided:
            return f"{key!r} is a {type(value).__name__}, not a dense tensor"
        if value.shape != like.shape or value.dtype != like.dtype:
            return (f"{key!r} is {value.dtype} of shape {tuple(value.shape)}, expected {like.dtype} of shape "
                    f"{tuple(like.shape)}")
        if not torch.isfinite(value).all():
            return f"{key!r} holds non-finite values"
    return ""


def _load_cached(path: Path, spec: TokenPolicySpec) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The reference stored at ``path`` and ``""``, or None and why it is unusable. Never unpickles objects:
    ``torch.load(weights_only=True)`` accepts tensors and plain containers only."""
    try:
        with warnings.catch_warnings():  # torch's own notes on odd pickles: we say it once, below
            warnings.simplefilter("ignore")
            params = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or tampered file may fail in any way; we refit
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        return None, f"{type(exc).__name__}: {first_line}"
    reason = reference_problem(params, spec)
    return (None, reason) if reason else (params, "")


def load_reference(ds: datasets.Dataset, spec: TokenPolicySpec, *, seed: int = 0, steps: int = REFERENCE_STEPS,
                   cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The SFT reference for ``ds`` (:func:`fit_reference`), fitted once per (dataset, spec, steps, seed) and
    cached on disk under ``<cache_dir or default_cache_dir()>/references/``.

    A cache file that does not load, or whose content is not a valid reference (:func:`reference_problem`:
    keys, shapes, dtype, finite values), is refitted with a warning naming the file; the file is replaced
    (atomically) only after the refit succeeded.
    """
    root = Path(cache_dir or default_cache_dir()) / "references"
    key = f"{dataset_hash(ds)[:16]}-{spec.n_bins}-{'x'.join(map(str, spec.hidden))}-{steps}-{seed}"
    path = root / f"{key}.pt"
    if path.exists():
        reference, reason = _load_cached(path, spec)
        if reference is not None:
            return reference
        warnings.warn(f"symloss: SFT reference cache {path} is unusable ({reason}); refitting it", stacklevel=2)
    reference = fit_reference(spec, ds, steps=steps, seed=seed)
    if reason := reference_problem(reference, spec):
        raise ValueError(f"SFT reference: fitting it on this dataset gave an invalid reference ({reason}); "
                         "check the dataset (non-finite observations?) or lower the reference's steps")
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(reference, tmp)
    tmp.replace(path)
    return reference
