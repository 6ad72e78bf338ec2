"""Batched evaluation of N tokenised policies x E episodes in one set of MuJoCo environments.

Env (n, e) of the ``N * E`` environments runs member n's policy from Gymnasium's ``reset(seed=seed + e)``
(the same E start states for every member: common random numbers), or from ``reset(seed=starts[n, e])`` when
``starts`` is given (:func:`per_seed_starts`: the members of each training seed on their own block of start
states, shared by the losses trained on that seed, so comparisons stay paired). Each environment step is one
batched policy forward for the members that still have a running episode and one ``BatchSim.step``.
A member's return does not depend on which other members share the batch: its policy forward is its own
matmul (``baddbmm`` over members) and its environments have their own ``MjData``.

Action rules (``action``, see :func:`~symloss.bench.act`): ``greedy`` (the most probable bin, the paper's
evaluation; its return is piecewise constant and chaotic in the weights), ``mean`` (the expected bin centre
under softmax(logits / temperature): smooth in the weights, so far less start-state and seed noise) and
``sample``. For ``sample``, step t of episode e draws U ~ Uniform[0, 1)^act_dim from
``torch.Generator().manual_seed(seed)`` (one ``[E, act_dim]`` block per step) and every member uses the same
U (common random numbers, like the common start states), so a member's draws depend only on ``seed``, e and t:
not on the other members, the batch or the chunking.
"""

from __future__ import annotations

import numpy as np
import torch

from symloss.bench._envs import env_info
from symloss.bench._sim import BatchSim
from symloss.bench._token_policy import ACTIONS, TokenPolicySpec, act

__all__ = ["evaluate", "episode_returns", "per_seed_starts"]


def per_seed_starts(seed: int, train_seeds: np.ndarray | list[int], episodes: int) -> np.ndarray:
    """Reset seeds ``[N, E]`` that give each training seed its own block of E start states.

    Member n, trained on seed s_n = ``train_seeds[n]`` (>= 0), plays episode e from
    ``reset(seed = seed + s_n E + e)``. Members trained on the same seed (every loss) share their E start states,
    so losses are still compared on common states seed by seed, and a run of S seeds covers S x E distinct states
    at the cost of E per policy. The block depends only on the seed's value, so a seed scores on the same states
    whichever call (a promotion that trains only the missing seeds, a resumed run) evaluates it. A loss's mean
    then averages its loss-by-state interaction over S x E states instead of E."""
    train_seeds = np.asarray(train_seeds, dtype=np.int64)
    if train_seeds.ndim != 1 or (train_seeds < 0).any():
        raise ValueError(f"train_seeds: must be a 1-D list of training seeds >= 0 (got shape {train_seeds.shape})")
    if int(episodes) < 1:
        raise ValueError(f"episodes={episodes!r}: must be >= 1")
    return int(seed) + train_seeds[:, None] * int(episodes) + np.arange(int(episodes))[None, :]


def episode_returns(
    spec: TokenPolicySpec,
    params: dict[str, torch.Tensor],
    env: str,
    *,
    episodes: int = 5,
    seed: int = 0,
    greedy: bool = True,
    return_lengths: bool = False,
    threads: int | None = None,
    action: str | None = None,
    temperature: float = 0.25,
    starts: np.ndarray | None = None,
    horizon: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Undiscounted returns ``[N, E]`` of every member on every episode (float64).

    ``horizon``: play at most this many steps per episode, R = sum_{t < H} r_t (the first H steps of the full
    episode: the rollout is the same up to step H); None: the environment's limit (1000 steps).

    ``starts``: the reset seed of every member's every episode ``[N, E]`` (e.g. :func:`per_seed_starts`);
    None: ``seed + e`` for every member. ``seed`` still seeds the ``sample`` rule's draws.

    ``action``: ``greedy`` (default; ``greedy=False`` means ``sample``), ``mean`` (with ``temperature`` > 0)
    or ``sample`` (module docstring).

    With ``return_lengths``, also the episode lengths ``[N, E]`` (int64) as a second value. ``threads``: the
    simulator's worker threads (:class:`BatchSim`; None: one per core); results do not depend on it.
    """
    info = env_info(env)
    if (spec.obs_dim, spec.act_dim) != (info.obs_dim, info.act_dim):
        raise ValueError(
            f"spec: obs_dim={spec.obs_dim}, act_dim={spec.act_dim} do not match env={env!r} "
            f"(obs_dim={info.obs_dim}, act_dim={info.act_dim})"
        )
    if int(episodes) < 1:
        raise ValueError(f"episodes={episodes!r}: must be >= 1")
    limit = info.max_steps if horizon is None else horizon
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= info.max_steps:
        raise ValueError(f"horizon={horizon!r}: must be an integer in [1, {info.max_steps}] (steps per episode) "
                         f"or None (the environment's {info.max_steps})")
    rule = action if action is not None else ("greedy" if greedy else "sample")
    if rule not in ACTIONS:
        raise ValueError(f"action={rule!r}: must be one of {list(ACTIONS)}")
    if not temperature > 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature={temperature!r}: must be a finite number > 0")
    n = params["W0"].shape[0]
    if starts is None:
        resets = np.tile(seed + np.arange(episodes), n)
    else:
        resets = np.asarray(starts)
        if resets.shape != (n, episodes) or not np.issubdtype(resets.dtype, np.integer):
            raise ValueError(f"starts: shape {resets.shape} ({resets.dtype}) must be integer ({n}, {episodes}): "
                             "one reset seed per member and episode; see per_seed_starts")
        resets = resets.reshape(-1)
    sim = BatchSim(env, n * episodes, threads=threads)
    obs = sim.reset(resets)
    gen = torch.Generator().manual_seed(int(seed))
    dtype = params["W0"].dtype
    total = np.zeros(n * episodes)
    actions = np.zeros((n, episodes, info.act_dim))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the policy's matmuls are tiny; torch's threads would spin (against the sim's)
    live, members = np.arange(n), params
    try:
        for _ in range(int(limit)):
            if sim.done.all():
                break
            uniform = torch.rand((episodes, info.act_dim), generator=gen, dtype=dtype) if rule == "sample" else None
            now = np.flatnonzero(~sim.done.reshape(n, episodes).all(1))  # members with a running episode
            if len(now) < len(live):  # the others are skipped (each member's forward is its own)
                live, members = now, {k: v[torch.from_numpy(now)] for k, v in params.items()}
            o = torch.from_numpy(obs.reshape(n, episodes, info.obs_dim)[live]).to(dtype)
            u = None if uniform is None else uniform.expand(len(live), -1, -1)
            actions[live] = act(spec, members, o, action=rule, temperature=temperature, uniform=u).double().numpy()
            obs, reward, _ = sim.step(actions.reshape(n * episodes, info.act_dim))
            total += reward
    finally:
        sim.close()
        torch.set_num_threads(torch_threads)
    returns = total.reshape(n, episodes)
    return (returns, sim.steps.reshape(n, episodes).copy()) if return_lengths else returns


def evaluate(
    spec: TokenPolicySpec,
    params: dict[str, torch.Tensor],
    env: str,
    *,
    episodes: int = 5,
    seed: int = 0,
    greedy: bool = True,
    threads: int | None = None,
    action: str | None = None,
    temperature: float = 0.25,
    starts: np.ndarray | None = None,
    horizon: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each member's return over ``episodes`` episodes.

    Args:
        spec: policy shape; must match ``env``'s observation and action sizes.
        params: stacked parameters of N members (``init_params`` layout).
        env: ``hopper`` or ``tla``.
        episodes: E, episodes per member.
        seed: episode e of every member starts from Gymnasium's ``reset(seed=seed + e)``;
            sampling (``greedy=False``) also draws from ``seed``.
        greedy: most probable bin per action dimension (default) or sampled bins.
        action: ``greedy``, ``mean`` or ``sample`` (overrides ``greedy``; see the module docstring).
        temperature: of the ``mean`` rule's softmax; > 0.
        threads: the simulator's worker threads (None: one per available core, at most 16).
        starts: reset seeds ``[N, E]``, one per member and episode, in place of ``seed + e`` (see
            :func:`episode_returns`).
        horizon: steps per episode at most (the first ``horizon`` steps' return); None: the environment's limit.

    Returns:
        ``(mean [N], std [N])`` float64 tensors (population std over episodes).
    """
    returns = episode_returns(spec, params, env, episodes=episodes, seed=seed, greedy=greedy, threads=threads,
                              action=action, temperature=temperature, starts=starts, horizon=horizon)
    return torch.from_numpy(returns.mean(1)), torch.from_numpy(returns.std(1))
