"""The paper's method, for comparison: OpenAI-ES over a parametric monotone mirror map.

Alfano et al. search neural mirror maps with OpenAI-ES (Salimans et al. 2017). symloss's parametric
family is a monotone network in the learned-mirror-map style: non-negative weights over monotone
increasing basis functions,

    m_theta(u) = sum_k softplus(theta_k) * phi_k(u),
    phi in {u, -log(1 - e^u), softplus(u - c), tanh(u - c), e^(u/2)},   c in {-8, -4, -2, -1, -1/2},

so every theta gives a strictly increasing map (the weight of u is > 0). One ES generation samples
``population/2`` antithetic pairs theta +- sigma * eps, scores them with the same fitness as the GP
search (one batched call), shapes the scores by centred ranks and takes an Adam step on

    grad ~ 1 / (n sigma) * sum_i rank_i * eps_i.

State is explicit (:class:`ESState`, updated by ``replace``): ``ask(state) -> (thetas, state)``,
``tell(state, thetas, scores) -> (state, metrics)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp

from symloss.expr import SYMBOLS, log1mexp, softplus
from symloss.objectives import LOSSES, MirrorLoss, get_loss
from symloss.search._evolve import FitnessResult
from symloss.search._fitness import FitnessFn, safe_call
from symloss.validation import ConfigError, check_choice, check_range

_U = SYMBOLS["u"]
CENTRES = (-8.0, -4.0, -2.0, -1.0, -0.5)


def basis() -> list[sp.Expr]:
    """The monotone increasing basis functions phi_k(u) of the parametric mirror map."""
    return [_U, -log1mexp(_U), *(softplus(_U - c) for c in CENTRES), *(sp.tanh(_U - c) for c in CENTRES),
            sp.exp(_U / 2)]


def weights(theta: np.ndarray) -> np.ndarray:
    """Non-negative weights softplus(theta)."""
    return np.logaddexp(0.0, theta)


def mirror_expr(theta: np.ndarray, *, digits: int = 6) -> sp.Expr:
    """m_theta(u) as a SymPy expression (weights rounded to ``digits`` significant digits)."""
    terms = [sp.Float(float(f"{w:.{digits}g}")) * phi for w, phi in zip(weights(theta), basis(), strict=True)]
    return sp.Add(*terms)


@dataclass(frozen=True, kw_only=True)
class ESConfig:
    """OpenAI-ES hyperparameters (Salimans et al. 2017; as used by Alfano et al.)."""

    population: int = 16
    """Candidates per generation, an even number (antithetic pairs); >= 2."""
    generations: int = 10
    """ES generations; >= 1."""
    sigma: float = 0.3
    """Standard deviation of the parameter perturbations; > 0."""
    lr: float = 0.1
    """Adam learning rate on theta; > 0."""
    seed: int = 0
    """Seed of the perturbations."""
    base: str = "dpo"
    """Zoo loss providing beta, link and aggregation."""
    init: str = "dpo"
    """Initial map: ``dpo`` (m ~ u) or ``orpo`` (m ~ u - log(1 - e^u))."""

    def __post_init__(self) -> None:
        check_range("population", self.population, lo=2, integer=True, why="an even number: antithetic pairs")
        if self.population % 2:
            raise ConfigError(f"population={self.population!r}: must be an even integer >= 2 (antithetic pairs); "
                              f"use {self.population + 1}")
        check_range("generations", self.generations, lo=1, integer=True)
        check_range("sigma", self.sigma, lo=0, lo_open=True)
        check_range("lr", self.lr, lo=0, lo_open=True)
        check_range("seed", self.seed, integer=True)
        check_choice("base", self.base, LOSSES)
        check_choice("init", self.init, ("dpo", "orpo"))


def initial_theta(init: str) -> np.ndarray:
    """theta with weight ~1 on u (and on -log(1 - e^u) for ``orpo``), ~0.01 elsewhere."""
    n = len(basis())
    theta = np.full(n, math.log(math.expm1(0.01)))
    theta[0] = math.log(math.expm1(1.0))
    if init == "orpo":
        theta[1] = math.log(math.expm1(1.0))
    return theta


@dataclass(frozen=True)
class ESState:
    theta: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray
    step: int
    rng_state: dict[str, Any]
    best_theta: np.ndarray
    best_score: float = -math.inf
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)


def init_state(config: ESConfig) -> ESState:
    theta = initial_theta(config.init)
    rng = np.random.default_rng(config.seed)
    return ESState(theta, np.zeros_like(theta), np.zeros_like(theta), 0, rng.bit_generator.state, theta.copy())


def ask(state: ESState, config: ESConfig) -> tuple[np.ndarray, np.ndarray, ESState]:
    """Antithetic perturbations: returns (eps [n/2, d], thetas [n, d], state)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    eps = rng.standard_normal((config.population // 2, state.theta.size))
    thetas = np.concatenate([state.theta + config.sigma * eps, state.theta - config.sigma * eps])
    return eps, thetas, replace(state, rng_state=rng.bit_generator.state)


def centred_ranks(scores: np.ndarray) -> np.ndarray:
    """Fitness shaping: ranks mapped to [-0.5, 0.5] (ties broken by order); robust to outliers and -inf."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(len(scores))
    return ranks / max(1, len(scores) - 1) - 0.5


def tell(state: ESState, eps: np.ndarray, thetas: np.ndarray, scores: Sequence[float],
         config: ESConfig) -> tuple[ESState, dict[str, float]]:
    """Adam ascent on the ES estimate of the fitness gradient; tracks the best theta seen."""
    scores = np.asarray(scores, dtype=float)
    shaped = centred_ranks(np.where(np.isfinite(scores), scores, -np.inf))
    half = len(eps)
    grad = ((shaped[:half] - shaped[half:])[:, None] * eps).sum(0) / (len(scores) * config.sigma)
    step = state.step + 1
    m = 0.9 * state.adam_m + 0.1 * grad
    v = 0.999 * state.adam_v + 0.001 * grad**2
    update = config.lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    best = int(np.argmax(scores))
    improved = scores[best] > state.best_score
    metrics = {"generation": step, "best": float(scores[best]), "mean": float(np.mean(scores[np.isfinite(scores)]))
               if np.isfinite(scores).any() else -math.inf}
    new = replace(state, theta=state.theta + update, adam_m=m, adam_v=v, step=step,
                  best_theta=thetas[best].copy() if improved else state.best_theta,
                  best_score=float(scores[best]) if improved else state.best_score,
                  history=(*state.history, metrics))
    return new, metrics


class MirrorES:
    """OpenAI-ES over :func:`mirror_expr`'s family; ``fit`` returns self; ``best_`` is a MirrorLoss."""

    def __init__(self, config: ESConfig | None = None, *, fitness: FitnessFn, **kwargs: Any) -> None:
        self.config = config if config is not None else ESConfig(**kwargs)
        self.fitness = fitness

    def loss_for(self, theta: np.ndarray) -> MirrorLoss:
        return get_loss(self.config.base).replace(mirror=mirror_expr(theta), name="es")

    def fit(self) -> MirrorES:
        state = init_state(self.config)
        for _ in range(self.config.generations):
            eps, thetas, state = ask(state, self.config)
            results = safe_call(self.fitness, [self.loss_for(th) for th in thetas])
            scores = [r.mean if r.ok else -math.inf for r in results]
            state, _ = tell(state, eps, thetas, scores, self.config)
        self.state_ = state
        self.best_theta_ = state.best_theta
        self.best_score_ = state.best_score
        self.best_ = self.loss_for(state.best_theta)
        self.history_ = list(state.history)
        return self


__all__ = ["ESConfig", "ESState", "FitnessResult", "MirrorES", "basis", "mirror_expr"]
