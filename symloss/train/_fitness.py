"""Fitness of trained policies: ``return`` (simulator), ``offline`` (no simulator) and custom callables.

A fitness function has the signature ``fn(spec, params, context) -> Tensor[N]`` (or a mapping with a
``"fitness"`` entry ``[N]`` and any extra ``[N]`` metrics), where ``params`` holds N stacked policies and
``context`` is a :class:`FitnessContext`. Higher is better.

``return``: R_n = mean over E episodes of the undiscounted return of member n's policy under the protocol's
action rule (``TrainConfig.action``: greedy bins, the tempered mean action, or sampled bins)
(``bench.evaluate``, episode e from ``reset(seed=eval_seed + e)`` for every member, as in the paper; with
``start_states="per_seed"`` from ``reset(seed=eval_seed + s E + e)`` for a member trained on seed s).

``offline`` (no simulator), on the held-out split of :class:`PreferenceData`:

    r_n(y)   = (1 / |y|) sum_t [log pi_n(y_t) - log pi_ref(y_t)]           (per-token implicit reward)
    acc_n    = mean over held-out pairs of 1[r_n(y_better) > r_n(y_worse)]  (+ 1/2 on ties)
    ll_n     = mean over the tokens of held-out expert segments of log pi_n(token)
    F_n      = (1 - w) acc_n + w (1 + ll_n / log K)                           (w = offline_ll_weight)

"better" uses the true segment returns (clean labels, whatever the training labels say); the expert is the
behaviour level with the highest mean return; K = n_bins, so 1 + ll / log K is 0 for the uniform policy
and 1 for a policy that puts probability 1 on every expert action. The reward r_n does not depend on the
candidate loss, so candidates are compared on one scale; at the reference, acc = 1/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from symloss.bench import TokenPolicySpec, evaluate, per_seed_starts, token_logps
from symloss.train._config import TrainConfig
from symloss.train._cpu import available_cpus
from symloss.train._data import PreferenceData

__all__ = ["FITNESS", "FitnessContext", "FitnessFn", "expert_loglik", "holdout_accuracy", "offline_fitness",
           "resolve_fitness", "return_fitness", "split_fitness"]

ROWS_PER_CHUNK = 1 << 20
"""Members x pairs x steps evaluated at once by the offline fitness (bounds its memory)."""
EVAL_MAX_ENVS = 1024
"""Most simulator environments (members x episodes) in one batch of the ``return`` fitness: one Hopper or
Ant ``MjData`` holds about 450 KiB, so a batch stays under ~0.5 GiB. A generation of the default search
(16 candidates x 2 seeds x 5 episodes = 160) is one batch."""


@dataclass(frozen=True)
class FitnessContext:
    """What a fitness function may use besides the parameters.

    Attributes:
        data: the preference data (held-out split, reference log-probs, env).
        config: the trainer's configuration (``episodes``, ``eval_seed``, ``offline_ll_weight``...).
        candidates: ``[N]`` candidate index of each member; seeds: ``[N]`` its training seed.
        threads: simulator threads (None: one per CPU this process may use, at most 16). Simulator threads
            wait passively, so unlike torch's they need no load rule (``symloss.train._cpu``).
    """

    data: PreferenceData
    config: TrainConfig
    candidates: torch.Tensor
    seeds: torch.Tensor
    threads: int | None = None


FitnessFn = Callable[[TokenPolicySpec, dict[str, torch.Tensor], FitnessContext], Any]


def return_fitness(spec: TokenPolicySpec, params: dict[str, torch.Tensor], context: FitnessContext) -> torch.Tensor:
    """Mean return ``[N]`` over ``config.episodes`` episodes in the dataset's environment.

    All N members run in one simulator batch (several when N x episodes exceeds :data:`EVAL_MAX_ENVS`);
    returns do not depend on the batching (each environment and each member's policy computes alone)."""
    if context.data.env is None:
        raise ValueError("fitness='return': the data has no environment (synthetic data); use "
                         "fitness='offline' or a callable")
    cpu = {k: v.detach().to("cpu", torch.float32) for k, v in params.items()}
    episodes, n = context.config.episodes, cpu["W0"].shape[0]
    threads = context.threads if context.threads is not None else min(16, available_cpus()[1])
    step = max(1, EVAL_MAX_ENVS // episodes)
    cfg = context.config
    starts = (per_seed_starts(cfg.eval_seed, context.seeds.tolist(), episodes) if cfg.start_states == "per_seed"
              else None)
    means = [evaluate(spec, {k: v[lo:lo + step] for k, v in cpu.items()}, context.data.env, episodes=episodes,
                      seed=cfg.eval_seed, threads=threads, action=cfg.action, temperature=cfg.temperature,
                      starts=None if starts is None else starts[lo:lo + step], horizon=cfg.horizon)[0]
             for lo in range(0, n, step)]
    return torch.cat(means)


def _chunks(n_members: int, n_items: int, length: int) -> tuple[range, int]:
    step = max(1, ROWS_PER_CHUNK // max(1, n_members * length))
    return range(0, n_items, step), step


@torch.no_grad()
def _mean_logratio(spec: TokenPolicySpec, params: dict[str, torch.Tensor], obs: torch.Tensor, bins: torch.Tensor,
                   mask: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """r_n(y) for every member and segment: ``[N, m]``."""
    n = params["W0"].shape[0]
    starts, step = _chunks(n, obs.shape[0], obs.shape[1])
    out = []
    for i in starts:
        logp = token_logps(spec, params, obs[i:i + step], bins[i:i + step])  # [N, c, T]
        m = mask[i:i + step]
        diff = torch.where(m, logp - ref[i:i + step], torch.zeros((), dtype=logp.dtype, device=logp.device))
        out.append(diff.sum(-1) / m.sum(-1).clamp(min=1))
    return torch.cat(out, dim=1)


def holdout_accuracy(spec: TokenPolicySpec, params: dict[str, torch.Tensor], data: PreferenceData) -> torch.Tensor:
    """acc_n ``[N]`` on the held-out pairs with clean labels (see the module docstring)."""
    h = _need_holdout(data)
    r_w = _mean_logratio(spec, params, h["chosen_obs"], h["chosen_bins"], h["chosen_mask"], h["ref_chosen_logps"])
    r_l = _mean_logratio(spec, params, h["rejected_obs"], h["rejected_bins"], h["rejected_mask"],
                         h["ref_rejected_logps"])
    diff = torch.where(h["better_is_chosen"], r_w - r_l, r_l - r_w)  # [N, m]: r(better) - r(worse)
    return ((diff > 0).to(diff.dtype) + 0.5 * (diff == 0).to(diff.dtype)).mean(-1)


@torch.no_grad()
def expert_loglik(spec: TokenPolicySpec, params: dict[str, torch.Tensor], data: PreferenceData) -> torch.Tensor:
    """ll_n ``[N]``: mean log-probability of the held-out expert segments' tokens."""
    h = _need_holdout(data)
    if "expert_obs" not in h or h["expert_obs"].shape[0] == 0:
        raise ValueError("fitness='offline': the held-out split has no expert segments; raise "
                         "holdout_fraction in prepare_data or set offline_ll_weight=0")
    n = params["W0"].shape[0]
    starts, step = _chunks(n, h["expert_obs"].shape[0], h["expert_obs"].shape[1])
    total = torch.zeros(n, dtype=params["W0"].dtype, device=params["W0"].device)
    for i in starts:
        logp = token_logps(spec, params, h["expert_obs"][i:i + step], h["expert_bins"][i:i + step])
        total += torch.where(h["expert_mask"][i:i + step], logp, torch.zeros((), dtype=logp.dtype,
                                                                           device=logp.device)).sum((1, 2))
    return total / h["expert_mask"].sum().clamp(min=1)


def offline_fitness(spec: TokenPolicySpec, params: dict[str, torch.Tensor],
                    context: FitnessContext) -> dict[str, torch.Tensor]:
    """F_n = (1 - w) acc_n + w (1 + ll_n / log K), with its components ``accuracy`` and ``expert_loglik``."""
    w = context.config.offline_ll_weight
    acc = holdout_accuracy(spec, params, context.data)
    if w == 0:
        return {"fitness": acc, "accuracy": acc}
    ll = expert_loglik(spec, params, context.data)
    return {"fitness": (1 - w) * acc + w * (1 + ll / math.log(spec.n_bins)), "accuracy": acc, "expert_loglik": ll}


def _need_holdout(data: PreferenceData) -> dict[str, torch.Tensor]:
    if data.holdout is None:
        raise ValueError("fitness='offline': the data has no held-out split; build it with "
                         "prepare_data(..., holdout_fraction=0.1)")
    return data.holdout


FITNESS: dict[str, FitnessFn] = {"return": return_fitness, "offline": offline_fitness}
"""Name -> built-in fitness function."""


def resolve_fitness(fitness: str | FitnessFn) -> FitnessFn:
    """The function for a ``TrainConfig.fitness`` value (a name of :data:`FITNESS` or a callable)."""
    return fitness if callable(fitness) else FITNESS[fitness]


def split_fitness(value: Any, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(fitness [N] float64 on CPU, extra metrics)`` from a fitness function's return value."""
    if isinstance(value, Mapping):
        if "fitness" not in value:
            raise ValueError(f"fitness: a mapping result needs a 'fitness' entry, got keys {sorted(value)}")
        extras = {k: torch.as_tensor(v).detach().to("cpu", torch.float64) for k, v in value.items() if k != "fitness"}
        value = value["fitness"]
    else:
        extras = {}
    fit = torch.as_tensor(value).detach().to("cpu", torch.float64).reshape(-1)
    if fit.shape[0] != n:
        raise ValueError(f"fitness: returned {fit.shape[0]} values for {n} members; expected Tensor[N]")
    return fit, extras
