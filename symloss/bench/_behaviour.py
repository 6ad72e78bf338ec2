"""Behaviour policies: loading the committed checkpoints and rolling out trajectory segments.

Checkpoints live in ``symloss/bench/policies/`` (written by ``paper_repro/train_behaviour_policies.py``):
``{env}_{level}.npz`` with float32 ``W0, b0, W1, b1, W2, b2`` (``W`` as ``[in, out]``), ``log_std``,
``obs_mean``, ``obs_var``, ``clip_obs``, ``obs_eps``, and ``manifest.json`` with each level's measured
mean return. The mean action is

    o  = clip((obs - obs_mean) / sqrt(obs_var + obs_eps), -clip_obs, clip_obs)
    mu = W2^T tanh(W1^T tanh(W0^T o + b0) + b1) + b2

and the rollout action is ``clip(mu + action_noise * exp(log_std) * eps, -1, 1)``, eps ~ N(0, I).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symloss.bench._envs import check_env_name
from symloss.bench._sim import BatchSim

__all__ = ["POLICY_DIR", "LEVELS", "BehaviourPolicy", "load_behaviour", "policy_manifest", "policies_fingerprint",
           "rollout_segments"]

POLICY_DIR = Path(__file__).resolve().parent / "policies"
LEVELS: tuple[str, ...] = ("random", "weak", "medium", "expert")
"""Graded behaviour-policy levels, worst to best."""


@dataclass(frozen=True, eq=False)
class BehaviourPolicy:
    """A committed behaviour checkpoint as plain NumPy arrays."""

    env: str
    level: str
    arrays: dict[str, np.ndarray]

    def mean_action(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action ``[M, act_dim]`` for observations ``[M, obs_dim]``."""
        p = self.arrays
        o = np.clip((obs - p["obs_mean"]) / np.sqrt(p["obs_var"] + p["obs_eps"]), -p["clip_obs"], p["clip_obs"])
        h = np.tanh(o @ p["W0"] + p["b0"])
        h = np.tanh(h @ p["W1"] + p["b1"])
        return h @ p["W2"] + p["b2"]

    @property
    def std(self) -> np.ndarray:
        """Learned Gaussian standard deviation ``[act_dim]``."""
        return np.exp(self.arrays["log_std"].astype(np.float64))


def policy_manifest(policy_dir: Path | None = None) -> dict:
    """The manifest: ``{env: {level: {"file", "mean_return", "std_return", ...}}}``."""
    path = Path(policy_dir or POLICY_DIR) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no behaviour-policy manifest; run paper_repro/train_behaviour_policies.py")
    return json.loads(path.read_text())


def load_behaviour(env: str, level: str, policy_dir: Path | None = None) -> BehaviourPolicy:
    """Load checkpoint ``{env}_{level}.npz``; unknown env or level raises ``ValueError``."""
    check_env_name(env)
    if level not in LEVELS:
        raise ValueError(f"level={level!r}: unknown behaviour level; accepted: {', '.join(LEVELS)}")
    entry = policy_manifest(policy_dir)[env][level]
    with np.load(Path(policy_dir or POLICY_DIR) / entry["file"]) as f:
        arrays = {k: f[k].astype(np.float64) for k in f.files}
    return BehaviourPolicy(env=env, level=level, arrays=arrays)


def policies_fingerprint(env: str, policy_dir: Path | None = None) -> str:
    """SHA-256 over the manifest entry and the env's checkpoint files (dataset caches key on it)."""
    root = Path(policy_dir or POLICY_DIR)
    h = hashlib.sha256(json.dumps(policy_manifest(root)[env], sort_keys=True).encode())
    for level in LEVELS:
        h.update((root / f"{env}_{level}.npz").read_bytes())
    return h.hexdigest()


def _cut(obs, act, rew, length: int, seg_len: int, min_len: int) -> list[tuple]:
    """Non-overlapping chunks ``[k L, (k+1) L)`` of one episode, zero-padded to L, dropping those < min_len."""
    out = []
    for start in range(0, length, seg_len):
        n = min(seg_len, length - start)
        if n < min_len:
            continue
        o, a = np.zeros((seg_len, obs.shape[1])), np.zeros((seg_len, act.shape[1]))
        o[:n], a[:n] = obs[start : start + n], act[start : start + n]
        out.append((o, a, n, float(rew[start : start + n].sum())))
    return out


def _available(steps: np.ndarray, done: np.ndarray, seg_len: int, min_len: int) -> int:
    """Segments that ``_cut`` would yield now: finished episodes keep a last chunk >= min_len."""
    tail = done & (steps % seg_len >= min_len)
    return int((steps // seg_len).sum() + tail.sum())


def rollout_segments(
    policy: BehaviourPolicy,
    n_segments: int,
    *,
    seg_len: int,
    min_len: int,
    action_noise: float,
    seed: int,
    n_envs: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Roll out ``policy`` in rounds of ``n_envs`` episodes until ``n_segments`` segments exist.

    A round stops early, at a multiple of ``seg_len`` steps, once it holds enough segments.

    Returns:
        ``obs [S, L, obs_dim]``, ``actions [S, L, act_dim]`` (float32, zero-padded), ``length [S]`` and
        ``ret [S]`` (sum of the segment's rewards), S = n_segments, ordered by (round, env, start).
    """
    rng = np.random.default_rng(seed)
    segs: list[tuple] = []
    sim = BatchSim(policy.env, n_envs)
    std = action_noise * policy.std
    while len(segs) < n_segments:
        obs = sim.reset(rng.integers(0, 2**31 - 1, size=n_envs))
        traj_o, traj_a, traj_r = [], [], []
        while not sim.done.all():
            a = np.clip(policy.mean_action(obs) + std * rng.standard_normal((n_envs, std.shape[0])), -1, 1)
            traj_o.append(obs)
            traj_a.append(a)
            obs, r, _ = sim.step(a)
            traj_r.append(r)
            if len(traj_r) % seg_len == 0 and _available(sim.steps, sim.done, seg_len, min_len) >= n_segments - len(segs):
                break  # enough segments: live episodes are cut at a multiple of seg_len
        o, a, r = np.stack(traj_o, 1), np.stack(traj_a, 1), np.stack(traj_r, 1)  # [n_envs, T, ...]
        before = len(segs)
        for i in range(n_envs):
            segs.extend(_cut(o[i], a[i], r[i], int(sim.steps[i]), seg_len, min_len))
        if on_progress is not None:
            on_progress(min(len(segs), n_segments) - min(before, n_segments))
    segs = segs[:n_segments]
    return {
        "obs": np.stack([s[0] for s in segs]).astype(np.float32),
        "actions": np.stack([s[1] for s in segs]).astype(np.float32),
        "length": np.array([s[2] for s in segs], dtype=np.int32),
        "ret": np.array([s[3] for s in segs], dtype=np.float32),
    }
