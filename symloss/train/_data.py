"""Preference data on the training device, with the reference policy's log-probs computed once.

:class:`PreferenceData` is the cache that the search holds across candidates and generations: it is
built once per (dataset, reference) by :func:`prepare_data` and never changes.

Split: a fraction ``holdout_fraction`` of the pairs (a random subset drawn from ``split_seed``) is held
out from training for the ``offline`` fitness. Its labels are the clean ones: the segment with the higher
true return is "better", whatever the (possibly flipped) dataset label says. Expert segments are the
held-out segments of the behaviour level with the highest mean segment return in the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import torch

from symloss.bench import TokenPolicySpec, pair_tensors, token_logps

__all__ = ["PreferenceData", "prepare_data", "reference_logps"]

SIDES = ("chosen", "rejected")
PAIR_KEYS = tuple(f"{s}_{k}" for s in SIDES for k in ("obs", "bins", "mask"))


@torch.no_grad()
def reference_logps(spec: TokenPolicySpec, reference: dict[str, torch.Tensor], obs: torch.Tensor,
                    bins: torch.Tensor, *, chunk: int = 1024) -> torch.Tensor:
    """Per-token log-probs ``[n, L * A]`` of one policy (N = 1) on ``obs [n, L, D]``, ``bins [n, L, A]``."""
    parts = [token_logps(spec, reference, obs[i:i + chunk], bins[i:i + chunk])[0]
             for i in range(0, obs.shape[0], chunk)]
    return torch.cat(parts) if parts else obs.new_zeros(0, obs.shape[1] * spec.act_dim)


def random_pair_tensors(spec: TokenPolicySpec, n_pairs: int, seg_len: int, *, min_length: int,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random pairs in :func:`bench.pair_tensors` layout, for tests and benchmarks that need no simulator.

    Per side: obs ~ N(0, 1) ``[n, L, D]``, bins ~ U{0..K-1} ``[n, L, A]``, lengths ~ U{min_length..L} (token mask
    ``[n, L * A]``), returns ~ N(0, 1) ``[n]``.
    """
    tensors = {}
    for side in ("chosen", "rejected"):
        tensors[f"{side}_obs"] = torch.randn(n_pairs, seg_len, spec.obs_dim, generator=generator)
        tensors[f"{side}_bins"] = torch.randint(0, spec.n_bins, (n_pairs, seg_len, spec.act_dim), generator=generator)
        length = torch.randint(min_length, seg_len + 1, (n_pairs,), generator=generator)
        tensors[f"{side}_mask"] = (torch.arange(seg_len)[None] < length[:, None]).repeat_interleave(spec.act_dim, 1)
        tensors[f"{side}_return"] = torch.randn(n_pairs, generator=generator)
    return tensors


@dataclass(frozen=True, eq=False)
class PreferenceData:
    """Training and held-out tensors of a preference dataset plus the reference's log-probs.

    Attributes:
        spec: the token policy shape.
        reference: SFT reference parameters (N = 1); every member starts from them.
        train: ``{side}_obs [n, L, D]``, ``{side}_bins [n, L, A]``, ``{side}_mask [n, T]``,
            ``ref_{side}_logps [n, T]`` for side in (chosen, rejected); T = L * A.
        holdout: the same keys for the held-out pairs plus ``better_is_chosen [m]`` (clean label) and
            ``expert_obs``, ``expert_bins``, ``expert_mask`` (held-out expert segments); None if no holdout.
        env: the benchmark environment the data came from (``hopper``/``tla``), None for synthetic data.
    """

    spec: TokenPolicySpec
    reference: dict[str, torch.Tensor]
    train: dict[str, torch.Tensor]
    holdout: dict[str, torch.Tensor] | None = None
    env: str | None = None

    @property
    def n_train(self) -> int:
        """Number of training pairs."""
        return int(self.train["chosen_obs"].shape[0])

    @property
    def device(self) -> torch.device:
        return self.train["chosen_obs"].device

    @property
    def dtype(self) -> torch.dtype:
        return self.train["chosen_obs"].dtype

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> PreferenceData:
        """A copy on ``device`` with floating tensors in ``dtype`` (self when nothing changes)."""
        device = torch.device(device)
        if self.device == device and self.dtype == dtype:
            return self

        def move(d: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
            if d is None:
                return None
            return {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in d.items()}

        return replace(self, reference=move(self.reference), train=move(self.train), holdout=move(self.holdout))

    @classmethod
    def from_tensors(cls, spec: TokenPolicySpec, reference: dict[str, torch.Tensor],
                     tensors: dict[str, torch.Tensor], *, holdout_fraction: float = 0.1, split_seed: int = 0,
                     expert: tuple[torch.Tensor, torch.Tensor] | None = None,
                     env: str | None = None) -> PreferenceData:
        """Split ``pair_tensors``-style tensors, compute reference log-probs once.

        Args:
            tensors: ``{side}_obs``, ``{side}_bins``, ``{side}_mask`` and ``{side}_return`` for both sides.
            expert: ``(chosen_is_expert [n], rejected_is_expert [n])`` bool masks; None: no expert term.
        """
        if not 0 <= holdout_fraction < 1:
            raise ValueError(f"holdout_fraction={holdout_fraction!r}: must lie in [0, 1)")
        missing = [k for k in (*PAIR_KEYS, "chosen_return", "rejected_return") if k not in tensors]
        if missing:
            raise ValueError(f"tensors: missing {missing}; expected the keys of bench.pair_tensors")
        n = int(tensors["chosen_obs"].shape[0])
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(split_seed)))
        n_hold = int(round(holdout_fraction * n))
        if n - n_hold < 1:
            raise ValueError(f"holdout_fraction={holdout_fraction!r}: leaves no training pair out of {n}")
        hold_idx, train_idx = perm[:n_hold].sort().values, perm[n_hold:].sort().values
        reference = {k: v.detach().float() for k, v in reference.items()}
        train = _with_reference(spec, reference, {k: tensors[k][train_idx] for k in PAIR_KEYS})
        holdout = None
        if n_hold:
            holdout = _with_reference(spec, reference, {k: tensors[k][hold_idx] for k in PAIR_KEYS})
            holdout["better_is_chosen"] = tensors["chosen_return"][hold_idx] >= tensors["rejected_return"][hold_idx]
            if expert is not None:
                holdout.update(_expert_segments(tensors, hold_idx, expert))
        return cls(spec=spec, reference=reference, train=train, holdout=holdout, env=env)


def _with_reference(spec: TokenPolicySpec, reference: dict[str, torch.Tensor],
                    part: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for side in SIDES:
        part[f"ref_{side}_logps"] = reference_logps(spec, reference, part[f"{side}_obs"], part[f"{side}_bins"])
    return part


def _expert_segments(tensors: dict[str, torch.Tensor], idx: torch.Tensor,
                     expert: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key in ("obs", "bins", "mask"):
        parts = [tensors[f"{side}_{key}"][idx][flag[idx]] for side, flag in zip(SIDES, expert)]
        out[f"expert_{key}"] = torch.cat(parts)
    return out


def _best_level(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of segments from the level with the highest mean segment return: ([n], [n]) bool."""
    cols = ds.with_format("numpy")[:]
    levels = np.concatenate([np.asarray(cols["chosen_level"]), np.asarray(cols["rejected_level"])])
    returns = np.concatenate([np.asarray(cols["chosen_return"]), np.asarray(cols["rejected_return"])])
    names = sorted(set(levels.tolist()))
    best = max(names, key=lambda name: returns[levels == name].mean())
    return (torch.from_numpy(np.asarray(cols["chosen_level"]) == best),
            torch.from_numpy(np.asarray(cols["rejected_level"]) == best))


def prepare_data(ds, spec: TokenPolicySpec, reference: dict[str, torch.Tensor], *,
                 holdout_fraction: float = 0.1, split_seed: int = 0, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> PreferenceData:
    """:class:`PreferenceData` of a ``bench.build_dataset`` dataset: split, reference log-probs, device.

    Args:
        ds: a preference dataset from ``symloss.bench.build_dataset``.
        spec: token policy shape (``bench.spec_for_dataset``).
        reference: SFT reference parameters (``bench.fit_reference``), N = 1.
        holdout_fraction: fraction of pairs held out for the ``offline`` fitness, in [0, 1).
        split_seed: seed of the held-out subset.
    """
    try:
        env = json.loads(ds.info.description)["env"]
    except (TypeError, ValueError, KeyError):
        env = None
    data = PreferenceData.from_tensors(spec, reference, pair_tensors(ds, spec), holdout_fraction=holdout_fraction,
                                       split_seed=split_seed, expert=_best_level(ds), env=env)
    return data.to(device, dtype)
